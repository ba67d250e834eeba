//! Saved inventory filters ("dynamic groups"), decided on the tenant's `filters` stream so
//! that two filters cannot take one name.

use std::collections::BTreeMap;

use events::filter::{FilterError as PredicateError, Predicate, RawPredicate};
use events::inventory::{FilterDeleted, FilterSaved, FilterTerm};
use events::DomainEvent;
use serde::Deserialize;
use uuid::Uuid;

pub use events::inventory::FILTERS_STREAM as STREAM;

const MAX_NAME: usize = 1024;
/// Predicates one filter may hold.
pub const MAX_TERMS: usize = 100;

/// `POST /api/management/v2/inventory/filters`, as the client sent it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFilter {
    pub name: Option<String>,
    pub terms: Option<Vec<RawPredicate>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("{0}")]
    Invalid(String),
    #[error("a filter with this name already exists")]
    NameTaken,
    #[error("Filter not found")]
    NotFound,
}

/// A saved filter.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedFilter {
    pub name: String,
    pub terms: Vec<FilterTerm>,
}

/// The tenant's saved filters.
#[derive(Debug, Clone, Default)]
pub struct SavedFilters {
    pub filters: BTreeMap<Uuid, SavedFilter>,
}

pub fn evolve(mut state: SavedFilters, event: &DomainEvent) -> SavedFilters {
    match event {
        DomainEvent::FilterSaved(saved) => {
            state.filters.insert(
                saved.filter_id,
                SavedFilter {
                    name: saved.name.clone(),
                    terms: saved.terms.clone(),
                },
            );
        }
        DomainEvent::FilterDeleted(deleted) => {
            state.filters.remove(&deleted.filter_id);
        }
        _ => {}
    }
    state
}

/// Checks a filter's predicates, naming the one that is wrong.
fn checked_terms(terms: &[RawPredicate]) -> Result<Vec<FilterTerm>, FilterError> {
    if terms.is_empty() || terms.len() > MAX_TERMS {
        return Err(FilterError::Invalid(format!(
            "terms: between 1 and {MAX_TERMS} predicates"
        )));
    }
    terms
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            Predicate::parse(raw)
                .map(|predicate| predicate.term())
                .map_err(|PredicateError(message)| {
                    FilterError::Invalid(format!("terms[{index}].{message}"))
                })
        })
        .collect()
}

/// Saves a filter under a name no other filter has.
pub fn decide_save(
    state: &SavedFilters,
    id: Uuid,
    request: &NewFilter,
) -> Result<Vec<DomainEvent>, FilterError> {
    let name = match &request.name {
        Some(name)
            if !name.trim().is_empty()
                && name.chars().count() <= MAX_NAME
                && !name.chars().any(char::is_control) =>
        {
            name.clone()
        }
        _ => {
            return Err(FilterError::Invalid(format!(
                "name: between 1 and {MAX_NAME} characters, no control characters"
            )))
        }
    };
    let terms = checked_terms(request.terms.as_deref().unwrap_or_default())?;
    if state.filters.values().any(|filter| filter.name == name) {
        return Err(FilterError::NameTaken);
    }
    Ok(vec![DomainEvent::FilterSaved(FilterSaved {
        filter_id: id,
        name,
        terms,
    })])
}

pub fn decide_delete(state: &SavedFilters, id: Uuid) -> Result<Vec<DomainEvent>, FilterError> {
    if !state.filters.contains_key(&id) {
        return Err(FilterError::NotFound);
    }
    Ok(vec![DomainEvent::FilterDeleted(FilterDeleted {
        filter_id: id,
    })])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(name: &str, terms: serde_json::Value) -> NewFilter {
        serde_json::from_value(json!({"name": name, "terms": terms})).unwrap()
    }

    #[test]
    fn names_are_unique_and_terms_checked() {
        let terms = json!([{"scope": "inventory", "attribute": "device_type", "type": "$eq", "value": "rpi4"}]);
        let saved = decide_save(
            &SavedFilters::default(),
            Uuid::new_v4(),
            &request("rpi", terms.clone()),
        )
        .unwrap();
        let state = saved.iter().fold(SavedFilters::default(), evolve);
        assert_eq!(
            decide_save(&state, Uuid::new_v4(), &request("rpi", terms.clone())),
            Err(FilterError::NameTaken)
        );
        for (name, terms) in [
            ("", terms.clone()),
            ("x", json!([])),
            (
                "x",
                json!([{"scope": "inventory", "attribute": "a", "type": "$nope", "value": 1}]),
            ),
        ] {
            assert!(matches!(
                decide_save(&state, Uuid::new_v4(), &request(name, terms)),
                Err(FilterError::Invalid(_))
            ));
        }
        let id = *state.filters.keys().next().unwrap();
        assert_eq!(
            decide_delete(&state, Uuid::new_v4()),
            Err(FilterError::NotFound)
        );
        let deleted = decide_delete(&state, id).unwrap();
        assert!(deleted.iter().fold(state, evolve).filters.is_empty());
    }
}
