//! The audit feed over real HTTP and the NDJSON export, on both backend sets.

use std::time::Duration;

use crate::support::{rootfs_artifact, TestServer};
use events::RecordedEvent;
use futures::StreamExt;
use http_edge::auth::TokenKind;
use serde_json::{json, Value};

const EVENTS: &str = "/api/management/v1/deployments/events";

/// Uploads an artifact and creates a deployment as `tenant`'s user: a few events of its own.
async fn some_history(server: &TestServer, tenant: &str, name: &str) {
    let token = server.token("admin", tenant, TokenKind::User);
    let dir = tempfile::tempdir().unwrap();
    let file = rootfs_artifact(dir.path(), name, &["pi"], 4000);
    let form = reqwest::multipart::Form::new().part(
        "artifact",
        reqwest::multipart::Part::bytes(std::fs::read(file).unwrap()).file_name("a.mender"),
    );
    let response = server
        .client
        .post(server.url("/api/management/v1/deployments/artifacts"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = server
        .client
        .post(server.url("/api/management/v1/deployments/deployments"))
        .bearer_auth(&token)
        .json(&json!({"name": name, "artifact_name": name, "devices": ["d1", "d2"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

/// Two histories of tenant `acme` and one of `globex` between them; answers acme's events,
/// read from the log itself.
async fn two_tenants_history(server: &TestServer) -> Vec<RecordedEvent> {
    some_history(server, "acme", "a-1").await;
    some_history(server, "globex", "g-1").await;
    some_history(server, "acme", "a-2").await;
    server
        .log()
        .await
        .read_all(events::Position::START, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.tenant.as_str() == "acme")
        .collect()
}

async fn a_tenant_pages_through_its_own_events(server: TestServer) {
    let expected: Vec<u64> = two_tenants_history(&server)
        .await
        .into_iter()
        .map(|event| event.position.0)
        .collect();
    assert_eq!(expected.len(), 4);

    let token = server.token("auditor", "acme", TokenKind::User);
    let mut after = "0".to_owned();
    let mut seen = Vec::new();
    loop {
        let (status, page) = server
            .get(&format!("{EVENTS}?after={after}&limit=3"), Some(&token))
            .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            assert_eq!(page["next"], after, "an empty page keeps the cursor");
            break;
        }
        for event in events {
            assert_eq!(event["tenant"], "acme");
            assert!(event["event_id"].is_string() && event["payload"].is_object());
            seen.push(event["position"].as_u64().unwrap());
        }
        after = page["next"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, expected);

    for bad in ["after=x", "after=-1", "limit=0", "limit=5000", "limit=z"] {
        let (status, body) = server.get(&format!("{EVENTS}?{bad}"), Some(&token)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let device = server.token("d1", "acme", TokenKind::Device);
    assert_eq!(server.get(EVENTS, Some(&device)).await.0, 403);
}

/// Reads Server-Sent Events until `count` have arrived: (id, event type, data).
async fn read_events(response: reqwest::Response, count: usize) -> Vec<(u64, String, Value)> {
    let mut chunks = response.bytes_stream();
    let mut buffer = String::new();
    let mut found = Vec::new();
    while found.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), chunks.next())
            .await
            .expect("the tail delivers within seconds")
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), Value::Null);
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse().ok();
                } else if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = serde_json::from_str(value.trim()).unwrap();
                }
            }
            if let Some(id) = id {
                found.push((id, kind, data));
            }
        }
    }
    found
}

async fn the_live_tail_resumes_from_last_event_id(server: TestServer) {
    some_history(&server, "acme", "a-1").await;
    some_history(&server, "globex", "g-1").await;
    let log = server.log().await;
    let acme: Vec<u64> = log
        .read_all(events::Position::START, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.tenant.as_str() == "acme")
        .map(|event| event.position.0)
        .collect();
    let token = server.token("auditor", "acme", TokenKind::User);
    let response = server
        .client
        .get(server.url(&format!("{EVENTS}/stream")))
        .bearer_auth(&token)
        .header("Last-Event-ID", acme[0].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let writer = {
        let server_url = server.base.clone();
        let token = server.token("admin", "acme", TokenKind::User);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let response = reqwest::Client::new()
                .post(format!(
                    "{server_url}/api/management/v1/deployments/deployments"
                ))
                .bearer_auth(token)
                .json(&json!({"name": "live", "artifact_name": "a-1", "devices": ["d9"]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        })
    };
    let received = read_events(response, acme.len()).await;
    writer.await.unwrap();
    let ids: Vec<u64> = received.iter().map(|(id, _, _)| *id).collect();
    let mut expected = acme[1..].to_vec();
    let live = log.head().await.unwrap().0;
    expected.push(live);
    assert_eq!(
        ids, expected,
        "resumed after the given id, then the live event"
    );
    let (_, kind, data) = received.last().unwrap();
    assert_eq!(kind, "DeploymentCreated");
    assert_eq!(data["payload"]["name"], "live");
    assert_eq!(data["tenant"], "acme");

    let bad = server
        .client
        .get(server.url(&format!("{EVENTS}/stream")))
        .bearer_auth(&token)
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

async fn the_export_prints_every_tenant_as_ndjson(server: TestServer) {
    some_history(&server, "acme", "a-1").await;
    some_history(&server, "globex", "g-1").await;
    let head = server.head().await.0;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_deployments"));
    command
        .args(["events", "--after", "1"])
        .env_remove("DEPLOYMENTS_CONFIG")
        .env("DEPLOYMENTS_DATA_DIR", &server.settings.data_dir);
    if let Some(url) = &server.postgres_url {
        command.env("DEPLOYMENTS_EVENT_LOG_URL", url);
    }
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let positions: Vec<u64> = lines
        .iter()
        .map(|event| event["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (2..=head).collect::<Vec<_>>());
    let tenants: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|event| event["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(
        tenants.into_iter().collect::<Vec<_>>(),
        vec!["acme", "globex"]
    );
}

/// The feed's filters, applied by the log: a stream's name or its start, an event type; and
/// the newest events before a cursor (or the end), still in log order.
async fn the_feed_filters_by_stream_and_type_and_reads_the_newest(server: TestServer) {
    let all: Vec<Value> = two_tenants_history(&server)
        .await
        .iter()
        .map(|event| serde_json::to_value(event).unwrap())
        .collect();
    let token = server.token("auditor", "acme", TokenKind::User);
    let positions = |events: &[Value]| -> Vec<u64> {
        events
            .iter()
            .map(|event| event["position"].as_u64().unwrap())
            .collect()
    };
    let page = |query: String| {
        let (server, token) = (&server, &token);
        async move {
            let (status, page) = server.get(&format!("{EVENTS}?{query}"), Some(token)).await;
            assert_eq!(status, 200, "{query}: {page}");
            page
        }
    };
    let picked = |keep: &dyn Fn(&Value) -> bool| -> Vec<u64> {
        positions(
            &all.iter()
                .filter(|event| keep(event))
                .cloned()
                .collect::<Vec<_>>(),
        )
    };

    let created = page("type=DeploymentCreated".into()).await;
    let wanted = picked(&|event| event["event_type"] == "DeploymentCreated");
    assert_eq!(wanted.len(), 2);
    assert_eq!(positions(created["events"].as_array().unwrap()), wanted);
    assert_eq!(created["next"], wanted[1].to_string());

    // A stream's full name picks it, and so does its start, with its case.
    for prefix in [
        "artifacts",
        "art",
        "deployment",
        "deployments-",
        "Artifacts",
    ] {
        let found = page(format!("stream={prefix}&limit=1000")).await;
        let found = found["events"].as_array().unwrap();
        let expected = picked(&|event| event["stream"].as_str().unwrap().starts_with(prefix));
        assert_eq!(positions(found), expected, "{prefix}");
        assert_eq!(
            expected.is_empty(),
            ["deployments-", "Artifacts"].contains(&prefix),
            "{prefix}: {expected:?}"
        );
        // Another tenant's events of the same streams stay out.
        assert!(found.iter().all(|event| event["tenant"] == "acme"));
    }

    // The newest, before the end or before a position, oldest first.
    let everything = positions(&all);
    let newest = page("before=end&limit=3".into()).await;
    assert_eq!(
        positions(newest["events"].as_array().unwrap()),
        everything[everything.len() - 3..]
    );
    let earlier = page(format!("before={}&limit=2", everything[2])).await;
    assert_eq!(
        positions(earlier["events"].as_array().unwrap()),
        everything[..2]
    );
    let between = page(format!(
        "after={}&before={}&type=DeploymentCreated",
        everything[0],
        everything.last().unwrap() + 1
    ))
    .await;
    assert_eq!(positions(between["events"].as_array().unwrap()), wanted);
    // A prefix alone and with a type, from the newest and before a cursor: each combination
    // of filters is a statement of its own.
    let of_deployments =
        picked(&|event| event["stream"].as_str().unwrap().starts_with("deployment"));
    let newest = page("before=end&stream=deployment&limit=1000".into()).await;
    assert_eq!(
        positions(newest["events"].as_array().unwrap()),
        of_deployments
    );
    let created_of_deployments = picked(&|event| {
        event["event_type"] == "DeploymentCreated"
            && event["stream"].as_str().unwrap().starts_with("deployment")
    });
    assert_eq!(created_of_deployments.len(), 2);
    let newest = page("before=end&stream=deployment&type=DeploymentCreated&limit=1".into()).await;
    assert_eq!(
        positions(newest["events"].as_array().unwrap()),
        created_of_deployments[1..]
    );
    let earlier = page(format!(
        "before={}&stream=deployment&type=DeploymentCreated",
        created_of_deployments[1]
    ))
    .await;
    assert_eq!(
        positions(earlier["events"].as_array().unwrap()),
        created_of_deployments[..1]
    );

    for bad in [
        "stream=",
        "type=",
        "type=Deployment%20Created",
        "type=%3Cscript%3E",
        "before=soon",
        "before=-1",
        &format!("stream={}", "s".repeat(201)),
        "stream=a%0Ab",
    ] {
        let response = server
            .client
            .get(server.url(&format!("{EVENTS}?{bad}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].is_string() && body["request_id"].is_string(),
            "{bad}: {body}"
        );
    }
}

on_both_backends!(
    a_tenant_pages_through_its_own_events,
    the_feed_filters_by_stream_and_type_and_reads_the_newest,
    the_live_tail_resumes_from_last_event_id,
    the_export_prints_every_tenant_as_ndjson
);
