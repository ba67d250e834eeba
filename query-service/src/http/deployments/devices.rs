//! The devices of one deployment: every entry, a filtered page of them, the targeted device
//! ids, and a device's log.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use events::deployment::{DeviceDeploymentStatus, LogMessage};
use events::{DeploymentId, TenantId};
use http_edge::auth::User;

use super::super::paging::{Paging, MAX_PER_PAGE};
use super::super::streamed;
use super::super::time_travel::{state_at, AsOf};
use super::super::AppState;
use super::view::{device_view, DeviceView};
use crate::error::{parse_id, ApiError};
use crate::read_models::entries::JoinedAfter;

/// The statuses a device-list `status` parameter selects: one status, or Mender's groups
/// `pause` (the pause states), `active` (not yet final) and `finished` (final).
pub fn status_filter(text: &str) -> Result<Vec<DeviceDeploymentStatus>, ApiError> {
    use DeviceDeploymentStatus::*;
    let pause = [
        PauseBeforeInstalling,
        PauseBeforeCommitting,
        PauseBeforeRebooting,
    ];
    Ok(match text {
        "pause" => pause.to_vec(),
        "active" => DeviceDeploymentStatus::ALL
            .into_iter()
            .filter(|status| !status.is_final())
            .collect(),
        "finished" => DeviceDeploymentStatus::ALL
            .into_iter()
            .filter(|status| status.is_final())
            .collect(),
        other => vec![DeviceDeploymentStatus::parse(other)
            .ok_or_else(|| ApiError::BadRequest("status: must be a valid value".into()))?],
    })
}

/// The statuses a device list's `status` parameter selects; `None`, every status, when it is
/// missing or empty.
pub fn statuses(
    query: &BTreeMap<String, String>,
) -> Result<Option<Vec<DeviceDeploymentStatus>>, ApiError> {
    query
        .get("status")
        .filter(|status| !status.is_empty())
        .map(|status| status_filter(status))
        .transpose()
}

/// 400 for an id that is not a UUID, 404 for a deployment the tenant does not have.
async fn known_deployment(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
) -> Result<DeploymentId, ApiError> {
    let id: DeploymentId = parse_id(id)?;
    match state.read_models.deployments().exists(tenant, id).await? {
        true => Ok(id),
        false => Err(ApiError::NotFound),
    }
}

/// Every entry of the deployment, in the order the devices joined (Mender's deprecated list),
/// written a page at a time.
pub async fn all(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    Query(as_of): Query<AsOf>,
) -> Result<Response, ApiError> {
    // Owned by the stream: a past state's scratch database lives until the last page.
    let past = Arc::new(state_at(&state, &user.tenant, &id, &as_of).await?);
    let tenant = user.tenant;
    let id = known_deployment(&past.state, &tenant, &id).await?;
    Ok(streamed::json_array(None::<JoinedAfter>, move |after| {
        let (past, tenant) = (past.clone(), tenant.clone());
        async move {
            // Per page rather than once: a rebuild may switch the serving generation mid-list.
            let entries = past
                .state
                .read_models
                .entries()
                .in_joining_order(&tenant, id, after.as_ref(), streamed::PAGE)
                .await?;
            let Some(last) = entries.last() else {
                return Ok(None);
            };
            let next = last.joined();
            let views = entries
                .into_iter()
                .map(device_view)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((views, Some(next))))
        }
    }))
}

/// A page of the deployment's entries, optionally of some statuses, in Mender's order (by
/// status number, then device id).
pub async fn page(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenant = &user.tenant;
    let id = known_deployment(&state, tenant, &id).await?;
    let paging = Paging::strict(&query, MAX_PER_PAGE)?;
    let statuses = statuses(&query)?;
    let store = state.read_models.entries();
    let total = store.count(tenant, id, statuses.as_deref()).await?;
    let entries = store
        .page(tenant, id, statuses.as_deref(), paging.window())
        .await?;
    let devices: Vec<DeviceView> = entries
        .into_iter()
        .map(device_view)
        .collect::<Result<_, _>>()?;
    let headers = paging.headers(uri.path(), &query, total as u64);
    Ok((headers, Json(devices)).into_response())
}

/// The ids of the devices the deployment targets, in the order they were given, written a
/// page at a time.
pub async fn targeted(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = user.tenant;
    let id = known_deployment(&state, &tenant, &id).await?;
    // Numbers start at 0.
    Ok(streamed::json_array(-1i64, move |after| {
        let (state, tenant) = (state.clone(), tenant.clone());
        async move {
            let devices = state
                .read_models
                .deployments()
                .targeted_devices(&tenant, id, after, streamed::PAGE)
                .await?;
            let Some(last) = devices.last().map(|device| device.number) else {
                return Ok(None);
            };
            Ok(Some((
                devices.into_iter().map(|device| device.device_id).collect(),
                last,
            )))
        }
    }))
}

/// The device's log for the deployment as text, one line per message; 404 when there is none.
/// Like Mender, the ids are not checked for form: an id that names nothing finds no log.
pub async fn log(
    State(state): State<AppState>,
    User(user): User,
    Path((id, device_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let messages = state
        .read_models
        .entries()
        .log(&user.tenant, &id.to_lowercase(), &device_id)
        .await?;
    let messages: Vec<LogMessage> =
        serde_json::from_str(&messages.ok_or(ApiError::NotFound)?).map_err(anyhow::Error::from)?;
    let text: String = messages.iter().map(log_line).collect();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// `<time> <level>: <message>` and a newline, the time written as Go prints a UTC time
/// (`2006-01-02 15:04:05.999999999 +0000 UTC`, trailing zeros of the fraction dropped).
fn log_line(message: &LogMessage) -> String {
    let mut line = format!(
        "{} {}: {}",
        go_time(message.timestamp),
        message.level,
        message.message
    );
    if !line.ends_with('\n') {
        line.push('\n');
    }
    line
}

fn go_time(time: DateTime<Utc>) -> String {
    let nanos = time.timestamp_subsec_nanos();
    let fraction = if nanos == 0 {
        String::new()
    } else {
        format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
    };
    format!("{}{fraction} +0000 UTC", time.format("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_read_like_menders() {
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        let message = |timestamp, message: &str| LogMessage {
            timestamp,
            level: "info".into(),
            message: message.into(),
        };
        assert_eq!(
            log_line(&message(at("2006-01-02T15:04:05-07:00"), "foo")),
            "2006-01-02 22:04:05 +0000 UTC info: foo\n"
        );
        assert_eq!(
            log_line(&message(at("2024-03-02T08:30:00.120Z"), "done\n")),
            "2024-03-02 08:30:00.12 +0000 UTC info: done\n"
        );
    }

    #[test]
    fn status_groups_are_menders() {
        use DeviceDeploymentStatus::*;
        assert_eq!(status_filter("pause").unwrap().len(), 3);
        let active = status_filter("active").unwrap();
        assert_eq!(active.len(), 7);
        assert!(active.contains(&Pending) && active.contains(&PauseBeforeRebooting));
        let finished = status_filter("finished").unwrap();
        assert_eq!(finished.len(), 6);
        assert!(finished.contains(&Decommissioned) && !finished.contains(&Rebooting));
        assert_eq!(
            status_filter("already-installed").unwrap(),
            [AlreadyInstalled]
        );
        assert!(matches!(
            status_filter("paused"),
            Err(ApiError::BadRequest(message)) if message == "status: must be a valid value"
        ));
    }
}
