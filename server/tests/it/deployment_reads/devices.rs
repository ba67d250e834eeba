//! A deployment's devices, targeted devices and logs; a device's history; tenant isolation.

use chrono::{DateTime, Utc};
use http_edge::auth::TokenKind;
use uuid::Uuid;

use super::*;

/// The device ids of a list of entries.
fn device_ids(answer: &Answer) -> Vec<String> {
    answer.ids()
}

pub async fn device_lists_filter_by_status_and_status_groups(fixture: Fixture) {
    let id = deployment(&fixture, "mixed", &["a", "b", "c", "d", "e", "f"]).await;
    let reports = [
        ("a", vec![]),
        ("b", vec![Downloading]),
        ("c", vec![Downloading, PauseBeforeRebooting]),
        ("d", vec![Installing, Success]),
        ("e", vec![Failure]),
    ];
    for (device, statuses) in reports {
        let mut events = vec![joined(id, device, Pending)];
        events.extend(
            statuses
                .into_iter()
                .map(|status| changed(id, device, status)),
        );
        on_device(&fixture, device, events).await;
    }
    on_device(&fixture, "f", vec![joined(id, "f", NoArtifact)]).await;

    let all = fixture.get(&format!("{DEPLOYMENTS}/{id}/devices")).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(device_ids(&all), ["a", "b", "c", "d", "e", "f"]);
    let entry = &all.json[3];
    assert_eq!(entry["status"], "success");
    assert_eq!(entry["device_type"], "raspberrypi4");
    assert_eq!(entry["log"], false);
    assert_eq!(entry["attempts"], 1, "the first attempt");
    assert!(entry["created"].is_string() && entry["finished"].is_string());
    assert!(entry["started"].is_string());
    assert!(all.json[0].get("started").is_none() && all.json[0].get("finished").is_none());

    let list = |query: &str| format!("{DEPLOYMENTS}/{id}/devices/list?{query}");
    // Mender's order: by status number (failure first, pending after the active states).
    let every = fixture.get(&list("")).await;
    assert_eq!(device_ids(&every), ["e", "c", "b", "a", "d", "f"]);
    assert_eq!(every.header("x-total-count"), "6");
    for (status, expected) in [
        ("pause", vec!["c"]),
        ("active", vec!["c", "b", "a"]),
        ("finished", vec!["e", "d", "f"]),
        ("success", vec!["d"]),
        ("pause_before_rebooting", vec!["c"]),
        ("aborted", vec![]),
    ] {
        let answer = fixture.get(&list(&format!("status={status}"))).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(device_ids(&answer), expected, "status={status}");
        assert_eq!(
            answer.header("x-total-count"),
            expected.len().to_string(),
            "status={status}"
        );
    }
    let first_page = fixture.get(&list("status=active&per_page=2")).await;
    assert_eq!(device_ids(&first_page), ["c", "b"]);
    assert!(first_page
        .header("link")
        .contains("page=2&per_page=2&status=active>; rel=\"next\""));
    let second_page = fixture.get(&list("status=active&per_page=2&page=2")).await;
    assert_eq!(device_ids(&second_page), ["a"]);

    fixture
        .refused(&list("status=paused"), "status: must be a valid value")
        .await;
    fixture
        .refused(&list("per_page=501"), "Param per_page is out of bounds")
        .await;
    fixture
        .refused(
            &format!("{DEPLOYMENTS}/nope/devices/list"),
            "ID is not a valid UUID",
        )
        .await;
    let unknown = Uuid::new_v4();
    for path in ["devices", "devices/list"] {
        let answer = fixture
            .get(&format!("{DEPLOYMENTS}/{unknown}/{path}"))
            .await;
        assert_eq!(answer.status, 404, "{path}");
    }
}

pub async fn device_list_names_the_targeted_devices(fixture: Fixture) {
    let id = deployment(&fixture, "few", &["zeta", "alpha", "mu"]).await;
    let answer = fixture
        .get(&format!("{DEPLOYMENTS}/{id}/device_list"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json, serde_json::json!(["zeta", "alpha", "mu"]));

    // Large lists are written in several statements and still come back whole, in order.
    let many: Vec<String> = (0..1234).map(|n| format!("device-{n:05}")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let large = deployment(&fixture, "many", &names).await;
    let answer = fixture
        .get(&format!("{DEPLOYMENTS}/{large}/device_list"))
        .await;
    let listed: Vec<String> = serde_json::from_value(answer.json).unwrap();
    assert_eq!(listed, many);
    let view = fixture.get(&format!("{DEPLOYMENTS}/{large}")).await;
    assert_eq!(view.json["max_devices"], 1234);
    assert_eq!(view.json["device_count"], 0);

    // Every device joins: the unpaged entry list is written a page at a time and still
    // comes back whole, in the order the devices joined, now and as of any moment.
    let requests = many
        .iter()
        .map(|device| AppendRequest {
            tenant: TenantId::new("acme"),
            stream: StreamName::new(device_stream(device)),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::new(
                Uuid::new_v4(),
                &joined(large, device, Pending),
                EventMetadata::now(),
            )],
        })
        .collect();
    for appended in fixture.log.append_many(requests).await {
        appended.unwrap();
    }
    fixture.settle().await;
    let head = fixture.log.head().await.unwrap();
    for query in [String::new(), format!("?as_of={}", head.0)] {
        let answer = fixture
            .get(&format!("{DEPLOYMENTS}/{large}/devices{query}"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let entries = answer.json.as_array().unwrap();
        let mut devices: Vec<&str> = entries
            .iter()
            .map(|entry| entry["id"].as_str().unwrap())
            .collect();
        assert_eq!(devices.len(), many.len(), "{query}");
        devices.sort();
        devices.dedup();
        assert_eq!(devices, names, "every entry once: {query}");
    }

    fixture
        .refused(
            &format!("{DEPLOYMENTS}/x/device_list"),
            "ID is not a valid UUID",
        )
        .await;
    let unknown = fixture
        .get(&format!("{DEPLOYMENTS}/{}/device_list", Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status, 404);
}

pub async fn device_log_reads_as_text_and_is_404_without_one(fixture: Fixture) {
    let id = deployment(&fixture, "logged", &["d1", "d2"]).await;
    let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
    let saved = DomainEvent::DeviceDeploymentLogSaved(DeviceDeploymentLogSaved {
        deployment_id: id,
        device_id: "d1".into(),
        messages: vec![
            LogMessage {
                timestamp: at("2024-03-02T08:30:00Z"),
                level: "info".into(),
                message: "installing".into(),
            },
            LogMessage {
                timestamp: at("2024-03-02T08:30:01.250Z"),
                level: "error".into(),
                message: "disk full".into(),
            },
        ],
    });
    on_device(
        &fixture,
        "d1",
        vec![joined(id, "d1", Pending), changed(id, "d1", Failure), saved],
    )
    .await;
    on_device(&fixture, "d2", vec![joined(id, "d2", Pending)]).await;
    let answer = fixture
        .get(&format!("{DEPLOYMENTS}/{id}/devices/d1/log"))
        .await;
    assert_eq!(answer.status, 200);
    assert!(answer.header("content-type").starts_with("text/plain"));
    assert_eq!(
        answer.text,
        "2024-03-02 08:30:00 +0000 UTC info: installing\n\
         2024-03-02 08:30:01.25 +0000 UTC error: disk full\n"
    );
    let devices = fixture.get(&format!("{DEPLOYMENTS}/{id}/devices")).await;
    assert_eq!(devices.json[0]["log"], true);
    assert_eq!(devices.json[1]["log"], false);
    for path in [
        format!("{DEPLOYMENTS}/{id}/devices/d2/log"),
        format!("{DEPLOYMENTS}/{id}/devices/nobody/log"),
        format!("{DEPLOYMENTS}/{}/devices/d1/log", Uuid::new_v4()),
    ] {
        let missing = fixture.get(&path).await;
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(missing.json["error"], "Resource not found");
    }
}

pub async fn device_history_is_newest_first_and_paged(fixture: Fixture) {
    let mut newest_first = Vec::new();
    for name in ["first", "second", "third"] {
        let id = deployment(&fixture, name, &["roamer"]).await;
        let outcome = if name == "third" {
            Downloading
        } else {
            Success
        };
        on_device(
            &fixture,
            "roamer",
            vec![
                joined(id, "roamer", Pending),
                changed(id, "roamer", outcome),
            ],
        )
        .await;
        newest_first.insert(0, id.to_string());
    }
    let history = |query: &str| format!("{DEPLOYMENTS}/devices/roamer?{query}");
    let deployments_of = |answer: &Answer| -> Vec<String> {
        answer
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["deployment"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = fixture.get(&history("")).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(deployments_of(&all), newest_first);
    assert_eq!(all.header("x-total-count"), "3");
    let item = &all.json[0];
    assert!(item["id"].as_str().unwrap().parse::<Uuid>().is_ok());
    assert_eq!(item["device"]["id"], "roamer");
    assert_eq!(item["device"]["status"], "downloading");
    assert_eq!(item["deployment"]["name"], "third");
    assert_eq!(item["deployment"]["status"], "inprogress");

    let first_page = fixture.get(&history("per_page=2")).await;
    assert_eq!(deployments_of(&first_page), newest_first[..2]);
    assert!(first_page.header("link").contains("rel=\"next\""));
    let second_page = fixture.get(&history("per_page=2&page=2")).await;
    assert_eq!(deployments_of(&second_page), newest_first[2..]);
    assert!(!second_page.header("link").contains("rel=\"next\""));
    let finished = fixture.get(&history("status=finished")).await;
    assert_eq!(deployments_of(&finished), newest_first[1..]);

    // Mender caps this list at 20 per page.
    fixture
        .refused(&history("per_page=21"), "Param per_page is out of bounds")
        .await;
    fixture
        .refused(&history("page=0"), "Param page is out of bounds")
        .await;
    fixture
        .refused(&history("status=done"), "status: must be a valid value")
        .await;
    let stranger = fixture
        .get(&format!("{DEPLOYMENTS}/devices/never-seen"))
        .await;
    assert_eq!(stranger.status, 200);
    assert_eq!(stranger.json, serde_json::json!([]));
    assert_eq!(stranger.header("x-total-count"), "0");
}

pub async fn another_tenant_sees_nothing(fixture: Fixture) {
    let id = deployment(&fixture, "private", &["d1"]).await;
    let saved = DomainEvent::DeviceDeploymentLogSaved(DeviceDeploymentLogSaved {
        deployment_id: id,
        device_id: "d1".into(),
        messages: vec![LogMessage {
            timestamp: Utc::now(),
            level: "info".into(),
            message: "secret".into(),
        }],
    });
    on_device(&fixture, "d1", vec![joined(id, "d1", Pending), saved]).await;
    // The same device id in another tenant is another device.
    let theirs = DeploymentId::new();
    fixture
        .record_for(
            "globex",
            &deployment_stream(theirs),
            vec![created(theirs, "theirs", "release-1", &["d1"])],
        )
        .await;
    let stranger = fixture.server.token("mallory", "globex", TokenKind::User);
    for path in [
        format!("{DEPLOYMENTS}/{id}"),
        format!("{DEPLOYMENTS}/{id}/statistics"),
        format!("{DEPLOYMENTS}/{id}/devices"),
        format!("{DEPLOYMENTS}/{id}/devices/list"),
        format!("{DEPLOYMENTS}/{id}/device_list"),
        format!("{DEPLOYMENTS}/{id}/devices/d1/log"),
    ] {
        assert_eq!(fixture.get(&path).await.status, 200, "{path}");
        assert_eq!(fixture.get_as(&path, &stranger).await.status, 404, "{path}");
    }
    let list = fixture.get_as(DEPLOYMENTS, &stranger).await;
    assert_eq!(list.ids(), [theirs.to_string()]);
    assert_eq!(list.header("x-total-count"), "1");
    let search = fixture
        .get_as(&format!("{DEPLOYMENTS}?search=private"), &stranger)
        .await;
    assert_eq!(search.ids().len(), 0);
    let history = fixture
        .get_as(&format!("{DEPLOYMENTS}/devices/d1"), &stranger)
        .await;
    assert_eq!(history.json, serde_json::json!([]));
    let mine = fixture.get(&format!("{DEPLOYMENTS}/devices/d1")).await;
    assert_eq!(mine.json.as_array().unwrap().len(), 1);
}
