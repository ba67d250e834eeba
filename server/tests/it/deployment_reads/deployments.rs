//! `GET /deployments/{id}` and `/statistics`: Mender's fields and the status derivation.

use event_log::conformance::artifact_uploaded as uploaded;
use uuid::Uuid;

use super::*;

pub async fn deployment_shows_menders_fields(fixture: Fixture) {
    let (first, later, other) = (ArtifactId::new(), ArtifactId::new(), ArtifactId::new());
    fixture
        .record(
            &format!("artifact-{first}"),
            vec![uploaded(first, "release-1", 1000)],
        )
        .await;
    fixture
        .record(
            &format!("artifact-{other}"),
            vec![uploaded(other, "release-0", 7)],
        )
        .await;
    let id = DeploymentId::new();
    let mut event = created(id, "spring", "release-1", &["d1", "d2"]);
    if let DomainEvent::DeploymentCreated(created) = &mut event {
        created.force_installation = true;
    }
    fixture.record(&deployment_stream(id), vec![event]).await;
    // An artifact of the same name uploaded while the deployment runs joins its list.
    fixture
        .record(
            &format!("artifact-{later}"),
            vec![uploaded(later, "release-1", 500)],
        )
        .await;
    let mut join = joined(id, "d1", Pending);
    if let DomainEvent::DeviceJoinedDeployment(joined) = &mut join {
        joined.artifact_id = Some(first);
    }
    on_device(&fixture, "d1", vec![join]).await;

    let answer = fixture.get(&format!("{DEPLOYMENTS}/{id}")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let deployment = answer.json.as_object().unwrap();
    let mut keys: Vec<&str> = deployment.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "artifact_name",
            "artifacts",
            "created",
            "device_count",
            "force_installation",
            "id",
            "max_devices",
            "name",
            // Ours, beside Mender's fields: whether the deployment is paused.
            "paused",
            "retries",
            "statistics",
            "status",
            "type"
        ]
    );
    assert_eq!(deployment["id"], id.to_string());
    assert_eq!(deployment["name"], "spring");
    assert_eq!(deployment["artifact_name"], "release-1");
    assert_eq!(deployment["status"], "pending");
    assert_eq!(deployment["device_count"], 1);
    assert_eq!(deployment["max_devices"], 2);
    assert_eq!(deployment["type"], "software");
    assert_eq!(deployment["force_installation"], true);
    let mut artifacts: Vec<String> =
        serde_json::from_value(deployment["artifacts"].clone()).unwrap();
    artifacts.sort();
    let mut expected = vec![first.to_string(), later.to_string()];
    expected.sort();
    assert_eq!(artifacts, expected);
    assert!(deployment["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(deployment["statistics"]["total_size"], 1000);
    assert_eq!(deployment["statistics"]["status"]["pending"], 1);
    assert_eq!(
        deployment["statistics"]["status"]
            .as_object()
            .unwrap()
            .len(),
        13
    );

    // The device's entry carries the artifact it was given, as the artifact list shows it.
    let devices = fixture.get(&format!("{DEPLOYMENTS}/{id}/devices")).await;
    assert_eq!(devices.json[0]["image"]["id"], first.to_string());
    assert_eq!(devices.json[0]["image"]["name"], "release-1");

    fixture
        .refused(
            &format!("{DEPLOYMENTS}/not-a-uuid"),
            "ID is not a valid UUID",
        )
        .await;
    let unknown = fixture
        .get(&format!("{DEPLOYMENTS}/{}", Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json["error"], "Resource not found");
}

pub async fn status_goes_pending_then_inprogress_then_finished(fixture: Fixture) {
    let id = deployment(&fixture, "rollout", &["d1", "d2"]).await;
    assert_eq!(status_of(&fixture, id).await, "pending");
    on_device(&fixture, "d1", vec![joined(id, "d1", Pending)]).await;
    assert_eq!(status_of(&fixture, id).await, "pending");
    on_device(&fixture, "d1", vec![changed(id, "d1", Downloading)]).await;
    assert_eq!(status_of(&fixture, id).await, "inprogress");
    on_device(&fixture, "d1", vec![changed(id, "d1", Success)]).await;
    let half = fixture.get(&format!("{DEPLOYMENTS}/{id}")).await;
    assert_eq!(half.json["status"], "inprogress");
    assert!(half.json.get("finished").is_none());
    on_device(&fixture, "d2", vec![joined(id, "d2", NoArtifact)]).await;
    let done = fixture.get(&format!("{DEPLOYMENTS}/{id}")).await;
    assert_eq!(done.json["status"], "finished");
    let finished = done.json["finished"].as_str().unwrap().to_owned();
    // Finished stays finished, and keeps the time it finished.
    on_device(&fixture, "d1", vec![changed(id, "d1", Failure)]).await;
    let later = fixture.get(&format!("{DEPLOYMENTS}/{id}")).await;
    assert_eq!(later.json["status"], "finished");
    assert_eq!(later.json["finished"], finished);
    assert_eq!(
        statistics(&fixture, id).await,
        counts(&[(Failure, 1), (NoArtifact, 1)])
    );
}

pub async fn aborting_finishes_the_deployment_and_entries_stay_aborted(fixture: Fixture) {
    let id = deployment(&fixture, "rollout", &["d1", "d2", "d3"]).await;
    on_device(
        &fixture,
        "d1",
        vec![joined(id, "d1", Pending), changed(id, "d1", Success)],
    )
    .await;
    on_device(
        &fixture,
        "d2",
        vec![joined(id, "d2", Pending), changed(id, "d2", Installing)],
    )
    .await;
    fixture
        .record(&deployment_stream(id), vec![aborted(id)])
        .await;
    let answer = fixture.get(&format!("{DEPLOYMENTS}/{id}")).await;
    assert_eq!(answer.json["status"], "finished");
    assert!(answer.json["finished"].is_string());
    // Reports and joins that raced with the abort land after it: they change nothing.
    on_device(&fixture, "d2", vec![changed(id, "d2", Rebooting)]).await;
    on_device(&fixture, "d3", vec![joined(id, "d3", Pending)]).await;
    on_device(&fixture, "d3", vec![changed(id, "d3", Downloading)]).await;
    assert_eq!(
        statistics(&fixture, id).await,
        counts(&[(Success, 1), (Aborted, 2)])
    );
    let devices = fixture.get(&format!("{DEPLOYMENTS}/{id}/devices")).await;
    let statuses: BTreeMap<String, String> = devices
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|device| {
            (
                device["id"].as_str().unwrap().to_owned(),
                device["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses["d1"], "success");
    assert_eq!(statuses["d2"], "aborted");
    assert_eq!(statuses["d3"], "aborted");
    assert_eq!(status_of(&fixture, id).await, "finished");
}

pub async fn statistics_are_zero_filled_after_an_abort(fixture: Fixture) {
    let untouched = deployment(&fixture, "nobody came", &["d1"]).await;
    let started = deployment(&fixture, "somebody came", &["d2", "d3"]).await;
    on_device(&fixture, "d2", vec![joined(started, "d2", Pending)]).await;
    on_device(
        &fixture,
        "d3",
        vec![
            joined(started, "d3", Pending),
            changed(started, "d3", Downloading),
        ],
    )
    .await;
    fixture
        .record(&deployment_stream(untouched), vec![aborted(untouched)])
        .await;
    fixture
        .record(&deployment_stream(started), vec![aborted(started)])
        .await;
    assert_eq!(statistics(&fixture, untouched).await, counts(&[]));
    assert_eq!(status_of(&fixture, untouched).await, "finished");
    assert_eq!(statistics(&fixture, started).await, counts(&[(Aborted, 2)]));
    let unknown = fixture
        .get(&format!("{DEPLOYMENTS}/{}/statistics", Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status, 404);
}

pub async fn decommissioned_devices_count_as_finished(fixture: Fixture) {
    let first = deployment(&fixture, "first", &["gone", "kept"]).await;
    let second = deployment(&fixture, "second", &["gone"]).await;
    on_device(
        &fixture,
        "gone",
        vec![
            joined(first, "gone", Pending),
            changed(first, "gone", Downloading),
            joined(second, "gone", Pending),
        ],
    )
    .await;
    on_device(
        &fixture,
        "kept",
        vec![
            joined(first, "kept", Pending),
            changed(first, "kept", Success),
        ],
    )
    .await;
    assert_eq!(status_of(&fixture, first).await, "inprogress");
    on_device(&fixture, "gone", vec![decommissioned("gone")]).await;
    assert_eq!(
        statistics(&fixture, first).await,
        counts(&[(Success, 1), (Decommissioned, 1)])
    );
    assert_eq!(
        statistics(&fixture, second).await,
        counts(&[(Decommissioned, 1)])
    );
    assert_eq!(status_of(&fixture, first).await, "finished");
    assert_eq!(status_of(&fixture, second).await, "finished");
}

pub async fn phases_count_the_devices_admitted_to_them(fixture: Fixture) {
    let id = DeploymentId::new();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let start = Utc::now();
    let mut event = created(id, "phased", "release-1", &["d1", "d2", "d3"]);
    if let DomainEvent::DeploymentCreated(created) = &mut event {
        created.phases = vec![
            Phase {
                id: first,
                batch_size: Some(34),
                start_ts: start,
                max_devices: 1,
            },
            Phase {
                id: second,
                batch_size: None,
                start_ts: start + chrono::Duration::days(1),
                max_devices: 2,
            },
        ];
    }
    let admitted = DomainEvent::DeviceAdmittedToPhase(DeviceAdmittedToPhase {
        deployment_id: id,
        device_id: "d1".into(),
        phase: 0,
    });
    fixture
        .record(&deployment_stream(id), vec![event, admitted])
        .await;
    let answer = fixture.get(&format!("{DEPLOYMENTS}/{id}")).await;
    let phases = answer.json["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2, "{}", answer.text);
    assert_eq!(phases[0]["id"], first.to_string());
    assert_eq!(phases[0]["batch_size"], 34);
    assert_eq!(phases[0]["device_count"], 1);
    assert!(phases[0]["start_ts"].as_str().unwrap().ends_with('Z'));
    assert_eq!(phases[1]["id"], second.to_string());
    assert!(phases[1].get("batch_size").is_none());
    assert_eq!(phases[1]["device_count"], 0);
    // An unphased deployment shows no phases at all.
    let plain = deployment(&fixture, "plain", &["d9"]).await;
    let plain = fixture.get(&format!("{DEPLOYMENTS}/{plain}")).await;
    assert!(plain.json.get("phases").is_none());
}
