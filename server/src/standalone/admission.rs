//! `POST /api/devices/v1/authentication/auth_requests`: a device proves it holds the key it
//! presents and, when admitted, gets a device token.
//!
//! A device's id is derived from its identity, so the same device gets the same id on every
//! request and after every restart; that is why admitted devices need not be stored anywhere.

use std::collections::HashSet;
use std::sync::Mutex;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::Engine;
use http_edge::auth::TokenKind;
use http_edge::error_response;
use http_edge::serve::ClientAddress;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::device_key::DeviceKey;
use super::throttle::address_key;
use super::{too_many_attempts, StandaloneSettings, StandaloneState};

const SIGNATURE_HEADER: &str = "x-men-signature";

/// Namespace of device ids: changing it would give every device a new id.
const DEVICE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x8c1e_54a2_3f0b_4d7e_9a61_2b5c_d0e4_f713);

pub(super) fn router() -> Router<StandaloneState> {
    // axum's own limit, answered in time for a client still sending its body.
    const LIMIT: u64 = 2 * 1024 * 1024;
    Router::new().route(
        "/api/devices/v1/authentication/auth_requests",
        post(auth_request).layer(axum::middleware::from_fn(|request, next| {
            http_edge::refuse_oversized(LIMIT, request, next)
        })),
    )
}

/// The request as mender-client sends it. `tenant_token` is not read: there is one tenant.
#[derive(Deserialize)]
struct AuthRequest {
    id_data: String,
    pubkey: String,
}

/// Who may have a token besides everyone, when `auto_accept` is on.
pub(super) struct AdmissionPolicy {
    auto_accept: bool,
    identities: Vec<Value>,
    keys: Vec<DeviceKey>,
    /// Devices admitted since start, so each is logged once.
    admitted: Mutex<HashSet<Uuid>>,
}

impl AdmissionPolicy {
    pub(super) fn from_settings(settings: &StandaloneSettings) -> anyhow::Result<Self> {
        let identities = settings
            .preauthorized_identities
            .iter()
            .map(|text| {
                identity(text).map_err(|error| {
                    anyhow::anyhow!("standalone.preauthorized_identities: {text}: {error}")
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let mut keys = Vec::new();
        for path in &settings.preauthorized_keys {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            keys.extend(
                DeviceKey::all_from_pem(&text).with_context(|| {
                    format!("standalone.preauthorized_keys: {}", path.display())
                })?,
            );
        }
        Ok(Self {
            auto_accept: settings.auto_accept,
            identities,
            keys,
            admitted: Mutex::new(HashSet::new()),
        })
    }

    fn admits(&self, identity: &Value, key: &DeviceKey) -> bool {
        // serde_json compares objects by their entries, not their order.
        self.auto_accept || self.identities.contains(identity) || self.keys.contains(key)
    }

    /// True the first time since start that `device` is admitted.
    fn first_admission(&self, device: Uuid) -> bool {
        self.admitted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(device)
    }
}

/// `id_data`: a JSON object, as deviceauth requires.
fn identity(text: &str) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(fields)) => Ok(Value::Object(fields)),
        Ok(_) => Err("not a JSON object".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// `value` with every object's keys sorted, whatever order the map type keeps.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(fields) => {
            let mut sorted: Vec<_> = fields.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(name, value)| (name.clone(), canonical(value)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The device id of an identity: the same identity, however its keys are ordered or spaced,
/// always has the same id.
fn device_id(identity: &Value) -> Uuid {
    Uuid::new_v5(
        &DEVICE_ID_NAMESPACE,
        canonical(identity).to_string().as_bytes(),
    )
}

async fn auth_request(
    State(state): State<StandaloneState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Counted before any work: a signature check of a large RSA key is what a flood buys.
    let address = address_key(client);
    let throttles = &state.throttles;
    if let Some(wait) = throttles.admission_by_address.wait(&address) {
        tracing::warn!(address = %client, "admission refused: too many requests from this address");
        return too_many_attempts(wait);
    }
    throttles.admission_by_address.spend(&address);
    let bad_request = |message: String| error_response(StatusCode::BAD_REQUEST, message);
    let request: AuthRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(format!("failed to decode auth request: {error}")),
    };
    if request.id_data.is_empty() {
        return bad_request("invalid auth request: id_data must be provided".into());
    }
    if request.pubkey.is_empty() {
        return bad_request("invalid auth request: pubkey must be provided".into());
    }
    let identity = match identity(&request.id_data) {
        Ok(identity) => identity,
        Err(error) => return bad_request(format!("invalid auth request: id_data: {error}")),
    };
    let device = device_id(&identity);
    if let Some(wait) = throttles.admission_by_identity.wait(&device) {
        tracing::warn!(device_id = %device, address = %client, "admission refused: too many requests for this identity");
        return too_many_attempts(wait);
    }
    throttles.admission_by_identity.spend(&device);
    let key = match DeviceKey::from_pem(&request.pubkey) {
        Ok(key) => key,
        Err(error) => return bad_request(format!("invalid auth request: {error}")),
    };
    let Some(signature) = headers.get(SIGNATURE_HEADER) else {
        return bad_request("missing request signature header".into());
    };
    // The signature covers the body exactly as sent, so it is checked over the raw bytes.
    let signature = base64::engine::general_purpose::STANDARD.decode(signature.as_bytes());
    if !signature.is_ok_and(|signature| key.verifies(&body, &signature)) {
        return error_response(StatusCode::UNAUTHORIZED, "signature verification failed");
    }
    if !state.admission.admits(&identity, &key) {
        tracing::info!(
            device_id = %device,
            id_data = %canonical(&identity),
            "device not admitted: add its identity to standalone.preauthorized_identities or \
             its key to standalone.preauthorized_keys"
        );
        return error_response(StatusCode::UNAUTHORIZED, "dev auth: unauthorized");
    }
    if state.admission.first_admission(device) {
        tracing::info!(device_id = %device, id_data = %canonical(&identity), "device admitted");
    }
    state.token_response(&device.to_string(), TokenKind::Device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_ignore_key_order_and_spacing() {
        let a = identity(r#"{"mac":"00:11","serial":"7","nested":{"b":1,"a":2}}"#).unwrap();
        let b = identity(r#"{ "serial":"7", "nested":{"a":2,"b":1}, "mac":"00:11" }"#).unwrap();
        let c = identity(r#"{"mac":"00:12","serial":"7","nested":{"b":1,"a":2}}"#).unwrap();
        assert_eq!(device_id(&a), device_id(&b));
        assert_ne!(device_id(&a), device_id(&c));
    }

    #[test]
    fn device_ids_never_change() {
        // Devices keep their deployment history only while this holds.
        let id = device_id(&identity(r#"{"mac":"de:ad:be:ef:00:01"}"#).unwrap());
        assert_eq!(id.to_string(), "d5be734a-399b-57fb-9920-1e0f24143eae");
    }

    #[test]
    fn identities_must_be_json_objects() {
        assert!(identity("[1]").is_err());
        assert!(identity("mac=1").is_err());
        assert!(identity("{}").is_ok());
    }
}
