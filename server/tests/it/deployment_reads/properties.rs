//! Properties over random event sequences: statistics count the entries, the deployment's
//! status follows the rules, and replaying the log from the start rebuilds the same models.

use std::collections::BTreeMap;
use std::sync::Arc;

use events::deployment::DeviceDeploymentStatus;
use proptest::prelude::*;

use super::*;

/// What the rules say the read side must show for one deployment.
#[derive(Default)]
struct Expected {
    devices: BTreeMap<String, DeviceDeploymentStatus>,
    aborted: bool,
    finished: bool,
}

impl Expected {
    fn counts(&self) -> BTreeMap<String, i64> {
        let mut counts = counts(&[]);
        for status in self.devices.values() {
            *counts.get_mut(status.as_str()).unwrap() += 1;
        }
        counts
    }

    /// Applies a status the way the projection must: sticky once aborted, unless final.
    fn set(&mut self, device: &str, status: DeviceDeploymentStatus) {
        let status = if self.aborted && !status.is_final() {
            Aborted
        } else {
            status
        };
        self.devices.insert(device.to_owned(), status);
    }

    fn status(&mut self, targeted: usize) -> &'static str {
        let final_devices = self.devices.values().filter(|s| s.is_final()).count();
        self.finished |= self.aborted || final_devices >= targeted;
        if self.finished {
            "finished"
        } else if self
            .devices
            .values()
            .any(|status| !matches!(status, Pending | Decommissioned))
        {
            "inprogress"
        } else {
            "pending"
        }
    }
}

/// Devices per sequence; each sequence has its own, since a decommission reaches every
/// deployment of the tenant.
const DEVICES: usize = 5;
const JOIN_AS: [DeviceDeploymentStatus; 4] = [Pending, Pending, NoArtifact, AlreadyInstalled];
const REPORTS: [DeviceDeploymentStatus; 9] = [
    Downloading,
    Installing,
    Rebooting,
    PauseBeforeInstalling,
    PauseBeforeCommitting,
    PauseBeforeRebooting,
    Success,
    Failure,
    AlreadyInstalled,
];

/// One step of a random sequence, by index into the sequence's deployments and devices.
#[derive(Debug, Clone)]
enum Step {
    Abort {
        deployment: usize,
    },
    Decommission {
        device: usize,
    },
    /// A join when the device has no entry yet, else a report.
    Device {
        deployment: usize,
        device: usize,
        status: usize,
    },
}

/// Sequences of up to 80 steps; aborts and decommissions are rare, as in a real rollout.
fn sequences() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        1 => (0..3usize).prop_map(|deployment| Step::Abort { deployment }),
        1 => (0..DEVICES).prop_map(|device| Step::Decommission { device }),
        18 => (0..3usize, 0..DEVICES, 0..REPORTS.len()).prop_map(
            |(deployment, device, status)| Step::Device {
                deployment,
                device,
                status,
            }
        ),
    ];
    proptest::collection::vec(step, 0..80)
}

/// Appends a sequence over three new deployments sharing five new devices (named after
/// `case`); returns what each deployment must show.
async fn append_sequence(
    fixture: &Fixture,
    case: usize,
    steps: &[Step],
) -> Vec<(DeploymentId, Expected)> {
    let names: Vec<String> = (0..DEVICES).map(|n| format!("case{case}-dev{n}")).collect();
    let devices: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut deployments: Vec<(DeploymentId, Expected)> = Vec::new();
    for n in 0..3 {
        let id = DeploymentId::new();
        fixture
            .append(
                "acme",
                &deployment_stream(id),
                vec![created(
                    id,
                    &format!("case {case} #{n}"),
                    "release-1",
                    &devices,
                )],
            )
            .await;
        deployments.push((id, Expected::default()));
    }
    for step in steps {
        let (stream, event) = match *step {
            Step::Abort { deployment } => {
                let (id, expected) = &mut deployments[deployment];
                if expected.aborted {
                    continue;
                }
                for status in expected.devices.values_mut() {
                    if !status.is_final() {
                        *status = Aborted;
                    }
                }
                expected.aborted = true;
                (deployment_stream(*id), aborted(*id))
            }
            Step::Decommission { device } => {
                let device = devices[device];
                for (_, expected) in deployments.iter_mut() {
                    if let Some(status) = expected.devices.get_mut(device) {
                        if !status.is_final() {
                            *status = Decommissioned;
                        }
                    }
                }
                (device_stream(device), decommissioned(device))
            }
            Step::Device {
                deployment,
                device,
                status,
            } => {
                let device = devices[device];
                let (id, expected) = &mut deployments[deployment];
                let id = *id;
                match expected.devices.get(device).copied() {
                    Some(current) if current.is_final() => continue,
                    Some(_) => {
                        let status = REPORTS[status];
                        expected.set(device, status);
                        (device_stream(device), changed(id, device, status))
                    }
                    None => {
                        let status = JOIN_AS[status % JOIN_AS.len()];
                        expected.set(device, status);
                        (device_stream(device), joined(id, device, status))
                    }
                }
            }
        };
        fixture.append("acme", &stream, vec![event]).await;
        for (_, expected) in deployments.iter_mut() {
            expected.status(DEVICES);
        }
    }
    deployments
}

/// What the read side shows for each deployment equals what the rules say.
async fn check_shown(fixture: &Fixture, deployments: &mut [(DeploymentId, Expected)]) {
    for (id, expected) in deployments {
        let shown = statistics(fixture, *id).await;
        assert_eq!(shown, expected.counts(), "statistics of {id}");
        let devices = fixture.get(&format!("{DEPLOYMENTS}/{id}/devices")).await;
        let mut listed = counts(&[]);
        for device in devices.json.as_array().unwrap() {
            *listed.get_mut(device["status"].as_str().unwrap()).unwrap() += 1;
        }
        assert_eq!(shown, listed, "statistics of {id} against its entries");
        assert_eq!(
            status_of(fixture, *id).await,
            expected.status(DEVICES),
            "status of {id}"
        );
    }
}

pub async fn random_device_events_give_matching_statistics_and_a_rebuild_equals_the_live_models(
    fixture: Fixture,
) {
    // proptest makes the sequences, and on a failure shrinks it to the shortest one that
    // still fails; its generator is seeded, so a run is repeatable.
    let mut runner = crate::support::seeded_runner(12);
    let runtime = tokio::runtime::Handle::current();
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let (aborts, decommissions) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&sequences(), |steps| {
            let case = cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let count = |kind: fn(&Step) -> bool| steps.iter().filter(|step| kind(step)).count();
            aborts.set(aborts.get() + count(|step| matches!(step, Step::Abort { .. })));
            decommissions
                .set(decommissions.get() + count(|step| matches!(step, Step::Decommission { .. })));
            runtime.block_on(async {
                let mut deployments = append_sequence(&fixture, case, &steps).await;
                fixture.settle().await;
                check_shown(&fixture, &mut deployments).await;
            });
            Ok(())
        })
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
    assert!(
        aborts.get() > 0 && decommissions.get() > 0,
        "the sequences abort and decommission"
    );

    // Replaying the log from position 0 into empty read models gives the same rows.
    let head = fixture.log.head().await.unwrap();
    let rebuilt = match &fixture.server.postgres_url {
        Some(_) => event_log::conformance::fresh_postgres_url().await,
        None => {
            let dir = tempfile::tempdir().unwrap().keep();
            format!("sqlite://{}", dir.join("rebuilt.db").display())
        }
    };
    let rebuilt = ReadModels::connect(&rebuilt, 2).await.unwrap();
    let projections: [Arc<dyn Projection>; 2] = [
        Arc::new(DeploymentsProjection),
        Arc::new(ArtifactsProjection),
    ];
    for projection in projections {
        let projector = Projector::new(
            fixture.log.clone(),
            rebuilt.clone(),
            projection,
            ProjectorSettings::default(),
        );
        let mut applied = projector.applied();
        let task = tokio::spawn(projector.run());
        tokio::time::timeout(Duration::from_secs(60), applied.wait_for(|at| *at >= head))
            .await
            .expect("the rebuild catches up")
            .unwrap();
        task.abort();
    }
    let live = fixture.read_models.dump().await.unwrap();
    assert!(live
        .iter()
        .any(|row| row.starts_with("deployment_statistics ")));
    assert_eq!(rebuilt.dump().await.unwrap(), live);
}
