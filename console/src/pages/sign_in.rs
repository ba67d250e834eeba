//! Signing in with the login route the API serves (`useradm/auth/login`), and out.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::Engine;
use maud::html;
use rand::RngCore;

use crate::api::Caller;
use crate::error::ConsoleError;
use crate::layout;
use crate::session::{
    cookie, same_token, session_cleared, set_cookie, Anonymous, OverTls, Posted, SESSION_COOKIE,
    SIGN_IN_COOKIE,
};
use crate::ConsoleState;

const LOGIN: &str = "/api/management/v1/useradm/auth/login";

fn form_page(status: StatusCode, over_tls: OverTls, email: &str, error: Option<&str>) -> Response {
    let mut token = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut token);
    let token = hex::encode(token);
    let body = html! {
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form.stack method="post" action="/ui/sign-in" {
            input type="hidden" name="csrf" value=(token);
            label for="email" { "Email" }
            input #email type="email" name="email" autocomplete="username" required value=(email);
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        details {
            summary { "Sign in with a user token instead" }
            form.stack method="post" action="/ui/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="token" { "User token (from your identity provider, or `deployments token --user`)" }
                textarea #token name="token" rows="4" autocomplete="off" {}
                button type="submit" { "Sign in with the token" }
            }
        }
    };
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(over_tls, SIGN_IN_COOKIE, &token, Some(600)),
        )],
        layout::bare("Sign in", &body),
    )
        .into_response()
}

pub async fn form(
    State(state): State<ConsoleState>,
    Anonymous(caller): Anonymous,
    over_tls: OverTls,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let Some(token) = cookie(&headers, SESSION_COOKIE) else {
        return Ok(form_page(StatusCode::OK, over_tls, "", None));
    };
    // Only a session the API still takes goes on to the dashboard: an expired or foreign one
    // would be sent back here, and here there again, for ever.
    if accepted_as_a_user(&state, caller, token).await? {
        return Ok(Redirect::to("/ui/").into_response());
    }
    let mut page = form_page(StatusCode::OK, over_tls, "", None);
    page.headers_mut()
        .append(header::SET_COOKIE, session_cleared());
    Ok(page)
}

pub async fn submit(
    State(state): State<ConsoleState>,
    Anonymous(caller): Anonymous,
    over_tls: OverTls,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    same_token(
        cookie(&headers, SIGN_IN_COOKIE).unwrap_or(""),
        form.get("csrf").map(String::as_str),
    )?;
    if let Some(token) = form
        .get("token")
        .map(|token| token.trim())
        .filter(|token| !token.is_empty())
    {
        return sign_in_with_token(&state, caller, over_tls, token).await;
    }
    let email = form.get("email").map(|email| email.trim()).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(LOGIN)
        .header(header::AUTHORIZATION, format!("Basic {credentials}"))
        .body(axum::body::Body::empty())
        .map_err(|error| ConsoleError::Internal(error.to_string()))?;
    let answer = state.api.send(&caller, request).await;
    let status = answer.status();
    let body = axum::body::to_bytes(answer.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    match status {
        StatusCode::OK => {
            tracing::info!(email = %email, "console: signed in");
            Ok(signed_in(over_tls, String::from_utf8_lossy(&body).trim()))
        }
        StatusCode::UNAUTHORIZED => Ok(form_page(
            StatusCode::UNAUTHORIZED,
            over_tls,
            email,
            Some("Wrong email or password."),
        )),
        StatusCode::TOO_MANY_REQUESTS => Ok(form_page(
            StatusCode::TOO_MANY_REQUESTS,
            over_tls,
            email,
            Some("Too many failed sign-ins: wait a minute and try again."),
        )),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(form_page(
            StatusCode::SERVICE_UNAVAILABLE,
            over_tls,
            email,
            Some("This server has no password login here: sign in with a user token."),
        )),
        other => Err(ConsoleError::Upstream(
            other,
            String::from_utf8_lossy(&body).into_owned(),
        )),
    }
}

/// The session's cookie set (and the sign-in form's cleared), on to the dashboard.
fn signed_in(over_tls: OverTls, token: &str) -> Response {
    let mut response = Redirect::to("/ui/").into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(over_tls, SESSION_COOKIE, token, None),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(over_tls, SIGN_IN_COOKIE, "", Some(0)),
    );
    response
}

/// Whether the API takes `token` as a user's: it reads deployments with it, as only a user
/// token may. A failing API is the console's error, not a "no".
async fn accepted_as_a_user(
    state: &ConsoleState,
    mut caller: Caller,
    token: &str,
) -> Result<bool, ConsoleError> {
    caller.token = Some(token.to_owned());
    let answer = state
        .api
        .call(
            &caller,
            Method::GET,
            "/api/management/v1/deployments/deployments?per_page=1",
            None,
        )
        .await?;
    match answer.status {
        StatusCode::OK => Ok(true),
        status if status.is_client_error() => Ok(false),
        status => Err(ConsoleError::Upstream(status, answer.error())),
    }
}

/// A token the operator already has (from an identity provider, or Mender's useradm behind
/// the same gateway), accepted when the API takes it as a user's.
async fn sign_in_with_token(
    state: &ConsoleState,
    caller: Caller,
    over_tls: OverTls,
    token: &str,
) -> Result<Response, ConsoleError> {
    if !accepted_as_a_user(state, caller, token).await? {
        return Ok(form_page(
            StatusCode::UNAUTHORIZED,
            over_tls,
            "",
            Some("The server does not accept that token as a user's."),
        ));
    }
    tracing::info!("console: signed in with a token");
    Ok(signed_in(over_tls, token))
}

pub async fn sign_out(over_tls: OverTls, _signed_in: Posted) -> Result<Response, ConsoleError> {
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(over_tls, SESSION_COOKIE, "", Some(0)),
    );
    Ok(response)
}
