//! `as_of`: a deployment as it was at a moment, folded from its events.
//!
//! The events that concern the deployment (its own, its devices' entries in it, the
//! tenant's artifacts) up to the moment are projected, by the same projections that keep
//! the live read models, into a scratch database on disk that lives for one request (see
//! `read_models::past`); the read is then served from it by the same queries. The past is
//! therefore shown exactly as the present is. The log picks those events itself, so other
//! deployments, however large, never pass through memory; and few replays run at once, one
//! per tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_log::Selection;
use events::{DeploymentId, Position, TenantId};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use crate::error::{parse_id, ApiError};
use crate::read_models::past::{replay, Moment, PastReadModels};

#[derive(Debug, Default, Deserialize)]
pub struct AsOf {
    pub as_of: Option<String>,
}

fn moment(text: &str) -> Result<Moment, ApiError> {
    if let Ok(position) = text.trim().parse::<u64>() {
        return Ok(Moment::Position(Position(position)));
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| Moment::Time(time.with_timezone(&Utc)))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "as_of must be an RFC 3339 time or a log position, not \"{text}\""
            ))
        })
}

/// The state to serve a read from: the live one, or a scratch one at `as_of`.
pub struct Past {
    pub state: AppState,
    _scratch: Option<PastReadModels>,
}

/// How many replays run at once: in all, and for one tenant (so that one tenant's heavy
/// reads leave room for the others').
pub struct Replays {
    all: Arc<Semaphore>,
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
    wait: Duration,
}

impl Replays {
    /// `concurrency` replays at once, one per tenant; a read waits at most `wait` for its turn.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        Self {
            all: Arc::new(Semaphore::new(concurrency.max(1))),
            tenants: Mutex::new(HashMap::new()),
            wait,
        }
    }

    /// Waits for a turn to read the past; 503 after the wait.
    pub async fn turn(
        &self,
        tenant: &TenantId,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), ApiError> {
        let own = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            // Tenants with no replay under way or waiting need no entry.
            tenants.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            tenants
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        let busy = || {
            ApiError::Unavailable("too many reads of the past at once; try again shortly".into())
        };
        let turn = async {
            let own = own.acquire_owned().await.map_err(|_| busy())?;
            let all = self.all.clone().acquire_owned().await.map_err(|_| busy())?;
            Ok::<_, ApiError>((own, all))
        };
        tokio::time::timeout(self.wait, turn)
            .await
            .map_err(|_| busy())?
    }
}

pub async fn state_at(
    state: &AppState,
    tenant: &TenantId,
    deployment: &str,
    as_of: &AsOf,
) -> Result<Past, ApiError> {
    let Some(text) = &as_of.as_of else {
        return Ok(Past {
            state: state.clone(),
            _scratch: None,
        });
    };
    let moment = moment(text)?;
    let deployment: DeploymentId = parse_id(deployment)?;
    let _turn = state.replays.turn(tenant).await?;
    let selection = Selection {
        field: "deployment_id".into(),
        value: deployment.to_string(),
        // Artifacts, for the deployment's and its devices' artifact details; decommissions,
        // which name only the device.
        streams: vec!["artifacts".into()],
        event_types: vec!["DeviceDecommissioned".into()],
    };
    let scratch = replay(state.log.as_ref(), tenant, &selection, moment).await?;
    let mut state = state.clone();
    state.read_models = scratch.read_models.clone();
    Ok(Past {
        state,
        _scratch: Some(scratch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_replay_per_tenant_and_a_bounded_number_in_all() {
        let replays = Replays::new(2, Duration::from_millis(100));
        let (a, b, c) = (TenantId::new("a"), TenantId::new("b"), TenantId::new("c"));
        let first = replays.turn(&a).await.unwrap();
        // The same tenant waits for its own replay, then is told to come back.
        assert!(matches!(
            replays.turn(&a).await,
            Err(ApiError::Unavailable(_))
        ));
        // Another tenant is not held up by it.
        let second = replays.turn(&b).await.unwrap();
        // Past the total, everyone waits.
        assert!(matches!(
            replays.turn(&c).await,
            Err(ApiError::Unavailable(_))
        ));
        drop(first);
        let third = replays.turn(&c).await.unwrap();
        drop((second, third));
        assert!(replays.turn(&a).await.is_ok());
        // Tenants with nothing under way leave no entry behind.
        assert!(replays.tenants.lock().unwrap().len() <= 1);
    }

    #[test]
    fn a_moment_is_a_position_or_a_time() {
        assert_eq!(moment("42").unwrap(), Moment::Position(Position(42)));
        assert!(matches!(
            moment("2026-01-01T00:00:00Z").unwrap(),
            Moment::Time(_)
        ));
        assert!(matches!(
            moment("2026-01-01T00:00:00+02:00").unwrap(),
            Moment::Time(_)
        ));
        for bad in ["yesterday", "-1", "", "2026-13-01T00:00:00Z"] {
            assert!(moment(bad).is_err(), "{bad}");
        }
    }
}
