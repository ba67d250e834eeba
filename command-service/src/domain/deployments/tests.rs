//! given(events).when(command).then(events | error) for deployment and device decisions.

use chrono::{Duration, TimeZone, Utc};
use events::artifact::{ArtifactInfo, ArtifactUploaded};
use events::deployment::{DeploymentCreated, DeviceDeploymentStatus};
use events::{ArtifactId, DeploymentId, DomainEvent};

use super::*;
use crate::domain::device::{self, Asked, DeviceState, Next};
use crate::domain::tables::TenantCatalog;

fn catalog(events: Vec<DomainEvent>) -> TenantCatalog {
    let mut catalog = TenantCatalog::default();
    for event in events {
        catalog.apply(event);
    }
    catalog
}

fn artifact(name: &str, device_types: &[&str], size: u64) -> DomainEvent {
    DomainEvent::ArtifactUploaded(ArtifactUploaded {
        artifact_id: ArtifactId::new(),
        name: name.into(),
        description: String::new(),
        device_types_compatible: device_types.iter().map(|t| t.to_string()).collect(),
        info: ArtifactInfo {
            format: "mender".into(),
            version: 3,
        },
        signed: false,
        updates: vec![],
        artifact_provides: Default::default(),
        artifact_depends: Default::default(),
        clears_artifact_provides: vec![],
        size,
        modified: Utc::now(),
    })
}

fn request(devices: &[&str]) -> NewDeployment {
    NewDeployment {
        name: Some("spring".into()),
        artifact_name: Some("release-1".into()),
        devices: Some(devices.iter().map(|d| d.to_string()).collect()),
        ..NewDeployment::default()
    }
}

fn created(events: Vec<DomainEvent>) -> DeploymentCreated {
    match events.into_iter().next() {
        Some(DomainEvent::DeploymentCreated(created)) => created,
        other => panic!("expected a creation, got {other:?}"),
    }
}

/// The most devices a deployment may list, in these tests.
const LIMIT: usize = 10;
const DEVICES_AT_LIMIT: [&str; LIMIT] =
    ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10"];

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

#[test]
fn a_deployment_needs_a_name_an_artifact_name_and_devices() {
    let known = catalog(vec![artifact("release-1", &["pi"], 10)]);
    let id = DeploymentId::new();
    assert!(decide_creation(&request(&["d1"]), id, now(), LIMIT, &known).is_ok());
    assert!(
        decide_creation(
            &request(&["d1", "d2", "d3", "d4", "d5"]),
            id,
            now(),
            LIMIT,
            &known
        )
        .is_ok(),
        "as many devices as the limit"
    );
    for broken in [
        NewDeployment {
            name: None,
            ..request(&["d1"])
        },
        NewDeployment {
            name: Some(String::new()),
            ..request(&["d1"])
        },
        NewDeployment {
            artifact_name: None,
            ..request(&["d1"])
        },
        NewDeployment {
            name: Some("x".repeat(4097)),
            ..request(&["d1"])
        },
        NewDeployment {
            name: Some(" \t\n ".into()),
            ..request(&["d1"])
        },
        NewDeployment {
            name: Some("nul\0inside".into()),
            ..request(&["d1"])
        },
        NewDeployment {
            name: Some("escape\u{1b}[31m".into()),
            ..request(&["d1"])
        },
        NewDeployment {
            artifact_name: Some("   ".into()),
            ..request(&["d1"])
        },
        request(&["d1", "bad\u{7}bell"]),
        request(&["d1", "nul\0"]),
        request(&["d1", "  "]),
        request(&[DEVICES_AT_LIMIT.as_slice(), &["d11"]].concat()),
        request(&[]),
        NewDeployment {
            devices: None,
            ..request(&[])
        },
        NewDeployment {
            all_devices: Some(true),
            ..request(&["d1"])
        },
        NewDeployment {
            all_devices: Some(true),
            devices: None,
            ..request(&[])
        },
    ] {
        assert!(
            matches!(
                decide_creation(&broken, id, now(), LIMIT, &known),
                Err(DeploymentError::Invalid(_))
            ),
            "{broken:?}"
        );
    }
}

#[test]
fn no_artifact_of_that_name_is_unprocessable() {
    let known = catalog(vec![artifact("other", &["pi"], 10)]);
    assert_eq!(
        decide_creation(&request(&["d1"]), DeploymentId::new(), now(), LIMIT, &known),
        Err(DeploymentError::NoArtifact)
    );
}

#[test]
fn an_identical_active_deployment_is_a_conflict_until_it_finishes() {
    let first = DeploymentId::new();
    let mut history = vec![artifact("release-1", &["pi"], 10)];
    history.extend(
        decide_creation(
            &request(&["d2", "d1"]),
            first,
            now(),
            LIMIT,
            &catalog(history.clone()),
        )
        .unwrap(),
    );
    let known = catalog(history.clone());
    assert_eq!(
        decide_creation(
            &request(&["d1", "d2"]),
            DeploymentId::new(),
            now(),
            LIMIT,
            &known
        ),
        Err(DeploymentError::Identical { existing: first })
    );
    let forced = NewDeployment {
        force_installation: Some(true),
        ..request(&["d1", "d2"])
    };
    assert!(decide_creation(&forced, DeploymentId::new(), now(), LIMIT, &known).is_ok());
    history.extend(decide_abort(first, &known).unwrap());
    assert!(decide_creation(
        &request(&["d1", "d2"]),
        DeploymentId::new(),
        now(),
        LIMIT,
        &catalog(history)
    )
    .is_ok());
}

#[test]
fn phases_take_floor_percentages_and_the_last_the_remainder() {
    let known = catalog(vec![artifact("release-1", &["pi"], 10)]);
    let devices: Vec<String> = (0..10).map(|n| format!("d{n}")).collect();
    let device_refs: Vec<&str> = devices.iter().map(String::as_str).collect();
    let later = now() + Duration::hours(1);
    let phased = NewDeployment {
        phases: Some(vec![
            NewPhase {
                batch_size: Some(15),
                start_ts: None,
            },
            NewPhase {
                batch_size: Some(25),
                start_ts: Some(later),
            },
            NewPhase {
                batch_size: None,
                start_ts: Some(later + Duration::hours(1)),
            },
        ]),
        ..request(&device_refs)
    };
    let plan =
        created(decide_creation(&phased, DeploymentId::new(), now(), LIMIT, &known).unwrap());
    let sizes: Vec<u64> = plan.phases.iter().map(|phase| phase.max_devices).collect();
    assert_eq!(sizes, vec![1, 2, 7]);
    assert_eq!(plan.phases[0].start_ts, now());
}

#[test]
fn bad_phases_are_refused() {
    let known = catalog(vec![artifact("release-1", &["pi"], 10)]);
    let later = now() + Duration::hours(1);
    let with = |phases: Vec<NewPhase>| NewDeployment {
        phases: Some(phases),
        ..request(&["a", "b", "c"])
    };
    for phases in [
        // 10% of 3 devices is no device.
        vec![
            NewPhase {
                batch_size: Some(10),
                start_ts: None,
            },
            NewPhase {
                batch_size: None,
                start_ts: Some(later),
            },
        ],
        // start times must increase.
        vec![
            NewPhase {
                batch_size: Some(50),
                start_ts: Some(later),
            },
            NewPhase {
                batch_size: None,
                start_ts: Some(later),
            },
        ],
        // a later phase needs a start.
        vec![
            NewPhase {
                batch_size: Some(50),
                start_ts: None,
            },
            NewPhase {
                batch_size: None,
                start_ts: None,
            },
        ],
        // percentages past 100.
        vec![
            NewPhase {
                batch_size: Some(80),
                start_ts: None,
            },
            NewPhase {
                batch_size: Some(40),
                start_ts: Some(later),
            },
        ],
        vec![
            NewPhase {
                batch_size: Some(0),
                start_ts: None,
            },
            NewPhase {
                batch_size: None,
                start_ts: Some(later),
            },
        ],
    ] {
        assert!(matches!(
            decide_creation(&with(phases), DeploymentId::new(), now(), LIMIT, &known),
            Err(DeploymentError::Invalid(_))
        ));
    }
}

#[test]
fn aborting_twice_or_an_unknown_deployment_is_refused() {
    let id = DeploymentId::new();
    let mut history = vec![artifact("release-1", &["pi"], 10)];
    history.extend(
        decide_creation(
            &request(&["d1"]),
            id,
            now(),
            LIMIT,
            &catalog(history.clone()),
        )
        .unwrap(),
    );
    let events = decide_abort(id, &catalog(history.clone())).unwrap();
    history.extend(events);
    assert_eq!(
        decide_abort(id, &catalog(history)),
        Err(DeploymentError::Finished)
    );
    assert_eq!(
        decide_abort(DeploymentId::new(), &catalog(vec![])),
        Err(DeploymentError::NotFound)
    );
}

#[test]
fn a_phase_admits_no_more_devices_than_its_batch() {
    let id = DeploymentId::new();
    let mut state = Admissions::default();
    for device in ["a", "b"] {
        for event in decide_admission(&state, id, device, 0, 2).unwrap() {
            state = evolve_admissions(state, &event);
        }
    }
    assert_eq!(decide_admission(&state, id, "c", 0, 2), Err(PhaseFull));
    assert_eq!(
        decide_admission(&state, id, "a", 0, 2),
        Ok(vec![]),
        "a retry is no new seat"
    );
    assert!(decide_admission(&state, id, "c", 1, 5).is_ok());
}

fn asked(device: &str, artifact_name: &str, device_type: &str) -> Asked {
    Asked {
        device: device.into(),
        artifact_name: artifact_name.into(),
        device_type: device_type.into(),
        now: now(),
    }
}

fn deploy(
    history: &mut Vec<DomainEvent>,
    name: &str,
    artifact_name: &str,
    devices: &[&str],
    at: chrono::DateTime<Utc>,
) -> DeploymentId {
    let id = DeploymentId::new();
    let request = NewDeployment {
        name: Some(name.into()),
        artifact_name: Some(artifact_name.into()),
        devices: Some(devices.iter().map(|d| d.to_string()).collect()),
        ..NewDeployment::default()
    };
    history.extend(decide_creation(&request, id, at, LIMIT, &catalog(history.clone())).unwrap());
    id
}

fn device_after(events: &[DomainEvent]) -> DeviceState {
    events.iter().fold(DeviceState::default(), device::evolve)
}

#[test]
fn the_oldest_active_deployment_is_served_with_the_smallest_compatible_artifact() {
    let mut history = vec![
        artifact("release-2", &["pi"], 300),
        artifact("release-2", &["pi", "bbb"], 200),
        artifact("release-2", &["x86"], 100),
        artifact("release-3", &["pi"], 100),
    ];
    let older = deploy(
        &mut history,
        "a",
        "release-2",
        &["d1"],
        now() - Duration::hours(2),
    );
    deploy(
        &mut history,
        "b",
        "release-3",
        &["d1"],
        now() - Duration::hours(1),
    );
    let known = catalog(history);
    let decision = device::decide_next(
        &DeviceState::default(),
        &asked("d1", "release-1", "pi"),
        &known,
        None,
    );
    let Next::Serve {
        deployment,
        artifact,
    } = decision.answer
    else {
        panic!("{decision:?}")
    };
    assert_eq!(deployment, older);
    assert_eq!(known.artifact(artifact).unwrap().size, 200);
    assert!(
        matches!(&decision.events[..], [DomainEvent::DeviceJoinedDeployment(j)] if j.status == DeviceDeploymentStatus::Pending)
    );
}

#[test]
fn nothing_compatible_is_noartifact_and_the_same_artifact_is_already_installed() {
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    deploy(&mut history, "a", "release-2", &["d1", "d2"], now());
    let known = catalog(history);
    let wrong_type = device::decide_next(
        &DeviceState::default(),
        &asked("d1", "release-1", "x86"),
        &known,
        None,
    );
    assert_eq!(wrong_type.answer, Next::Nothing);
    assert!(
        matches!(&wrong_type.events[..], [DomainEvent::DeviceJoinedDeployment(j)] if j.status == DeviceDeploymentStatus::NoArtifact)
    );
    let same = device::decide_next(
        &DeviceState::default(),
        &asked("d2", "release-2", "pi"),
        &known,
        None,
    );
    assert_eq!(same.answer, Next::Nothing);
    assert!(
        matches!(&same.events[..], [DomainEvent::DeviceJoinedDeployment(j)] if j.status == DeviceDeploymentStatus::AlreadyInstalled)
    );
}

#[test]
fn an_unfinished_entry_is_served_again_and_contradicting_it_fails_it() {
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    let id = deploy(&mut history, "a", "release-2", &["d1"], now());
    let known = catalog(history);
    let first = device::decide_next(
        &DeviceState::default(),
        &asked("d1", "release-1", "pi"),
        &known,
        None,
    );
    let state = device_after(&first.events);
    let again = device::decide_next(&state, &asked("d1", "release-1", "pi"), &known, None);
    assert!(matches!(again.answer, Next::Serve { deployment, .. } if deployment == id));
    assert!(again.events.is_empty());
    let other = device::decide_next(&state, &asked("d1", "release-9", "pi"), &known, None);
    assert_eq!(other.answer, Next::Contradiction);
    assert!(
        matches!(&other.events[..], [DomainEvent::DeviceDeploymentStatusChanged(c)] if c.status == DeviceDeploymentStatus::Failure)
    );
}

#[test]
fn an_older_deployment_is_never_served_after_a_newer_one_finished() {
    let mut history = vec![
        artifact("release-2", &["pi"], 300),
        artifact("release-3", &["pi"], 300),
    ];
    let older = deploy(
        &mut history,
        "a",
        "release-2",
        &["d1", "d9"],
        now() - Duration::hours(2),
    );
    let newer = deploy(
        &mut history,
        "b",
        "release-3",
        &["d1"],
        now() - Duration::hours(1),
    );
    // d1 took part in the newer deployment (say an operator forced it) and finished it.
    let mut device_events = vec![DomainEvent::DeviceJoinedDeployment(
        events::deployment::DeviceJoinedDeployment {
            deployment_id: newer,
            device_id: "d1".into(),
            artifact_id: None,
            status: DeviceDeploymentStatus::AlreadyInstalled,
            device_type: "pi".into(),
            installed_artifact_name: "release-3".into(),
            phase: None,
            matched_filter: None,
        },
    )];
    history.extend(device_events.clone());
    let known = catalog(history);
    assert!(!known.deployments[&older].finished());
    let decision = device::decide_next(
        &device_after(&device_events),
        &asked("d1", "release-3", "pi"),
        &known,
        None,
    );
    assert_eq!(decision.answer, Next::Nothing);
    device_events.clear();
}

#[test]
fn status_reports_follow_the_entry() {
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    let id = deploy(&mut history, "a", "release-2", &["d1"], now());
    let joined = device::decide_next(
        &DeviceState::default(),
        &asked("d1", "release-1", "pi"),
        &catalog(history.clone()),
        None,
    )
    .events;
    history.extend(joined.clone());
    let state = device_after(&joined);
    let known = catalog(history.clone());
    let report = |state: &DeviceState, status, known: &TenantCatalog| {
        device::decide_status(state, "d1", id, status, None, known)
    };
    assert_eq!(
        report(&state, DeviceDeploymentStatus::Pending, &known),
        Ok(vec![]),
        "the same status again changes nothing"
    );
    let downloading = report(&state, DeviceDeploymentStatus::Downloading, &known).unwrap();
    assert_eq!(downloading.len(), 1);
    // Unfinished entries take any order; a finished one is final.
    let succeeded = device_after(
        &[
            joined.clone(),
            report(&state, DeviceDeploymentStatus::Success, &known).unwrap(),
        ]
        .concat(),
    );
    assert_eq!(
        report(&succeeded, DeviceDeploymentStatus::Success, &known),
        Ok(vec![]),
        "the same final status again changes nothing"
    );
    for status in [
        DeviceDeploymentStatus::Failure,
        DeviceDeploymentStatus::Downloading,
        DeviceDeploymentStatus::AlreadyInstalled,
    ] {
        assert_eq!(
            report(&succeeded, status, &known),
            Err(device::DeviceError::Finished("success")),
            "{status:?}"
        );
    }
    assert_eq!(
        device::decide_status(
            &state,
            "d1",
            DeploymentId::new(),
            DeviceDeploymentStatus::Success,
            None,
            &known
        ),
        Err(device::DeviceError::NotFound)
    );
    history.extend(decide_abort(id, &known).unwrap());
    let aborted = catalog(history);
    assert_eq!(
        report(&state, DeviceDeploymentStatus::Installing, &aborted),
        Err(device::DeviceError::Aborted)
    );
    let decommissioned =
        device_after(&[joined, device::decide_decommission(&state, "d1", &known)].concat());
    assert_eq!(
        report(&decommissioned, DeviceDeploymentStatus::Installing, &known),
        Err(device::DeviceError::Decommissioned)
    );
    assert!(device::decide_decommission(&decommissioned, "d1", &known).is_empty());
}

#[test]
fn a_device_whose_deployment_was_aborted_has_no_work_left() {
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    let id = deploy(&mut history, "a", "release-2", &["d1"], now());
    let joined = device::decide_next(
        &DeviceState::default(),
        &asked("d1", "release-1", "pi"),
        &catalog(history.clone()),
        None,
    )
    .events;
    history.extend(joined);
    assert!(catalog(history.clone()).may_have_work("d1"));
    history.extend(decide_abort(id, &catalog(history.clone())).unwrap());
    assert!(
        !catalog(history).may_have_work("d1"),
        "the poll is answered without I/O again"
    );
}

#[test]
fn decommissioning_ends_the_running_entry_and_counts_the_device_in_the_next_deployment() {
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    let first = deploy(&mut history, "first", "release-2", &["d1", "d2"], now());
    let second = deploy(
        &mut history,
        "second",
        "release-2",
        &["d1", "d2"],
        now() + chrono::Duration::minutes(1),
    );
    deploy(
        &mut history,
        "third",
        "release-2",
        &["d1"],
        now() + chrono::Duration::minutes(2),
    );
    let known = catalog(history.clone());
    let joined = device::decide_next(
        &DeviceState::default(),
        &asked("d1", "release-1", "pi"),
        &known,
        None,
    )
    .events;
    let running = device_after(&joined);
    let decided = device::decide_decommission(&running, "d1", &known);
    let [DomainEvent::DeviceDecommissioned(_), DomainEvent::DeviceJoinedDeployment(next)] =
        decided.as_slice()
    else {
        panic!("two steps: {decided:?}")
    };
    assert_eq!(
        (next.deployment_id, next.status),
        (second, DeviceDeploymentStatus::Decommissioned),
        "the oldest deployment newer than the running one, not the third"
    );

    // A device that never asked is counted in the oldest deployment targeting it.
    let decided = device::decide_decommission(&DeviceState::default(), "d2", &known);
    let [DomainEvent::DeviceJoinedDeployment(joined)] = decided.as_slice() else {
        panic!("one step: {decided:?}")
    };
    assert_eq!(joined.deployment_id, first);
    let mut counted = history.clone();
    counted.extend(decided.clone());
    assert!(
        catalog(counted).deployments[&first]
            .finished_devices
            .contains("d2"),
        "the decommissioned device counts as finished"
    );
}

fn accepted(device: &str, status: events::admission::AuthSetStatus) -> DomainEvent {
    DomainEvent::AuthSetAdded(events::admission::AuthSetAdded {
        device_id: device.into(),
        auth_set_id: uuid::Uuid::new_v4(),
        identity_data: Default::default(),
        pubkey: String::new(),
        status,
    })
}

#[test]
fn all_devices_and_groups_target_the_accepted_devices_of_the_moment() {
    use events::admission::AuthSetStatus::{Accepted, Pending};
    let mut known = catalog(vec![
        artifact("release-1", &["rpi4"], 10),
        accepted("a", Accepted),
        accepted("b", Accepted),
        accepted("p", Pending),
        crate::domain::inventory::assigned("a", "lab"),
        crate::domain::inventory::assigned("p", "lab"),
    ]);
    let everyone = NewDeployment {
        all_devices: Some(true),
        devices: None,
        ..request(&[])
    };
    let made =
        created(decide_creation(&everyone, DeploymentId::new(), now(), LIMIT, &known).unwrap());
    assert_eq!(made.devices, ["a", "b"]);
    assert!(made.groups.is_empty());

    let lab = NewDeployment {
        group: Some("lab".into()),
        devices: None,
        ..request(&[])
    };
    let made = created(decide_creation(&lab, DeploymentId::new(), now(), LIMIT, &known).unwrap());
    assert_eq!(
        (made.devices, made.groups),
        (vec!["a".to_owned()], vec!["lab".to_owned()])
    );

    // One device: its group is shown on the deployment.
    let single = created(
        decide_creation(&request(&["a"]), DeploymentId::new(), now(), LIMIT, &known).unwrap(),
    );
    assert_eq!(single.groups, ["lab"]);

    // No accepted member: 400 before the artifact is looked for.
    let nobody = NewDeployment {
        group: Some("empty".into()),
        artifact_name: Some("no-such-artifact".into()),
        devices: None,
        ..request(&[])
    };
    assert_eq!(
        decide_creation(&nobody, DeploymentId::new(), now(), LIMIT, &known),
        Err(DeploymentError::Invalid(
            "No devices for the deployment".into()
        ))
    );
    let both = NewDeployment {
        group: Some("lab".into()),
        ..request(&["a"])
    };
    assert!(matches!(
        decide_creation(&both, DeploymentId::new(), now(), LIMIT, &known),
        Err(DeploymentError::Invalid(message)) if message.contains("group constructor")
    ));
    // Accepted later: not in the deployment made before.
    known.apply(accepted("c", Accepted));
    let made =
        created(decide_creation(&everyone, DeploymentId::new(), now(), LIMIT, &known).unwrap());
    assert_eq!(made.devices, ["a", "b", "c"]);
}

/// Deploys release-2 to `devices` with `retries` and, optionally, a policy.
fn deploy_with(
    history: &mut Vec<DomainEvent>,
    devices: &[&str],
    retries: i64,
    policy: Option<NewPolicy>,
) -> DeploymentId {
    let id = DeploymentId::new();
    let request = NewDeployment {
        retries: Some(retries),
        policy,
        ..request(devices)
    };
    let mut request = request;
    request.artifact_name = Some("release-2".into());
    history.extend(decide_creation(&request, id, now(), LIMIT, &catalog(history.clone())).unwrap());
    id
}

fn failed(id: DeploymentId, device: &str) -> DomainEvent {
    DomainEvent::DeviceDeploymentStatusChanged(events::deployment::DeviceDeploymentStatusChanged {
        deployment_id: id,
        device_id: device.into(),
        status: DeviceDeploymentStatus::Failure,
        substate: None,
    })
}

#[test]
fn retries_are_checked_and_recorded() {
    let known = catalog(vec![artifact("release-1", &["pi"], 10)]);
    for bad in [-1, 11, 1000] {
        let refused = decide_creation(
            &NewDeployment {
                retries: Some(bad),
                ..request(&["d1"])
            },
            DeploymentId::new(),
            now(),
            LIMIT,
            &known,
        );
        assert!(
            matches!(&refused, Err(DeploymentError::Invalid(m)) if m.starts_with("retries:")),
            "{bad}: {refused:?}"
        );
    }
    for good in [0, 10] {
        let events = decide_creation(
            &NewDeployment {
                retries: Some(good),
                ..request(&["d1"])
            },
            DeploymentId::new(),
            now(),
            LIMIT,
            &known,
        )
        .unwrap();
        assert_eq!(created(events).retries, good as u32);
    }
}

#[test]
fn a_failed_device_gets_the_deployment_again_until_its_retries_are_spent() {
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    let id = deploy_with(&mut history, &["d1", "d2"], 2, None);
    let mut device = Vec::new();
    let mut attempts = Vec::new();
    for attempt in 1..=3u32 {
        let known = catalog([history.clone(), device.clone()].concat());
        // After a failed update the client reports an artifact name of its own making.
        let installed = if attempt == 1 {
            "release-1"
        } else {
            "release-2_INCONSISTENT"
        };
        let next = device::decide_next(
            &device_after(&device),
            &asked("d1", installed, "pi"),
            &known,
            None,
        );
        assert!(matches!(next.answer, Next::Serve { deployment, .. } if deployment == id));
        device.extend(next.events);
        let state = device_after(&device);
        attempts.push(state.entries[&id].attempts);
        let known = catalog([history.clone(), device.clone()].concat());
        assert!(!known.deployments[&id].finished());
        device.extend(
            device::decide_status(
                &state,
                "d1",
                id,
                DeviceDeploymentStatus::Failure,
                None,
                &known,
            )
            .unwrap(),
        );
    }
    assert_eq!(attempts, [1, 2, 3]);
    let known = catalog([history.clone(), device.clone()].concat());
    assert!(known.deployments[&id].finished_devices.contains("d1"));
    let spent = device::decide_next(
        &device_after(&device),
        &asked("d1", "release-2_INCONSISTENT", "pi"),
        &known,
        None,
    );
    assert_eq!(spent.answer, Next::Nothing, "no retry is left");
    assert!(spent.events.is_empty());
}

#[test]
fn a_paused_or_aborted_deployment_retries_nobody_and_a_retryable_failure_does_not_trip_the_policy()
{
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    let policy = NewPolicy {
        failure_threshold_percent: Some(50),
        min_finished_devices: Some(1),
        ..NewPolicy::default()
    };
    let id = deploy_with(&mut history, &["d1", "d2"], 1, Some(policy));
    let known = catalog(history.clone());
    let next = device::decide_next(
        &DeviceState::default(),
        &asked("d1", "release-1", "pi"),
        &known,
        None,
    );
    history.extend(next.events);
    let known = catalog(history.clone());
    assert_eq!(
        decide_policy(&known, id, "d1", DeviceDeploymentStatus::Failure),
        None,
        "the first failure has a retry left"
    );
    history.push(failed(id, "d1"));
    let device_events: Vec<DomainEvent> = history
        .iter()
        .filter(|e| {
            matches!(
                e,
                DomainEvent::DeviceJoinedDeployment(_)
                    | DomainEvent::DeviceDeploymentStatusChanged(_)
            )
        })
        .cloned()
        .collect();
    let state = device_after(&device_events);
    let mut paused = history.clone();
    paused.extend(decide_pause(id, "ops", true, &catalog(history.clone())).unwrap());
    let while_paused = device::decide_next(
        &state,
        &asked("d1", "release-1", "pi"),
        &catalog(paused),
        None,
    );
    assert_eq!(while_paused.answer, Next::Nothing);
    let mut aborted = history.clone();
    aborted.extend(decide_abort(id, &catalog(history.clone())).unwrap());
    let after_abort = device::decide_next(
        &state,
        &asked("d1", "release-1", "pi"),
        &catalog(aborted),
        None,
    );
    assert_eq!(after_abort.answer, Next::Nothing);
    // The retry fails too: now it is the device's final attempt, and it trips.
    let retry = device::decide_next(
        &state,
        &asked("d1", "release-1", "pi"),
        &catalog(history.clone()),
        None,
    );
    history.extend(retry.events);
    let known = catalog(history.clone());
    assert!(matches!(
        decide_policy(&known, id, "d1", DeviceDeploymentStatus::Failure),
        Some(DomainEvent::DeploymentPaused(_))
    ));
}

#[test]
fn an_entry_stuck_past_the_device_timeout_fails_once() {
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    let policy = NewPolicy {
        failure_threshold_percent: Some(100),
        device_timeout_seconds: Some(60),
        ..NewPolicy::default()
    };
    let refused = decide_creation(
        &NewDeployment {
            policy: Some(NewPolicy {
                device_timeout_seconds: Some(59),
                ..policy.clone()
            }),
            ..request(&["d1"])
        },
        DeploymentId::new(),
        now(),
        LIMIT,
        &catalog(history.clone()),
    );
    assert!(
        matches!(&refused, Err(DeploymentError::Invalid(m)) if m.starts_with("policy.device_timeout_seconds")),
        "{refused:?}"
    );
    let id = deploy_with(&mut history, &["d1"], 0, Some(policy));
    let next = device::decide_next(
        &DeviceState::default(),
        &asked("d1", "release-1", "pi"),
        &catalog(history.clone()),
        None,
    );
    let mut known = catalog(history.clone());
    let joined_at = now();
    for event in next.events.clone() {
        known.apply_at(event, Some(joined_at));
    }
    let info = &known.deployments[&id];
    assert_eq!(info.timed_out(joined_at + Duration::seconds(59)).count(), 0);
    let due: Vec<_> = info.timed_out(joined_at + Duration::seconds(60)).collect();
    assert_eq!(due, [("d1", DeviceDeploymentStatus::Pending, joined_at)]);
    let state = device_after(&next.events);
    let decided = device::decide_timeout(
        &state,
        "d1",
        id,
        (DeviceDeploymentStatus::Pending, joined_at, 60),
        &known,
    );
    assert!(
        matches!(&decided[..], [DomainEvent::DeviceDeploymentTimedOut(t)] if t.status == DeviceDeploymentStatus::Pending)
    );
    // Once recorded, the entry is failed: nothing is due, and deciding again decides nothing.
    let after = device_after(&[next.events.clone(), decided.clone()].concat());
    for event in decided {
        known.apply_at(event, Some(joined_at + Duration::seconds(61)));
    }
    assert_eq!(
        known.deployments[&id]
            .timed_out(joined_at + Duration::hours(1))
            .count(),
        0
    );
    assert!(device::decide_timeout(
        &after,
        "d1",
        id,
        (DeviceDeploymentStatus::Pending, joined_at, 60),
        &known
    )
    .is_empty());
    assert!(known.deployments[&id].finished());
}

#[test]
fn a_policy_the_counts_trip_is_due_until_it_has_tripped() {
    let mut history = vec![artifact("release-2", &["pi"], 300)];
    let policy = NewPolicy {
        failure_threshold_percent: Some(50),
        min_finished_devices: Some(2),
        ..NewPolicy::default()
    };
    let id = deploy_with(&mut history, &["d1", "d2", "d3"], 0, Some(policy));
    for device in ["d1", "d2"] {
        let joined = device::decide_next(
            &DeviceState::default(),
            &asked(device, "release-1", "pi"),
            &catalog(history.clone()),
            None,
        );
        history.extend(joined.events);
    }
    history.push(failed(id, "d1"));
    assert_eq!(
        decide_policy_due(&catalog(history.clone()), id),
        None,
        "one finished"
    );
    // Two failures recorded without a trip, as racing reports can leave them.
    history.push(failed(id, "d2"));
    let known = catalog(history.clone());
    assert!(known.deployments[&id].policy_due());
    let trip = decide_policy_due(&known, id);
    assert!(
        matches!(&trip, Some(DomainEvent::DeploymentPaused(p)) if matches!(&p.cause, PauseCause::Policy(t) if t.failed == 2)),
        "{trip:?}"
    );
    history.extend(trip);
    let known = catalog(history);
    assert!(!known.deployments[&id].policy_due());
    assert_eq!(decide_policy_due(&known, id), None, "it trips once");
}
