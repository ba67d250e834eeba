//! Properties over random event sequences: statistics count the entries, the deployment's
//! status follows the rules, and replaying the log from the start rebuilds the same models.

use std::collections::BTreeMap;
use std::sync::Arc;

use events::deployment::DeviceDeploymentStatus;
use uuid::Uuid;

use super::*;

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % sides as u64) as usize
    }

    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.roll(choices.len())]
    }
}

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

/// Appends a random sequence over three deployments sharing five devices; returns what each
/// deployment must show.
async fn random_sequence(fixture: &Fixture, seed: u64) -> Vec<(Uuid, Expected)> {
    let mut dice = Dice(seed);
    let names: Vec<String> = (0..DEVICES).map(|n| format!("seed{seed}-dev{n}")).collect();
    let devices: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut deployments: Vec<(Uuid, Expected)> = Vec::new();
    for n in 0..3 {
        let id = Uuid::new_v4();
        fixture
            .append(
                "acme",
                &deployment_stream(id),
                vec![created(
                    id,
                    &format!("seed {seed} #{n}"),
                    "release-1",
                    &devices,
                )],
            )
            .await;
        deployments.push((id, Expected::default()));
    }
    for _ in 0..80 {
        let which = dice.roll(deployments.len());
        let device = dice.pick(&devices);
        let id = deployments[which].0;
        let current = deployments[which].1.devices.get(device).copied();
        let roll = dice.roll(20);
        let (stream, event) = if roll == 0 && !deployments[which].1.aborted {
            let expected = &mut deployments[which].1;
            for status in expected.devices.values_mut() {
                if !status.is_final() {
                    *status = Aborted;
                }
            }
            expected.aborted = true;
            (deployment_stream(id), aborted(id))
        } else if roll == 1 {
            for (_, expected) in deployments.iter_mut() {
                if let Some(status) = expected.devices.get_mut(device) {
                    if !status.is_final() {
                        *status = Decommissioned;
                    }
                }
            }
            (device_stream(device), decommissioned(device))
        } else if let Some(current) = current {
            if current.is_final() {
                continue;
            }
            let status = dice.pick(&REPORTS);
            deployments[which].1.set(device, status);
            (device_stream(device), changed(id, device, status))
        } else {
            let status = dice.pick(&JOIN_AS);
            deployments[which].1.set(device, status);
            (device_stream(device), joined(id, device, status))
        };
        fixture.append("acme", &stream, vec![event]).await;
        for (_, expected) in deployments.iter_mut() {
            expected.status(DEVICES);
        }
    }
    deployments
}

pub async fn random_device_events_give_matching_statistics_and_a_rebuild_equals_the_live_models(
    fixture: Fixture,
) {
    let mut all = Vec::new();
    for seed in 1..=8 {
        all.extend(random_sequence(&fixture, seed).await);
    }
    fixture.settle().await;
    // The seeds are chosen so that the sequences abort and decommission, not only report.
    assert!(all.iter().any(|(_, expected)| expected.aborted));
    assert!(all.iter().any(|(_, expected)| expected
        .devices
        .values()
        .any(|status| *status == Decommissioned)));
    for (id, expected) in &mut all {
        let shown = statistics(&fixture, *id).await;
        assert_eq!(shown, expected.counts(), "statistics of {id}");
        let devices = fixture.get(&format!("{DEPLOYMENTS}/{id}/devices")).await;
        let mut listed = counts(&[]);
        for device in devices.json.as_array().unwrap() {
            *listed.get_mut(device["status"].as_str().unwrap()).unwrap() += 1;
        }
        assert_eq!(shown, listed, "statistics of {id} against its entries");
        assert_eq!(
            status_of(&fixture, *id).await,
            expected.status(DEVICES),
            "status of {id}"
        );
    }

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
