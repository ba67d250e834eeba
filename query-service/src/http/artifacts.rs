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
use http_edge::auth::User;
use serde::Deserialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;
use tower::ServiceExt;

use super::paging::Paging;
use super::AppState;
use crate::error::{parse_id, ApiError};

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
pub(super) fn view(row: &AnyRow) -> Result<Value, ApiError> {
    let document: String = row.try_get("document")?;
    let mut artifact: Value = serde_json::from_str(&document).map_err(anyhow::Error::from)?;
    let fields = artifact
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("artifact document is not an object"))?;
    if let Some(id) = fields.remove("artifact_id") {
        fields.insert("id".into(), id);
    }
    fields.insert(
        "description".into(),
        Value::String(row.try_get("description")?),
    );
    fields.insert("modified".into(), Value::String(row.try_get("modified")?));
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

const COLUMNS: &str = "name, description, modified, document";

async fn list(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<Vec<Value>>, ApiError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1 ORDER BY name, modified, id"
    ))
    .bind(user.tenant.as_str())
    .fetch_all(&state.read_models.pool())
    .await?;
    Ok(Json(rows.iter().map(view).collect::<Result<_, _>>()?))
}

/// A `LIKE` pattern matching `text` anywhere, with `%`, `_` and `\\` taken literally.
pub(super) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for character in text.to_lowercase().chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// Filters of the paginated artifact list: case-insensitive substrings, as Mender matches.
fn artifact_filter(query: &BTreeMap<String, String>) -> (String, Vec<String>) {
    let mut conditions = String::new();
    let mut values = Vec::new();
    for (parameter, column) in [
        ("name", "name"),
        ("description", "description"),
        ("device_type", "device_types"),
    ] {
        if let Some(text) = query.get(parameter) {
            values.push(contains_pattern(text));
            conditions.push_str(&format!(
                " AND LOWER({column}) LIKE ${} ESCAPE '\\'",
                values.len() + 1
            ));
        }
    }
    (conditions, values)
}

/// `sort=field:asc|desc`; as in Mender, a sort it cannot read is ignored.
fn sort_order(query: &BTreeMap<String, String>, allowed: &[&str]) -> String {
    let default = "name ASC, modified ASC, id ASC".to_owned();
    let Some(sort) = query.get("sort") else {
        return default;
    };
    let (field, direction) = sort.split_once(':').unwrap_or((sort.as_str(), "asc"));
    if !allowed.contains(&field) {
        return default;
    }
    let direction = if direction.eq_ignore_ascii_case("desc") {
        "DESC"
    } else {
        "ASC"
    };
    format!("{field} {direction}, id ASC")
}

async fn list_page(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let paging = Paging::lenient(&query);
    let order = sort_order(&query, &["name", "modified"]);
    let (conditions, values) = artifact_filter(&query);
    let count_sql = format!("SELECT COUNT(*) FROM artifacts WHERE tenant = $1{conditions}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(user.tenant.as_str());
    for value in &values {
        count = count.bind(value.clone());
    }
    let total = count.fetch_one(&state.read_models.pool()).await?;
    let page_sql = format!(
        "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1{conditions}
         ORDER BY {order} LIMIT {} OFFSET {}",
        paging.limit(),
        paging.offset()
    );
    let mut page = sqlx::query(&page_sql).bind(user.tenant.as_str());
    for value in &values {
        page = page.bind(value.clone());
    }
    let rows = page.fetch_all(&state.read_models.pool()).await?;
    let artifacts: Vec<Value> = rows.iter().map(view).collect::<Result<_, _>>()?;
    let headers = paging.headers(&format!("{BASE}/artifacts/list"), &query, total as u64);
    Ok((headers, Json(artifacts)).into_response())
}

async fn find(state: &AppState, tenant: &str, id: &str) -> Result<AnyRow, ApiError> {
    let id = parse_id(id)?;
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id.to_string())
    .fetch_optional(&state.read_models.pool())
    .await?
    .ok_or(ApiError::NotFound)
}

async fn artifact(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&find(&state, user.tenant.as_str(), &id).await?)?))
}

async fn download_link(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find(&state, user.tenant.as_str(), &id).await?;
    let artifact_id = parse_id(&id)?;
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
fn group_releases(rows: &[AnyRow]) -> Result<Vec<Value>, ApiError> {
    let mut releases: Vec<(String, Vec<Value>)> = Vec::new();
    for row in rows {
        let name: String = row.try_get("name")?;
        let artifact = view(row)?;
        match releases.last_mut() {
            Some((last, artifacts)) if *last == name => artifacts.push(artifact),
            _ => releases.push((name, vec![artifact])),
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
    let condition = if query.contains_key("name") {
        " AND name = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1{condition} ORDER BY name, modified, id"
    );
    let mut select = sqlx::query(&sql).bind(user.tenant.as_str());
    if let Some(name) = query.get("name") {
        select = select.bind(name.clone());
    }
    let rows = select.fetch_all(&state.read_models.pool()).await?;
    Ok(Json(group_releases(&rows)?))
}

async fn releases_page(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let paging = Paging::lenient(&query);
    let name_filter = query.get("name").map(|name| contains_pattern(name));
    let condition = if name_filter.is_some() {
        " AND LOWER(name) LIKE $2 ESCAPE '\\'"
    } else {
        ""
    };
    let count_sql =
        format!("SELECT COUNT(DISTINCT name) FROM artifacts WHERE tenant = $1{condition}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(user.tenant.as_str());
    if let Some(filter) = &name_filter {
        count = count.bind(filter.clone());
    }
    let total = count.fetch_one(&state.read_models.pool()).await?;
    let names_sql = format!(
        "SELECT DISTINCT name FROM artifacts WHERE tenant = $1{condition}
         ORDER BY name LIMIT {} OFFSET {}",
        paging.limit(),
        paging.offset()
    );
    let mut names = sqlx::query_scalar::<_, String>(&names_sql).bind(user.tenant.as_str());
    if let Some(filter) = &name_filter {
        names = names.bind(filter.clone());
    }
    let names = names.fetch_all(&state.read_models.pool()).await?;
    let mut rows = Vec::new();
    for name in names {
        let sql = format!(
            "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1 AND name = $2 ORDER BY modified, id"
        );
        rows.extend(
            sqlx::query(&sql)
                .bind(user.tenant.as_str())
                .bind(name)
                .fetch_all(&state.read_models.pool())
                .await?,
        );
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
    let usage: Option<i64> =
        sqlx::query_scalar("SELECT bytes FROM storage_usage WHERE tenant = $1")
            .bind(user.tenant.as_str())
            .fetch_optional(&state.read_models.pool())
            .await?;
    Ok(Json(serde_json::json!({
        "limit": state.storage.limit_for(user.tenant.as_str()),
        "usage": usage.unwrap_or(0),
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
