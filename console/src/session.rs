//! The signed-in operator. The session cookie holds the user token the login route issued,
//! out of reach of scripts (`HttpOnly`) and of other sites (`SameSite=Strict`); the console
//! keeps no session state of its own, so any instance serves any session. Every form carries
//! a token derived from the session's, which another site can neither read nor compute.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::Caller;
use crate::error::ConsoleError;

pub const SESSION_COOKIE: &str = "deployments_session";
/// Holds the sign-in form's token before there is a session.
pub const SIGN_IN_COOKIE: &str = "deployments_sign_in";
/// The header scripts send the CSRF token in (uploads, which are not plain forms).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A request from a signed-in operator.
pub struct Session {
    pub caller: Caller,
    /// What every form of this session must send back.
    pub csrf: String,
}

impl Session {
    /// Refuses a form whose token is not this session's.
    pub fn check(&self, sent: Option<&str>) -> Result<(), ConsoleError> {
        same_token(&self.csrf, sent)
    }
}

/// Compares a form's token with the expected one in constant time.
pub fn same_token(expected: &str, sent: Option<&str>) -> Result<(), ConsoleError> {
    let sent = sent.unwrap_or("");
    if !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
        Ok(())
    } else {
        Err(ConsoleError::Forged)
    }
}

/// The CSRF token of a session: a digest of its user token, so it needs no storage and
/// changes with every sign-in.
fn csrf_of(token: &str) -> String {
    let digest = Sha256::digest(format!("deployments-console-csrf:{token}").as_bytes());
    hex::encode(&digest[..16])
}

/// The value of the cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether the browser reached us over TLS: this server's own (`http.tls_certificate`), or a
/// proxy's that terminated it and says so in `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for OverTls {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let served = parts
            .extensions
            .get::<http_edge::serve::ServedOverTls>()
            .is_some();
        let forwarded = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
        Ok(OverTls(served || forwarded))
    }
}

/// A `Set-Cookie` for the console's paths, `Secure` when the browser reached us over TLS.
pub fn set_cookie(over_tls: OverTls, name: &str, value: &str, max_age: Option<u32>) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if over_tls.0 {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` that removes the session's cookie. Without `Secure` it still replaces a
/// `Secure` one: browsers refuse that only over plain HTTP, where none was set.
pub fn session_cleared() -> HeaderValue {
    set_cookie(OverTls(false), SESSION_COOKIE, "", Some(0))
}

/// What the API should see of the browser's request: its request id and address.
pub fn caller_of(parts: &Parts, token: Option<String>) -> Caller {
    let mut forwarded = HeaderMap::new();
    // The log position a live page has heard of: the API answers once its reads show it.
    for name in [
        "x-men-requestid",
        "x-forwarded-proto",
        "x-deployments-log-position",
    ] {
        if let Some(value) = parts.headers.get(name) {
            forwarded.insert(name, value.clone());
        }
    }
    let mut extensions = axum::http::Extensions::new();
    if let Some(address) = parts.extensions.get::<http_edge::serve::ClientAddress>() {
        extensions.insert(*address);
    }
    Caller {
        token,
        forwarded,
        extensions,
    }
}

/// A request from anyone, signed in or not: the sign-in form's.
pub struct Anonymous(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Anonymous {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Anonymous(caller_of(parts, None)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or(ConsoleError::SignedOut)?
            .to_owned();
        Ok(Session {
            csrf: csrf_of(&token),
            caller: caller_of(parts, Some(token)),
        })
    }
}

/// A form the signed-in operator posted, its CSRF token checked: a form without this
/// session's token is refused before any handler sees it.
pub struct Posted {
    pub session: Session,
    pub form: HashMap<String, String>,
}

impl<S: Send + Sync> FromRequest<S> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let axum::Form(form) = axum::Form::<HashMap<String, String>>::from_request(
            Request::from_parts(parts, body),
            state,
        )
        .await
        .map_err(|rejection| ConsoleError::Refused(rejection.status(), rejection.body_text()))?;
        session.check(form.get("csrf").map(String::as_str))?;
        Ok(Self { session, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; deployments_session=tok.en.x; b="),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok.en.x"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn only_the_sessions_own_token_passes() {
        let csrf = csrf_of("token-1");
        assert!(same_token(&csrf, Some(&csrf)).is_ok());
        assert!(same_token(&csrf, Some(&csrf_of("token-2"))).is_err());
        assert!(same_token(&csrf, None).is_err());
        assert!(same_token("", Some("")).is_err());
    }
}
