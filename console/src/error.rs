//! The console's failures, each answered once here: signed out goes to the sign-in page with
//! the stale cookie cleared, a refusal shows the API's own message with its status, a fault a
//! 5xx page with the detail logged rather than shown.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::{layout, session};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or the API no longer accepts its token.
    #[error("signed out")]
    SignedOut,
    /// A form without this session's CSRF token.
    #[error("the form is stale or did not come from this console")]
    Forged,
    /// The API refused the request (4xx): its message is for the operator.
    #[error("{1}")]
    Refused(StatusCode, String),
    /// The API failed (5xx).
    #[error("the server failed: {1}")]
    Upstream(StatusCode, String),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = match &self {
            ConsoleError::SignedOut => {
                // The cookie goes too: the API no longer takes its token, and a sign-in page
                // that still saw it would send the browser straight back here.
                let mut response = Redirect::to("/ui/sign-in").into_response();
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, session::session_cleared());
                return response;
            }
            ConsoleError::Forged => StatusCode::FORBIDDEN,
            ConsoleError::Refused(status, _) => *status,
            ConsoleError::Upstream(status, message) => {
                tracing::error!(%status, error = %message, "console: the API failed");
                *status
            }
            ConsoleError::Internal(message) => {
                tracing::error!(error = %message, "console: internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match &self {
            ConsoleError::Internal(_) => {
                "The console failed; the server's log says why.".to_owned()
            }
            other => other.to_string(),
        };
        (
            status,
            layout::bare("Error", &layout::error_panel(status, &message)),
        )
            .into_response()
    }
}
