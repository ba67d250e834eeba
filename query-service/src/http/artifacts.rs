//! Reads of artifacts, releases, storage limits and download links, and the route that
//! serves local artifact files to holders of a signed link.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use events::{ArtifactId, TenantId};
use http_edge::auth::User;
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

use super::paging::Paging;
use super::AppState;
use crate::error::{parse_id, ApiError};
use crate::read_models::artifacts::{Artifact, ArtifactField, ArtifactFilter, ArtifactSort};

const BASE: &str = "/api/management/v1/deployments";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/artifacts"), get(list))
        .route(&format!("{BASE}/artifacts/list"), get(list_page))
        .route(&format!("{BASE}/artifacts/{{id}}"), get(artifact))
        .route(
            &format!("{BASE}/artifacts/{{id}}/download"),
            get(download_link),
        )
        .route(&format!("{BASE}/deployments/releases"), get(releases))
        .route(
            &format!("{BASE}/deployments/releases/list"),
            get(releases_page),
        )
        .route(&format!("{BASE}/limits/storage"), get(storage_limit))
        .route(
            &format!("{}/{{*key}}", blob_store::DOWNLOAD_PATH),
            get(serve_file),
        )
}

/// An artifact as Mender's API shows it, from its read-model row.
pub(super) fn view(row: &Artifact) -> Result<Value, ApiError> {
    let mut artifact: Value = serde_json::from_str(&row.document).map_err(anyhow::Error::from)?;
    let fields = artifact
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("artifact document is not an object"))?;
    if let Some(id) = fields.remove("artifact_id") {
        fields.insert("id".into(), id);
    }
    fields.insert("description".into(), Value::String(row.description.clone()));
    fields.insert("modified".into(), Value::String(row.modified.clone()));
    // Mender leaves these out when empty rather than sending nulls or empty collections.
    for optional in [
        "artifact_provides",
        "artifact_depends",
        "clears_artifact_provides",
    ] {
        if fields.get(optional).is_some_and(is_empty) {
            fields.remove(optional);
        }
    }
    if let Some(Value::Array(updates)) = fields.get_mut("updates") {
        for update in updates {
            if let Some(update) = update.as_object_mut() {
                if update.get("meta_data").is_some_and(is_empty) {
                    update.remove("meta_data");
                }
            }
        }
    }
    Ok(artifact)
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

async fn list(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<Vec<Value>>, ApiError> {
    let artifacts = state.read_models.artifacts().all(&user.tenant).await?;
    Ok(Json(artifacts.iter().map(view).collect::<Result<_, _>>()?))
}

/// Filters of the paginated artifact list: case-insensitive substrings, as Mender matches.
fn artifact_filter(query: &BTreeMap<String, String>) -> ArtifactFilter {
    ArtifactFilter {
        name: query.get("name").cloned(),
        description: query.get("description").cloned(),
        device_type: query.get("device_type").cloned(),
    }
}

/// `sort=field:asc|desc` over `name` or `modified`; as in Mender, a sort it cannot read is
/// ignored, leaving the default order.
fn artifact_sort(query: &BTreeMap<String, String>) -> Option<ArtifactSort> {
    let sort = query.get("sort")?;
    let (field, direction) = sort.split_once(':').unwrap_or((sort.as_str(), "asc"));
    let field = match field {
        "name" => ArtifactField::Name,
        "modified" => ArtifactField::Modified,
        _ => return None,
    };
    Some(ArtifactSort {
        field,
        descending: direction.eq_ignore_ascii_case("desc"),
    })
}

async fn list_page(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let paging = Paging::lenient(&query);
    let sort = artifact_sort(&query);
    let filter = artifact_filter(&query);
    let store = state.read_models.artifacts();
    let total = store.count(&user.tenant, &filter).await?;
    let rows = store
        .page(&user.tenant, &filter, sort, paging.window())
        .await?;
    let artifacts: Vec<Value> = rows.iter().map(view).collect::<Result<_, _>>()?;
    let headers = paging.headers(&format!("{BASE}/artifacts/list"), &query, total as u64);
    Ok((headers, Json(artifacts)).into_response())
}

/// One artifact of the tenant; 400 for an id that is not a UUID, 404 if unknown.
async fn find(state: &AppState, tenant: &TenantId, id: &str) -> Result<Artifact, ApiError> {
    let id: ArtifactId = parse_id(id)?;
    state
        .read_models
        .artifacts()
        .find(tenant, id)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn artifact(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&find(&state, &user.tenant, &id).await?)?))
}

async fn download_link(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find(&state, &user.tenant, &id).await?;
    let artifact_id: ArtifactId = parse_id(&id)?;
    let expire = Utc::now() + chrono::Duration::seconds(state.download_link_seconds as i64);
    let key = blob_store::artifact_key(user.tenant.as_str(), artifact_id);
    let uri = state
        .store
        .download_link(&key, expire)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Json(serde_json::json!({
        "uri": uri,
        "expire": expire.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "method": "GET",
    })))
}

/// Artifacts grouped by name, each group in name order.
fn group_releases(rows: &[Artifact]) -> Result<Vec<Value>, ApiError> {
    let mut releases: Vec<(String, Vec<Value>)> = Vec::new();
    for row in rows {
        let artifact = view(row)?;
        match releases.last_mut() {
            Some((last, artifacts)) if *last == row.name => artifacts.push(artifact),
            _ => releases.push((row.name.clone(), vec![artifact])),
        }
    }
    Ok(releases
        .into_iter()
        .map(|(name, artifacts)| {
            let modified = artifacts
                .iter()
                .filter_map(|artifact| artifact["modified"].as_str())
                .max()
                .map(str::to_owned);
            serde_json::json!({
                "name": name,
                "modified": modified,
                "artifacts_count": artifacts.len(),
                "artifacts": artifacts,
            })
        })
        .collect())
}

async fn releases(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let store = state.read_models.artifacts();
    let rows = match query.get("name") {
        Some(name) => store.of_release(&user.tenant, name).await?,
        None => store.all(&user.tenant).await?,
    };
    Ok(Json(group_releases(&rows)?))
}

async fn releases_page(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let paging = Paging::lenient(&query);
    let name_contains = query.get("name").map(String::as_str);
    let store = state.read_models.artifacts();
    let total = store.count_releases(&user.tenant, name_contains).await?;
    let names = store
        .release_names(&user.tenant, name_contains, paging.window())
        .await?;
    let mut rows = Vec::new();
    for name in names {
        rows.extend(store.of_release(&user.tenant, &name).await?);
    }
    let headers = paging.headers(
        &format!("{BASE}/deployments/releases/list"),
        &query,
        total as u64,
    );
    Ok((headers, Json(group_releases(&rows)?)).into_response())
}

async fn storage_limit(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<Value>, ApiError> {
    let usage = state
        .read_models
        .artifacts()
        .storage_usage(&user.tenant)
        .await?;
    Ok(Json(serde_json::json!({
        "limit": state.storage.limit_for(user.tenant.as_str()),
        "usage": usage,
    })))
}

#[derive(Deserialize)]
struct SignedLink {
    expires: i64,
    signature: String,
}

/// Serves a local artifact file to the holder of a signed link: GET and HEAD, with
/// `Content-Length`, `Range`, `If-Modified-Since` and `If-Unmodified-Since`.
async fn serve_file(
    State(state): State<AppState>,
    Path(key): Path<String>,
    link: Result<Query<SignedLink>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(link) = link.map_err(|_| {
        ApiError::BadRequest("a download link needs a numeric expires and a signature".into())
    })?;
    let local = state.local.as_ref().ok_or(ApiError::NotFound)?;
    let path = local.path_of(&key).ok_or(ApiError::NotFound)?;
    local
        .signer()
        .check(&key, link.expires, &link.signature, Utc::now())
        .map_err(|error| ApiError::Forbidden(error.to_string()))?;
    let served = tower_http::services::ServeFile::new(path)
        .oneshot(request)
        .await
        .map_err(|error| anyhow::anyhow!("serving {key}: {error}"))?;
    if served.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::NotFound);
    }
    Ok(served.map(Body::new))
}
