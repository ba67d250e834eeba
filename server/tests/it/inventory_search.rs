//! The inventory search through the attribute index: `$eq` and `$in` searches (and the v1
//! list's filters) read only the devices the index names, and must find exactly what reading
//! the whole fleet finds, through reports, tags, groups and decommissioning, in a read model
//! that predates the index (which searches the old way) and after a rebuild.

use reqwest::Method;
use serde_json::{json, Value};

use crate::inventory::{admin, admit, ids, report, Admitted, DEVAUTH, V1, V2};
use crate::support::{eventually, TestServer};

/// What each search and list finds, in order, and the attribute names with their counts.
async fn answers(server: &TestServer, searches: &[(&str, Value)], lists: &[&str]) -> Vec<Value> {
    let mut answers = Vec::new();
    for (name, body) in searches {
        let (status, found) = admin(
            server,
            Method::POST,
            &format!("{V2}/filters/search"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 200, "{name}: {found}");
        answers.push(json!({ "search": name, "found": ids(&found) }));
    }
    for list in lists {
        let (status, found) =
            admin(server, Method::GET, &format!("{V1}/devices?{list}"), None).await;
        assert_eq!(status, 200, "{list}: {found}");
        answers.push(json!({ "list": list, "found": ids(&found) }));
    }
    let (status, mut names) = admin(
        server,
        Method::GET,
        &format!("{V2}/filters/attributes"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{names}");
    // Ties in count are ordered by scope and name either way; compare them as a set.
    names
        .as_array_mut()
        .unwrap()
        .sort_by_key(|name| name.to_string());
    answers.push(json!({ "attributes": names }));
    answers
}

fn eq(scope: &str, name: &str, value: Value) -> Value {
    json!({"scope": scope, "attribute": name, "type": "$eq", "value": value})
}

fn searching(filters: Vec<Value>) -> Value {
    json!({"page": 1, "per_page": 500, "filters": filters})
}

fn found<'a>(answers: &'a [Value], search: &str) -> Vec<&'a str> {
    answers
        .iter()
        .find(|answer| answer["search"] == search || answer["list"] == search)
        .unwrap_or_else(|| panic!("no answer for {search}"))["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect()
}

fn count_of(answers: &[Value], scope: &str, name: &str) -> Option<i64> {
    answers.last().unwrap()["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["scope"] == scope && entry["name"] == name)
        .map(|entry| entry["count"].as_i64().unwrap())
}

/// Stops the serving read models from using the index, as one migrated from before it.
async fn forget_the_index(server: &TestServer) {
    let read_models =
        query_service::read_models::ReadModels::connect(&server.settings.read_models_url(), 1)
            .await
            .unwrap();
    sqlx::query("DELETE FROM read_model_features")
        .execute(&read_models.pool())
        .await
        .unwrap();
}

async fn the_index_finds_what_the_whole_fleet_finds(postgres: bool) {
    let server = TestServer::start(postgres).await;
    let mut devices: Vec<Admitted> = Vec::new();
    for mac in ["m0", "m1", "m2", "m3", "m4"] {
        devices.push(admit(&server, mac).await);
    }
    let id = |n: usize| devices[n].id.as_str();
    let long = "x".repeat(300);
    let reports = [
        json!([
            {"name": "device_type", "value": "pi"},
            {"name": "mem", "value": 512},
            {"name": "versions", "value": ["1.0", "2.0"]},
            {"name": "flag", "value": []},
        ]),
        json!([
            {"name": "device_type", "value": "pi"},
            {"name": "mem", "value": 512.0},
        ]),
        json!([
            {"name": "device_type", "value": "bbb"},
            {"name": "mem", "value": "512"},
            {"name": "versions", "value": ["2.0"]},
        ]),
        json!([
            {"name": "device_type", "value": "bbb"},
            {"name": "mem", "value": 1024},
            {"name": "notes", "value": long},
        ]),
    ];
    for (device, body) in devices.iter().zip(&reports) {
        assert_eq!(
            report(&server, device, Method::PATCH, body.clone()).await,
            200
        );
    }
    for device in &devices[..4] {
        eventually(&server, &format!("{V1}/devices/{}", device.id), |d| {
            d["attributes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["name"] == "device_type"))
        })
        .await;
    }
    let (status, _) = admin(
        &server,
        Method::PUT,
        &format!("{V1}/devices/{}/tags", id(1)),
        Some(json!([{"name": "site", "value": "oslo"}])),
    )
    .await;
    assert_eq!(status, 200);
    for n in [2, 3] {
        let (status, _) = admin(
            &server,
            Method::PUT,
            &format!("{V1}/devices/{}/group", id(n)),
            Some(json!({"group": "lab"})),
        )
        .await;
        assert_eq!(status, 204);
    }

    let searches = [
        (
            "pi",
            searching(vec![eq("inventory", "device_type", json!("pi"))]),
        ),
        (
            "mem 512",
            searching(vec![eq("inventory", "mem", json!(512))]),
        ),
        (
            "mem '512'",
            searching(vec![eq("inventory", "mem", json!("512"))]),
        ),
        (
            "mem in",
            searching(vec![
                json!({"scope": "inventory", "attribute": "mem", "type": "$in",
                                  "value": [512, "512"]}),
            ]),
        ),
        (
            "version 2.0",
            searching(vec![eq("inventory", "versions", json!("2.0"))]),
        ),
        (
            "long notes",
            searching(vec![eq("inventory", "notes", json!(long))]),
        ),
        (
            "mac m3",
            searching(vec![eq("identity", "mac", json!("m3"))]),
        ),
        ("site", searching(vec![eq("tags", "site", json!("oslo"))])),
        ("lab", searching(vec![eq("system", "group", json!("lab"))])),
        (
            "accepted",
            searching(vec![eq("identity", "status", json!("accepted"))]),
        ),
        (
            "bbb in lab over 600",
            searching(vec![
                eq("inventory", "device_type", json!("bbb")),
                eq("system", "group", json!("lab")),
                json!({"scope": "inventory", "attribute": "mem", "type": "$gt", "value": 600}),
            ]),
        ),
        (
            "named pi",
            json!({"filters": [eq("inventory", "device_type", json!("pi"))],
                   "device_ids": [id(0), id(2)]}),
        ),
        (
            "nothing",
            searching(vec![eq("inventory", "device_type", json!("none"))]),
        ),
    ];
    let lists = ["mem=512", "device_type=bbb&mem=1024"];
    let indexed = answers(&server, &searches, &lists).await;
    assert_eq!(found(&indexed, "pi"), [id(0), id(1)]);
    assert_eq!(
        found(&indexed, "mem 512"),
        [id(0), id(1)],
        "numbers by value"
    );
    assert_eq!(
        found(&indexed, "mem '512'"),
        [id(2)],
        "text is not a number"
    );
    assert_eq!(found(&indexed, "mem in"), [id(0), id(1), id(2)]);
    assert_eq!(
        found(&indexed, "version 2.0"),
        [id(0), id(2)],
        "array elements"
    );
    assert_eq!(found(&indexed, "long notes"), [id(3)]);
    assert_eq!(found(&indexed, "mac m3"), [id(3)]);
    assert_eq!(found(&indexed, "site"), [id(1)]);
    assert_eq!(found(&indexed, "lab"), [id(2), id(3)]);
    assert_eq!(found(&indexed, "accepted").len(), 5);
    assert_eq!(found(&indexed, "bbb in lab over 600"), [id(3)]);
    assert_eq!(found(&indexed, "named pi"), [id(0)]);
    assert!(found(&indexed, "nothing").is_empty());
    assert_eq!(
        found(&indexed, "mem=512"),
        [id(0), id(1), id(2)],
        "v1: text or number"
    );
    assert_eq!(found(&indexed, "device_type=bbb&mem=1024"), [id(3)]);
    assert_eq!(count_of(&indexed, "inventory", "device_type"), Some(4));
    assert_eq!(count_of(&indexed, "inventory", "versions"), Some(2));
    assert_eq!(count_of(&indexed, "inventory", "flag"), Some(1));
    assert_eq!(count_of(&indexed, "identity", "mac"), Some(5));
    assert_eq!(count_of(&indexed, "system", "group"), Some(2));
    assert_eq!(count_of(&indexed, "system", "updated_ts"), Some(5));

    // Values change, leave and go: the index follows.
    let replaced = json!([{"name": "device_type", "value": "rpi4"}]);
    assert_eq!(
        report(&server, &devices[0], Method::PUT, replaced).await,
        200
    );
    eventually(&server, &format!("{V1}/devices/{}", id(0)), |d| {
        d["attributes"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["value"] == "rpi4"))
    })
    .await;
    let (status, _) = admin(
        &server,
        Method::DELETE,
        &format!("{V1}/devices/{}/group/lab", id(2)),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = admin(
        &server,
        Method::DELETE,
        &format!("{DEVAUTH}/{}", id(3)),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let changed = answers(&server, &searches, &lists).await;
    assert_eq!(found(&changed, "pi"), [id(1)]);
    assert_eq!(
        found(&changed, "version 2.0"),
        [id(2)],
        "a replaced report drops the rest"
    );
    assert_eq!(found(&changed, "lab"), Vec::<&str>::new());
    assert!(
        found(&changed, "mac m3").is_empty(),
        "a decommissioned device is gone"
    );
    assert!(found(&changed, "long notes").is_empty());
    assert_eq!(count_of(&changed, "inventory", "notes"), None);
    assert_eq!(count_of(&changed, "inventory", "flag"), None);
    assert_eq!(count_of(&changed, "identity", "mac"), Some(4));
    assert_eq!(count_of(&changed, "system", "group"), None);

    // The same answers from a read model without the index, and from a rebuilt one.
    forget_the_index(&server).await;
    assert_eq!(answers(&server, &searches, &lists).await, changed);
    server.rebuild().await;
    assert_eq!(answers(&server, &searches, &lists).await, changed);
}

configured_on_both_backends!(the_index_finds_what_the_whole_fleet_finds);
