//! Device admission's commands: a device's auth request, and an operator's decision on one
//! of its auth sets.

use events::admission::{AcceptedWithinLimit, AuthSetStatus, LIMIT_STREAM};
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

/// Runs a command on one device's admission stream that may accept the device. Without a
/// limit it is any such command. Under `max_devices`, `decide` is told whether the tenant is
/// at the limit, read from the tables once they reflect the tenant's limit stream; an
/// acceptance appends to that stream in the same append, so acceptances racing for the last
/// place are decided one after the other.
async fn within_limit<T>(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    max_devices: Option<u64>,
    decide: impl Fn(&Session, &DeviceAdmission, bool) -> Result<(Vec<DomainEvent>, T), ApiError>,
) -> Result<Outcome<T>, ApiError> {
    let Some(limit) = max_devices else {
        return on_device(pipeline, caller, device, |session, state| {
            decide(session, state, false)
        })
        .await;
    };
    let stream = StreamName::new(admission::stream(device));
    let places = StreamName::new(LIMIT_STREAM);
    pipeline
        .run(caller, |session| {
            let (stream, places, decide) = (stream.clone(), places.clone(), &decide);
            async move {
                let state = session.load(&stream, admission::evolve).await?;
                let accepted = session
                    .tables(std::slice::from_ref(&places), |tables| {
                        tables.accepted_devices() as u64
                    })
                    .await?;
                let (events, answer) = decide(&session, &state, accepted >= limit)?;
                let after = events.iter().fold(state.clone(), admission::evolve);
                let counted = if after.accepted() && !state.accepted() {
                    vec![DomainEvent::AcceptedWithinLimit(AcceptedWithinLimit {
                        device_id: device.to_owned(),
                        accepted: accepted + 1,
                        limit,
                    })]
                } else {
                    Vec::new()
                };
                Ok(Decision {
                    answer,
                    appends: vec![(stream, events), (places, counted)],
                })
            }
        })
        .await
}

/// Records what an auth request changes (a new set, an acceptance by policy, a check-in) and
/// says whether the device gets a token.
pub async fn auth_request(
    pipeline: &Pipeline,
    caller: &Caller,
    request: &AuthRequest,
    max_devices: Option<u64>,
) -> Result<Outcome<AuthAnswer>, ApiError> {
    let outcome = within_limit(
        pipeline,
        caller,
        &request.device_id,
        max_devices,
        |_, state, full| {
            let request = AuthRequest {
                limit_reached: full,
                ..request.clone()
            };
            Ok(admission::decide_auth_request(state, &request))
        },
    )
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
    within_limit(
        pipeline,
        caller,
        device,
        max_devices,
        |session, state, full| {
            // Which device owns a set never changes once recorded, so a table a moment old
            // answers it as well as the log would.
            let elsewhere = session.tables_now(|tables| {
                tables
                    .auth_set_owner(set)
                    .is_some_and(|owner| owner != device)
            });
            let events = admission::decide_status(state, device, set, status, elsewhere, full)?;
            Ok((events, ()))
        },
    )
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
