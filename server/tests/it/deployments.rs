//! Deployments and the device API through real HTTP, one test per rule of Mender's behaviour,
//! on embedded SQLite and on PostgreSQL with S3.

use std::collections::HashSet;

use crate::support::{rootfs_artifact, TestServer};
use http_edge::auth::TokenKind;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

const MANAGEMENT: &str = "/api/management/v1/deployments";
const DEVICE: &str = "/api/devices/v1/deployments/device/deployments";

struct Fleet {
    server: TestServer,
    _files: tempfile::TempDir,
}

impl Fleet {
    /// A server with `release-2` uploaded for device types `pi` and `bbb`.
    async fn new(server: TestServer) -> Self {
        let files = tempfile::tempdir().unwrap();
        let fleet = Self {
            server,
            _files: files,
        };
        fleet.upload("release-2", &["pi", "bbb"]).await;
        fleet
    }

    async fn upload(&self, name: &str, device_types: &[&str]) -> String {
        let dir = self
            ._files
            .path()
            .join(format!("{name}-{}", device_types.join("-")));
        std::fs::create_dir_all(&dir).unwrap();
        let file = rootfs_artifact(&dir, name, device_types, 6000);
        let form = Form::new().part(
            "artifact",
            Part::bytes(std::fs::read(file).unwrap()).file_name("a.mender"),
        );
        let response = self
            .server
            .client
            .post(self.server.url(&format!("{MANAGEMENT}/artifacts")))
            .bearer_auth(self.server.admin())
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.headers()["location"]
            .to_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    }

    async fn create(&self, body: Value) -> (u16, Value, Option<String>) {
        let response = self
            .server
            .client
            .post(self.server.url(&format!("{MANAGEMENT}/deployments")))
            .bearer_auth(self.server.admin())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let id = response.headers().get("location").map(|location| {
            location
                .to_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        });
        (status, response.json().await.unwrap_or(Value::Null), id)
    }

    async fn deploy(&self, name: &str, artifact_name: &str, devices: &[&str]) -> String {
        let (status, body, id) = self
            .create(json!({"name": name, "artifact_name": artifact_name, "devices": devices}))
            .await;
        assert_eq!(status, 201, "{body}");
        id.unwrap()
    }

    fn device_token(&self, device: &str) -> String {
        self.server.token(device, "", TokenKind::Device)
    }

    /// `POST /next` as a device running `artifact_name` on `device_type`.
    async fn next(&self, device: &str, artifact_name: &str, device_type: &str) -> (u16, Value) {
        let response = self
            .server
            .client
            .post(self.server.url(&format!("{DEVICE}/next")))
            .bearer_auth(self.device_token(device))
            .json(&json!({"artifact_name": artifact_name, "device_type": device_type}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn report(&self, device: &str, deployment: &str, status: &str) -> (u16, Value) {
        let response = self
            .server
            .client
            .put(self.server.url(&format!("{DEVICE}/{deployment}/status")))
            .bearer_auth(self.device_token(device))
            .json(&json!({"status": status}))
            .send()
            .await
            .unwrap();
        let code = response.status().as_u16();
        (code, response.json().await.unwrap_or(Value::Null))
    }

    async fn deployment(&self, id: &str) -> Value {
        let (status, body) = self
            .server
            .get(
                &format!("{MANAGEMENT}/deployments/{id}"),
                Some(&self.server.admin()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn statistics(&self, id: &str) -> Value {
        let (status, body) = self
            .server
            .get(
                &format!("{MANAGEMENT}/deployments/{id}/statistics"),
                Some(&self.server.admin()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `POST /v2/.../{id}/<action>` (`pause`, `resume`, `phases/next`): the status and the
    /// error, if any.
    async fn pause_or_resume(&self, id: &str, action: &str) -> (u16, Value) {
        self.post(&format!("{V2}/{id}/{action}"), None).await
    }

    /// `POST path` as the administrator, with `body` as JSON if given: the status and the
    /// answer.
    async fn post(&self, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self
            .server
            .client
            .post(self.server.url(path))
            .bearer_auth(self.server.admin());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn abort(&self, id: &str, body: Value) -> u16 {
        self.server
            .client
            .put(
                self.server
                    .url(&format!("{MANAGEMENT}/deployments/{id}/status")),
            )
            .bearer_auth(self.server.admin())
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

async fn a_created_deployment_is_readable_at_its_location(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("spring", "release-2", &["d1", "d2"]).await;
    // Read-your-writes: no waiting between the 201 and the read.
    let deployment = fleet.deployment(&id).await;
    assert_eq!(deployment["name"], "spring");
    assert_eq!(deployment["artifact_name"], "release-2");
    assert_eq!(deployment["status"], "pending");
    assert_eq!(deployment["max_devices"], 2);
    assert_eq!(deployment["device_count"], 0);
}

/// A whole fleet by id: 100 000 UUIDs are about 4 MB of JSON, twice axum's default limit.
async fn a_deployment_to_a_hundred_thousand_devices_is_accepted(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let devices: Vec<String> = (0..100_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let (status, body, id) = fleet
        .create(json!({"name": "fleet", "artifact_name": "release-2", "devices": devices}))
        .await;
    assert_eq!(status, 201, "{body}");
    let deployment = fleet.deployment(&id.unwrap()).await;
    assert_eq!(deployment["max_devices"], 100_000);
    // One more than the limit (max_deployment_devices, 100 000 by default) is refused,
    // with nothing appended.
    let head = fleet.server.head().await;
    let devices: Vec<String> = (0..100_001)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let (status, body, _) = fleet
        .create(json!({"name": "too many", "artifact_name": "release-2", "devices": devices}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("100000"),
        "the error names the limit: {body}"
    );
    assert!(body["request_id"].is_string());
    // Far over it, the body is refused before it is parsed: 413, as JSON.
    let devices: Vec<String> = (0..400_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let (status, body, _) = fleet
        .create(json!({"name": "far too many", "artifact_name": "release-2", "devices": devices}))
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].is_string() && body["request_id"].is_string(),
        "{body}"
    );
    assert_eq!(fleet.server.head().await, head);
}

async fn bad_deployment_requests_are_400_and_change_nothing(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let head = fleet.server.head().await;
    for body in [
        json!({"name": "", "artifact_name": "release-2", "devices": ["d1"]}),
        json!({"artifact_name": "release-2", "devices": ["d1"]}),
        json!({"name": "x", "artifact_name": "", "devices": ["d1"]}),
        json!({"name": "x", "artifact_name": "release-2", "devices": []}),
        json!({"name": "x", "artifact_name": "release-2"}),
        json!({"name": "x", "artifact_name": "release-2", "devices": ["d1"], "all_devices": true}),
        json!({"name": "x", "artifact_name": "release-2", "all_devices": true}),
        json!({"name": "x", "artifact_name": "release-2", "devices": "d1"}),
        json!({"name": "x", "artifact_name": "release-2", "devices": ["a", "b", "c"],
               "phases": [{"batch_size": 10}, {"start_ts": "2030-01-01T00:00:00Z"}]}),
        json!({"name": "   ", "artifact_name": "release-2", "devices": ["d1"]}),
        json!({"name": "nul\u{0}", "artifact_name": "release-2", "devices": ["d1"]}),
        json!({"name": "bell\u{7}", "artifact_name": "release-2", "devices": ["d1"]}),
        json!({"name": "x", "artifact_name": "release-2", "devices": ["d1", "d\u{0}"]}),
        json!({"name": "x", "artifact_name": "release-2", "devices": ["d1", "line\nbreak"]}),
        json!({"name": "x", "artifact_name": "release-2", "devices": [" "]}),
    ] {
        let (status, response, _) = fleet.create(body.clone()).await;
        assert_eq!(status, 400, "{body} → {response}");
        assert!(response["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let response = fleet
        .server
        .client
        .post(
            fleet
                .server
                .url(&format!("{MANAGEMENT}/deployments/group/kitchen")),
        )
        .bearer_auth(fleet.server.admin())
        .json(&json!({"name": "x", "artifact_name": "release-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        fleet.server.head().await,
        head,
        "a refused request appended an event"
    );
}

async fn no_artifact_for_the_deployment_is_422(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let (status, body, _) = fleet
        .create(json!({"name": "x", "artifact_name": "missing", "devices": ["d1"]}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "No artifact for the deployment");
}

async fn an_identical_active_deployment_is_409(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let first = fleet.deploy("x", "release-2", &["d1", "d2"]).await;
    let (status, _, _) = fleet
        .create(json!({"name": "x", "artifact_name": "release-2", "devices": ["d2", "d1"]}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(fleet.abort(&first, json!({"status": "aborted"})).await, 204);
    fleet.deploy("x", "release-2", &["d1", "d2"]).await;
}

async fn next_serves_the_oldest_deployment_with_a_24_hour_link(server: TestServer) {
    let fleet = Fleet::new(server).await;
    fleet.upload("release-3", &["pi"]).await;
    let older = fleet.deploy("first", "release-2", &["d1"]).await;
    fleet.deploy("second", "release-3", &["d1"]).await;
    let (status, body) = fleet.next("d1", "release-1", "pi").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], older);
    let artifact = &body["artifact"];
    assert_eq!(artifact["artifact_name"], "release-2");
    assert_eq!(artifact["device_types_compatible"], json!(["pi", "bbb"]));
    assert_eq!(artifact["source"]["method"], "GET");
    let expire =
        chrono::DateTime::parse_from_rfc3339(artifact["source"]["expire"].as_str().unwrap())
            .unwrap();
    let hours = expire
        .signed_duration_since(chrono::Utc::now())
        .num_minutes();
    assert!((23 * 60 + 58..=24 * 60).contains(&hours), "{hours} minutes");
    // The device downloads with no token.
    let download = reqwest::get(artifact["source"]["uri"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.headers().contains_key("content-length"));

    // GET with query parameters answers the same; the entry is not created twice.
    let response = fleet
        .server
        .client
        .get(fleet.server.url(&format!(
            "{DEVICE}/next?artifact_name=release-1&device_type=pi"
        )))
        .bearer_auth(fleet.device_token("d1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], older);
    assert_eq!(fleet.deployment(&older).await["device_count"], 1);
    assert_eq!(fleet.deployment(&older).await["status"], "pending");
}

async fn next_needs_artifact_name_and_device_type(server: TestServer) {
    let fleet = Fleet::new(server).await;
    for body in [
        json!({"device_type": "pi"}),
        json!({"artifact_name": "a"}),
        json!({"artifact_name": "", "device_type": "pi"}),
    ] {
        let response = fleet
            .server
            .client
            .post(fleet.server.url(&format!("{DEVICE}/next")))
            .bearer_auth(fleet.device_token("d1"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
    let response = fleet
        .server
        .client
        .get(fleet.server.url(&format!("{DEVICE}/next?device_type=pi")))
        .bearer_auth(fleet.device_token("d1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // A user token is the wrong kind; the v2 route does not exist, so clients fall back.
    let response = fleet
        .server
        .client
        .get(
            fleet
                .server
                .url(&format!("{DEVICE}/next?artifact_name=a&device_type=pi")),
        )
        .bearer_auth(fleet.server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = fleet
        .server
        .client
        .post(
            fleet
                .server
                .url("/api/devices/v2/deployments/device/deployments/next"),
        )
        .bearer_auth(fleet.device_token("d1"))
        .json(&json!({"artifact_name": "a", "device_type": "pi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

async fn nothing_pending_is_204(server: TestServer) {
    let fleet = Fleet::new(server).await;
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 204);
    fleet.deploy("x", "release-2", &["d2"]).await;
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 204);
}

async fn an_incompatible_device_is_noartifact_and_an_installed_one_already_installed(
    server: TestServer,
) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("x", "release-2", &["d1", "d2", "d3"]).await;
    assert_eq!(fleet.next("d1", "release-1", "x86").await.0, 204);
    assert_eq!(fleet.next("d2", "release-2", "pi").await.0, 204);
    let statistics = fleet.statistics(&id).await;
    assert_eq!(statistics["noartifact"], 1);
    assert_eq!(statistics["already-installed"], 1);
    assert_eq!(statistics.as_object().unwrap().len(), 13);
    // Both are final: asking again changes nothing.
    assert_eq!(fleet.next("d1", "release-1", "x86").await.0, 204);
    assert_eq!(fleet.statistics(&id).await, statistics);
    assert_eq!(fleet.deployment(&id).await["status"], "inprogress");
}

async fn force_installation_serves_even_the_installed_artifact(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let (status, _, id) = fleet
        .create(json!({"name": "x", "artifact_name": "release-2", "devices": ["d1"], "force_installation": true}))
        .await;
    assert_eq!(status, 201);
    let (status, body) = fleet.next("d1", "release-2", "pi").await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], id.unwrap());
}

async fn different_data_for_the_same_deployment_fails_the_device_with_409(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("x", "release-2", &["d1"]).await;
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 200);
    let (status, body) = fleet.next("d1", "release-1", "bbb").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(fleet.statistics(&id).await["failure"], 1);
    assert_eq!(fleet.deployment(&id).await["status"], "finished");
}

async fn status_reports_move_the_entry_and_finish_the_deployment(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("x", "release-2", &["d1", "d2"]).await;
    for device in ["d1", "d2"] {
        assert_eq!(fleet.next(device, "release-1", "pi").await.0, 200);
    }
    for status in [
        "downloading",
        "pause_before_installing",
        "installing",
        "pause_before_committing",
        "rebooting",
        "pause_before_rebooting",
    ] {
        assert_eq!(fleet.report("d1", &id, status).await.0, 204, "{status}");
        assert_eq!(fleet.statistics(&id).await[status], 1, "{status}");
    }
    assert_eq!(fleet.deployment(&id).await["status"], "inprogress");
    // The same status again is accepted and changes nothing.
    let head = fleet.server.head().await;
    assert_eq!(
        fleet.report("d1", &id, "pause_before_rebooting").await.0,
        204
    );
    assert_eq!(fleet.server.head().await, head);
    assert_eq!(fleet.report("d1", &id, "success").await.0, 204);
    assert_eq!(fleet.report("d2", &id, "failure").await.0, 204);
    let statistics = fleet.statistics(&id).await;
    assert_eq!(
        (
            statistics["success"].as_i64(),
            statistics["failure"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let deployment = fleet.deployment(&id).await;
    assert_eq!(deployment["status"], "finished");
    assert!(deployment["finished"].is_string());
    // A finished entry is final: the same final status again changes nothing, any other is
    // 409 and appends nothing, and the finished deployment's statistics stay as they were.
    let head = fleet.server.head().await;
    assert_eq!(fleet.report("d1", &id, "success").await.0, 204);
    for status in ["failure", "downloading", "installing", "already-installed"] {
        let (code, body) = fleet.report("d1", &id, status).await;
        assert_eq!(code, 409, "{status}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("already finished"),
            "{body}"
        );
        assert!(body["request_id"].is_string(), "{body}");
    }
    assert_eq!(fleet.report("d2", &id, "success").await.0, 409);
    assert_eq!(fleet.server.head().await, head, "nothing was appended");
    let after = fleet.statistics(&id).await;
    assert_eq!(after, statistics);
    assert_eq!(fleet.deployment(&id).await["status"], "finished");
}

async fn bad_status_reports_are_refused(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("x", "release-2", &["d1"]).await;
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 200);
    let head = fleet.server.head().await;
    for status in [
        "pending",
        "aborted",
        "decommissioned",
        "noartifact",
        "exploded",
        "",
    ] {
        assert_eq!(fleet.report("d1", &id, status).await.0, 400, "{status}");
    }
    let response = fleet
        .server
        .client
        .put(fleet.server.url(&format!("{DEVICE}/{id}/status")))
        .bearer_auth(fleet.device_token("d1"))
        .json(&json!({"status": "installing", "substate": "x".repeat(201)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(fleet.report("d1", "not-a-uuid", "installing").await.0, 400);
    assert_eq!(
        fleet
            .report("d1", &uuid::Uuid::new_v4().to_string(), "installing")
            .await
            .0,
        404
    );
    assert_eq!(fleet.report("d9", &id, "installing").await.0, 404);
    assert_eq!(fleet.server.head().await, head);
    let response = fleet
        .server
        .client
        .put(fleet.server.url(&format!("{DEVICE}/{id}/status")))
        .bearer_auth(fleet.device_token("d1"))
        .json(&json!({"status": "installing", "substate": "x".repeat(200)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

async fn an_abort_finishes_the_deployment_and_refuses_later_reports(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("x", "release-2", &["d1", "d2", "d3"]).await;
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.next("d2", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("d1", &id, "downloading").await.0, 204);
    assert_eq!(fleet.report("d2", &id, "success").await.0, 204);
    assert_eq!(fleet.abort(&id, json!({"status": "pending"})).await, 400);
    assert_eq!(fleet.abort(&id, json!({"state": "aborted"})).await, 400);
    assert_eq!(
        fleet
            .abort("not-a-uuid", json!({"status": "aborted"}))
            .await,
        400
    );
    assert_eq!(
        fleet
            .abort(
                &uuid::Uuid::new_v4().to_string(),
                json!({"status": "aborted"})
            )
            .await,
        404
    );
    assert_eq!(fleet.abort(&id, json!({"status": "aborted"})).await, 204);
    let statistics = fleet.statistics(&id).await;
    assert_eq!(statistics["aborted"], 1);
    assert_eq!(
        statistics["success"], 1,
        "finished devices keep their status"
    );
    assert_eq!(fleet.deployment(&id).await["status"], "finished");
    let (status, body) = fleet.report("d1", &id, "installing").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "Deployment aborted");
    assert_eq!(fleet.next("d3", "release-1", "pi").await.0, 204);
    assert_eq!(fleet.abort(&id, json!({"status": "aborted"})).await, 422);
}

async fn a_decommissioned_device_is_refused_and_removal_is_always_204(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("x", "release-2", &["d1"]).await;
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 200);
    let remove = |device: &'static str| {
        fleet
            .server
            .client
            .delete(
                fleet
                    .server
                    .url(&format!("{MANAGEMENT}/deployments/devices/{device}")),
            )
            .bearer_auth(fleet.server.admin())
            .send()
    };
    assert_eq!(remove("d1").await.unwrap().status(), 204);
    let (status, body) = fleet.report("d1", &id, "installing").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "Device decommissioned");
    assert_eq!(fleet.statistics(&id).await["decommissioned"], 1);
    assert_eq!(fleet.deployment(&id).await["status"], "finished");
    assert_eq!(remove("never-seen").await.unwrap().status(), 204);

    // Mender's second step: the oldest deployment newer than the running one gets a
    // decommissioned entry too, and a device that never asked is counted where it is targeted.
    let running = fleet.deploy("y", "release-2", &["d2"]).await;
    let newer = fleet.deploy("z", "release-2", &["d2", "silent"]).await;
    assert_eq!(fleet.next("d2", "release-1", "pi").await.0, 200);
    assert_eq!(remove("d2").await.unwrap().status(), 204);
    assert_eq!(fleet.statistics(&running).await["decommissioned"], 1);
    assert_eq!(fleet.statistics(&newer).await["decommissioned"], 1);
    assert_eq!(remove("silent").await.unwrap().status(), 204);
    assert_eq!(fleet.statistics(&newer).await["decommissioned"], 2);
    assert_eq!(fleet.deployment(&newer).await["status"], "finished");
}

async fn a_device_log_is_stored_for_its_entry(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("x", "release-2", &["d1"]).await;
    let put_log = |device: &'static str, body: Value| {
        fleet
            .server
            .client
            .put(fleet.server.url(&format!("{DEVICE}/{id}/log")))
            .bearer_auth(fleet.device_token(device))
            .json(&body)
            .send()
    };
    let messages = json!({"messages": [
        {"timestamp": "2026-01-01T10:00:00Z", "level": "info", "message": "installing"},
        {"timestamp": "2026-01-01T10:00:05Z", "level": "error", "message": "disk full"}
    ]});
    assert_eq!(
        put_log("d1", messages.clone()).await.unwrap().status(),
        404,
        "no entry yet"
    );
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 200);
    assert_eq!(
        put_log("d1", json!({"messages": "nope"}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        put_log("d1", json!({"messages": []}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(put_log("d1", messages).await.unwrap().status(), 204);
    let response = fleet
        .server
        .client
        .get(
            fleet
                .server
                .url(&format!("{MANAGEMENT}/deployments/{id}/devices/d1/log")),
        )
        .bearer_auth(fleet.server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("installing") && text.contains("disk full"),
        "{text}"
    );
}

async fn a_phase_admits_its_batch_and_others_wait(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let devices: Vec<String> = (0..4).map(|n| format!("p{n}")).collect();
    let (status, body, id) = fleet
        .create(
            json!({"name": "phased", "artifact_name": "release-2", "devices": devices,
            "phases": [{"batch_size": 50}, {"start_ts": "2099-01-01T00:00:00Z"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    let mut served = 0;
    for device in &devices {
        if fleet.next(device, "release-1", "pi").await.0 == 200 {
            served += 1;
        }
    }
    assert_eq!(served, 2, "the first phase holds 50% of 4 devices");
    assert_eq!(fleet.deployment(&id).await["device_count"], 2);

    // The next phase, started by hand, admits the rest now.
    let unphased = fleet.deploy("unphased", "release-2", &["solo"]).await;
    let head = fleet.server.head().await;
    for (target, code) in [
        (uuid::Uuid::new_v4().to_string(), 404),
        (unphased.clone(), 409),
    ] {
        let (status, body) = fleet.pause_or_resume(&target, "phases/next").await;
        assert_eq!(status, code, "{target}: {body}");
    }
    assert_eq!(fleet.server.head().await, head, "refusals record nothing");
    assert_eq!(fleet.pause_or_resume(&id, "phases/next").await.0, 204);
    let phases = fleet.deployment(&id).await["phases"].clone();
    assert!(
        phases[1]["start_ts"].as_str().unwrap() < "2099",
        "the second phase starts now: {phases}"
    );
    for device in &devices {
        assert_eq!(
            fleet.next(device, "release-1", "pi").await.0,
            200,
            "{device}"
        );
    }
    // Each device's entry says it came in through a phase.
    for device in &devices {
        let (status, changes) = history(&fleet, &id, device).await;
        assert_eq!(status, 200, "{changes}");
        assert_eq!(changes[0]["cause"]["kind"], "phase", "{device}: {changes}");
        assert!(
            !changes[0]["cause"]["detail"]["phase"].is_null(),
            "{device}: {changes}"
        );
    }
    let (status, body) = fleet.pause_or_resume(&id, "phases/next").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("Deployment has no phase left to start"))
    );
    assert_eq!(fleet.abort(&id, json!({"status": "aborted"})).await, 204);
    assert_eq!(fleet.pause_or_resume(&id, "phases/next").await.0, 422);
}

async fn parallel_requests_keep_every_invariant(server: TestServer) {
    let fleet = std::sync::Arc::new(Fleet::new(server).await);
    // One device asking many times at once gets one entry.
    let id = fleet.deploy("x", "release-2", &["d1"]).await;
    let asks: Vec<_> = (0..8)
        .map(|_| {
            let fleet = fleet.clone();
            tokio::spawn(async move { fleet.next("d1", "release-1", "pi").await })
        })
        .collect();
    for ask in asks {
        let (status, body) = ask.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], id);
    }
    assert_eq!(fleet.deployment(&id).await["device_count"], 1);
    assert_eq!(fleet.statistics(&id).await["pending"], 1);

    // Identical deployments created at once: exactly one is created.
    let creates: Vec<_> = (0..6)
        .map(|_| {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                fleet
                    .create(
                        json!({"name": "same", "artifact_name": "release-2", "devices": ["e1"]}),
                    )
                    .await
                    .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for create in creates {
        statuses.push(create.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|status| **status == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|status| [201, 409].contains(status)),
        "{statuses:?}"
    );

    // A phase under a rush of devices admits no more than its batch.
    let devices: Vec<String> = (0..10).map(|n| format!("rush{n}")).collect();
    let (_, _, phased) = fleet
        .create(
            json!({"name": "rush", "artifact_name": "release-2", "devices": devices,
            "phases": [{"batch_size": 30}, {"start_ts": "2099-01-01T00:00:00Z"}]}),
        )
        .await;
    let rush: Vec<_> = devices
        .iter()
        .cloned()
        .map(|device| {
            let fleet = fleet.clone();
            tokio::spawn(async move { fleet.next(&device, "release-1", "pi").await.0 })
        })
        .collect();
    let mut admitted = 0;
    for ask in rush {
        if ask.await.unwrap() == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    assert_eq!(fleet.deployment(&phased.unwrap()).await["device_count"], 3);
}

async fn an_artifact_in_use_cannot_be_edited_or_deleted(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let artifact = fleet.upload("release-9", &["pi"]).await;
    let id = fleet.deploy("x", "release-9", &["d1"]).await;
    let path = fleet
        .server
        .url(&format!("{MANAGEMENT}/artifacts/{artifact}"));
    let edit = fleet
        .server
        .client
        .put(&path)
        .bearer_auth(fleet.server.admin())
        .json(&json!({"description": "changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edit.status(), 422);
    let delete = fleet
        .server
        .client
        .delete(&path)
        .bearer_auth(fleet.server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 409);
    assert_eq!(fleet.abort(&id, json!({"status": "aborted"})).await, 204);
    let delete = fleet
        .server
        .client
        .delete(&path)
        .bearer_auth(fleet.server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(
        delete.status(),
        204,
        "a finished deployment no longer holds its artifact"
    );
}

/// Deleting an artifact while a deployment of it is being created: never both.
async fn an_artifact_is_never_deleted_under_a_deployment_created_at_once(server: TestServer) {
    let fleet = std::sync::Arc::new(Fleet::new(server).await);
    for round in 0..6 {
        let name = format!("race-{round}");
        let artifact = fleet.upload(&name, &["pi"]).await;
        let deleting = {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                fleet
                    .server
                    .client
                    .delete(
                        fleet
                            .server
                            .url(&format!("{MANAGEMENT}/artifacts/{artifact}")),
                    )
                    .bearer_auth(fleet.server.admin())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        };
        let creating = {
            let fleet = fleet.clone();
            let name = name.clone();
            tokio::spawn(async move {
                fleet
                    .create(json!({"name": name, "artifact_name": name, "devices": ["d1"]}))
                    .await
                    .0
            })
        };
        let (deleted, created) = (deleting.await.unwrap(), creating.await.unwrap());
        assert!(
            matches!((deleted, created), (204, 422) | (409, 201)),
            "round {round}: delete {deleted}, create {created}"
        );
    }
}

async fn a_new_deployment_after_a_finished_one_is_served(server: TestServer) {
    let fleet = Fleet::new(server).await;
    fleet.upload("release-3", &["pi"]).await;
    let first = fleet.deploy("first", "release-2", &["d1"]).await;
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("d1", &first, "success").await.0, 204);
    let second = fleet.deploy("second", "release-3", &["d1"]).await;
    let (status, body) = fleet.next("d1", "release-2", "pi").await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], second);
    let seen: HashSet<String> = [first, second].into_iter().collect();
    assert_eq!(seen.len(), 2);
}

async fn as_of_shows_a_deployment_as_it_was(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let id = fleet.deploy("past", "release-2", &["d1", "d2"]).await;
    let created_at = fleet.server.head().await.0;
    assert_eq!(fleet.next("d1", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("d1", &id, "downloading").await.0, 204);
    let downloading_at = fleet.server.head().await.0;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(fleet.abort(&id, json!({"status": "aborted"})).await, 204);

    let admin = fleet.server.admin();
    let at = |moment: String, what: &'static str| {
        let path = format!("{MANAGEMENT}/deployments/{id}{what}?as_of={moment}");
        let server = &fleet.server;
        let admin = admin.clone();
        async move { server.get(&path, Some(&admin)).await }
    };
    let (status, then) = at(created_at.to_string(), "").await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(
        (then["status"].as_str(), then["device_count"].as_i64()),
        (Some("pending"), Some(0))
    );
    let (_, statistics) = at(created_at.to_string(), "/statistics").await;
    assert!(statistics
        .as_object()
        .unwrap()
        .values()
        .all(|count| count == 0));
    let (_, devices) = at(created_at.to_string(), "/devices").await;
    assert_eq!(devices, json!([]));
    // The time the deployment shows as `created` is a moment it existed at: its creation is
    // recorded at that very time.
    let created = fleet.deployment(&id).await["created"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let (status, then) = at(created, "").await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["status"], "pending", "{then}");

    for moment in [
        downloading_at.to_string(),
        between.to_rfc3339().replace('+', "%2B"),
    ] {
        let (_, then) = at(moment.clone(), "").await;
        assert_eq!(then["status"], "inprogress", "{moment}");
        assert_eq!(then["device_count"], 1);
        let (_, statistics) = at(moment.clone(), "/statistics").await;
        assert_eq!(statistics["downloading"], 1);
        assert_eq!(statistics["aborted"], 0);
        let (_, devices) = at(moment, "/devices").await;
        assert_eq!(devices[0]["id"], "d1");
        assert_eq!(devices[0]["status"], "downloading");
    }
    let now = fleet.deployment(&id).await;
    assert_eq!(now["status"], "finished");

    // Before the deployment existed it is not found; a moment that is no moment is refused.
    assert_eq!(at("0".into(), "").await.0, 404);
    assert_eq!(
        at(before.to_rfc3339().replace('+', "%2B"), "/statistics")
            .await
            .0,
        404
    );
    assert_eq!(at("yesterday".into(), "").await.0, 400);
    assert_eq!(at("-5".into(), "/devices").await.0, 400);
}

/// One command of a random session through the API.
#[derive(Debug, Clone)]
enum Command {
    /// A deployment of `release-2` or `release-3` to the devices picked, with 0 to 2 retries,
    /// and maybe a failure policy that pauses or aborts at half of them failed.
    Create {
        targets: Vec<bool>,
        release: usize,
        retries: usize,
        policy: Option<&'static str>,
    },
    /// An abort of one of the session's deployments, if it has any.
    Abort {
        pick: usize,
    },
    /// An operator's pause or resume of one of the session's deployments, if it has any.
    PauseOrResume {
        pick: usize,
        resume: bool,
    },
    Decommission {
        device: usize,
    },
    /// The device asks for its next deployment and, when served, reports a status.
    Poll {
        device: usize,
        device_type: usize,
        report: usize,
    },
}

const SESSION_DEVICES: usize = 8;
const DEVICE_TYPES: [&str; 3] = ["pi", "bbb", "x86"];
const REPORTS: [&str; 6] = [
    "downloading",
    "installing",
    "rebooting",
    "success",
    "failure",
    "pause_before_rebooting",
];

fn sessions() -> impl proptest::strategy::Strategy<Value = Vec<Command>> {
    use proptest::prelude::*;
    let command = prop_oneof![
        2 => (
            proptest::collection::vec(any::<bool>(), SESSION_DEVICES),
            0..2usize,
            0..3usize,
            proptest::option::of(prop_oneof![Just("pause"), Just("abort")]),
        )
            .prop_map(|(targets, release, retries, policy)| Command::Create {
                targets,
                release,
                retries,
                policy
            }),
        1 => any::<usize>().prop_map(|pick| Command::Abort { pick }),
        1 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, resume)| Command::PauseOrResume { pick, resume }),
        1 => (0..SESSION_DEVICES).prop_map(|device| Command::Decommission { device }),
        6 => (0..SESSION_DEVICES, 0..DEVICE_TYPES.len(), 0..REPORTS.len()).prop_map(
            |(device, device_type, report)| Command::Poll {
                device,
                device_type,
                report,
            }
        ),
    ];
    proptest::collection::vec(command, 1..120)
}

/// Runs a session's commands on devices of its own; returns the deployments it created.
async fn run_session(fleet: &Fleet, session: usize, commands: &[Command]) -> Vec<String> {
    let devices: Vec<String> = (0..SESSION_DEVICES)
        .map(|n| format!("s{session}-r{n}"))
        .collect();
    let mut deployments = Vec::new();
    for (step, command) in commands.iter().enumerate() {
        match command {
            Command::Create {
                targets,
                release,
                retries,
                policy,
            } => {
                let targets: Vec<&str> = devices
                    .iter()
                    .zip(targets)
                    .filter(|(_, picked)| **picked)
                    .map(|(device, _)| device.as_str())
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let artifact = ["release-2", "release-3"][*release];
                let mut body = json!({"name": format!("random-{session}-{step}"), "artifact_name": artifact,
                                      "devices": targets, "retries": retries});
                if let Some(on_threshold) = policy {
                    body["policy"] = json!({"failure_threshold_percent": 50, "min_finished_devices": 1,
                                            "on_threshold": on_threshold});
                }
                let (status, answer, id) = fleet.create(body).await;
                assert_eq!(status, 201, "{answer}");
                deployments.push(id.unwrap());
            }
            Command::Abort { pick } => {
                if deployments.is_empty() {
                    continue;
                }
                let id = &deployments[pick % deployments.len()];
                assert!([204, 422].contains(&fleet.abort(id, json!({"status": "aborted"})).await));
            }
            Command::PauseOrResume { pick, resume } => {
                if deployments.is_empty() {
                    continue;
                }
                let id = &deployments[pick % deployments.len()];
                let action = if *resume { "resume" } else { "pause" };
                let (status, body) = fleet.pause_or_resume(id, action).await;
                assert!(
                    [204, 409, 422].contains(&status),
                    "{action}: {status} {body}"
                );
            }
            Command::Decommission { device } => {
                let device = &devices[*device];
                let response = fleet
                    .server
                    .client
                    .delete(
                        fleet
                            .server
                            .url(&format!("{MANAGEMENT}/deployments/devices/{device}")),
                    )
                    .bearer_auth(fleet.server.admin())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 204);
            }
            Command::Poll {
                device,
                device_type,
                report,
            } => {
                let device = &devices[*device];
                let (status, body) = fleet
                    .next(device, "release-1", DEVICE_TYPES[*device_type])
                    .await;
                assert!([200, 204, 409].contains(&status), "{status} {body}");
                if status == 200 {
                    let id = body["id"].as_str().unwrap().to_owned();
                    let (code, body) = fleet.report(device, &id, REPORTS[*report]).await;
                    assert!([204, 409].contains(&code), "{code} {body}");
                }
            }
        }
    }
    deployments
}

/// Every deployment's statistics equal the count of its entries per status.
async fn check_statistics(fleet: &Fleet, deployments: &[String]) {
    for id in deployments {
        let statistics = fleet.statistics(id).await;
        let (status, entries) = fleet
            .server
            .get(
                &format!("{MANAGEMENT}/deployments/{id}/devices"),
                Some(&fleet.server.admin()),
            )
            .await;
        assert_eq!(status, 200);
        let mut counted = std::collections::BTreeMap::new();
        for entry in entries.as_array().unwrap() {
            *counted
                .entry(entry["status"].as_str().unwrap().to_owned())
                .or_insert(0i64) += 1;
        }
        for (status, count) in statistics.as_object().unwrap() {
            assert_eq!(
                count.as_i64().unwrap(),
                counted.get(status).copied().unwrap_or(0),
                "{id} {status}"
            );
        }
        let deployment = fleet.deployment(id).await;
        assert_eq!(
            deployment["device_count"].as_u64().unwrap() as usize,
            entries.as_array().unwrap().len()
        );
    }
}

/// Random sessions of commands and device reports through the API (made by proptest, which
/// shrinks a failing one to the shortest that still fails): every deployment's statistics
/// equal the count of its entries per status, and read models rebuilt from position 0 equal
/// the live ones.
async fn random_commands_keep_statistics_and_rebuilds_exact(server: TestServer) {
    let fleet = Fleet::new(server).await;
    fleet.upload("release-3", &["bbb"]).await;
    let mut runner = crate::support::seeded_runner(3);
    let runtime = tokio::runtime::Handle::current();
    let sessions_run = std::sync::atomic::AtomicUsize::new(0);
    let created = std::sync::Mutex::new(0usize);
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&sessions(), |commands| {
            let session = sessions_run.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            runtime.block_on(async {
                let deployments = run_session(&fleet, session, &commands).await;
                check_statistics(&fleet, &deployments).await;
                *created.lock().unwrap() += deployments.len();
            });
            Ok(())
        })
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
    assert!(
        *created.lock().unwrap() > 0,
        "the sessions created deployments"
    );

    // A policy whose counts a decommission settles is tripped by the rollout checks (every
    // `rollout_check_ms`, 5 s), not by a request: the log is left to come to rest first, so
    // that the live read models are compared at the position the rebuild reads up to.
    let mut head = fleet.server.head().await;
    let settling = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
        let now = fleet.server.head().await;
        if now == head {
            break;
        }
        assert!(
            settling.elapsed() < std::time::Duration::from_secs(60),
            "the log did not come to rest"
        );
        head = now;
    }
    // Every projection has applied it before the dump.
    crate::support::eventually(
        &fleet.server,
        "/api/internal/v1/deployments/health/detail",
        |detail| {
            detail["projections"]
                .as_object()
                .is_some_and(|projections| {
                    projections
                        .values()
                        .all(|projection| projection["position"].as_u64() >= Some(head.0))
                })
        },
    )
    .await;

    // Rebuild with the real subcommand while the server serves: every read during the
    // rebuild and the switch answers, and none shows fewer deployments than one before it.
    let live_url = fleet.server.settings.read_models_url();
    let before = query_service::read_models::ReadModels::connect(&live_url, 2)
        .await
        .unwrap();
    assert_eq!(before.serving().number, 0);
    let live_dump = before.dump().await.unwrap();
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let url = fleet
            .server
            .url("/api/management/v1/deployments/deployments?per_page=500");
        let token = fleet.server.admin();
        let client = fleet.server.client.clone();
        let reading = reading.clone();
        tokio::spawn(async move {
            let (mut reads, mut most) = (0, 0);
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                let status = response.status();
                let list: Value = response.json().await.unwrap();
                assert_eq!(status, 200, "a read failed during the rebuild: {list}");
                let seen = list.as_array().unwrap().len();
                assert!(
                    seen >= most,
                    "a read showed {seen} deployments after {most}"
                );
                most = seen;
                reads += 1;
            }
            (reads, most)
        })
    };
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_deployments"));
    command
        .arg("rebuild")
        .env_remove("DEPLOYMENTS_CONFIG")
        .env("DEPLOYMENTS_DATA_DIR", &fleet.server.settings.data_dir);
    if let Some(url) = &fleet.server.postgres_url {
        command
            .env("DEPLOYMENTS_EVENT_LOG_URL", url)
            .env("DEPLOYMENTS_READ_MODELS_URL", url);
    }
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let switched = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let (_, detail) = fleet
                .server
                .get("/api/internal/v1/deployments/health/detail", None)
                .await;
            if detail["read_model_generation"] == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(switched.is_ok(), "the server did not move to generation 1");
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    let (reads, most) = reader.await.unwrap();
    assert!(reads > 0 && most > 0);
    let after = query_service::read_models::ReadModels::connect(&live_url, 2)
        .await
        .unwrap();
    assert_eq!(after.serving().number, 1);
    let rebuilt = after.dump().await.unwrap();
    // Only the rows that differ: the whole dump is too long to read in a failure.
    let only_live: Vec<&String> = live_dump
        .iter()
        .filter(|row| !rebuilt.contains(row))
        .collect();
    let only_rebuilt: Vec<&String> = rebuilt
        .iter()
        .filter(|row| !live_dump.contains(row))
        .collect();
    assert!(
        only_live.is_empty() && only_rebuilt.is_empty(),
        "live only: {only_live:#?}\nrebuilt only: {only_rebuilt:#?}"
    );
}

async fn a_paused_deployment_serves_only_devices_already_updating(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let id = fleet.deploy("paused", "release-2", &["d1", "d2"]).await;
    let (status, _) = fleet.next("d1", "release-1", "pi").await;
    assert_eq!(status, 200, "d1 starts before the pause");

    let head = fleet.server.head().await;
    for (target, action, code) in [
        (uuid::Uuid::new_v4().to_string(), "pause", 404),
        (uuid::Uuid::new_v4().to_string(), "resume", 404),
        ("not-an-id".to_owned(), "pause", 400),
        ("not-an-id".to_owned(), "resume", 400),
        (id.clone(), "resume", 409),
    ] {
        let (status, body) = fleet.pause_or_resume(&target, action).await;
        assert_eq!(status, code, "{action} {target}: {body}");
        assert!(body["error"].is_string() && body["request_id"].is_string());
    }
    assert_eq!(fleet.server.head().await, head, "refusals record nothing");
    assert_eq!(fleet.deployment(&id).await["paused"], false);

    assert_eq!(fleet.pause_or_resume(&id, "pause").await.0, 204);
    let head = fleet.server.head().await;
    let (status, body) = fleet.pause_or_resume(&id, "pause").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("Deployment already paused"))
    );
    assert_eq!(
        fleet.server.head().await,
        head,
        "a second pause records nothing"
    );
    let deployment = fleet.deployment(&id).await;
    assert_eq!(deployment["paused"], true);
    assert_eq!(deployment["pause_cause"]["kind"], "operator");
    assert_eq!(deployment["pause_cause"]["subject"], "admin");

    assert_eq!(fleet.next("d2", "release-1", "pi").await.0, 204, "d2 waits");
    assert_eq!(
        fleet.next("d1", "release-1", "pi").await.0,
        200,
        "d1 goes on"
    );
    assert_eq!(fleet.report("d1", &id, "installing").await.0, 204);

    assert_eq!(fleet.pause_or_resume(&id, "resume").await.0, 204);
    let deployment = fleet.deployment(&id).await;
    assert_eq!(deployment["paused"], false);
    assert!(deployment.get("pause_cause").is_none(), "{deployment}");
    assert_eq!(
        fleet.next("d2", "release-1", "pi").await.0,
        200,
        "d2 goes now"
    );

    assert_eq!(fleet.abort(&id, json!({"status": "aborted"})).await, 204);
    let (status, body) = fleet.pause_or_resume(&id, "pause").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("Deployment already finished"))
    );

    // A deployment that finished by its devices' reports is as finished as an aborted one.
    let done = fleet.deploy("done", "release-2", &["d3"]).await;
    assert_eq!(fleet.next("d3", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("d3", &done, "success").await.0, 204);
    assert_eq!(fleet.deployment(&done).await["status"], "finished");
    let head = fleet.server.head().await;
    for action in ["pause", "resume"] {
        let (status, body) = fleet.pause_or_resume(&done, action).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("Deployment already finished")),
            "{action}"
        );
    }
    assert_eq!(fleet.server.head().await, head, "refusals record nothing");
}

/// The device's entry in a deployment, from the management device list.
async fn entry(fleet: &Fleet, id: &str, device: &str) -> Value {
    let (status, entries) = fleet
        .server
        .get(
            &format!("{MANAGEMENT}/deployments/{id}/devices"),
            Some(&fleet.server.admin()),
        )
        .await;
    assert_eq!(status, 200, "{entries}");
    entries
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["id"] == device)
        .cloned()
        .unwrap_or_else(|| panic!("{device} not in {entries}"))
}

async fn a_failed_device_is_retried_and_counted_by_its_latest_attempt(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let head = fleet.server.head().await;
    for retries in [json!(-1), json!(11), json!("two"), json!(1.5)] {
        let (status, body, _) = fleet
            .create(json!({"name": "bad", "artifact_name": "release-2", "devices": ["x"], "retries": retries}))
            .await;
        assert_eq!(status, 400, "{retries}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("retries"),
            "{retries}: {body}"
        );
        assert!(body["request_id"].is_string());
    }
    assert_eq!(
        fleet.server.head().await,
        head,
        "refused requests record nothing"
    );

    let (status, body, id) = fleet
        .create(json!({"name": "retried", "artifact_name": "release-2", "devices": ["r1", "r2"], "retries": 2}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    assert_eq!(fleet.deployment(&id).await["retries"], 2);

    // r1 fails once, then succeeds on its retry.
    assert_eq!(fleet.next("r1", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("r1", &id, "failure").await.0, 204);
    assert_eq!(entry(&fleet, &id, "r1").await["attempts"], 1);
    assert_eq!(fleet.statistics(&id).await["failure"], 1);
    // A failed update without rollback leaves the client naming an artifact of its own.
    let (status, body) = fleet.next("r1", "release-2_INCONSISTENT", "pi").await;
    assert_eq!(
        status, 200,
        "the failed device gets the deployment again: {body}"
    );
    assert_eq!(body["id"], id.as_str());
    let retried = entry(&fleet, &id, "r1").await;
    assert_eq!(
        (retried["attempts"].clone(), retried["status"].clone()),
        (json!(2), json!("pending"))
    );
    let statistics = fleet.statistics(&id).await;
    assert_eq!(
        (statistics["failure"].clone(), statistics["pending"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(fleet.report("r1", &id, "installing").await.0, 204);
    assert_eq!(fleet.report("r1", &id, "success").await.0, 204);

    // r2 fails on every attempt: three in all, then nothing more.
    for attempt in 1..=3 {
        let (status, body) = fleet.next("r2", "release-1", "pi").await;
        assert_eq!(status, 200, "attempt {attempt}: {body}");
        assert_eq!(fleet.report("r2", &id, "failure").await.0, 204);
        let deployment = fleet.deployment(&id).await;
        let expected = if attempt < 3 {
            "inprogress"
        } else {
            "finished"
        };
        assert_eq!(deployment["status"], expected, "after attempt {attempt}");
    }
    assert_eq!(
        fleet.next("r2", "release-1", "pi").await.0,
        204,
        "no retry is left"
    );
    let failed = entry(&fleet, &id, "r2").await;
    assert_eq!(
        (failed["attempts"].clone(), failed["status"].clone()),
        (json!(3), json!("failure"))
    );
    let statistics = fleet.statistics(&id).await;
    assert_eq!(
        (
            statistics["success"].clone(),
            statistics["failure"].clone(),
            statistics["pending"].clone()
        ),
        (json!(1), json!(1), json!(0)),
        "{statistics}"
    );
    // A report on the spent entry changes nothing.
    assert_eq!(fleet.report("r2", &id, "installing").await.0, 409);
}

const V2: &str = "/api/management/v2/deployments/deployments";

/// `GET .../{id}/devices/{device}/history`: the status and the changes.
async fn history(fleet: &Fleet, id: &str, device: &str) -> (u16, Value) {
    fleet
        .server
        .get(
            &format!("{V2}/{id}/devices/{device}/history"),
            Some(&fleet.server.admin()),
        )
        .await
}

/// `POST .../{id}/simulate` with `body`.
async fn simulate(fleet: &Fleet, id: &str, body: Value) -> (u16, Value) {
    fleet
        .post(&format!("{V2}/{id}/simulate"), Some(&body))
        .await
}

/// The cause kinds and statuses of a history, in order.
fn causes(changes: &Value) -> Vec<(String, String)> {
    changes
        .as_array()
        .unwrap()
        .iter()
        .map(|change| {
            (
                change["cause"]["kind"].as_str().unwrap().to_owned(),
                change["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn each_change_of_an_entry_names_its_cause_and_a_policy_can_be_tried_on_the_past(
    server: TestServer,
) {
    let fleet = Fleet::new(server).await;
    // h3 is updating, h1 fails, h2 succeeds, h1's retry fails: 1 of 2 finished failed, and
    // the policy aborts the rollout, h3 with it.
    let (status, body, id) = fleet
        .create(
            json!({"name": "caused", "artifact_name": "release-2", "devices": ["h1", "h2", "h3"],
                       "retries": 1,
                       "policy": {"failure_threshold_percent": 50, "min_finished_devices": 2,
                                  "on_threshold": "abort"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    assert_eq!(fleet.next("h3", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("h3", &id, "downloading").await.0, 204);
    assert_eq!(fleet.next("h1", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("h1", &id, "downloading").await.0, 204);
    assert_eq!(fleet.report("h1", &id, "failure").await.0, 204);
    assert_eq!(fleet.next("h2", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("h2", &id, "success").await.0, 204);
    assert_eq!(
        fleet.next("h1", "release-2_INCONSISTENT", "pi").await.0,
        200
    );
    assert_eq!(fleet.report("h1", &id, "failure").await.0, 204);
    assert_eq!(fleet.deployment(&id).await["status"], "finished");

    let (status, h1) = history(&fleet, &id, "h1").await;
    assert_eq!(status, 200, "{h1}");
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        causes(&h1),
        owned(&[
            ("device_report", "pending"),
            ("device_report", "downloading"),
            ("device_report", "failure"),
            ("retry", "pending"),
            ("device_report", "failure"),
        ])
    );
    let attempts: Vec<u64> = h1
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 1, 1, 2, 2]);
    let positions: Vec<u64> = h1
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["position"].as_u64().unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "{positions:?}"
    );
    assert!(h1[0]["at"].is_string());
    assert_eq!(
        h1[0]["cause"]["subject"], "h1",
        "a device's report names the device"
    );
    assert_eq!(
        h1[3]["cause"]["detail"]["installed_artifact_name"],
        "release-2_INCONSISTENT"
    );

    let (_, h3) = history(&fleet, &id, "h3").await;
    assert_eq!(
        causes(&h3),
        owned(&[
            ("device_report", "pending"),
            ("device_report", "downloading"),
            ("policy", "aborted")
        ])
    );
    assert_eq!(
        h3[2]["cause"]["detail"],
        json!({"finished": 2, "failed": 1, "failure_percent": 50.0})
    );

    // An operator's abort names the user; a decommission the one who asked for it.
    let aborted = fleet.deploy("aborted", "release-2", &["h4"]).await;
    assert_eq!(fleet.next("h4", "release-1", "pi").await.0, 200);
    assert_eq!(
        fleet.abort(&aborted, json!({"status": "aborted"})).await,
        204
    );
    let (_, h4) = history(&fleet, &aborted, "h4").await;
    assert_eq!(
        causes(&h4),
        owned(&[("device_report", "pending"), ("operator", "aborted")])
    );
    assert_eq!(h4[1]["cause"]["subject"], "admin");
    assert_eq!(h4[1]["cause"]["detail"], json!({"action": "abort"}));
    let decommissioned = fleet.deploy("decommissioned", "release-2", &["h5"]).await;
    assert_eq!(fleet.next("h5", "release-1", "pi").await.0, 200);
    let response = fleet
        .server
        .client
        .delete(
            fleet
                .server
                .url(&format!("{MANAGEMENT}/deployments/devices/h5")),
        )
        .bearer_auth(fleet.server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (_, h5) = history(&fleet, &decommissioned, "h5").await;
    assert_eq!(
        causes(&h5),
        owned(&[
            ("device_report", "pending"),
            ("decommission", "decommissioned")
        ])
    );

    assert_eq!(history(&fleet, &id, "h9").await.0, 404, "no entry");
    assert_eq!(
        history(&fleet, &uuid::Uuid::new_v4().to_string(), "h1")
            .await
            .0,
        404
    );
    assert_eq!(history(&fleet, "not-an-id", "h1").await.0, 400);

    // The policy tried on the same rollout: without retries h1's first failure is final and
    // trips a 100 % policy at once, before h2 started; with one retry it never trips.
    let head = fleet.server.head().await;
    let policy = json!({"failure_threshold_percent": 100, "min_finished_devices": 1});
    let (status, tried) = simulate(&fleet, &id, json!({"policy": policy, "retries": 0})).await;
    assert_eq!(status, 200, "{tried}");
    assert_eq!(tried["tripped"], true);
    assert_eq!(
        (
            tried["at"]["finished"].clone(),
            tried["at"]["failed"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(tried["at"]["position"], h1[2]["position"]);
    assert_eq!(tried["devices_started_after"], 1, "h2: {tried}");
    assert_eq!(tried["devices_failed_after"], 0);
    let (_, tried) = simulate(&fleet, &id, json!({"policy": policy, "retries": 1})).await;
    assert_eq!(
        tried,
        json!({"tripped": false, "at": null, "devices_started_after": 0, "devices_failed_after": 0})
    );
    // The policy it ran with, tried on the same reports, trips where it tripped live.
    let live = json!({"failure_threshold_percent": 50, "min_finished_devices": 2, "on_threshold": "abort"});
    let (_, tried) = simulate(&fleet, &id, json!({"policy": live, "retries": 1})).await;
    assert_eq!(tried["tripped"], true, "{tried}");
    let at = &tried["at"];
    assert_eq!(
        json!({"finished": at["finished"], "failed": at["failed"], "failure_percent": at["failure_percent"]}),
        fleet.deployment(&id).await["policy_trip"]
    );
    assert_eq!(
        at["position"], h1[4]["position"],
        "the report that tripped it live"
    );
    assert_eq!(
        fleet.server.head().await,
        head,
        "a simulation records nothing"
    );

    // A rollout recorded without any policy: s1 and s2 fail, s3 and s4 succeed, then s5
    // fails and s6 succeeds.
    let devices = ["s1", "s2", "s3", "s4", "s5", "s6"];
    let plain = fleet.deploy("plain", "release-2", &devices).await;
    for (device, outcome) in devices.iter().zip([
        "failure", "failure", "success", "success", "failure", "success",
    ]) {
        assert_eq!(fleet.next(device, "release-1", "pi").await.0, 200);
        assert_eq!(fleet.report(device, &plain, outcome).await.0, 204);
    }
    let head = fleet.server.head().await;
    let (status, tried) = simulate(
        &fleet,
        &plain,
        json!({"policy": {"failure_threshold_percent": 50, "min_finished_devices": 4}}),
    )
    .await;
    assert_eq!(status, 200, "{tried}");
    assert_eq!(
        (
            tried["tripped"].clone(),
            tried["at"]["finished"].clone(),
            tried["at"]["failed"].clone(),
            tried["at"]["failure_percent"].clone()
        ),
        (json!(true), json!(4), json!(2), json!(50.0))
    );
    assert!(tried["at"]["time"].is_string());
    assert_eq!(
        (
            tried["devices_started_after"].clone(),
            tried["devices_failed_after"].clone()
        ),
        (json!(2), json!(1))
    );
    let (_, tried) = simulate(
        &fleet,
        &plain,
        json!({"policy": {"failure_threshold_percent": 70, "min_finished_devices": 1}}),
    )
    .await;
    assert_eq!(tried["tripped"], true, "s1 alone is 100 %: {tried}");
    let (_, tried) = simulate(
        &fleet,
        &plain,
        json!({"policy": {"failure_threshold_percent": 70, "min_finished_devices": 3}}),
    )
    .await;
    assert_eq!(
        tried["tripped"], false,
        "at most 2 of 3, 2 of 4, 3 of 5: {tried}"
    );

    for (body, field) in [
        (json!({}), "policy"),
        (
            json!({"policy": {"failure_threshold_percent": 0}}),
            "policy.failure_threshold_percent",
        ),
        (
            json!({"policy": {"failure_threshold_percent": 20, "colour": 1}}),
            "colour",
        ),
        (
            json!({"policy": {"failure_threshold_percent": 20}, "retries": 11}),
            "retries",
        ),
        (
            json!({"policy": {"failure_threshold_percent": 20}, "when": "now"}),
            "when",
        ),
    ] {
        let (status, answer) = simulate(&fleet, &plain, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{body}: {answer}"
        );
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        simulate(
            &fleet,
            &unknown,
            json!({"policy": {"failure_threshold_percent": 20}})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        fleet.server.head().await,
        head,
        "simulations and refusals record nothing"
    );
}

/// Ten failures reported at the same moment, each deciding without the others: the policy
/// trips once all the same (by a report, or by the rollout checks a few seconds later).
async fn racing_reports_that_cross_the_threshold_trip_the_policy_once(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let devices: Vec<String> = (1..=20).map(|n| format!("racing-{n}")).collect();
    let (status, body, id) = fleet
        .create(
            json!({"name": "racing", "artifact_name": "release-2", "devices": devices,
                       "policy": {"failure_threshold_percent": 50, "min_finished_devices": 10}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    for device in &devices[..10] {
        assert_eq!(fleet.next(device, "release-1", "pi").await.0, 200);
    }
    let reports = devices[..10]
        .iter()
        .map(|device| fleet.report(device, &id, "failure"));
    for (code, body) in futures::future::join_all(reports).await {
        assert_eq!(code, 204, "{body}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let deployment = loop {
        let deployment = fleet.deployment(&id).await;
        if deployment["paused"] == true {
            break deployment;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never paused: {deployment}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(deployment["policy_trip"]["failed"], 10, "{deployment}");
    assert_eq!(fleet.next(&devices[10], "release-1", "pi").await.0, 204);
    let log = fleet.server.log().await;
    let trips = log
        .read_stream(
            &events::TenantId::default(),
            &events::StreamName::new(format!("deployment-{id}")),
            0,
        )
        .await
        .unwrap()
        .iter()
        .filter(|event| event.event_type == "DeploymentPaused")
        .count();
    assert_eq!(trips, 1);
}

async fn a_failure_policy_pauses_or_aborts_the_rollout(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let head = fleet.server.head().await;
    for (policy, field) in [
        (
            json!({"failure_threshold_percent": 0}),
            "policy.failure_threshold_percent",
        ),
        (
            json!({"failure_threshold_percent": 101}),
            "policy.failure_threshold_percent",
        ),
        (
            json!({"min_finished_devices": 5}),
            "policy.failure_threshold_percent",
        ),
        (
            json!({"failure_threshold_percent": 20, "min_finished_devices": 0}),
            "policy.min_finished_devices",
        ),
        (
            json!({"failure_threshold_percent": 20, "on_threshold": "stop"}),
            "policy.on_threshold",
        ),
        (
            json!({"failure_threshold_percent": 20, "device_timeout_seconds": 59}),
            "policy.device_timeout_seconds",
        ),
        (
            json!({"failure_threshold_percent": 20, "device_timeout_seconds": 31_536_001}),
            "policy.device_timeout_seconds",
        ),
        // Past what a deadline can be computed for: refused, not left to stop the checks.
        (
            json!({"failure_threshold_percent": 20, "device_timeout_seconds": 10_000_000_000_000_000_i64}),
            "policy.device_timeout_seconds",
        ),
        (
            json!({"failure_threshold_percent": 20, "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, body, _) = fleet
            .create(json!({"name": "bad", "artifact_name": "release-2", "devices": ["x"], "policy": policy}))
            .await;
        assert_eq!(status, 400, "{policy}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(field),
            "{policy}: {body}"
        );
    }
    assert_eq!(
        fleet.server.head().await,
        head,
        "refused policies record nothing"
    );

    for on_threshold in ["pause", "abort"] {
        let devices: Vec<String> = (1..=12).map(|n| format!("{on_threshold}-{n}")).collect();
        let (status, body, id) = fleet
            .create(
                json!({"name": on_threshold, "artifact_name": "release-2", "devices": devices,
                "policy": {"failure_threshold_percent": 20, "min_finished_devices": 10,
                           "on_threshold": on_threshold}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = id.unwrap();
        assert_eq!(
            fleet.deployment(&id).await["policy"],
            json!({"failure_threshold_percent": 20, "min_finished_devices": 10, "on_threshold": on_threshold})
        );
        // Three of the first ten fail: 30 % once ten have finished.
        for (n, device) in devices[..10].iter().enumerate() {
            assert_eq!(
                fleet.next(device, "release-1", "pi").await.0,
                200,
                "{device}"
            );
            let outcome = if n < 3 { "failure" } else { "success" };
            assert_eq!(fleet.report(device, &id, outcome).await.0, 204);
            if n < 9 {
                assert_eq!(
                    fleet.deployment(&id).await["paused"],
                    false,
                    "not before ten"
                );
            }
        }
        let deployment = fleet.deployment(&id).await;
        let trip = json!({"finished": 10, "failed": 3, "failure_percent": 30.0});
        assert_eq!(deployment["policy_trip"], trip, "{deployment}");
        assert_eq!(
            fleet.next(&devices[10], "release-1", "pi").await.0,
            204,
            "the eleventh device gets nothing"
        );
        if on_threshold == "pause" {
            assert_eq!(deployment["paused"], true);
            assert_eq!(deployment["pause_cause"]["kind"], "policy");
            assert_eq!(deployment["pause_cause"]["failed"], 3);
            assert_eq!(fleet.pause_or_resume(&id, "resume").await.0, 204);
            assert_eq!(
                fleet.next(&devices[10], "release-1", "pi").await.0,
                200,
                "resumed"
            );
            assert_eq!(fleet.report(&devices[10], &id, "failure").await.0, 204);
            assert_eq!(
                fleet.deployment(&id).await["paused"],
                false,
                "it trips once"
            );
        } else {
            assert_eq!(deployment["status"], "finished");
            assert_eq!(fleet.statistics(&id).await["aborted"], 0);
            assert_eq!(fleet.pause_or_resume(&id, "resume").await.0, 422);
        }
    }
}

/// A device for which the deployment has no artifact finishes its entry as it joins
/// (`noartifact`): the policy counts it then, as it counts a report, not seconds later.
async fn a_device_that_joins_finished_is_counted_by_the_policy_at_once(server: TestServer) {
    let fleet = Fleet::new(server).await;
    let (status, body, id) = fleet
        .create(
            json!({"name": "joins", "artifact_name": "release-2", "devices": ["j1", "j2", "j3"],
                       "policy": {"failure_threshold_percent": 50, "min_finished_devices": 2}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    assert_eq!(fleet.next("j1", "release-1", "pi").await.0, 200);
    assert_eq!(fleet.report("j1", &id, "failure").await.0, 204);
    assert_eq!(fleet.deployment(&id).await["paused"], false, "one finished");
    // No artifact of release-2 is for x86: j2's entry is final as it joins, 1 of 2 failed.
    assert_eq!(fleet.next("j2", "release-1", "x86").await.0, 204);
    let deployment = fleet.deployment(&id).await;
    assert_eq!(deployment["paused"], true, "{deployment}");
    assert_eq!(
        deployment["policy_trip"],
        json!({"finished": 2, "failed": 1, "failure_percent": 50.0})
    );
    assert_eq!(fleet.next("j3", "release-1", "pi").await.0, 204, "paused");
}

on_both_backends!(
    racing_reports_that_cross_the_threshold_trip_the_policy_once,
    a_device_that_joins_finished_is_counted_by_the_policy_at_once,
    each_change_of_an_entry_names_its_cause_and_a_policy_can_be_tried_on_the_past,
    a_failed_device_is_retried_and_counted_by_its_latest_attempt,
    a_failure_policy_pauses_or_aborts_the_rollout,
    a_paused_deployment_serves_only_devices_already_updating,
    a_created_deployment_is_readable_at_its_location,
    a_deployment_to_a_hundred_thousand_devices_is_accepted,
    bad_deployment_requests_are_400_and_change_nothing,
    no_artifact_for_the_deployment_is_422,
    an_identical_active_deployment_is_409,
    next_serves_the_oldest_deployment_with_a_24_hour_link,
    next_needs_artifact_name_and_device_type,
    nothing_pending_is_204,
    an_incompatible_device_is_noartifact_and_an_installed_one_already_installed,
    force_installation_serves_even_the_installed_artifact,
    different_data_for_the_same_deployment_fails_the_device_with_409,
    status_reports_move_the_entry_and_finish_the_deployment,
    bad_status_reports_are_refused,
    an_abort_finishes_the_deployment_and_refuses_later_reports,
    a_decommissioned_device_is_refused_and_removal_is_always_204,
    a_device_log_is_stored_for_its_entry,
    a_phase_admits_its_batch_and_others_wait,
    parallel_requests_keep_every_invariant,
    an_artifact_in_use_cannot_be_edited_or_deleted,
    a_new_deployment_after_a_finished_one_is_served,
    an_artifact_is_never_deleted_under_a_deployment_created_at_once,
    random_commands_keep_statistics_and_rebuilds_exact,
    as_of_shows_a_deployment_as_it_was
);
