//! The inventory's reads (Mender's inventory management API v1 and the v2 search): devices
//! with every scope of attributes, filtered, sorted and paged; a device and its group; groups
//! and their members; attribute names; counts by status.
//!
//! A device here is admission's device (identity attributes and status) joined with its
//! inventory row (reported attributes, tags, group). Lists are filtered and sorted in memory
//! from the tenant's rows, so every operator behaves the same on both engines.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use events::filter::{all_match, FilterError, Predicate, RawPredicate};
use events::inventory::{tags_etag, Attribute};
use events::TenantId;
use http_edge::auth::User;
use http_edge::JsonBody;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::paging::{links, paging, parameters, values};
use super::AppState;
use crate::error::ApiError;
use crate::read_models::attribute_index::wanted_keys;
use crate::read_models::devices::{Device, DeviceFilter};
use crate::read_models::inventory::{FilterRow, InventoryRow};
use crate::read_models::Window;

const V1: &str = "/api/management/v1/inventory";
const V2: &str = "/api/management/v2/inventory";
const MAX_PER_PAGE: i64 = 500;
/// `filters/attributes` counts names over at most this many devices without the attribute
/// index…
const ATTRIBUTE_SAMPLE: usize = 5000;
/// …and answers at most this many names.
const MAX_ATTRIBUTE_NAMES: usize = 500;
/// A list reads at most this many devices by id, found by the attribute index or named by
/// the request; more, and it reads the whole fleet, which is then about as cheap.
const NARROWED_AT_MOST: usize = 5000;
/// Ids bound per statement when reading devices by id.
const IDS_PER_READ: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{V1}/devices"), get(list))
        .route(&format!("{V1}/devices/{{id}}"), get(device))
        .route(&format!("{V1}/devices/{{id}}/group"), get(device_group))
        .route(&format!("{V1}/groups"), get(groups))
        .route(&format!("{V1}/groups/{{name}}/devices"), get(group_members))
        .route(&format!("{V2}/filters/search"), post(search))
        .route(&format!("{V2}/filters/attributes"), get(attribute_names))
        .route(&format!("{V2}/statistics"), get(statistics))
        .route(&format!("{V2}/filters"), get(saved_filters))
        .route(&format!("{V2}/filters/{{id}}"), get(saved_filter))
}

fn filter_view(row: FilterRow) -> Result<Value, ApiError> {
    let terms: Value =
        serde_json::from_str(&row.terms).map_err(|error| ApiError::Internal(error.into()))?;
    Ok(json!({"id": row.id, "name": row.name, "terms": terms}))
}

/// `GET /filters?page=&per_page=`: the saved filters, by name.
async fn saved_filters(
    State(state): State<AppState>,
    User(user): User,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let (page, per_page) = paging(&parameters(query.as_deref()))?;
    let rows = state
        .read_models
        .inventory()
        .filters(
            &user.tenant,
            crate::read_models::Window {
                limit: per_page,
                offset: (page - 1).saturating_mul(per_page),
            },
        )
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(filter_view)
            .collect::<Result<_, _>>()?,
    ))
}

async fn saved_filter(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = state
        .read_models
        .inventory()
        .filter(&user.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFoundBecause("Filter not found".into()))?;
    Ok(Json(filter_view(row)?))
}

/// One attribute in a scope.
#[derive(Debug, Clone)]
struct Scoped {
    scope: &'static str,
    attribute: Attribute,
}

/// A device as the inventory shows it.
#[derive(Debug, Clone)]
struct FleetDevice {
    id: String,
    status: Option<String>,
    group: Option<String>,
    updated_ts: String,
    etag: Option<String>,
    attributes: Vec<Scoped>,
}

fn plain(name: &str, value: Value) -> Attribute {
    Attribute {
        name: name.to_owned(),
        value,
        description: None,
        timestamp: None,
    }
}

fn parse_list(text: &str) -> Result<Vec<Attribute>, ApiError> {
    serde_json::from_str(text).map_err(|error| ApiError::Internal(error.into()))
}

impl FleetDevice {
    fn new(device: Option<Device>, row: Option<InventoryRow>) -> Result<Option<Self>, ApiError> {
        let id = match (&device, &row) {
            (Some(device), _) => device.id.clone(),
            (None, Some(row)) => row.device_id.clone(),
            (None, None) => return Ok(None),
        };
        let mut attributes = Vec::new();
        let mut push = |scope: &'static str, attribute: Attribute| {
            attributes.push(Scoped { scope, attribute });
        };
        if let Some(device) = &device {
            let identity: Map<String, Value> = serde_json::from_str(&device.identity_data)
                .map_err(|error| ApiError::Internal(error.into()))?;
            for (name, value) in identity {
                push("identity", plain(&name, value));
            }
            push("identity", plain("status", json!(device.status)));
        }
        if let Some(row) = &row {
            for attribute in parse_list(&row.attributes)? {
                push("inventory", attribute);
            }
        }
        let created = match (&device, &row) {
            (Some(device), _) => device.created_ts.clone(),
            (None, Some(row)) => row.created_ts.clone(),
            (None, None) => String::new(),
        };
        // The later of admission's and the inventory's last change.
        let updated_ts = [
            device.as_ref().map(|device| device.updated_ts.clone()),
            row.as_ref().map(|row| row.updated_ts.clone()),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default();
        push("system", plain("created_ts", json!(created)));
        push("system", plain("updated_ts", json!(updated_ts)));
        let group = row.as_ref().and_then(|row| row.grp.clone());
        if let Some(group) = &group {
            push("system", plain("group", json!(group)));
        }
        if let Some(check_in) = device.as_ref().and_then(|d| d.check_in_time.clone()) {
            push("system", plain("check_in_time", json!(check_in)));
        }
        let mut etag = None;
        if let Some(row) = &row {
            let tags = parse_list(&row.tags)?;
            if row.tag_revision > 0 {
                etag = Some(tags_etag(&id, row.tag_revision as u64));
            }
            for tag in tags {
                push("tags", tag);
            }
        }
        Ok(Some(Self {
            status: device.map(|device| device.status),
            id,
            group,
            updated_ts,
            etag,
            attributes,
        }))
    }

    /// The value of `scope/name`; `identity/id` is the device's id.
    fn value(&self, scope: &str, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|scoped| scoped.scope == scope && scoped.attribute.name == name)
            .map(|scoped| &scoped.attribute.value)
    }

    fn matches(&self, predicates: &[Predicate]) -> bool {
        let id = json!(self.id);
        all_match(predicates, |scope, name| {
            if scope == "identity" && name == "id" {
                return Some(&id);
            }
            self.value(scope, name)
        })
    }

    /// The device's JSON, with every attribute or only those `only` names (and
    /// `system/updated_ts`, which is always sent).
    fn view(&self, only: Option<&[(String, String)]>) -> Value {
        let attributes: Vec<Value> = self
            .attributes
            .iter()
            .filter(|scoped| {
                only.is_none_or(|only| {
                    (scoped.scope == "system" && scoped.attribute.name == "updated_ts")
                        || only.iter().any(|(scope, name)| {
                            scope == scoped.scope && *name == scoped.attribute.name
                        })
                })
            })
            .map(|scoped| {
                let mut view = json!({
                    "name": scoped.attribute.name,
                    "value": scoped.attribute.value,
                    "scope": scoped.scope,
                });
                if let Some(description) = &scoped.attribute.description {
                    view["description"] = json!(description);
                }
                if let Some(timestamp) = &scoped.attribute.timestamp {
                    view["timestamp"] = json!(timestamp);
                }
                view
            })
            .collect();
        json!({"id": self.id, "attributes": attributes, "updated_ts": self.updated_ts})
    }
}

/// Every device of the tenant, in the order they first appeared.
async fn fleet(state: &AppState, tenant: &TenantId) -> Result<Vec<FleetDevice>, ApiError> {
    let devices = state.read_models.devices().all(tenant).await?;
    let rows = state.read_models.inventory().all(tenant).await?;
    assemble(devices, rows)
}

/// The devices among `ids`, in the fleet's order.
async fn fleet_among(
    state: &AppState,
    tenant: &TenantId,
    ids: &BTreeSet<String>,
) -> Result<Vec<FleetDevice>, ApiError> {
    let ids: Vec<String> = ids.iter().cloned().collect();
    let (mut devices, mut rows) = (Vec::new(), Vec::new());
    for chunk in ids.chunks(IDS_PER_READ) {
        let filter = DeviceFilter {
            ids: chunk.to_vec(),
            ..DeviceFilter::default()
        };
        let window = Window {
            limit: chunk.len() as i64,
            offset: 0,
        };
        devices.extend(
            state
                .read_models
                .devices()
                .page(tenant, &filter, window)
                .await?,
        );
        rows.extend(state.read_models.inventory().among(tenant, chunk).await?);
    }
    devices.sort_by(|a, b| (&a.created_ts, &a.id).cmp(&(&b.created_ts, &b.id)));
    assemble(devices, rows)
}

/// The devices a list can show, when the attribute index or the request narrows them: every
/// group of alternatives is a condition a device must meet, and the index finds the devices
/// that meet one whose alternatives are each an `$eq` or `$in` of one attribute (with the
/// request's own `ids`, when it names few enough). `None`: any device of the fleet.
async fn candidates(
    state: &AppState,
    tenant: &TenantId,
    conditions: &[Vec<Predicate>],
    named: Option<&[String]>,
) -> Result<Option<BTreeSet<String>>, ApiError> {
    let mut candidates: Option<BTreeSet<String>> = named
        .filter(|ids| ids.len() <= NARROWED_AT_MOST)
        .map(|ids| ids.iter().cloned().collect());
    let lookups: Vec<(&Predicate, Vec<String>)> = conditions
        .iter()
        .filter_map(|alternatives| {
            let first = alternatives.first()?;
            let mut keys = Vec::new();
            for alternative in alternatives {
                if (&alternative.scope, &alternative.attribute) != (&first.scope, &first.attribute)
                {
                    return None;
                }
                keys.extend(wanted_keys(alternative)?);
            }
            Some((first, keys))
        })
        .collect();
    let index = state.read_models.attribute_index();
    if lookups.is_empty() || !index.complete().await? {
        return Ok(candidates);
    }
    for (predicate, keys) in lookups {
        let found = index
            .devices_with(
                tenant,
                &predicate.scope,
                &predicate.attribute,
                &keys,
                NARROWED_AT_MOST,
            )
            .await?;
        if let Some(found) = found {
            candidates = Some(match candidates {
                Some(known) => known.intersection(&found).cloned().collect(),
                None => found,
            });
        }
    }
    Ok(candidates)
}

/// The fleet, or only the `candidates` when the list can show no others.
async fn fleet_of(
    state: &AppState,
    tenant: &TenantId,
    candidates: Option<&BTreeSet<String>>,
) -> Result<Vec<FleetDevice>, ApiError> {
    match candidates {
        Some(ids) => fleet_among(state, tenant, ids).await,
        None => fleet(state, tenant).await,
    }
}

/// Fleet devices from admission's devices (in their order) and inventory rows.
fn assemble(devices: Vec<Device>, rows: Vec<InventoryRow>) -> Result<Vec<FleetDevice>, ApiError> {
    let mut rows: HashMap<String, InventoryRow> = rows
        .into_iter()
        .map(|row| (row.device_id.clone(), row))
        .collect();
    let mut fleet = Vec::with_capacity(devices.len() + rows.len());
    for device in devices {
        let row = rows.remove(&device.id);
        fleet.extend(FleetDevice::new(Some(device), row)?);
    }
    // Devices that reported an inventory but have no admission record (admitted before
    // admission was recorded), after the others.
    let mut rest: Vec<InventoryRow> = rows.into_values().collect();
    rest.sort_by(|a, b| (&a.created_ts, &a.device_id).cmp(&(&b.created_ts, &b.device_id)));
    for row in rest {
        fleet.extend(FleetDevice::new(None, Some(row))?);
    }
    Ok(fleet)
}

async fn one(state: &AppState, tenant: &TenantId, id: &str) -> Result<FleetDevice, ApiError> {
    let device = state.read_models.devices().one(tenant, id).await?;
    let row = state.read_models.inventory().one(tenant, id).await?;
    FleetDevice::new(device, row)?
        .ok_or_else(|| ApiError::NotFoundBecause("Device not found".into()))
}

/// Orders by one attribute: devices without it first, then numbers, then strings, as the
/// document store orders them; `desc` reverses.
fn sort_by(fleet: &mut [FleetDevice], scope: &str, name: &str, descending: bool) {
    fn rank(value: Option<&Value>) -> u8 {
        match value {
            None | Some(Value::Null) => 0,
            Some(Value::Number(_)) => 1,
            Some(Value::String(_)) => 2,
            Some(_) => 3,
        }
    }
    fleet.sort_by(|a, b| {
        let (x, y) = (a.value(scope, name), b.value(scope, name));
        let ordering = rank(x).cmp(&rank(y)).then_with(|| match (x, y) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
            (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
            _ => Ordering::Equal,
        });
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
}

/// `scope/name`, or `name` in the `inventory` scope.
fn scoped_name(text: &str) -> (String, String) {
    match text.split_once('/') {
        Some((scope, name)) => (scope.to_owned(), name.to_owned()),
        None => ("inventory".to_owned(), text.to_owned()),
    }
}

fn predicate(
    scope: &str,
    attribute: &str,
    operator: &str,
    value: Value,
) -> Result<Predicate, ApiError> {
    Predicate::parse(&RawPredicate {
        scope: Some(scope.to_owned()),
        attribute: Some(attribute.to_owned()),
        kind: Some(operator.to_owned()),
        value: Some(value),
    })
    .map_err(|FilterError(message)| ApiError::BadRequest(message))
}

/// The v1 list's filters: every key that is not paging, sorting or grouping is an
/// attribute filter `[scope/]name=[eq:]value`; a value that reads as a number also matches
/// the number.
fn list_filters(parameters: &[(String, String)]) -> Result<Vec<Vec<Predicate>>, ApiError> {
    let mut filters = Vec::new();
    for (key, value) in parameters {
        if ["page", "per_page", "sort", "has_group", "group"].contains(&key.as_str()) {
            continue;
        }
        let (scope, name) = scoped_name(key);
        let value = value.strip_prefix("eq:").unwrap_or(value);
        let mut alternatives = vec![predicate(&scope, &name, "$eq", json!(value))?];
        if let Ok(number) = value.parse::<f64>() {
            if let Some(number) = serde_json::Number::from_f64(number) {
                alternatives.push(predicate(&scope, &name, "$eq", Value::Number(number))?);
            }
        }
        filters.push(alternatives);
    }
    Ok(filters)
}

/// `GET /devices`: filtered, sorted by one attribute (`sort=[scope/]name[:asc|desc]`,
/// descending unless asked), paged, with `X-Total-Count` and `Link`s.
async fn list(
    State(state): State<AppState>,
    User(user): User,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let parameters = parameters(query.as_deref());
    let (page, per_page) = paging(&parameters)?;
    let has_group = match values(&parameters, "has_group").next() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "has_group: must be true or false, not {other:?}"
            )))
        }
    };
    let group = values(&parameters, "group").next().map(str::to_owned);
    let filters = list_filters(&parameters)?;
    let candidates = candidates(&state, &user.tenant, &filters, None).await?;
    let mut fleet: Vec<FleetDevice> = fleet_of(&state, &user.tenant, candidates.as_ref())
        .await?
        .into_iter()
        .filter(|device| has_group.is_none_or(|has| device.group.is_some() == has))
        .filter(|device| group.is_none() || device.group == group)
        .filter(|device| {
            filters.iter().all(|alternatives| {
                alternatives
                    .iter()
                    .any(|predicate| device.matches(std::slice::from_ref(predicate)))
            })
        })
        .collect();
    if let Some(sort) = values(&parameters, "sort").next() {
        let (key, direction) = match sort.rsplit_once(':') {
            Some((key, direction)) => (key, direction),
            None => (sort, "desc"),
        };
        let descending = match direction {
            "desc" => true,
            "asc" => false,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "sort: the order must be asc or desc, not {other:?}"
                )))
            }
        };
        let (scope, name) = scoped_name(key);
        sort_by(&mut fleet, &scope, &name, descending);
    }
    let total = fleet.len() as i64;
    let body: Vec<Value> = page_of(&fleet, page, per_page)
        .iter()
        .map(|device| device.view(None))
        .collect();
    let mut headers = links(
        &format!("{V1}/devices"),
        &parameters,
        (page, per_page),
        page * per_page < total,
        Some(total),
    );
    headers.insert("x-total-count", HeaderValue::from(total));
    Ok((headers, Json(body)).into_response())
}

fn page_of<T>(items: &[T], page: i64, per_page: i64) -> &[T] {
    let start = ((page - 1).saturating_mul(per_page) as usize).min(items.len());
    let end = start.saturating_add(per_page as usize).min(items.len());
    &items[start..end]
}

/// One device with every scope; `ETag` carries its tags' revision once it has tags.
async fn device(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let device = one(&state, &user.tenant, &id).await?;
    let mut headers = HeaderMap::new();
    if let Some(etag) = device
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(axum::http::header::ETAG, etag);
    }
    Ok((headers, Json(device.view(None))).into_response())
}

async fn device_group(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let device = one(&state, &user.tenant, &id).await?;
    Ok(Json(json!({ "group": device.group })))
}

/// `GET /groups[?status=…]`: the groups that have devices (with that status), sorted.
async fn groups(
    State(state): State<AppState>,
    User(user): User,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<String>>, ApiError> {
    let parameters = parameters(query.as_deref());
    let status = values(&parameters, "status").next();
    // From the group index rather than the whole fleet: forms ask for it on every load.
    let mut groups = state
        .read_models
        .inventory()
        .groups(&user.tenant, status)
        .await?;
    // Sorted here, by bytes, as the same on every database.
    groups.sort();
    Ok(Json(groups))
}

/// `GET /groups/{name}/devices`: the members' ids, paged; 404 for a group with none.
async fn group_members(
    State(state): State<AppState>,
    User(user): User,
    Path(group): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let parameters = parameters(query.as_deref());
    let (page, per_page) = paging(&parameters)?;
    let members: Vec<String> = fleet(&state, &user.tenant)
        .await?
        .into_iter()
        .filter(|device| device.group.as_deref() == Some(group.as_str()))
        .map(|device| device.id)
        .collect();
    if members.is_empty() {
        return Err(ApiError::NotFoundBecause("group not found".into()));
    }
    let total = members.len() as i64;
    let mut headers = links(
        &format!("{V1}/groups/{group}/devices"),
        &parameters,
        (page, per_page),
        page * per_page < total,
        Some(total),
    );
    headers.insert("x-total-count", HeaderValue::from(total));
    Ok((headers, Json(page_of(&members, page, per_page).to_vec())).into_response())
}

#[derive(Debug, Deserialize)]
struct SortTerm {
    scope: Option<String>,
    attribute: Option<String>,
    order: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Selected {
    scope: String,
    attribute: String,
}

#[derive(Debug, Deserialize)]
struct Search {
    page: Option<i64>,
    per_page: Option<i64>,
    #[serde(default)]
    filters: Vec<RawPredicate>,
    #[serde(default)]
    sort: Vec<SortTerm>,
    attributes: Option<Vec<Selected>>,
    device_ids: Option<Vec<String>>,
    text: Option<String>,
}

/// `POST /filters/search`: predicates ANDed, sorted by the terms given (the first that
/// differs decides), paged, with `X-Total-Count` and no `Link`, as inventory answers.
async fn search(
    State(state): State<AppState>,
    User(user): User,
    JsonBody(search): JsonBody<Search>,
) -> Result<Response, ApiError> {
    let page = search.page.filter(|page| *page >= 1).unwrap_or(1);
    let per_page = search.per_page.filter(|n| *n >= 1).unwrap_or(20);
    if per_page > MAX_PER_PAGE {
        return Err(ApiError::BadRequest(format!(
            "parameter \"per_page\" above limit (max: {MAX_PER_PAGE})"
        )));
    }
    let predicates = search
        .filters
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            Predicate::parse(raw).map_err(|FilterError(message)| {
                ApiError::BadRequest(format!("filters[{index}].{message}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut sort_keys = Vec::new();
    for (index, term) in search.sort.iter().enumerate() {
        let (Some(scope), Some(attribute)) = (&term.scope, &term.attribute) else {
            return Err(ApiError::BadRequest(format!(
                "sort[{index}]: scope and attribute cannot be blank"
            )));
        };
        let descending = match term.order.as_deref() {
            Some("desc") => true,
            Some("asc") => false,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "sort[{index}].order: must be asc or desc"
                )))
            }
        };
        sort_keys.push((scope.clone(), attribute.clone(), descending));
    }
    let text = search.text.as_deref().map(str::to_lowercase);
    let conditions: Vec<Vec<Predicate>> = predicates.iter().cloned().map(|p| vec![p]).collect();
    let candidates = candidates(
        &state,
        &user.tenant,
        &conditions,
        search.device_ids.as_deref(),
    )
    .await?;
    let mut fleet: Vec<FleetDevice> = fleet_of(&state, &user.tenant, candidates.as_ref())
        .await?
        .into_iter()
        .filter(|device| {
            search
                .device_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&device.id))
        })
        .filter(|device| device.matches(&predicates))
        .filter(|device| {
            text.as_deref()
                .is_none_or(|text| text_score(device, text) > 0)
        })
        .collect();
    match &text {
        // Ranked by how many attributes the text is found in, which overrides `sort`.
        Some(text) => fleet.sort_by_key(|device| std::cmp::Reverse(text_score(device, text))),
        // Least significant term first: stable sorts keep the order of the ones after.
        None => {
            for (scope, attribute, descending) in sort_keys.iter().rev() {
                sort_by(&mut fleet, scope, attribute, *descending);
            }
        }
    }
    let only: Option<Vec<(String, String)>> = search.attributes.map(|selected| {
        selected
            .into_iter()
            .map(|selected| (selected.scope, selected.attribute))
            .collect()
    });
    let total = fleet.len() as i64;
    let body: Vec<Value> = page_of(&fleet, page, per_page)
        .iter()
        .map(|device| device.view(only.as_deref()))
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    Ok((headers, Json(body)).into_response())
}

/// How many of the device's attribute values (and its id) contain `text`, in any case.
fn text_score(device: &FleetDevice, text: &str) -> usize {
    let found = |value: &Value| match value {
        Value::String(s) => s.to_lowercase().contains(text),
        Value::Array(items) => items.iter().any(|item| {
            item.as_str()
                .is_some_and(|s| s.to_lowercase().contains(text))
        }),
        other => other.to_string().contains(text),
    };
    usize::from(device.id.contains(text))
        + device
            .attributes
            .iter()
            .filter(|scoped| found(&scoped.attribute.value))
            .count()
}

/// `GET /filters/attributes`: attribute names with how many devices have them, most common
/// first, then by scope and name; at most 500. Counted over every device by the attribute
/// index; over the first 5,000 devices of a generation without one.
async fn attribute_names(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<Vec<Value>>, ApiError> {
    let index = state.read_models.attribute_index();
    if index.complete().await? {
        let names = index
            .names(&user.tenant, MAX_ATTRIBUTE_NAMES as i64)
            .await?;
        return Ok(Json(
            names
                .into_iter()
                .map(|(scope, name, count)| json!({"name": name, "scope": scope, "count": count}))
                .collect(),
        ));
    }
    let mut counts: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
    for device in fleet(&state, &user.tenant)
        .await?
        .iter()
        .take(ATTRIBUTE_SAMPLE)
    {
        for scoped in &device.attributes {
            *counts
                .entry((scoped.scope, scoped.attribute.name.clone()))
                .or_default() += 1;
        }
    }
    let mut names: Vec<((&str, String), u64)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Json(
        names
            .into_iter()
            .take(MAX_ATTRIBUTE_NAMES)
            .map(|((scope, name), count)| json!({"name": name, "scope": scope, "count": count}))
            .collect(),
    ))
}

/// `GET /statistics`: devices by status; every device here is a standard one.
async fn statistics(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<Value>, ApiError> {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for device in fleet(&state, &user.tenant).await? {
        if let Some(status) = device.status {
            *by_status.entry(status).or_default() += 1;
        }
    }
    let devices_by_status: Map<String, Value> = by_status
        .into_iter()
        .map(|(status, count)| (status, json!({"standard": count, "micro": 0, "system": 0})))
        .collect();
    Ok(Json(json!({ "devices_by_status": devices_by_status })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, inventory: Value, group: Option<&str>) -> FleetDevice {
        let row = InventoryRow {
            device_id: id.into(),
            attributes: inventory.to_string(),
            tags: "[]".into(),
            grp: group.map(str::to_owned),
            tag_revision: 0,
            created_ts: "2026-01-01T00:00:00Z".into(),
            updated_ts: "2026-01-01T00:00:00Z".into(),
        };
        FleetDevice::new(None, Some(row)).unwrap().unwrap()
    }

    #[test]
    fn list_filters_match_text_or_the_number_it_reads_as() {
        let fleet = [
            device("a", json!([{"name": "mem", "value": 512}]), None),
            device("b", json!([{"name": "mem", "value": "512"}]), None),
            device("c", json!([{"name": "mem", "value": 1024}]), Some("lab")),
        ];
        let filters = list_filters(&parameters(Some("mem=eq:512"))).unwrap();
        let kept: Vec<&str> = fleet
            .iter()
            .filter(|d| {
                filters
                    .iter()
                    .all(|alts| alts.iter().any(|p| d.matches(std::slice::from_ref(p))))
            })
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(kept, ["a", "b"]);
        let by_group = list_filters(&parameters(Some("system/group=lab"))).unwrap();
        assert!(fleet[2].matches(&[by_group[0][0].clone()]));
        assert!(!fleet[0].matches(&[by_group[0][0].clone()]));
    }

    #[test]
    fn sorting_puts_missing_values_first_ascending_and_numbers_before_text() {
        let mut fleet = vec![
            device("text", json!([{"name": "n", "value": "x"}]), None),
            device("ten", json!([{"name": "n", "value": 10}]), None),
            device("none", json!([]), None),
            device("two", json!([{"name": "n", "value": 2}]), None),
        ];
        sort_by(&mut fleet, "inventory", "n", false);
        let order: Vec<&str> = fleet.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(order, ["none", "two", "ten", "text"]);
        sort_by(&mut fleet, "inventory", "n", true);
        assert_eq!(fleet[0].id, "text");
    }

    #[test]
    fn the_view_keeps_only_what_is_asked_and_always_updated_ts() {
        let device = device(
            "a",
            json!([{"name": "mem", "value": 1}, {"name": "os", "value": "linux"}]),
            Some("lab"),
        );
        let view = device.view(Some(&[("inventory".into(), "os".into())]));
        let names: Vec<&str> = view["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["os", "updated_ts"]);
        let full = device.view(None);
        assert!(full["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "group" && a["scope"] == "system" && a["value"] == "lab"));
    }
}
