//! Signing in with the login route the API serves (`useradm/auth/login`), and out.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::Engine;
use maud::html;
use rand::RngCore;

use crate::error::ConsoleError;
use crate::layout;
use crate::session::{
    cookie, same_token, set_cookie, Anonymous, Posted, SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::ConsoleState;

const LOGIN: &str = "/api/management/v1/useradm/auth/login";

fn form_page(
    status: StatusCode,
    headers: &HeaderMap,
    email: &str,
    error: Option<&str>,
) -> Response {
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
            set_cookie(headers, SIGN_IN_COOKIE, &token, Some(600)),
        )],
        layout::bare("Sign in", &body),
    )
        .into_response()
}

pub async fn form(headers: HeaderMap) -> Response {
    if cookie(&headers, SESSION_COOKIE).is_some() {
        return Redirect::to("/ui/").into_response();
    }
    form_page(StatusCode::OK, &headers, "", None)
}

pub async fn submit(
    State(state): State<ConsoleState>,
    Anonymous(caller): Anonymous,
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
        return sign_in_with_token(&state, caller, &headers, token).await;
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
            Ok(signed_in(&headers, String::from_utf8_lossy(&body).trim()))
        }
        StatusCode::UNAUTHORIZED => Ok(form_page(
            StatusCode::UNAUTHORIZED,
            &headers,
            email,
            Some("Wrong email or password."),
        )),
        StatusCode::TOO_MANY_REQUESTS => Ok(form_page(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            email,
            Some("Too many failed sign-ins: wait a minute and try again."),
        )),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(form_page(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
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
fn signed_in(headers: &HeaderMap, token: &str) -> Response {
    let mut response = Redirect::to("/ui/").into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(headers, SESSION_COOKIE, token, None),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(headers, SIGN_IN_COOKIE, "", Some(0)),
    );
    response
}

/// A token the operator already has (from an identity provider, or Mender's useradm behind
/// the same gateway): accepted when the API reads deployments with it, as only a user token
/// may.
async fn sign_in_with_token(
    state: &ConsoleState,
    mut caller: crate::api::Caller,
    headers: &HeaderMap,
    token: &str,
) -> Result<Response, ConsoleError> {
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
        StatusCode::OK => {
            tracing::info!("console: signed in with a token");
            Ok(signed_in(headers, token))
        }
        status if status.is_client_error() => Ok(form_page(
            StatusCode::UNAUTHORIZED,
            headers,
            "",
            Some("The server does not accept that token as a user's."),
        )),
        status => Err(ConsoleError::Upstream(status, answer.error())),
    }
}

pub async fn sign_out(headers: HeaderMap, _signed_in: Posted) -> Result<Response, ConsoleError> {
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", Some(0)),
    );
    Ok(response)
}
