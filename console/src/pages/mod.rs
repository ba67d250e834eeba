//! One module per section of the console.

pub mod artifact;
pub mod dashboard;
pub mod deployments;
pub mod device;
pub mod devices;
pub mod events;
pub mod reference;
pub mod releases;
pub mod search;
pub mod sign_in;

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use crate::api::refused_unless_ok;
use crate::error::ConsoleError;
use crate::session::Session;
use crate::ConsoleState;

/// A string field of an API answer, or "".
pub fn text<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or("")
}

/// A count field of an API answer, or 0.
pub fn number(value: &Value, name: &str) -> u64 {
    value[name].as_u64().unwrap_or(0)
}

/// A value as text: strings bare, anything else as JSON.
pub fn shown(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

/// The value of a device's inventory attribute `name`, as text, or "".
pub fn attribute(device: &Value, name: &str) -> String {
    device["attributes"]
        .as_array()
        .and_then(|attributes| attributes.iter().find(|each| text(each, "name") == name))
        .map(|each| shown(&each["value"]))
        .unwrap_or_default()
}

/// An operator's action: one API request, and what to say when it is done.
pub struct Action {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub done: &'static str,
}

pub fn no_such_action() -> ConsoleError {
    ConsoleError::Refused(StatusCode::NOT_FOUND, "No such action.".into())
}

/// Performs `action` and goes back to `page` (with the `keep` parameters) saying what was
/// done, or showing the API's refusal; signed out and server faults are the console's errors.
pub async fn perform(
    state: &ConsoleState,
    session: &Session,
    action: Action,
    page: &str,
    keep: &[(&str, &str)],
) -> Result<Response, ConsoleError> {
    let answer = state
        .api
        .call(
            &session.caller,
            action.method,
            &action.path,
            action.body.as_ref(),
        )
        .await?;
    let outcome = if answer.status.is_success() {
        query(&[keep, &[("notice", action.done)]].concat())
    } else if answer.status.is_client_error() && answer.status != StatusCode::UNAUTHORIZED {
        query(&[keep, &[("error", &answer.error())]].concat())
    } else {
        refused_unless_ok(answer)?;
        String::new()
    };
    Ok(Redirect::to(&format!("{page}?{outcome}")).into_response())
}

/// Percent-encodes one path segment (a device id, a group name) for an API path.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A query string from pairs, each value encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if !value.is_empty() {
            serializer.append_pair(name, value);
        }
    }
    serializer.finish()
}

/// A field of a submitted form, trimmed; empty is absent.
pub fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    form.get(name)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

/// The parameter `name` when it is one of `allowed`, else the first of them.
pub fn one_of<'a>(params: &'a HashMap<String, String>, name: &str, allowed: &[&'a str]) -> &'a str {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| allowed.contains(value))
        .unwrap_or(allowed[0])
}

/// The page number of a list, from `?page=`.
pub fn page_number(params: &HashMap<String, String>) -> u64 {
    params
        .get("page")
        .and_then(|page| page.parse().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_queries_are_encoded() {
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(query(&[("name", "a&b"), ("empty", "")]), "name=a%26b");
    }
}
