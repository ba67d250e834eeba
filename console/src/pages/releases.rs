//! Releases and their artifacts, and uploading one with the API's refusal shown as it is.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use bytes::Bytes;
use futures::StreamExt;
use maud::html;
use serde_json::Value;

use super::{page_number, query, text};
use crate::error::ConsoleError;
use crate::layout::{self, notice, pager, short_time, Section};
use crate::session::{Session, CSRF_HEADER};
use crate::ConsoleState;

const RELEASES: &str = "/api/management/v1/deployments/deployments/releases/list";
const ARTIFACTS: &str = "/api/management/v1/deployments/artifacts";
const PER_PAGE: u64 = 20;

/// The strings `pick` finds in each element of an array, joined for a table cell.
fn joined<'a>(array: &'a Value, pick: impl Fn(&'a Value) -> Option<&'a str>) -> String {
    array
        .as_array()
        .map(|items| items.iter().filter_map(pick).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// The device types an artifact is compatible with.
fn device_types(artifact: &Value) -> String {
    joined(&artifact["device_types_compatible"], Value::as_str)
}

/// The payload types of an artifact's updates.
fn payload_types(artifact: &Value) -> String {
    joined(&artifact["updates"], |update| {
        update["type_info"]["type"].as_str()
    })
}

pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let name = params.get("name").map(String::as_str).unwrap_or("");
    let page = page_number(&params);
    let path = format!(
        "{RELEASES}?{}",
        query(&[
            ("name", name),
            ("page", &page.to_string()),
            ("per_page", &PER_PAGE.to_string()),
        ])
    );
    let (releases, answer): (Vec<Value>, _) = state.api.read(&session.caller, &path).await?;
    let base = format!("/ui/releases?{}", query(&[("name", name)]));
    let body = html! {
        (notice(params.get("notice").map(String::as_str)))
        section aria-labelledby="upload-heading" {
            h2 #upload-heading { "Upload an artifact" }
            form #upload.stack method="post" enctype="multipart/form-data" action="/ui/releases/upload" {
                // First, so that the upload reads it before the file (see `upload`).
                input type="hidden" name="csrf" value=(session.csrf);
                label for="artifact" { "Artifact file (.mender)" }
                input #artifact type="file" name="artifact" required;
                label for="description" { "Description" }
                input #description name="description";
                progress #upload-progress max="100" value="0" hidden aria-label="Upload progress" {}
                p #upload-result role="status" {}
                button type="submit" { "Upload" }
            }
        }
        form.inline role="search" method="get" action="/ui/releases" {
            label for="name" { "Release name contains" }
            input #name type="search" name="name" value=(name);
            button type="submit" { "Filter" }
        }
        div #release-list data-live {
            @if releases.is_empty() {
                p.muted { "No releases." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Release" } th scope="col" { "Artifact" }
                        th scope="col" { "Device types" } th scope="col" { "Payload" }
                        th scope="col" { "Signed" } th scope="col" { "Size" }
                        th scope="col" { "Modified" }
                    } }
                    tbody {
                        @for release in &releases {
                            @let artifacts = release["artifacts"].as_array().cloned().unwrap_or_default();
                            @for (index, artifact) in artifacts.iter().enumerate() {
                                tr data-release=(text(release, "name")) {
                                    @if index == 0 {
                                        th scope="row" rowspan=(artifacts.len()) {
                                            (text(release, "name"))
                                            br;
                                            a.small href=(format!("/ui/deployments/new?{}", query(&[("release", text(release, "name"))]))) { "deploy" }
                                        }
                                    }
                                    td { a href=(format!("/ui/artifacts/{}", text(artifact, "id"))) { @if text(artifact, "description").is_empty() { "details" } @else { (text(artifact, "description")) } } }
                                    td { (device_types(artifact)) }
                                    td { (payload_types(artifact)) }
                                    td { @if artifact["signed"].as_bool() == Some(true) { "yes" } @else { "no" } }
                                    td { (artifact["size"].as_u64().unwrap_or(0)) " B" }
                                    td { (short_time(text(artifact, "modified"))) }
                                }
                            }
                        }
                    }
                }
            }
            (pager(&base, page, PER_PAGE, answer.total()))
        }
    };
    Ok(layout::page(
        "Releases",
        Section::Releases,
        &session.csrf,
        body,
    ))
}

/// `POST /ui/releases/upload`: the browser's multipart body streamed to the API as it
/// arrives. The page's script sends the CSRF token in a header and reads the API's answer
/// (JSON); a plain form sends it as its first field and is redirected back.
pub async fn upload(
    State(state): State<ConsoleState>,
    session: Session,
    request: Request,
) -> Result<Response, ConsoleError> {
    let (parts, body) = request.into_parts();
    let scripted = parts.headers.contains_key(CSRF_HEADER);
    let mut body = body.into_data_stream();
    let read = match scripted {
        true => {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok());
            session.check(sent)?;
            Vec::new()
        }
        false => {
            let boundary = boundary(&parts.headers).ok_or_else(|| {
                ConsoleError::Refused(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "An upload is a multipart/form-data form.".into(),
                )
            })?;
            let (sent, read) = leading_csrf(&boundary, &mut body).await?;
            session.check(sent.as_deref())?;
            read
        }
    };
    let mut forwarded = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(value) = parts.headers.get(&name) {
            forwarded.insert(name, value.clone());
        }
    }
    // What was read to find the token goes first, unchanged: the API sees the whole body
    // (and ignores the `csrf` field, as Mender ignores fields it does not know).
    let rest = futures::stream::once(async move { Ok(Bytes::from(read)) }).chain(body);
    let mut upstream = axum::http::Request::post(ARTIFACTS)
        .body(Body::from_stream(rest))
        .map_err(|error| ConsoleError::Internal(error.to_string()))?;
    upstream.headers_mut().extend(forwarded);
    let answer = state.api.send(&session.caller, upstream).await;
    let status = answer.status();
    if scripted {
        let body = axum::body::to_bytes(answer.into_body(), 1024 * 1024)
            .await
            .unwrap_or_default();
        let body = match body.is_empty() {
            true => Bytes::from_static(b"{}"),
            false => body,
        };
        return Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    if status == StatusCode::CREATED {
        return Ok(Redirect::to("/ui/releases?notice=Uploaded.").into_response());
    }
    let (parts, body) = answer.into_parts();
    let body = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let answer = crate::api::Answer {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    crate::api::refused_unless_ok(answer).map(|_| StatusCode::NO_CONTENT.into_response())
}

/// The most of a plain form's upload read in search of its first field, the CSRF token.
const FIRST_FIELD_LIMIT: usize = 16 * 1024;

/// The boundary a multipart body's `Content-Type` names.
fn boundary(headers: &HeaderMap) -> Option<String> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (kind, parameters) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parameters
        .split(';')
        .filter_map(|parameter| parameter.trim().split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|boundary| !boundary.is_empty())
}

/// Reads the body until its first field is whole: the token it holds when it is `csrf`, and
/// every byte read.
async fn leading_csrf(
    boundary: &str,
    body: &mut axum::body::BodyDataStream,
) -> Result<(Option<String>, Vec<u8>), ConsoleError> {
    let mut read = Vec::new();
    // Looked for after every chunk, however large: a proxy in front (nginx) passes the body
    // on in chunks far larger than the limit, the first holding the field and much more.
    loop {
        if let Some((name, value)) = first_field(&read, boundary) {
            let token = (name == "csrf").then(|| String::from_utf8_lossy(value).into_owned());
            return Ok((token, read));
        }
        if read.len() >= FIRST_FIELD_LIMIT {
            break;
        }
        match body.next().await {
            Some(Ok(chunk)) => read.extend_from_slice(&chunk),
            Some(Err(error)) => {
                return Err(ConsoleError::Refused(
                    StatusCode::BAD_REQUEST,
                    format!("The upload did not arrive whole: {error}"),
                ))
            }
            None => break,
        }
    }
    Ok((None, read))
}

/// The name and value of a multipart body's first field, once `body` holds all of it.
fn first_field<'a>(body: &'a [u8], boundary: &str) -> Option<(&'a str, &'a [u8])> {
    let opening = format!("--{boundary}\r\n");
    let start = find(body, opening.as_bytes())? + opening.len();
    let head_length = find(&body[start..], b"\r\n\r\n")?;
    let head = std::str::from_utf8(&body[start..start + head_length]).ok()?;
    let value_start = start + head_length + 4;
    let closing = format!("\r\n--{boundary}");
    let value_length = find(&body[value_start..], closing.as_bytes())?;
    let disposition = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-disposition"))?
        .1;
    let name = disposition
        .split(';')
        .filter_map(|parameter| parameter.trim().split_once('='))
        .find(|(key, _)| *key == "name")?
        .1
        .trim_matches('"');
    Some((name, &body[value_start..value_start + value_length]))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_field_is_read_once_it_is_whole() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nab12\r\n--XyZ\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"a\"\r\n\r\n...";
        assert_eq!(first_field(body, "XyZ"), Some(("csrf", &b"ab12"[..])));
        assert_eq!(first_field(&body[..50], "XyZ"), None, "not whole yet");
        assert_eq!(first_field(body, "other"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=\"XyZ\"".parse().unwrap(),
        );
        assert_eq!(boundary(&headers).as_deref(), Some("XyZ"));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(boundary(&headers), None);
    }

    #[test]
    fn the_token_is_found_in_a_first_chunk_larger_than_the_limit() {
        let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nab12\r\n--XyZ\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"a\"\r\n\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', FIRST_FIELD_LIMIT * 4));
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let whole = body.clone();
        let mut stream = Body::from(body).into_data_stream();
        let (token, read) = futures::executor::block_on(leading_csrf("XyZ", &mut stream)).unwrap();
        assert_eq!(token.as_deref(), Some("ab12"));
        assert_eq!(read, whole, "what was read is passed on whole");
    }
}
