//! Device admission's commands: a device's auth request, and an operator's decision on one
//! of its auth sets.

use events::admission::AuthSetStatus;
use events::{DomainEvent, StreamName};
use uuid::Uuid;

use super::{Caller, Decision, Outcome, Pipeline, Session};
use crate::domain::admission::{
    self, AdmissionError, AuthAnswer, AuthRequest, DeviceAdmission, Preauthorization,
};
use crate::error::ApiError;

/// Runs a command decided on one device's admission stream alone.
async fn on_device<T>(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    decide: impl Fn(&Session, &DeviceAdmission) -> Result<(Vec<DomainEvent>, T), ApiError>,
) -> Result<Outcome<T>, ApiError> {
    let stream = StreamName::new(admission::stream(device));
    super::on_stream(pipeline, caller, stream, admission::evolve, decide).await
}

/// Whether the tenant has as many accepted devices as `max_devices` lets it have. Read from
/// the tables as they are: two acceptances racing each other may both pass a limit one short.
fn limit_reached(session: &Session, max_devices: Option<u64>) -> bool {
    max_devices
        .is_some_and(|max| session.tables_now(|tables| tables.accepted_devices() as u64 >= max))
}

/// Records what an auth request changes (a new set, an acceptance by policy, a check-in) and
/// says whether the device gets a token.
pub async fn auth_request(
    pipeline: &Pipeline,
    caller: &Caller,
    request: &AuthRequest,
    max_devices: Option<u64>,
) -> Result<Outcome<AuthAnswer>, ApiError> {
    let outcome = on_device(pipeline, caller, &request.device_id, |session, state| {
        let request = AuthRequest {
            limit_reached: limit_reached(session, max_devices),
            ..request.clone()
        };
        Ok(admission::decide_auth_request(state, &request))
    })
    .await?;
    // The device's requests are checked against the tables: a device accepted just now must
    // not be refused on the request it makes with its new token.
    if let (AuthAnswer::Token { .. }, Some(position)) = (&outcome.answer, outcome.position) {
        pipeline.tables_reached(position).await?;
    }
    Ok(outcome)
}

/// `PUT /api/management/v2/devauth/devices/{id}/auth/{aid}/status`.
pub async fn set_status(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    set: Uuid,
    status: AuthSetStatus,
    max_devices: Option<u64>,
) -> Result<Outcome<()>, ApiError> {
    on_device(pipeline, caller, device, |session, state| {
        // Which device owns a set never changes once recorded, so a table a moment old
        // answers it as well as the log would.
        let elsewhere = session.tables_now(|tables| {
            tables
                .auth_set_owner(set)
                .is_some_and(|owner| owner != device)
        });
        let full = limit_reached(session, max_devices);
        let events = admission::decide_status(state, device, set, status, elsewhere, full)?;
        Ok((events, ()))
    })
    .await
}

/// `POST /api/management/v2/devauth/devices`: the device's id, or 409 with the device the
/// identity already is.
pub async fn preauthorize(
    pipeline: &Pipeline,
    caller: &Caller,
    request: &Preauthorization,
) -> Result<Outcome<()>, ApiError> {
    on_device(
        pipeline,
        caller,
        &request.device_id,
        |_, state| match admission::decide_preauthorize(state, request) {
            Ok(events) => Ok((events, ())),
            Err(AdmissionError::Exists) => Err(ApiError::ConflictWithResource {
                message: AdmissionError::Exists.to_string(),
                resource: existing_device(&request.device_id, state),
            }),
            Err(other) => Err(other.into()),
        },
    )
    .await
}

/// The device as the command side knows it, for the 409 of a preauthorization: deviceauth
/// answers with the existing device.
fn existing_device(id: &str, state: &DeviceAdmission) -> serde_json::Value {
    let status = state
        .sets
        .iter()
        .map(|set| set.status)
        .max_by_key(|status| status.strength())
        .map_or("noauth", AuthSetStatus::as_str);
    serde_json::json!({
        "id": id,
        "identity_data": state.identity,
        "status": status,
        "decommissioning": false,
        "auth_sets": state.sets.iter().map(|set| serde_json::json!({
            "id": set.id,
            "identity_data": state.identity,
            "pubkey": set.pubkey,
            "status": set.status,
        })).collect::<Vec<_>>(),
    })
}

/// `DELETE /api/management/v2/devauth/devices/{id}/auth/{aid}`.
pub async fn dismiss(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    set: Uuid,
) -> Result<Outcome<()>, ApiError> {
    on_device(pipeline, caller, device, |_, state| {
        Ok((admission::decide_dismiss(state, device, set)?, ()))
    })
    .await
}

/// `DELETE /api/management/v2/devauth/devices/{id}`: the device is removed from admission
/// (its tokens no longer stand), its unfinished deployment entries become `decommissioned`
/// and its inventory goes, in one append.
pub async fn decommission(
    pipeline: &Pipeline,
    caller: &Caller,
    device_id: &str,
) -> Result<Outcome<()>, ApiError> {
    let admission_stream = StreamName::new(admission::stream(device_id));
    pipeline
        .run(caller, |session| {
            let admission_stream = admission_stream.clone();
            async move {
                let state = session.load(&admission_stream, admission::evolve).await?;
                let removed = admission::decide_remove(&state, device_id)?;
                let decommissioned =
                    super::deployments::decommissioned_entries(&session, device_id).await?;
                let inventory = super::inventory::removed(&session, device_id).await?;
                Ok(Decision {
                    answer: (),
                    appends: vec![(admission_stream, removed), decommissioned, inventory],
                })
            }
        })
        .await
}
