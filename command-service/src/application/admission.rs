//! Device admission's commands: a device's auth request, and an operator's decision on one
//! of its auth sets.

use events::admission::AuthSetStatus;
use events::StreamName;
use uuid::Uuid;

use super::{Caller, Decision, Outcome, Pipeline};
use crate::domain::admission::{self, AuthAnswer, AuthRequest};
use crate::error::ApiError;

/// Records what an auth request changes (a new set, an acceptance by policy, a check-in) and
/// says whether the device gets a token.
pub async fn auth_request(
    pipeline: &Pipeline,
    caller: &Caller,
    request: &AuthRequest,
) -> Result<Outcome<AuthAnswer>, ApiError> {
    let stream = StreamName::new(admission::stream(&request.device_id));
    pipeline
        .run(caller, |session| {
            let stream = stream.clone();
            async move {
                let state = session.load(&stream, admission::evolve).await?;
                let (events, answer) = admission::decide_auth_request(&state, request);
                Ok(Decision::append(stream, events, answer))
            }
        })
        .await
}

/// `PUT /api/management/v2/devauth/devices/{id}/auth/{aid}/status`.
pub async fn set_status(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    set: Uuid,
    status: AuthSetStatus,
) -> Result<Outcome<()>, ApiError> {
    let stream = StreamName::new(admission::stream(device));
    pipeline
        .run(caller, |session| {
            let stream = stream.clone();
            async move {
                let state = session.load(&stream, admission::evolve).await?;
                // Which device owns a set never changes once recorded, so a table a moment
                // old answers it as well as the log would.
                let elsewhere = session.tables_now(|tables| {
                    tables
                        .auth_set_owner(set)
                        .is_some_and(|owner| owner != device)
                });
                let events = admission::decide_status(&state, device, set, status, elsewhere)?;
                Ok(Decision::append(stream, events, ()))
            }
        })
        .await
}
