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
use http_edge::auth::User;
use sqlx::Row;

use super::super::paging::{Paging, MAX_PER_PAGE};
use super::super::streamed;
use super::super::time_travel::{state_at, AsOf};
use super::super::AppState;
use super::view::{device_view, placeholders, DeviceView, DEVICE_COLUMNS, DEVICE_FROM};
use crate::error::{parse_id, ApiError};

/// Device statuses in the order of Mender's status numbers, which its device lists sort by.
const MENDER_ORDER: [DeviceDeploymentStatus; 13] = {
    use DeviceDeploymentStatus::*;
    [
        Failure,
        Aborted,
        PauseBeforeInstalling,
        PauseBeforeCommitting,
        PauseBeforeRebooting,
        Downloading,
        Installing,
        Rebooting,
        Pending,
        Success,
        NoArtifact,
        AlreadyInstalled,
        Decommissioned,
    ]
};

/// An SQL expression giving an entry's place in [`MENDER_ORDER`].
pub fn status_rank(column: &str) -> String {
    let cases: Vec<String> = MENDER_ORDER
        .iter()
        .enumerate()
        .map(|(rank, status)| format!("WHEN '{}' THEN {rank}", status.as_str()))
        .collect();
    format!("CASE {column} {} END", cases.join(" "))
}

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

/// The `status` parameter as an SQL condition on `dd.status` from `$first` on, with its values.
pub fn status_condition(
    query: &BTreeMap<String, String>,
    first: usize,
) -> Result<(String, Vec<&'static str>), ApiError> {
    match query.get("status").filter(|status| !status.is_empty()) {
        None => Ok((String::new(), Vec::new())),
        Some(status) => {
            let statuses: Vec<&'static str> = status_filter(status)?
                .into_iter()
                .map(DeviceDeploymentStatus::as_str)
                .collect();
            let condition = format!(
                " AND dd.status IN ({})",
                placeholders(first, statuses.len())
            );
            Ok((condition, statuses))
        }
    }
}

/// 400 for an id that is not a UUID, 404 for a deployment the tenant does not have.
async fn known_deployment(state: &AppState, tenant: &str, id: &str) -> Result<String, ApiError> {
    let id = parse_id(id)?.to_string();
    let known: Option<String> =
        sqlx::query_scalar("SELECT id FROM deployments WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(&id)
            .fetch_optional(&state.read_models.pool())
            .await?;
    known.ok_or(ApiError::NotFound)
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
    let tenant = user.tenant.0.clone();
    let id = known_deployment(&past.state, &tenant, &id).await?;
    Ok(streamed::json_array(
        None::<(String, String)>,
        move |after| {
            let (past, tenant, id) = (past.clone(), tenant.clone(), id.clone());
            async move {
                let after_condition = if after.is_some() {
                    " AND (dd.created > $3 OR (dd.created = $3 AND dd.device_id > $4))"
                } else {
                    ""
                };
                let sql = format!(
                    "SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM}
                     WHERE dd.tenant = $1 AND dd.deployment_id = $2{after_condition}
                     ORDER BY dd.created, dd.device_id LIMIT {}",
                    streamed::PAGE
                );
                let mut select = sqlx::query(&sql).bind(&tenant).bind(&id);
                if let Some((created, device)) = &after {
                    select = select.bind(created).bind(device);
                }
                let rows = select.fetch_all(&past.state.read_models.pool()).await?;
                let Some(last) = rows.last() else {
                    return Ok(None);
                };
                let next = (last.try_get("created")?, last.try_get("device_id")?);
                let views = rows
                    .iter()
                    .map(device_view)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some((views, Some(next))))
            }
        },
    ))
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
    let tenant = user.tenant.as_str();
    let id = known_deployment(&state, tenant, &id).await?;
    let paging = Paging::strict(&query, MAX_PER_PAGE)?;
    let (condition, statuses) = status_condition(&query, 3)?;
    let pool = &state.read_models.pool();
    let count_sql = format!(
        "SELECT COUNT(*) FROM device_deployments dd
         WHERE dd.tenant = $1 AND dd.deployment_id = $2{condition}"
    );
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql)
        .bind(tenant)
        .bind(&id);
    for status in &statuses {
        count = count.bind(*status);
    }
    let total = count.fetch_one(pool).await?;
    let page_sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM}
         WHERE dd.tenant = $1 AND dd.deployment_id = $2{condition}
         ORDER BY {}, dd.device_id LIMIT {} OFFSET {}",
        status_rank("dd.status"),
        paging.limit(),
        paging.offset()
    );
    let mut select = sqlx::query(&page_sql).bind(tenant).bind(&id);
    for status in &statuses {
        select = select.bind(*status);
    }
    let rows = select.fetch_all(pool).await?;
    let devices: Vec<DeviceView> = rows.iter().map(device_view).collect::<Result<_, _>>()?;
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
    let tenant = user.tenant.0.clone();
    let id = known_deployment(&state, &tenant, &id).await?;
    // Numbers start at 0.
    Ok(streamed::json_array(-1i64, move |after| {
        let (state, tenant, id) = (state.clone(), tenant.clone(), id.clone());
        async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
                "SELECT device_id, number FROM deployment_devices
                 WHERE tenant = $1 AND deployment_id = $2 AND number > $3
                 ORDER BY number LIMIT {}",
                streamed::PAGE
            ))
            .bind(&tenant)
            .bind(&id)
            .bind(after)
            .fetch_all(&state.read_models.pool())
            .await?;
            let Some(&(_, last)) = rows.last() else {
                return Ok(None);
            };
            Ok(Some((
                rows.into_iter().map(|(device, _)| device).collect(),
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
    let messages: Option<String> = sqlx::query_scalar(
        "SELECT messages FROM device_deployment_logs
         WHERE tenant = $1 AND deployment_id = $2 AND device_id = $3",
    )
    .bind(user.tenant.as_str())
    .bind(id.to_lowercase())
    .bind(&device_id)
    .fetch_optional(&state.read_models.pool())
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
