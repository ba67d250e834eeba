//! One artifact: what it installs where, its checksums and provides, its description, and
//! deleting it.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde_json::{json, Value};

use super::{perform, query, segment, shown, text, Action};
use crate::error::ConsoleError;
use crate::layout::{self, notice, short_time, Section};
use crate::session::{Posted, Session};
use crate::ConsoleState;

const ARTIFACTS: &str = "/api/management/v1/deployments/artifacts";

pub async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let id = segment(&id);
    let (artifact, _): (Value, _) = state
        .api
        .read(&session.caller, &format!("{ARTIFACTS}/{id}"))
        .await?;
    let name = text(&artifact, "name").to_owned();
    let list = |value: &Value| -> String {
        value
            .as_array()
            .map(|items| items.iter().map(shown).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let updates = artifact["updates"].as_array().cloned().unwrap_or_default();
    let body = html! {
        (notice(params.get("notice").map(String::as_str)))
        @if let Some(error) = params.get("error") {
            p.error role="alert" { (error) }
        }
        p { a href=(format!("/ui/releases?{}", query(&[("name", &name)]))) { "← Releases" } }
        dl.facts {
            dt { "Release" } dd { (name) }
            dt { "Device types" } dd { (list(&artifact["device_types_compatible"])) }
            dt { "Signed" } dd { @if artifact["signed"].as_bool() == Some(true) { "yes" } @else { "no" } }
            dt { "Size" } dd { (artifact["size"].as_u64().unwrap_or(0)) " bytes" }
            dt { "Format version" } dd { (shown(&artifact["info"]["version"])) }
            dt { "Uploaded or changed" } dd { (short_time(text(&artifact, "modified"))) }
            @if let Some(provides) = artifact.get("artifact_provides") {
                dt { "Provides" } dd { code { (provides.to_string()) } }
            }
            @if let Some(depends) = artifact.get("artifact_depends") {
                dt { "Depends on" } dd { code { (depends.to_string()) } }
            }
            @if let Some(clears) = artifact.get("clears_artifact_provides") {
                dt { "Clears" } dd { code { (clears.to_string()) } }
            }
        }
        h2 { "Payloads" }
        table #payloads {
            thead { tr { th scope="col" { "Type" } th scope="col" { "File" } th scope="col" { "Size" } th scope="col" { "SHA-256" } } }
            tbody {
                @for update in &updates {
                    @for file in update["files"].as_array().cloned().unwrap_or_default() {
                        tr {
                            td { (shown(&update["type_info"]["type"])) }
                            td { (text(&file, "name")) }
                            td { (file["size"].as_u64().unwrap_or(0)) }
                            td { code { (text(&file, "checksum")) } }
                        }
                    }
                }
            }
        }
        h2 { "Description" }
        form.inline method="post" action=(format!("/ui/artifacts/{id}/description")) {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="description" { "Description" }
            input #description name="description" value=(text(&artifact, "description"));
            button type="submit" { "Save" }
        }
        h2 { "Use or remove" }
        p { a.button href=(format!("/ui/deployments/new?{}", query(&[("release", &name)]))) { "Create a deployment of this release" } }
        form.inline method="post" action=(format!("/ui/artifacts/{id}/delete")) {
            input type="hidden" name="csrf" value=(session.csrf);
            button type="submit" data-action="delete" { "Delete this artifact" }
        }
    };
    Ok(layout::page(
        &format!("Artifact of {name}"),
        Section::Releases,
        &session.csrf,
        body,
    ))
}

/// `POST /ui/artifacts/{id}/description`.
pub async fn describe(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Posted { session, form }: Posted,
) -> Result<Response, ConsoleError> {
    let id = segment(&id);
    let action = Action {
        method: Method::PUT,
        path: format!("{ARTIFACTS}/{id}"),
        body: Some(
            json!({"description": form.get("description").map(String::as_str).unwrap_or("")}),
        ),
        done: "Description saved.",
    };
    perform(
        &state,
        &session,
        action,
        &format!("/ui/artifacts/{id}"),
        &[],
    )
    .await
}

/// `POST /ui/artifacts/{id}/delete`: gone, or kept with the reason (409: an active
/// deployment installs it).
pub async fn delete(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Posted { session, .. }: Posted,
) -> Result<Response, ConsoleError> {
    let id = segment(&id);
    let answer = state
        .api
        .call(
            &session.caller,
            Method::DELETE,
            &format!("{ARTIFACTS}/{id}"),
            None,
        )
        .await?;
    let back = match answer.status {
        status if status.is_success() => {
            format!("/ui/releases?{}", query(&[("notice", "Artifact deleted.")]))
        }
        StatusCode::CONFLICT => format!(
            "/ui/artifacts/{id}?{}",
            query(&[("error", "Not deleted: in use by an active deployment.")])
        ),
        status if status.is_client_error() && status != StatusCode::UNAUTHORIZED => {
            format!(
                "/ui/artifacts/{id}?{}",
                query(&[("error", &answer.error())])
            )
        }
        _ => {
            crate::api::refused_unless_ok(answer)?;
            String::new()
        }
    };
    Ok(Redirect::to(&back).into_response())
}
