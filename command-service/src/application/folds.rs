//! Folded stream states kept between commands. A status report used to read its device's
//! whole stream from the first event, so its cost grew with every deployment the device had
//! ever had; with the fold kept, a command reads only the events after the kept version,
//! which is none when this process wrote the last one. The log stays the truth: a kept fold
//! is only ever carried forward by the events after it, so a stream another instance wrote
//! is caught up on the next read, and losing the cache costs one full read.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use events::{StreamName, TenantId};

use crate::domain::Folded;

type Key = (TenantId, StreamName, TypeId);

/// A fold at a stream version.
struct Kept {
    version: u64,
    state: Arc<dyn Any + Send + Sync>,
}

/// Up to `capacity` folds; past it, one kept fold makes room for each new one.
pub struct Folds {
    kept: Mutex<HashMap<Key, Kept>>,
    capacity: usize,
}

impl Folds {
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The kept fold of `stream` into `S`, and the version it is at.
    pub fn get<S: Folded>(&self, tenant: &TenantId, stream: &StreamName) -> Option<(u64, S)> {
        let key = (tenant.clone(), stream.clone(), TypeId::of::<S>());
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = kept.get(&key)?;
        let state = found.state.downcast_ref::<S>()?.clone();
        Some((found.version, state))
    }

    /// Keeps `state` as the fold of `stream` at `version`, unless a later one is kept.
    pub fn keep<S: Folded>(&self, tenant: &TenantId, stream: &StreamName, version: u64, state: S) {
        if self.capacity == 0 {
            return;
        }
        let key = (tenant.clone(), stream.clone(), TypeId::of::<S>());
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if kept.get(&key).is_some_and(|known| known.version >= version) {
            return;
        }
        if kept.len() >= self.capacity && !kept.contains_key(&key) {
            // Any one: the map's order is as good as random, and a dropped fold costs one
            // full read of its stream.
            if let Some(evicted) = kept.keys().next().cloned() {
                kept.remove(&evicted);
            }
        }
        kept.insert(
            key,
            Kept {
                version,
                state: Arc::new(state),
            },
        );
    }

    /// How many folds are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}
