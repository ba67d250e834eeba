//! Releases and their artifacts, and uploading one with the API's refusal shown as it is.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
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
            form #upload.stack method="post" enctype="multipart/form-data"
                action=(format!("/ui/releases/upload?{}", query(&[("csrf", &session.csrf)]))) {
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
/// (JSON); a plain form sends it in the query and is redirected back.
pub async fn upload(
    State(state): State<ConsoleState>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ConsoleError> {
    let scripted = request.headers().contains_key(CSRF_HEADER);
    let sent = match scripted {
        true => request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok()),
        false => params.get("csrf").map(String::as_str),
    };
    session.check(sent)?;
    let mut forwarded = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(value) = request.headers().get(&name) {
            forwarded.insert(name, value.clone());
        }
    }
    let mut upstream = axum::http::Request::post(ARTIFACTS)
        .body(Body::new(request.into_body()))
        .map_err(|error| ConsoleError::Internal(error.to_string()))?;
    upstream.headers_mut().extend(forwarded);
    let answer = state.api.send(&session.caller, upstream).await;
    let status = answer.status();
    if scripted {
        let body = axum::body::to_bytes(answer.into_body(), 1024 * 1024)
            .await
            .unwrap_or_default();
        let body = match body.is_empty() {
            true => axum::body::Bytes::from_static(b"{}"),
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
