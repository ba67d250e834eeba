//! The dashboard: devices by status, rollouts under way, the last finished ones, storage.

use axum::extract::State;
use axum::response::Html;
use maud::{html, Markup};
use serde_json::Value;

use super::deployments::{deployment_cards, DEPLOYMENTS};
use crate::error::ConsoleError;
use crate::layout::{self, Section};
use crate::session::Session;
use crate::ConsoleState;

/// The admission states of devices, as deviceauth names them.
pub const DEVICE_STATES: [&str; 4] = ["accepted", "pending", "rejected", "preauthorized"];

pub async fn show(
    State(state): State<ConsoleState>,
    session: Session,
) -> Result<Html<String>, ConsoleError> {
    let api = &state.api;
    let caller = &session.caller;
    // The reads are independent: made at once, the page takes as long as the slowest.
    let paths = ["inprogress", "pending"]
        .map(|status| format!("{DEPLOYMENTS}?status={status}&per_page=10"));
    let finished = format!("{DEPLOYMENTS}?status=finished&per_page=5");
    let (counts, lists, finished, storage) = futures::join!(
        device_counts(&state, &session),
        futures::future::try_join_all(
            paths
                .iter()
                .map(|path| api.read::<Vec<Value>>(caller, path))
        ),
        api.read::<Vec<Value>>(caller, &finished),
        api.read::<Value>(caller, "/api/management/v1/deployments/limits/storage"),
    );
    let counts = counts?;
    let active: Vec<Value> = lists?.into_iter().flat_map(|(some, _)| some).collect();
    let (finished, _) = finished?;
    let (storage, _) = storage?;
    let body = html! {
        section aria-labelledby="devices-heading" {
            h2 #devices-heading { "Devices" }
            ul.counts #device-counts data-live {
                @for (status, count) in &counts {
                    li {
                        a href=(format!("/ui/devices?status={status}")) {
                            span.count data-status=(status) { (count) } " " (status)
                        }
                        @if *status == "pending" && *count > 0 {
                            " · " a href="/ui/devices?status=pending" { "review" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="active-heading" {
            h2 #active-heading { "Active deployments" }
            div #active data-live { (deployment_cards(&active, "No deployment is pending or in progress.")) }
        }
        section aria-labelledby="finished-heading" {
            h2 #finished-heading { "Recently finished" }
            div #finished data-live { (deployment_cards(&finished, "No deployment has finished yet.")) }
        }
        section aria-labelledby="storage-heading" {
            h2 #storage-heading { "Artifact storage" }
            (storage_usage(&storage))
        }
    };
    Ok(layout::page(
        "Dashboard",
        Section::Dashboard,
        &session.csrf,
        body,
    ))
}

/// How many devices have each admission status, read at once.
pub async fn device_counts(
    state: &ConsoleState,
    session: &Session,
) -> Result<Vec<(&'static str, u64)>, ConsoleError> {
    let reads = DEVICE_STATES.map(|status| async move {
        let (count, _): (Value, _) = state
            .api
            .read(
                &session.caller,
                &format!("/api/management/v2/devauth/devices/count?status={status}"),
            )
            .await?;
        Ok::<_, ConsoleError>((status, count["count"].as_u64().unwrap_or(0)))
    });
    futures::future::try_join_all(reads).await
}

fn storage_usage(storage: &Value) -> Markup {
    let usage = storage["usage"].as_u64().unwrap_or(0);
    let limit = storage["limit"].as_u64().unwrap_or(0);
    html! {
        @if limit > 0 {
            p { (megabytes(usage)) " used of " (megabytes(limit)) }
            progress max=(limit) value=(usage.min(limit)) aria-label="Storage used" {}
        } @else {
            p { (megabytes(usage)) " used (no limit)" }
        }
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}
