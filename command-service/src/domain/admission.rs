//! Device admission (Mender's deviceauth), decided on the device's admission stream
//! `devauth-<device id>`.
//!
//! Why a stream per device: every rule of admission (one accepted set per device, which
//! transitions a set may make, whether a request earns a token) is about one device's auth
//! sets, so one stream version closes every race between a device's requests and an
//! operator's decisions. The stream's first event brings the device into being: appending it
//! at version 0 is what keeps two devices from claiming one identity.

use events::admission::{
    AuthSetAdded, AuthSetDismissed, AuthSetStatus, AuthSetStatusChanged, DeviceRemoved,
    DeviceTokenIssued,
};
use events::DomainEvent;
use serde_json::{Map, Value};
use uuid::Uuid;

pub fn stream(device: &str) -> String {
    format!("devauth-{device}")
}

/// One (identity, key) pair of the device.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSet {
    pub id: Uuid,
    pub pubkey: String,
    pub status: AuthSetStatus,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceAdmission {
    pub sets: Vec<AuthSet>,
    /// The identity the device presented first (the same for every set: it names the
    /// device).
    pub identity: Map<String, Value>,
}

impl DeviceAdmission {
    pub fn exists(&self) -> bool {
        !self.sets.is_empty()
    }

    pub fn accepted(&self) -> bool {
        self.sets
            .iter()
            .any(|set| set.status == AuthSetStatus::Accepted)
    }

    fn set(&self, id: Uuid) -> Option<&AuthSet> {
        self.sets.iter().find(|set| set.id == id)
    }
}

pub fn evolve(mut state: DeviceAdmission, event: &DomainEvent) -> DeviceAdmission {
    match event {
        DomainEvent::AuthSetAdded(added) => {
            if state.sets.is_empty() {
                state.identity = added.identity_data.clone();
            }
            state.sets.push(AuthSet {
                id: added.auth_set_id,
                pubkey: added.pubkey.clone(),
                status: added.status,
            });
        }
        DomainEvent::AuthSetDismissed(dismissed) => {
            state.sets.retain(|set| set.id != dismissed.auth_set_id);
        }
        DomainEvent::DeviceRemoved(_) => state.sets.clear(),
        DomainEvent::AuthSetStatusChanged(changed) => {
            if let Some(set) = state
                .sets
                .iter_mut()
                .find(|set| set.id == changed.auth_set_id)
            {
                set.status = changed.status;
            }
        }
        _ => {}
    }
    state
}

/// An auth request whose signature has been checked against `pubkey`.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub device_id: String,
    pub identity: Map<String, Value>,
    /// The key in canonical PEM form, as sets keep it.
    pub pubkey: String,
    /// Whether the server's policy admits this request without an operator: auto-accept, or
    /// an identity or key preauthorized in the configuration.
    pub admitted_by_policy: bool,
    /// The id a new set gets.
    pub new_set_id: Uuid,
    /// Whether the tenant has as many accepted devices as it may: then no set of a device
    /// not yet accepted is accepted by policy.
    pub limit_reached: bool,
}

/// The answer to an auth request.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthAnswer {
    /// A token for the device, issued for this set.
    Token { auth_set_id: Uuid },
    /// 401: the set waits for an operator, or was rejected.
    Refused(AuthSetStatus),
}

/// Mender's deviceauth: a new or pending set waits for an operator unless the policy admits
/// it; a rejected set is refused whatever the policy; a preauthorized set is accepted on the
/// device's first request; an accepted set gets a token. Accepting a set rejects the
/// device's other accepted set, so a device has one accepted key at a time.
pub fn decide_auth_request(
    state: &DeviceAdmission,
    request: &AuthRequest,
) -> (Vec<DomainEvent>, AuthAnswer) {
    let mut events = Vec::new();
    // Accepting a set of a device already accepted takes no new seat.
    let may_accept = !request.limit_reached || state.accepted();
    let (set_id, status) = match state.sets.iter().find(|set| set.pubkey == request.pubkey) {
        Some(set) => (set.id, set.status),
        None => {
            let status = if request.admitted_by_policy && may_accept {
                AuthSetStatus::Accepted
            } else {
                AuthSetStatus::Pending
            };
            events.extend(reject_others(state, &request.device_id, None, status));
            events.push(DomainEvent::AuthSetAdded(AuthSetAdded {
                device_id: request.device_id.clone(),
                auth_set_id: request.new_set_id,
                identity_data: request.identity.clone(),
                pubkey: request.pubkey.clone(),
                status,
            }));
            (request.new_set_id, status)
        }
    };
    let status = match status {
        AuthSetStatus::Preauthorized if may_accept => {
            accept(state, &request.device_id, set_id, &mut events)
        }
        AuthSetStatus::Pending if request.admitted_by_policy && may_accept => {
            accept(state, &request.device_id, set_id, &mut events)
        }
        other => other,
    };
    if status != AuthSetStatus::Accepted {
        return (events, AuthAnswer::Refused(status));
    }
    events.push(DomainEvent::DeviceTokenIssued(DeviceTokenIssued {
        device_id: request.device_id.clone(),
        auth_set_id: set_id,
    }));
    (
        events,
        AuthAnswer::Token {
            auth_set_id: set_id,
        },
    )
}

fn accept(
    state: &DeviceAdmission,
    device: &str,
    set: Uuid,
    events: &mut Vec<DomainEvent>,
) -> AuthSetStatus {
    events.extend(reject_others(
        state,
        device,
        Some(set),
        AuthSetStatus::Accepted,
    ));
    events.push(changed(device, set, AuthSetStatus::Accepted));
    AuthSetStatus::Accepted
}

/// When `status` is accepted: the device's other accepted sets become rejected.
fn reject_others(
    state: &DeviceAdmission,
    device: &str,
    keep: Option<Uuid>,
    status: AuthSetStatus,
) -> Vec<DomainEvent> {
    if status != AuthSetStatus::Accepted {
        return Vec::new();
    }
    state
        .sets
        .iter()
        .filter(|set| Some(set.id) != keep && set.status == AuthSetStatus::Accepted)
        .map(|set| changed(device, set.id, AuthSetStatus::Rejected))
        .collect()
}

fn changed(device: &str, set: Uuid, status: AuthSetStatus) -> DomainEvent {
    DomainEvent::AuthSetStatusChanged(AuthSetStatusChanged {
        device_id: device.to_owned(),
        auth_set_id: set,
        status,
    })
}

/// Why an operator's status change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("device not found")]
    DeviceNotFound,
    #[error("authorization set not found")]
    SetNotFound,
    #[error("dev auth: dev ID and auth ID mismatch")]
    SetOfAnotherDevice,
    #[error("dev auth: bad request")]
    Transition,
    /// The identity is a device already; preauthorizing it again needs `force`.
    #[error("device already exists")]
    Exists,
    #[error("maximum number of accepted devices reached")]
    LimitReached,
}

/// An operator's preauthorization: the device's identity and key, checked.
#[derive(Debug, Clone)]
pub struct Preauthorization {
    pub device_id: String,
    pub identity: Map<String, Value>,
    pub pubkey: String,
    pub force: bool,
    pub new_set_id: Uuid,
}

/// `POST .../devices`: a new device with one preauthorized set, accepted on its first auth
/// request. An identity that is a device already is refused unless `force`, which adds the
/// key as a preauthorized set of that device (a key it has already changes nothing).
pub fn decide_preauthorize(
    state: &DeviceAdmission,
    request: &Preauthorization,
) -> Result<Vec<DomainEvent>, AdmissionError> {
    if state.exists() && !request.force {
        return Err(AdmissionError::Exists);
    }
    if state.sets.iter().any(|set| set.pubkey == request.pubkey) {
        return Ok(Vec::new());
    }
    Ok(vec![DomainEvent::AuthSetAdded(AuthSetAdded {
        device_id: request.device_id.clone(),
        auth_set_id: request.new_set_id,
        identity_data: request.identity.clone(),
        pubkey: request.pubkey.clone(),
        status: AuthSetStatus::Preauthorized,
    })])
}

/// `DELETE .../devices/{id}/auth/{aid}`: the set is gone; if it was the accepted one, the
/// device's token no longer stands.
pub fn decide_dismiss(
    state: &DeviceAdmission,
    device: &str,
    set: Uuid,
) -> Result<Vec<DomainEvent>, AdmissionError> {
    if !state.exists() {
        return Err(AdmissionError::DeviceNotFound);
    }
    if state.set(set).is_none() {
        return Err(AdmissionError::SetNotFound);
    }
    Ok(vec![DomainEvent::AuthSetDismissed(AuthSetDismissed {
        device_id: device.to_owned(),
        auth_set_id: set,
    })])
}

/// `DELETE .../devices/{id}`: the device is decommissioned from admission: every set is
/// gone and no token of it stands.
pub fn decide_remove(
    state: &DeviceAdmission,
    device: &str,
) -> Result<Vec<DomainEvent>, AdmissionError> {
    if !state.exists() {
        return Err(AdmissionError::DeviceNotFound);
    }
    Ok(vec![DomainEvent::DeviceRemoved(DeviceRemoved {
        device_id: device.to_owned(),
    })])
}

/// `PUT .../devices/{id}/auth/{aid}/status`, with Mender's transitions: to accepted from
/// pending or rejected, to rejected from pending or accepted, to pending from anything but
/// preauthorized; the status a set already has changes nothing. `set_elsewhere` says whether
/// the set id belongs to another device (a 400 rather than a 404); `limit_reached`, whether
/// the tenant has as many accepted devices as it may (then accepting a device not yet
/// accepted is refused).
pub fn decide_status(
    state: &DeviceAdmission,
    device: &str,
    set: Uuid,
    status: AuthSetStatus,
    set_elsewhere: bool,
    limit_reached: bool,
) -> Result<Vec<DomainEvent>, AdmissionError> {
    if !state.exists() {
        return Err(AdmissionError::DeviceNotFound);
    }
    let Some(current) = state.set(set) else {
        return Err(if set_elsewhere {
            AdmissionError::SetOfAnotherDevice
        } else {
            AdmissionError::SetNotFound
        });
    };
    if current.status == status {
        return Ok(Vec::new());
    }
    use AuthSetStatus::*;
    let allowed = match (current.status, status) {
        (Preauthorized, _) => false,
        (Pending | Rejected, Accepted) => true,
        (Pending | Accepted, Rejected) => true,
        (_, Pending) => true,
        _ => false,
    };
    if !allowed {
        return Err(AdmissionError::Transition);
    }
    if status == Accepted && limit_reached && !state.accepted() {
        return Err(AdmissionError::LimitReached);
    }
    let mut events = reject_others(state, device, Some(set), status);
    events.push(changed(device, set, status));
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: &str = "d5be734a-399b-57fb-9920-1e0f24143eae";

    fn request(key: &str, admitted_by_policy: bool) -> AuthRequest {
        AuthRequest {
            device_id: DEVICE.into(),
            identity: serde_json::from_str(r#"{"mac":"00:11"}"#).unwrap(),
            pubkey: key.into(),
            admitted_by_policy,
            new_set_id: Uuid::new_v4(),
            limit_reached: false,
        }
    }

    fn fold(events: &[DomainEvent], state: DeviceAdmission) -> DeviceAdmission {
        events.iter().fold(state, evolve)
    }

    #[test]
    fn a_new_device_waits_for_an_operator_unless_the_policy_admits_it() {
        let (events, answer) =
            decide_auth_request(&DeviceAdmission::default(), &request("k1", false));
        assert_eq!(answer, AuthAnswer::Refused(AuthSetStatus::Pending));
        let state = fold(&events, DeviceAdmission::default());
        assert!(state.exists() && !state.accepted());

        // Asking again records nothing new.
        let (again, answer) = decide_auth_request(&state, &request("k1", false));
        assert!(again.is_empty());
        assert_eq!(answer, AuthAnswer::Refused(AuthSetStatus::Pending));

        // Auto-accept switched on later admits the pending set.
        let (events, answer) = decide_auth_request(&state, &request("k1", true));
        assert!(matches!(answer, AuthAnswer::Token { .. }));
        assert!(fold(&events, state).accepted());
    }

    #[test]
    fn an_operator_accepts_and_a_rejected_set_is_refused_whatever_the_policy() {
        let (events, _) = decide_auth_request(&DeviceAdmission::default(), &request("k1", false));
        let state = fold(&events, DeviceAdmission::default());
        let set = state.sets[0].id;
        let accepted =
            decide_status(&state, DEVICE, set, AuthSetStatus::Accepted, false, false).unwrap();
        let state = fold(&accepted, state);
        let (events, answer) = decide_auth_request(&state, &request("k1", false));
        assert_eq!(answer, AuthAnswer::Token { auth_set_id: set });
        assert!(matches!(
            events.as_slice(),
            [DomainEvent::DeviceTokenIssued(_)]
        ));

        let rejected =
            decide_status(&state, DEVICE, set, AuthSetStatus::Rejected, false, false).unwrap();
        let state = fold(&rejected, state);
        assert!(!state.accepted());
        let (events, answer) = decide_auth_request(&state, &request("k1", true));
        assert!(events.is_empty());
        assert_eq!(answer, AuthAnswer::Refused(AuthSetStatus::Rejected));
    }

    #[test]
    fn accepting_a_second_key_rejects_the_first() {
        let (events, _) = decide_auth_request(&DeviceAdmission::default(), &request("k1", true));
        let state = fold(&events, DeviceAdmission::default());
        let first = state.sets[0].id;
        let (events, answer) = decide_auth_request(&state, &request("k2", false));
        assert_eq!(answer, AuthAnswer::Refused(AuthSetStatus::Pending));
        let state = fold(&events, state);
        assert!(
            state.accepted(),
            "the device keeps its accepted key meanwhile"
        );
        let second = state.sets[1].id;
        let events = decide_status(
            &state,
            DEVICE,
            second,
            AuthSetStatus::Accepted,
            false,
            false,
        )
        .unwrap();
        let state = fold(&events, state);
        let statuses: Vec<_> = state.sets.iter().map(|set| set.status).collect();
        assert_eq!(statuses, [AuthSetStatus::Rejected, AuthSetStatus::Accepted]);
        assert_ne!(first, second);
    }

    #[test]
    fn a_preauthorized_device_is_accepted_on_its_first_request_and_removal_starts_it_over() {
        let preauthorization = Preauthorization {
            device_id: DEVICE.into(),
            identity: serde_json::from_str(r#"{"mac":"00:11"}"#).unwrap(),
            pubkey: "k1".into(),
            force: false,
            new_set_id: Uuid::new_v4(),
        };
        let events = decide_preauthorize(&DeviceAdmission::default(), &preauthorization).unwrap();
        let state = fold(&events, DeviceAdmission::default());
        assert_eq!(state.sets[0].status, AuthSetStatus::Preauthorized);
        assert_eq!(
            decide_preauthorize(&state, &preauthorization),
            Err(AdmissionError::Exists)
        );
        let forced = Preauthorization {
            force: true,
            pubkey: "k2".into(),
            ..preauthorization.clone()
        };
        assert_eq!(decide_preauthorize(&state, &forced).unwrap().len(), 1);

        let (events, answer) = decide_auth_request(&state, &request("k1", false));
        assert!(matches!(answer, AuthAnswer::Token { .. }));
        let state = fold(&events, state);
        assert!(state.accepted());

        let removed = fold(&decide_remove(&state, DEVICE).unwrap(), state);
        assert!(!removed.exists());
        assert_eq!(
            decide_remove(&removed, DEVICE),
            Err(AdmissionError::DeviceNotFound)
        );
        let (_, answer) = decide_auth_request(&removed, &request("k1", false));
        assert_eq!(
            answer,
            AuthAnswer::Refused(AuthSetStatus::Pending),
            "it starts over"
        );
    }

    #[test]
    fn dismissing_the_accepted_set_leaves_the_device_unaccepted() {
        let (events, _) = decide_auth_request(&DeviceAdmission::default(), &request("k1", true));
        let state = fold(&events, DeviceAdmission::default());
        let set = state.sets[0].id;
        assert_eq!(
            decide_dismiss(&state, DEVICE, Uuid::new_v4()),
            Err(AdmissionError::SetNotFound)
        );
        let state = fold(&decide_dismiss(&state, DEVICE, set).unwrap(), state);
        assert!(!state.accepted() && !state.exists());
    }

    #[test]
    fn past_the_device_limit_nothing_more_is_accepted() {
        let full = AuthRequest {
            limit_reached: true,
            ..request("k1", true)
        };
        let (events, answer) = decide_auth_request(&DeviceAdmission::default(), &full);
        assert_eq!(
            answer,
            AuthAnswer::Refused(AuthSetStatus::Pending),
            "recorded as pending"
        );
        let state = fold(&events, DeviceAdmission::default());
        let set = state.sets[0].id;
        assert_eq!(
            decide_status(&state, DEVICE, set, AuthSetStatus::Accepted, false, true),
            Err(AdmissionError::LimitReached)
        );
        // A device accepted already keeps its seat for another key.
        let accepted = fold(
            &decide_status(&state, DEVICE, set, AuthSetStatus::Accepted, false, false).unwrap(),
            state,
        );
        let (_, answer) = decide_auth_request(
            &accepted,
            &AuthRequest {
                limit_reached: true,
                ..request("k1", false)
            },
        );
        assert!(matches!(answer, AuthAnswer::Token { .. }));
    }

    #[test]
    fn transitions_follow_mender() {
        use AuthSetStatus::*;
        let with = |status| DeviceAdmission {
            sets: vec![AuthSet {
                id: Uuid::nil(),
                pubkey: "k".into(),
                status,
            }],
            identity: Map::new(),
        };
        let decide = |from, to| decide_status(&with(from), DEVICE, Uuid::nil(), to, false, false);
        for (from, to, allowed) in [
            (Pending, Accepted, true),
            (Pending, Rejected, true),
            (Rejected, Accepted, true),
            (Accepted, Rejected, true),
            (Accepted, Pending, true),
            (Rejected, Pending, true),
            (Preauthorized, Accepted, false),
            (Preauthorized, Pending, false),
            (Preauthorized, Rejected, false),
        ] {
            assert_eq!(decide(from, to).is_ok(), allowed, "{from} -> {to}");
        }
        assert_eq!(decide(Accepted, Accepted), Ok(Vec::new()));
        assert_eq!(
            decide_status(
                &DeviceAdmission::default(),
                DEVICE,
                Uuid::nil(),
                Accepted,
                false,
                false
            ),
            Err(AdmissionError::DeviceNotFound)
        );
        assert_eq!(
            decide_status(
                &with(Pending),
                DEVICE,
                Uuid::new_v4(),
                Accepted,
                true,
                false
            ),
            Err(AdmissionError::SetOfAnotherDevice)
        );
        assert_eq!(
            decide_status(
                &with(Pending),
                DEVICE,
                Uuid::new_v4(),
                Accepted,
                false,
                false
            ),
            Err(AdmissionError::SetNotFound)
        );
    }
}
