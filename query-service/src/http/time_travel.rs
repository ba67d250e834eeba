//! `as_of`: a deployment as it was at a moment, folded from its events.
//!
//! The events of the caller's tenant up to the moment are projected, by the same projections
//! that keep the live read models, into a scratch database that lives for one request; the
//! read is then served from it by the same queries. The past is therefore shown exactly as the
//! present is, at the cost of replaying the tenant's history up to that moment.

use chrono::{DateTime, Utc};
use events::{Position, TenantId};
use serde::Deserialize;

use super::AppState;
use crate::error::ApiError;
use crate::read_models::ReadModels;

#[derive(Debug, Default, Deserialize)]
pub struct AsOf {
    pub as_of: Option<String>,
}

/// A moment in the log: a position, or a time (events that occurred at or before it).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Moment {
    Position(Position),
    Time(DateTime<Utc>),
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
    _scratch: Option<tempfile::TempDir>,
}

pub async fn state_at(state: &AppState, tenant: &TenantId, as_of: &AsOf) -> Result<Past, ApiError> {
    let Some(text) = &as_of.as_of else {
        return Ok(Past {
            state: state.clone(),
            _scratch: None,
        });
    };
    let moment = moment(text)?;
    let scratch = tempfile::tempdir().map_err(anyhow::Error::from)?;
    let url = format!("sqlite://{}", scratch.path().join("past.db").display());
    let past = ReadModels::connect(&url, 1).await?;
    let projections = crate::projections::all();
    let mut after = Position::START;
    'replay: loop {
        let page = state
            .log
            .read_tenant(tenant, after, 1000)
            .await
            .map_err(anyhow::Error::from)?;
        let Some(last) = page.last() else { break };
        after = last.position;
        let before = page
            .iter()
            .take_while(|event| match moment {
                Moment::Position(position) => event.position <= position,
                Moment::Time(time) => event.metadata.occurred_at <= time,
            })
            .count();
        let mut transaction = past.pool().begin().await?;
        for projection in &projections {
            projection.apply(&mut transaction, &page[..before]).await?;
        }
        transaction.commit().await?;
        if before < page.len() {
            break 'replay;
        }
    }
    let mut state = state.clone();
    state.read_models = past;
    Ok(Past {
        state,
        _scratch: Some(scratch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
