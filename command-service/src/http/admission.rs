//! `POST /api/devices/v1/authentication/auth_requests` (Mender's deviceauth, for a fleet
//! with no other Mender service): a device proves it holds the key it presents and, when its
//! auth set is accepted, gets a device token.
//!
//! The request is checked here (its body, its key, its signature); what it changes (a new
//! auth set, an acceptance by policy, a check-in) is decided and recorded by the command
//! service's admission commands, on the device's admission stream. A device's id is the
//! UUID v5 of its identity, so the same device has the same id on every request, after
//! every restart, and as it had before admission was recorded.

use std::net::IpAddr;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Extension;
use axum::Router;
use base64::Engine;
use events::admission::{canonical_identity, device_id};
use http_edge::auth::{AuthSettings, Issuer, KeyError, TokenKind};
use http_edge::serve::ClientAddress;
use http_edge::throttle::{address_key, too_many_attempts, Throttle};
use http_edge::{error_response, RequestId};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::AppState;
use crate::application::{admission, Caller};
use crate::device_key::DeviceKey;
use crate::domain::admission::{AuthAnswer, AuthRequest as Admission};
use crate::settings::AdmissionSettings;

const SIGNATURE_HEADER: &str = "x-men-signature";

/// What the device-facing routes of a fleet with no other Mender service need: who is
/// accepted without an operator, what signs device tokens, and the attempt limits.
pub struct DeviceDoor {
    policy: AdmissionPolicy,
    issuer: Issuer,
    device_token_ttl: chrono::Duration,
    by_address: Throttle<IpAddr>,
    by_identity: Throttle<Uuid>,
}

impl DeviceDoor {
    /// The door, or `None` when the standalone routes are switched off or nothing can sign
    /// device tokens (another service issues them).
    pub fn from_settings(
        settings: &AdmissionSettings,
        auth: &AuthSettings,
    ) -> anyhow::Result<Option<Self>> {
        if !settings.enabled {
            return Ok(None);
        }
        let issuer = match Issuer::from_settings(auth) {
            Ok(issuer) => issuer,
            Err(KeyError::NoKey) => {
                tracing::warn!(
                    "device admission is off: no signing key (set auth.signing_key or \
                     auth.hs256_secret, or standalone.enabled = false to silence this)"
                );
                return Ok(None);
            }
            Err(error) => {
                return Err(error).context("loading the key device tokens are signed with")
            }
        };
        tracing::info!(
            auto_accept = settings.auto_accept,
            "device admission enabled"
        );
        Ok(Some(Self {
            policy: AdmissionPolicy::from_settings(settings)?,
            issuer,
            device_token_ttl: chrono::Duration::hours(settings.device_token_hours.into()),
            by_address: Throttle::new(settings.auth_requests_per_address_per_minute),
            by_identity: Throttle::new(settings.auth_requests_per_minute),
        }))
    }

    /// A device token of the single tenant, as deviceauth answers it.
    fn token_response(&self, device: &str) -> Response {
        // Open-source Mender has one tenant and so has a fleet with no other Mender service:
        // the default tenant, whatever tenant token a device sends.
        let claims = Issuer::claims(
            device,
            &events::TenantId::default(),
            TokenKind::Device,
            self.device_token_ttl,
        );
        (
            [(header::CONTENT_TYPE, "application/jwt")],
            self.issuer.issue(&claims),
        )
            .into_response()
    }
}

pub(super) fn router() -> Router<AppState> {
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

/// Who is admitted without an operator: everyone when `auto_accept` is on, else the
/// identities and keys preauthorized in the configuration.
struct AdmissionPolicy {
    auto_accept: bool,
    identities: Vec<Map<String, Value>>,
    keys: Vec<DeviceKey>,
}

impl AdmissionPolicy {
    fn from_settings(settings: &AdmissionSettings) -> anyhow::Result<Self> {
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
        })
    }

    fn admits(&self, identity: &Map<String, Value>, key: &DeviceKey) -> bool {
        // serde_json compares objects by their entries, not their order.
        self.auto_accept || self.identities.contains(identity) || self.keys.contains(key)
    }
}

/// `id_data`: a JSON object, as deviceauth requires.
fn identity(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err("not a JSON object".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

async fn auth_request(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Mounted only with a door; without one the route does not exist.
    let Some(door) = state.door.clone() else {
        return error_response(StatusCode::NOT_FOUND, "Resource not found");
    };
    // Counted before any work: a signature check of a large RSA key is what a flood buys.
    let address = address_key(client);
    if let Some(wait) = door.by_address.wait(&address) {
        tracing::warn!(address = %client, "admission refused: too many requests from this address");
        return too_many_attempts(wait);
    }
    door.by_address.spend(&address);
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
    if let Some(wait) = door.by_identity.wait(&device) {
        tracing::warn!(device_id = %device, address = %client, "admission refused: too many requests for this identity");
        return too_many_attempts(wait);
    }
    door.by_identity.spend(&device);
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
    let request = Admission {
        device_id: device.to_string(),
        admitted_by_policy: door.policy.admits(&identity, &key),
        identity,
        pubkey: key.canonical_pem(),
        new_set_id: Uuid::new_v4(),
        limit_reached: false,
    };
    // One tenant, as for the tokens this server issues.
    let caller = Caller {
        tenant: events::TenantId::default(),
        actor: format!("device:{device}"),
        request_id: request_id.0,
        at: None,
    };
    let outcome = match admission::auth_request(
        &state.pipeline,
        &caller,
        &request,
        state.max_devices,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(error) => return error.into_response(),
    };
    // Like any command's answer, once what it recorded reads back: a device left pending
    // is in the devauth list the moment its 401 arrives.
    let answer = match outcome.answer {
        AuthAnswer::Token { auth_set_id } => {
            tracing::info!(device_id = %device, %auth_set_id, "device admitted: token issued");
            door.token_response(&request.device_id)
        }
        AuthAnswer::Refused(status) => {
            if outcome.position.is_some() {
                tracing::info!(
                    device_id = %device,
                    id_data = %canonical_identity(&request.identity),
                    %status,
                    "device waits for an operator: accept it through the devauth API, or \
                     preauthorize its identity (standalone.preauthorized_identities) or key \
                     (standalone.preauthorized_keys)"
                );
            }
            error_response(StatusCode::UNAUTHORIZED, "dev auth: unauthorized")
        }
    };
    state.answered_with_if(outcome.position, answer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_must_be_json_objects() {
        assert!(identity("[1]").is_err());
        assert!(identity("mac=1").is_err());
        assert!(identity("{}").is_ok());
    }
}
