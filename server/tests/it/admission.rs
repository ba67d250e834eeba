//! Device admission through the real API: devices that sign their requests with keys
//! OpenSSL made wait for an operator when auto-accept is off, appear in deviceauth's v2
//! lists, are accepted and rejected there, and lose their token's use when rejected.

use std::time::Duration;

use serde_json::{json, Value};

use crate::standalone::{assert_refused, authenticate, subject, DeviceKeys, NEXT};
use crate::support::TestServer;

const DEVICES: &str = "/api/management/v2/devauth/devices";

async fn without_auto_accept(postgres: bool) -> TestServer {
    TestServer::start_with(postgres, |settings| settings.standalone.auto_accept = false).await
}

/// Polls `path` until `ready` holds of its body: an auth request is not a management
/// command, so nothing makes a read wait for what it recorded.
async fn eventually(server: &TestServer, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let admin = server.admin();
    for _ in 0..100 {
        let (status, body) = server.get(path, Some(&admin)).await;
        if status == 200 && ready(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never showed what was expected");
}

async fn set_status(
    server: &TestServer,
    device: &str,
    set: &str,
    status: &str,
) -> reqwest::Response {
    server
        .client
        .put(server.url(&format!("{DEVICES}/{device}/auth/{set}/status")))
        .bearer_auth(server.admin())
        .json(&json!({ "status": status }))
        .send()
        .await
        .unwrap()
}

async fn next(server: &TestServer, token: &str) -> u16 {
    server
        .client
        .get(server.url(&format!("{NEXT}?artifact_name=a&device_type=qemu")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn count(server: &TestServer, status: &str) -> i64 {
    let (code, body) = server
        .get(
            &format!("{DEVICES}/count?status={status}"),
            Some(&server.admin()),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    body["count"].as_i64().unwrap()
}

async fn a_device_waits_for_an_operator_who_accepts_then_rejects_it(postgres: bool) {
    let server = without_auto_accept(postgres).await;
    let keys = DeviceKeys::generate("ED25519");
    let identity = r#"{"mac":"00:11:22:33:44:55","sku":"board-7"}"#;
    let (status, _) = authenticate(&server, identity, &keys).await;
    assert_eq!(status, 401, "a new device waits for an operator");

    let listed = eventually(&server, DEVICES, |body| {
        body.as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let device = &listed[0];
    let id = device["id"].as_str().unwrap().to_owned();
    assert_eq!(device["status"], "pending");
    assert_eq!(device["decommissioning"], false);
    assert_eq!(
        device["identity_data"],
        json!({"mac": "00:11:22:33:44:55", "sku": "board-7"})
    );
    assert!(
        device.get("check_in_time").is_none(),
        "never checked in: {device}"
    );
    let sets = device["auth_sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0]["status"], "pending");
    assert_eq!(
        sets[0]["pubkey"].as_str().unwrap().trim(),
        keys.public_pem.trim()
    );
    let set = sets[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            count(&server, "pending").await,
            count(&server, "accepted").await
        ),
        (1, 0)
    );

    // Asking again while pending records nothing and is still refused.
    let head = server.head().await;
    assert_eq!(authenticate(&server, identity, &keys).await.0, 401);
    assert_eq!(server.head().await, head);

    assert_eq!(
        set_status(&server, &id, &set, "accepted").await.status(),
        204
    );
    let (_, shown) = server
        .get(&format!("{DEVICES}/{id}"), Some(&server.admin()))
        .await;
    assert_eq!(shown["status"], "accepted", "{shown}");
    let (status, token) = authenticate(&server, identity, &keys).await;
    assert_eq!(status, 200);
    assert_eq!(subject(&server, &token), id);
    assert_eq!(next(&server, &token).await, 204);
    let checked_in = eventually(&server, &format!("{DEVICES}/{id}"), |body| {
        body.get("check_in_time").is_some()
    })
    .await;
    assert_eq!(checked_in["auth_sets"][0]["status"], "accepted");

    // Rejected: the token it holds stops working at once, and it gets no other.
    assert_eq!(
        set_status(&server, &id, &set, "rejected").await.status(),
        204
    );
    assert_eq!(next(&server, &token).await, 401);
    assert_eq!(authenticate(&server, identity, &keys).await.0, 401);
    let (code, body) = server
        .get(
            &format!("{DEVICES}/{id}/auth/{set}/status"),
            Some(&server.admin()),
        )
        .await;
    assert_eq!((code, body), (200, json!({"status": "rejected"})));
    assert_eq!(count(&server, "rejected").await, 1);

    // Accepted again, the device authenticates again and polls.
    assert_eq!(
        set_status(&server, &id, &set, "accepted").await.status(),
        204
    );
    let (status, token) = authenticate(&server, identity, &keys).await;
    assert_eq!(status, 200);
    assert_eq!(next(&server, &token).await, 204);
}

async fn refused_changes_and_reads_store_nothing(postgres: bool) {
    let server = without_auto_accept(postgres).await;
    let (first, second) = (
        DeviceKeys::generate("ED25519"),
        DeviceKeys::generate("ED25519"),
    );
    authenticate(&server, r#"{"mac":"01"}"#, &first).await;
    authenticate(&server, r#"{"mac":"02"}"#, &second).await;
    let listed = eventually(&server, DEVICES, |body| {
        body.as_array().is_some_and(|d| d.len() == 2)
    })
    .await;
    let (one, other) = (&listed[0], &listed[1]);
    let id = one["id"].as_str().unwrap();
    let set = one["auth_sets"][0]["id"].as_str().unwrap();
    let others_set = other["auth_sets"][0]["id"].as_str().unwrap();
    let head = server.head().await;

    for (status, code) in [("bogus", 400), ("preauthorized", 400), ("", 400)] {
        let refused = set_status(&server, id, set, status).await;
        assert_eq!(refused.status().as_u16(), code, "status {status:?}");
        assert_refused(refused, code).await;
    }
    assert_refused(set_status(&server, id, others_set, "accepted").await, 400).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_refused(set_status(&server, &unknown, set, "accepted").await, 404).await;
    assert_refused(set_status(&server, id, &unknown, "accepted").await, 404).await;
    let not_json = server
        .client
        .put(server.url(&format!("{DEVICES}/{id}/auth/{set}/status")))
        .bearer_auth(server.admin())
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_refused(not_json, 400).await;
    let unauthenticated = server
        .client
        .put(server.url(&format!("{DEVICES}/{id}/auth/{set}/status")))
        .json(&json!({"status": "accepted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    assert_eq!(
        server.head().await,
        head,
        "a refused change records nothing"
    );

    let admin = server.admin();
    for query in [
        "status=bogus",
        "per_page=501",
        "page=0",
        "page=x",
        "per_page=0",
    ] {
        let (code, body) = server
            .get(&format!("{DEVICES}?{query}"), Some(&admin))
            .await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    let (code, body) = server
        .get(&format!("{DEVICES}/count?status=bogus"), Some(&admin))
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = server
        .get(&format!("{DEVICES}/{unknown}"), Some(&admin))
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("device not found"))
    );
    let (code, _) = server
        .get(
            &format!("{DEVICES}/{id}/auth/{unknown}/status"),
            Some(&admin),
        )
        .await;
    assert_eq!(code, 404);

    // Another tenant sees none of these devices.
    let stranger = server.token(
        "someone",
        "another-tenant",
        http_edge::auth::TokenKind::User,
    );
    let (code, body) = server.get(DEVICES, Some(&stranger)).await;
    assert_eq!((code, body), (200, json!([])));
    let (code, _) = server
        .get(&format!("{DEVICES}/{id}"), Some(&stranger))
        .await;
    assert_eq!(code, 404);
    assert_refused(
        server
            .client
            .put(server.url(&format!("{DEVICES}/{id}/auth/{set}/status")))
            .bearer_auth(&stranger)
            .json(&json!({"status": "accepted"}))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(server.head().await, head);
}

async fn lists_page_oldest_first_with_a_link_line_per_relation(postgres: bool) {
    let server = without_auto_accept(postgres).await;
    for mac in ["a1", "a2", "a3"] {
        let keys = DeviceKeys::generate("ED25519");
        authenticate(&server, &format!(r#"{{"mac":"{mac}"}}"#), &keys).await;
    }
    let all = eventually(&server, DEVICES, |body| {
        body.as_array().is_some_and(|d| d.len() == 3)
    })
    .await;
    let macs: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["identity_data"]["mac"].clone())
        .collect();
    assert_eq!(macs, ["a1", "a2", "a3"]);

    let page = |query: &'static str| {
        let server = &server;
        async move {
            let response = server
                .client
                .get(server.url(&format!("{DEVICES}?{query}")))
                .bearer_auth(server.admin())
                .send()
                .await
                .unwrap();
            let links: Vec<String> = response
                .headers()
                .get_all("link")
                .iter()
                .map(|value| value.to_str().unwrap().to_owned())
                .collect();
            let body: Value = response.json().await.unwrap();
            (body.as_array().unwrap().len(), links)
        }
    };
    let (shown, links) = page("per_page=2&status=pending").await;
    assert_eq!(shown, 2);
    assert_eq!(
        links,
        [
            format!("<{DEVICES}?page=1&per_page=2&status=pending>; rel=\"first\""),
            format!("<{DEVICES}?page=2&per_page=2&status=pending>; rel=\"next\""),
        ]
    );
    let (shown, links) = page("per_page=2&page=2&status=pending&status=accepted").await;
    assert_eq!(shown, 1);
    assert_eq!(links.len(), 2, "first and prev: {links:?}");
    assert!(links[1].ends_with("rel=\"prev\""));
    assert_eq!(page("status=accepted").await.0, 0);

    let id = all[1]["id"].as_str().unwrap();
    let (shown, _) = page_by_id(&server, id).await;
    assert_eq!(shown, 1);
}

async fn page_by_id(server: &TestServer, id: &str) -> (usize, Value) {
    let (code, body) = server
        .get(
            &format!("{DEVICES}?id={id}&id=not-there"),
            Some(&server.admin()),
        )
        .await;
    assert_eq!(code, 200);
    (body.as_array().unwrap().len(), body)
}

configured_on_both_backends!(
    a_device_waits_for_an_operator_who_accepts_then_rejects_it,
    refused_changes_and_reads_store_nothing,
    lists_page_oldest_first_with_a_link_line_per_relation
);
