//! The management reads of deployments, over real HTTP on embedded SQLite and on PostgreSQL:
//! events are appended straight to the server's log, as the command service records them,
//! and each test waits until the projections have applied them before it reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_log::{AppendRequest, EventLog, ExpectedVersion};
use events::deployment::{
    DeploymentAborted, DeploymentCreated, DeviceAdmittedToPhase, DeviceDecommissioned,
    DeviceDeploymentLogSaved, DeviceDeploymentStatus, DeviceDeploymentStatusChanged,
    DeviceJoinedDeployment, LogMessage, Phase,
};
use events::{
    ArtifactId, DeploymentId, DomainEvent, EventMetadata, NewEvent, StreamName, TenantId,
};
use http_edge::auth::TokenKind;
use query_service::projections::{ArtifactsProjection, DeploymentsProjection};
use query_service::projector::{Projection, Projector, ProjectorSettings};
use query_service::read_models::ReadModels;
use reqwest::header::HeaderMap;
use serde_json::Value;
use uuid::Uuid;
use DeviceDeploymentStatus::*;

use crate::support::TestServer;

const DEPLOYMENTS: &str = "/api/management/v1/deployments/deployments";

/// A server, its log and read models opened beside it, and a user of tenant `acme`.
struct Fixture {
    server: TestServer,
    log: Arc<dyn EventLog>,
    read_models: ReadModels,
    user: String,
}

/// An answer: status, headers, and the body as JSON (`Null` when it is not JSON) and as text.
struct Answer {
    status: u16,
    headers: HeaderMap,
    json: Value,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }

    /// The ids of a list of deployments or entries.
    fn ids(&self) -> Vec<String> {
        self.json
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {}", self.text))
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Fixture {
    async fn new(server: TestServer) -> Self {
        let log = server.log().await;
        let read_models = ReadModels::connect(&server.settings.read_models_url(), 2)
            .await
            .unwrap();
        let user = server.token("alice", "acme", TokenKind::User);
        Self {
            server,
            log,
            read_models,
            user,
        }
    }

    /// Appends events to one stream of `tenant` and waits until every projection shows them.
    async fn record_for(&self, tenant: &str, stream: &str, events: Vec<DomainEvent>) {
        self.append(tenant, stream, events).await;
        self.settle().await;
    }

    /// Appends events to one stream of `tenant`, without waiting for the projections.
    async fn append(&self, tenant: &str, stream: &str, events: Vec<DomainEvent>) {
        self.log
            .append(AppendRequest {
                tenant: TenantId::new(tenant),
                stream: StreamName::new(stream),
                expected: ExpectedVersion::Any,
                events: events
                    .iter()
                    .map(|event| NewEvent::new(Uuid::new_v4(), event, EventMetadata::now()))
                    .collect(),
            })
            .await
            .unwrap();
    }

    /// Waits until every projection has applied the whole log.
    async fn settle(&self) {
        let head = self.log.head().await.unwrap();
        for projection in ["deployments", "artifacts"] {
            let mut waited = 0;
            while self.read_models.checkpoint(projection).await.unwrap() < head {
                waited += 1;
                assert!(waited < 400, "{projection} never reached {head}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }

    async fn record(&self, stream: &str, events: Vec<DomainEvent>) {
        self.record_for("acme", stream, events).await
    }

    async fn get_as(&self, path: &str, token: &str) -> Answer {
        let response = self
            .server
            .client
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            json,
            text,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.get_as(path, &self.user).await
    }

    /// Asserts a 400 with Mender's error body.
    async fn refused(&self, path: &str, message: &str) {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text);
        assert_eq!(answer.json["error"], message, "{path}");
        assert!(answer.json["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()));
    }
}

fn deployment_stream(id: DeploymentId) -> String {
    format!("deployment-{id}")
}

fn device_stream(device: &str) -> String {
    format!("device-{device}")
}

fn created(id: DeploymentId, name: &str, artifact: &str, devices: &[&str]) -> DomainEvent {
    created_at(id, name, artifact, devices, Utc::now())
}

fn created_at(
    id: DeploymentId,
    name: &str,
    artifact: &str,
    devices: &[&str],
    at: DateTime<Utc>,
) -> DomainEvent {
    DomainEvent::DeploymentCreated(DeploymentCreated {
        deployment_id: id,
        name: name.into(),
        artifact_name: artifact.into(),
        devices: devices.iter().map(|device| device.to_string()).collect(),
        phases: vec![],
        force_installation: false,
        created: at,
        groups: Vec::new(),
        dynamic: None,
        policy: None,
        retries: 0,
    })
}

fn joined(id: DeploymentId, device: &str, status: DeviceDeploymentStatus) -> DomainEvent {
    DomainEvent::DeviceJoinedDeployment(DeviceJoinedDeployment {
        deployment_id: id,
        device_id: device.into(),
        artifact_id: Some(ArtifactId::new()),
        status,
        device_type: "raspberrypi4".into(),
        installed_artifact_name: "old".into(),
        phase: None,
        matched_filter: None,
    })
}

fn changed(id: DeploymentId, device: &str, status: DeviceDeploymentStatus) -> DomainEvent {
    DomainEvent::DeviceDeploymentStatusChanged(DeviceDeploymentStatusChanged {
        deployment_id: id,
        device_id: device.into(),
        status,
        substate: None,
    })
}

fn aborted(id: DeploymentId) -> DomainEvent {
    DomainEvent::DeploymentAborted(DeploymentAborted {
        deployment_id: id,
        policy: None,
    })
}

fn decommissioned(device: &str) -> DomainEvent {
    DomainEvent::DeviceDecommissioned(DeviceDecommissioned {
        device_id: device.into(),
    })
}

/// Creates a deployment of `devices` named `name`; returns its id.
async fn deployment(fixture: &Fixture, name: &str, devices: &[&str]) -> DeploymentId {
    let id = DeploymentId::new();
    fixture
        .record(
            &deployment_stream(id),
            vec![created(id, name, "release-1", devices)],
        )
        .await;
    id
}

/// Records a device event on the device's own stream, where the command service writes it.
async fn on_device(fixture: &Fixture, device: &str, events: Vec<DomainEvent>) {
    fixture.record(&device_stream(device), events).await
}

async fn status_of(fixture: &Fixture, id: DeploymentId) -> String {
    let answer = fixture.get(&format!("{DEPLOYMENTS}/{id}")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["status"].as_str().unwrap().to_owned()
}

async fn statistics(fixture: &Fixture, id: DeploymentId) -> BTreeMap<String, i64> {
    let answer = fixture.get(&format!("{DEPLOYMENTS}/{id}/statistics")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    serde_json::from_value(answer.json).unwrap()
}

/// A zero-filled statistics object with the given counts.
fn counts(nonzero: &[(DeviceDeploymentStatus, i64)]) -> BTreeMap<String, i64> {
    let mut counts: BTreeMap<String, i64> = DeviceDeploymentStatus::ALL
        .iter()
        .map(|status| (status.to_string(), 0))
        .collect();
    for (status, devices) in nonzero {
        counts.insert(status.to_string(), *devices);
    }
    counts
}

#[path = "deployment_reads/deployments.rs"]
mod deployments;
#[path = "deployment_reads/devices.rs"]
mod devices;
#[path = "deployment_reads/lists.rs"]
mod lists;
#[path = "deployment_reads/properties.rs"]
mod properties;

use deployments::*;
use devices::*;
use lists::*;
use properties::*;

on_both_backends!(
    @with (super::Fixture::new);
    list_filters_by_deployment_status,
    list_searches_names_and_artifact_names_ignoring_case,
    list_filters_by_creation_time_inclusively,
    list_sorts_newest_first_unless_asked_oldest_first,
    list_refuses_bad_paging_and_filters_with_400,
    list_pages_carry_links_and_the_total,
    deployment_shows_menders_fields,
    status_goes_pending_then_inprogress_then_finished,
    aborting_finishes_the_deployment_and_entries_stay_aborted,
    statistics_are_zero_filled_after_an_abort,
    decommissioned_devices_count_as_finished,
    phases_count_the_devices_admitted_to_them,
    device_lists_filter_by_status_and_status_groups,
    device_list_names_the_targeted_devices,
    device_log_reads_as_text_and_is_404_without_one,
    device_history_is_newest_first_and_paged,
    another_tenant_sees_nothing,
    random_device_events_give_matching_statistics_and_a_rebuild_equals_the_live_models,
);
