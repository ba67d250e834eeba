//! Device admission through the real API: devices that sign their requests with keys
//! OpenSSL made wait for an operator when auto-accept is off, appear in deviceauth's v2
//! lists, are accepted and rejected there, and lose their token's use when rejected.

use std::time::Duration;

use serde_json::{json, Value};

use crate::standalone::{
    assert_refused, auth_body, authenticate, post_auth_request, subject, DeviceKeys, NEXT,
};
use crate::support::{eventually, TestServer};

const DEVICES: &str = "/api/management/v2/devauth/devices";

async fn without_auto_accept(postgres: bool) -> TestServer {
    TestServer::start_with(postgres, |settings| {
        settings.standalone.admission.auto_accept = false
    })
    .await
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
    let body = auth_body(identity, &keys);
    let response = post_auth_request(&server, &body, Some(&keys.sign(body.as_bytes()))).await;
    assert_eq!(response.status(), 401, "a new device waits for an operator");
    // Answered, like a command, once what it recorded reads back: the answer names the log
    // position it waited for, and the list shows the device at once.
    assert!(
        response
            .headers()
            .contains_key("x-deployments-log-position"),
        "{:?}",
        response.headers()
    );
    let (status, listed) = server.get(DEVICES, Some(&server.admin())).await;
    assert_eq!(status, 200);
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
    let token_before = token;
    polls_with_a_new_token(&server, identity, &keys).await;
    assert_eq!(
        next(&server, &token_before).await,
        401,
        "a token issued before the rejection does not stand again"
    );
}

/// Authenticates until the token it gets is taken: one issued in the same second as the
/// device's last revocation is refused (tokens carry whole seconds), and the device, like
/// mender-client, asks again.
async fn polls_with_a_new_token(server: &TestServer, identity: &str, keys: &DeviceKeys) {
    // Past the next whole second the new token is taken: two attempts at most (each counts
    // against the admission throttle).
    for _ in 0..2 {
        let (status, token) = authenticate(server, identity, keys).await;
        assert_eq!(status, 200);
        match next(server, &token).await {
            204 => return,
            401 => tokio::time::sleep(Duration::from_millis(1100)).await,
            other => panic!("next answered {other}"),
        }
    }
    panic!("no token issued after the revocation was taken");
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

    // The search takes the filters as JSON, one value or a list.
    let search = |body: reqwest::Body, content_type: &'static str| {
        let server = &server;
        async move {
            let response = server
                .client
                .post(server.url(&format!("{DEVICES}/search?per_page=2")))
                .bearer_auth(server.admin())
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let links = response.headers().get_all("link").iter().count();
            (
                status,
                links,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let json = "application/json";
    let (status, links, found) =
        search(json!({"status": "pending"}).to_string().into(), json).await;
    assert_eq!(
        (status, links, found.as_array().map(Vec::len)),
        (200, 2, Some(2))
    );
    let (_, _, found) = search(
        json!({"id": [id, "x"], "status": ["pending"]})
            .to_string()
            .into(),
        json,
    )
    .await;
    assert_eq!(found[0]["id"], id);
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let (status, _, found) = search(json!({"status": ["bogus"]}).to_string().into(), json).await;
    assert_eq!(
        (status, found),
        (200, json!([])),
        "an unknown status matches nothing"
    );
    let (status, _, _) = search("status=pending".into(), "application/x-www-form-urlencoded").await;
    assert_eq!(status, 415);
    let (status, _, _) = search("{".into(), json).await;
    assert_eq!(status, 400);
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

async fn preauthorize(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .client
        .post(server.url(DEVICES))
        .bearer_auth(server.admin())
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn delete(server: &TestServer, path: &str) -> u16 {
    server
        .client
        .delete(server.url(path))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn a_preauthorized_device_is_accepted_on_its_first_request(postgres: bool) {
    let server = without_auto_accept(postgres).await;
    let keys = DeviceKeys::generate("ED25519");
    let identity = json!({"mac": "0a:00:00:00:00:01", "sku": "gw"});
    let created = preauthorize(
        &server,
        json!({"identity_data": identity, "pubkey": keys.public_pem}),
    )
    .await;
    assert_eq!(created.status().as_u16(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert!(created.text().await.unwrap().is_empty());
    let id = location
        .strip_prefix("devices/")
        .expect("a relative location")
        .to_owned();
    let (code, device) = server
        .get(&format!("{DEVICES}/{id}"), Some(&server.admin()))
        .await;
    assert_eq!(code, 200, "{device}");
    assert_eq!(device["status"], "preauthorized");
    assert_eq!(device["identity_data"], identity);
    assert_eq!(device["auth_sets"][0]["status"], "preauthorized");

    // The same identity again: 409 naming the device.
    let head = server.head().await;
    let conflict = preauthorize(
        &server,
        json!({"identity_data": identity, "pubkey": keys.public_pem}),
    )
    .await;
    assert_eq!(conflict.status().as_u16(), 409);
    let body: Value = conflict.json().await.unwrap();
    assert_eq!(
        (body["id"].as_str(), &body["identity_data"]),
        (Some(id.as_str()), &identity)
    );
    assert!(
        body["error"].is_string() && body["request_id"].is_string(),
        "{body}"
    );
    for bad in [
        json!({"pubkey": keys.public_pem}),
        json!({"identity_data": {}, "pubkey": keys.public_pem}),
        json!({"identity_data": {"mac": "x"}}),
        json!({"identity_data": {"mac": "x"}, "pubkey": "not a key"}),
        json!({"identity_data": "mac=x", "pubkey": keys.public_pem}),
    ] {
        assert_refused(preauthorize(&server, bad.clone()).await, 400).await;
    }
    assert_eq!(server.head().await, head, "refusals record nothing");

    let id_data = identity.to_string();
    let (status, token) = authenticate(&server, &id_data, &keys).await;
    assert_eq!(status, 200, "preauthorized: accepted on its first request");
    assert_eq!(subject(&server, &token), id);
    eventually(&server, &format!("{DEVICES}/{id}"), |device| {
        device["status"] == "accepted"
    })
    .await;
    // Another key for the same identity waits for an operator.
    let other = DeviceKeys::generate("ED25519");
    assert_eq!(authenticate(&server, &id_data, &other).await.0, 401);
}

async fn decommissioned_and_dismissed_devices_lose_their_tokens(postgres: bool) {
    let server = TestServer::start(postgres).await;
    let (first, second) = (
        DeviceKeys::generate("ED25519"),
        DeviceKeys::generate("ED25519"),
    );
    let (_, first_token) = authenticate(&server, r#"{"mac":"d1"}"#, &first).await;
    let (_, second_token) = authenticate(&server, r#"{"mac":"d2"}"#, &second).await;
    let first_id = subject(&server, &first_token);
    let second_id = subject(&server, &second_token);
    assert_eq!(next(&server, &first_token).await, 204);

    assert_eq!(delete(&server, &format!("{DEVICES}/{first_id}")).await, 204);
    assert_eq!(
        next(&server, &first_token).await,
        401,
        "decommissioned: its token is refused"
    );
    let (code, _) = server
        .get(&format!("{DEVICES}/{first_id}"), Some(&server.admin()))
        .await;
    assert_eq!(code, 404);
    assert_eq!(delete(&server, &format!("{DEVICES}/{first_id}")).await, 404);

    let device = eventually(&server, &format!("{DEVICES}/{second_id}"), |body| {
        body["auth_sets"]
            .as_array()
            .is_some_and(|sets| sets.len() == 1)
    })
    .await;
    let set = device["auth_sets"][0]["id"].as_str().unwrap();
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        delete(&server, &format!("{DEVICES}/{second_id}/auth/{unknown}")).await,
        404
    );
    assert_eq!(
        delete(&server, &format!("{DEVICES}/{unknown}/auth/{set}")).await,
        404
    );
    assert_eq!(
        delete(&server, &format!("{DEVICES}/{second_id}/auth/{set}")).await,
        204
    );
    assert_eq!(
        next(&server, &second_token).await,
        401,
        "its accepted set is gone"
    );
    let (_, device) = server
        .get(&format!("{DEVICES}/{second_id}"), Some(&server.admin()))
        .await;
    assert_eq!(
        (
            device["status"].as_str(),
            device["auth_sets"].as_array().map(Vec::len)
        ),
        (Some("noauth"), Some(0))
    );

    // A decommissioned device that asks again starts over (here auto-accept admits it); the
    // token it held before stays refused.
    polls_with_a_new_token(&server, r#"{"mac":"d1"}"#, &first).await;
    assert_eq!(next(&server, &first_token).await, 401);
}

async fn accepting_past_max_devices_is_422(postgres: bool) {
    let server = TestServer::start_with(postgres, |settings| {
        settings.standalone.admission.auto_accept = false;
        settings.max_devices = Some(1);
    })
    .await;
    let admin = server.admin();
    let (code, body) = server
        .get(
            "/api/management/v2/devauth/limits/max_devices",
            Some(&admin),
        )
        .await;
    assert_eq!((code, body), (200, json!({"limit": 1})));
    let (code, _) = server
        .get("/api/management/v2/devauth/limits/max_things", Some(&admin))
        .await;
    assert_eq!(code, 400);

    let keys = [
        DeviceKeys::generate("ED25519"),
        DeviceKeys::generate("ED25519"),
    ];
    for (n, keys) in keys.iter().enumerate() {
        authenticate(&server, &format!(r#"{{"mac":"m{n}"}}"#), keys).await;
    }
    let listed = eventually(&server, DEVICES, |body| {
        body.as_array().is_some_and(|d| d.len() == 2)
    })
    .await;
    let ids_and_sets: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_owned(),
                d["auth_sets"][0]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let [(first, first_set), (second, second_set)] = ids_and_sets.as_slice() else {
        panic!("two devices")
    };
    assert_eq!(
        set_status(&server, first, first_set, "accepted")
            .await
            .status(),
        204
    );
    let head = server.head().await;
    let refused = set_status(&server, second, second_set, "accepted").await;
    assert_eq!(refused.status().as_u16(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "maximum number of accepted devices reached");
    assert_eq!(server.head().await, head, "nothing recorded");
    // A seat freed is a seat taken.
    assert_eq!(
        set_status(&server, first, first_set, "rejected")
            .await
            .status(),
        204
    );
    assert_eq!(
        set_status(&server, second, second_set, "accepted")
            .await
            .status(),
        204
    );

    let unlimited = TestServer::start(postgres).await;
    let (_, body) = unlimited
        .get(
            "/api/management/v2/devauth/limits/max_devices",
            Some(&unlimited.admin()),
        )
        .await;
    assert_eq!(body, json!({"limit": -1}));
}

/// Acceptances racing for the last places: each is decided after the one before it took its
/// place, so no more devices are accepted than the limit lets in.
async fn racing_acceptances_never_pass_max_devices(postgres: bool) {
    const LIMIT: usize = 3;
    let server = TestServer::start_with(postgres, |settings| {
        settings.standalone.admission.auto_accept = false;
        settings.max_devices = Some(LIMIT as u64);
    })
    .await;
    let keys: Vec<DeviceKeys> = (0..2 * LIMIT)
        .map(|_| DeviceKeys::generate("ED25519"))
        .collect();
    for (n, keys) in keys.iter().enumerate() {
        assert_eq!(
            authenticate(&server, &format!(r#"{{"mac":"race{n}"}}"#), keys)
                .await
                .0,
            401
        );
    }
    let listed = eventually(&server, DEVICES, |body| {
        body.as_array().is_some_and(|d| d.len() == 2 * LIMIT)
    })
    .await;
    let accepting = listed.as_array().unwrap().iter().map(|device| {
        let (id, set) = (
            device["id"].as_str().unwrap().to_owned(),
            device["auth_sets"][0]["id"].as_str().unwrap().to_owned(),
        );
        let server = &server;
        async move {
            set_status(server, &id, &set, "accepted")
                .await
                .status()
                .as_u16()
        }
    });
    let mut answers = futures::future::join_all(accepting).await;
    answers.sort();
    assert_eq!(
        answers,
        [[204; LIMIT], [422; LIMIT]].concat(),
        "as many accepted as the limit, the rest refused"
    );
    assert_eq!(count(&server, "accepted").await, LIMIT as i64);
}

/// The statuses a device can have, in the order [`counts`] gives their counts.
const STATUSES: [&str; 5] = ["accepted", "pending", "rejected", "preauthorized", "noauth"];

/// The count of each of [`STATUSES`], then the count of all devices, as the console asks.
async fn counts(server: &TestServer) -> [i64; 6] {
    let mut counts = [0; 6];
    for (n, status) in STATUSES.iter().enumerate() {
        counts[n] = count(server, status).await;
    }
    let (code, body) = server
        .get(&format!("{DEVICES}/count"), Some(&server.admin()))
        .await;
    assert_eq!(code, 200, "{body}");
    counts[5] = body["count"].as_i64().unwrap();
    counts
}

/// Waits until the [`counts`] are `expected` (a device's own request is no management
/// command that waits for the read models), and checks them against the device list.
async fn counts_are(server: &TestServer, expected: [i64; 6], after: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut counted = counts(server).await;
    while counted != expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        counted = counts(server).await;
    }
    assert_eq!(counted, expected, "counts after {after}");
    let (_, listed) = server
        .get(&format!("{DEVICES}?per_page=500"), Some(&server.admin()))
        .await;
    let listed = listed.as_array().unwrap();
    let mut tally = [0; 6];
    for (n, status) in STATUSES.iter().enumerate() {
        tally[n] = listed.iter().filter(|d| d["status"] == *status).count() as i64;
    }
    tally[5] = listed.len() as i64;
    assert_eq!(tally, expected, "the device list after {after}");
}

/// A device of the list by its `mac`, with the id of its first auth set.
async fn device_with_mac(server: &TestServer, mac: &str) -> (String, String) {
    let (_, listed) = server
        .get(&format!("{DEVICES}?per_page=500"), Some(&server.admin()))
        .await;
    let device = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["identity_data"]["mac"] == mac)
        .unwrap_or_else(|| panic!("no device {mac} in {listed}"));
    (
        device["id"].as_str().unwrap().to_owned(),
        device["auth_sets"][0]["id"].as_str().unwrap().to_owned(),
    )
}

/// The counts by status the console shows follow every change of a device's admission, and
/// a rebuild from the log gives them again.
async fn device_counts_follow_every_admission_change(postgres: bool) {
    let server = without_auto_accept(postgres).await;
    let preauthorized = DeviceKeys::generate("ED25519");
    let created = preauthorize(
        &server,
        json!({"identity_data": {"mac": "p"}, "pubkey": preauthorized.public_pem}),
    )
    .await;
    assert_eq!(created.status().as_u16(), 201);
    counts_are(&server, [0, 0, 0, 1, 0, 1], "a preauthorization").await;

    let (first, second) = (
        DeviceKeys::generate("ED25519"),
        DeviceKeys::generate("ED25519"),
    );
    assert_eq!(authenticate(&server, r#"{"mac":"a"}"#, &first).await.0, 401);
    assert_eq!(
        authenticate(&server, r#"{"mac":"b"}"#, &second).await.0,
        401
    );
    counts_are(&server, [0, 2, 0, 1, 0, 3], "two devices asking").await;
    let (a, a_set) = device_with_mac(&server, "a").await;
    let (b, b_set) = device_with_mac(&server, "b").await;

    assert_eq!(
        set_status(&server, &a, &a_set, "accepted").await.status(),
        204
    );
    counts_are(&server, [1, 1, 0, 1, 0, 3], "an acceptance").await;
    assert_eq!(
        set_status(&server, &b, &b_set, "rejected").await.status(),
        204
    );
    counts_are(&server, [1, 0, 1, 1, 0, 3], "a rejection").await;
    // Another key of an accepted device is a set, not a device: it stays accepted.
    let other = DeviceKeys::generate("ED25519");
    assert_eq!(authenticate(&server, r#"{"mac":"a"}"#, &other).await.0, 401);
    counts_are(&server, [1, 0, 1, 1, 0, 3], "a second key").await;

    let (status, _) = authenticate(&server, r#"{"mac":"p"}"#, &preauthorized).await;
    assert_eq!(status, 200);
    counts_are(
        &server,
        [2, 0, 1, 0, 0, 3],
        "a preauthorized device's request",
    )
    .await;

    // Dismissed, its only set gone, a device that was once pending stays as `noauth`.
    assert_eq!(
        delete(&server, &format!("{DEVICES}/{b}/auth/{b_set}")).await,
        204
    );
    counts_are(&server, [2, 0, 0, 0, 1, 3], "a dismissal").await;
    assert_eq!(delete(&server, &format!("{DEVICES}/{a}")).await, 204);
    counts_are(&server, [1, 0, 0, 0, 1, 2], "a decommission").await;
    // A device that only ever was preauthorized goes with its set.
    let keys = DeviceKeys::generate("ED25519");
    let created = preauthorize(
        &server,
        json!({"identity_data": {"mac": "q"}, "pubkey": keys.public_pem}),
    )
    .await;
    assert_eq!(created.status().as_u16(), 201);
    counts_are(&server, [1, 0, 0, 1, 1, 3], "another preauthorization").await;
    let (q, q_set) = device_with_mac(&server, "q").await;
    assert_eq!(
        delete(&server, &format!("{DEVICES}/{q}/auth/{q_set}")).await,
        204
    );
    counts_are(&server, [1, 0, 0, 0, 1, 2], "dismissing a preauthorization").await;

    // Another tenant has devices of none of these statuses.
    let stranger = server.token(
        "someone",
        "another-tenant",
        http_edge::auth::TokenKind::User,
    );
    let (code, body) = server
        .get(&format!("{DEVICES}/count"), Some(&stranger))
        .await;
    assert_eq!((code, body), (200, json!({"count": 0})));

    server.rebuild().await;
    counts_are(&server, [1, 0, 0, 0, 1, 2], "a rebuild").await;
}

configured_on_both_backends!(
    device_counts_follow_every_admission_change,
    racing_acceptances_never_pass_max_devices,
    a_device_waits_for_an_operator_who_accepts_then_rejects_it,
    refused_changes_and_reads_store_nothing,
    lists_page_oldest_first_with_a_link_line_per_relation,
    a_preauthorized_device_is_accepted_on_its_first_request,
    decommissioned_and_dismissed_devices_lose_their_tokens,
    accepting_past_max_devices_is_422
);
