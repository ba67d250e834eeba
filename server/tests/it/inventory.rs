//! The inventory through the real API: devices admitted with keys OpenSSL made report their
//! attributes, which are kept as events and shown, filtered, sorted and searched as Mender's
//! inventory shows them; operators group and tag them; deployments go to a group and to all
//! devices, taking the accepted ones of the moment.

use reqwest::Method;
use serde_json::{json, Value};

use crate::standalone::{authenticate, subject, DeviceKeys};
use crate::support::{eventually, TestServer};

pub const V1: &str = "/api/management/v1/inventory";
pub const V2: &str = "/api/management/v2/inventory";
const DEVICE_ATTRIBUTES: &str = "/api/devices/v1/inventory/device/attributes";
const DEPLOYMENTS: &str = "/api/management/v1/deployments";
pub const DEVAUTH: &str = "/api/management/v2/devauth/devices";

/// A device admitted by this server: its id and token.
pub struct Admitted {
    pub id: String,
    pub token: String,
}

pub async fn admit(server: &TestServer, mac: &str) -> Admitted {
    let keys = DeviceKeys::generate("ED25519");
    let (status, token) = authenticate(server, &format!(r#"{{"mac":"{mac}"}}"#), &keys).await;
    assert_eq!(status, 200, "{token}");
    Admitted {
        id: subject(server, &token),
        token,
    }
}

/// Sends `body` with `method` and the token; answers the status, headers and JSON body.
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

pub async fn admin(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, body) = send(server, method, path, &server.admin(), body, &[]).await;
    (status, body)
}

pub async fn report(server: &TestServer, device: &Admitted, method: Method, body: Value) -> u16 {
    send(
        server,
        method,
        DEVICE_ATTRIBUTES,
        &device.token,
        Some(body),
        &[],
    )
    .await
    .0
}

fn attribute<'a>(device: &'a Value, scope: &str, name: &str) -> Option<&'a Value> {
    device["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["scope"] == scope && a["name"] == name)
        .map(|a| &a["value"])
}

pub fn ids(devices: &Value) -> Vec<String> {
    devices
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn reported_attributes_are_kept_filtered_sorted_and_searched(postgres: bool) {
    let server = TestServer::start(postgres).await;
    let (a, b, c) = (
        admit(&server, "aa").await,
        admit(&server, "bb").await,
        admit(&server, "cc").await,
    );
    for (device, device_type, memory) in [(&a, "rpi4", 512), (&b, "rpi4", 2048), (&c, "bbb", 1024)]
    {
        let body = json!([
            {"name": "device_type", "value": device_type},
            {"name": "mem_total_kB", "value": memory, "description": "memory"},
            {"name": "interfaces", "value": ["eth0", "wlan0"]},
        ]);
        assert_eq!(report(&server, device, Method::PATCH, body).await, 200);
    }
    let path = format!("{V1}/devices/{}", c.id);
    let device = eventually(&server, &path, |d| {
        attribute(d, "inventory", "mem_total_kB").is_some()
    })
    .await;
    assert_eq!(attribute(&device, "identity", "mac"), Some(&json!("cc")));
    assert_eq!(
        attribute(&device, "identity", "status"),
        Some(&json!("accepted"))
    );
    assert_eq!(
        attribute(&device, "inventory", "device_type"),
        Some(&json!("bbb"))
    );
    assert!(attribute(&device, "system", "created_ts").is_some());

    // The same report again records nothing; a bad one is 400 and records nothing.
    let head = server.head().await;
    let same = json!([{"name": "device_type", "value": "bbb"}]);
    assert_eq!(report(&server, &c, Method::PATCH, same).await, 200);
    for bad in [
        json!([{"name": "flag", "value": true}]),
        json!([{"name": "", "value": "x"}]),
        json!([{"name": "mixed", "value": ["a", 1]}]),
        json!({"name": "not a list"}),
    ] {
        assert_eq!(
            report(&server, &c, Method::PATCH, bad.clone()).await,
            400,
            "{bad}"
        );
    }
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"name": format!("a{i}"), "value": i}))
        .collect();
    assert_eq!(report(&server, &c, Method::PUT, json!(too_many)).await, 400);
    assert_eq!(server.head().await, head, "nothing was recorded");

    // PUT replaces the whole inventory scope.
    assert_eq!(
        report(
            &server,
            &c,
            Method::PUT,
            json!([{"name": "device_type", "value": "bbb"}])
        )
        .await,
        200
    );
    let device = eventually(&server, &path, |d| {
        attribute(d, "inventory", "mem_total_kB").is_none()
    })
    .await;
    assert_eq!(
        attribute(&device, "inventory", "device_type"),
        Some(&json!("bbb"))
    );

    // Lists: attribute filters (text or number), sort, paging with a Link line per relation.
    let (_, _, rpi) = send(
        &server,
        Method::GET,
        &format!("{V1}/devices?device_type=rpi4"),
        &server.admin(),
        None,
        &[],
    )
    .await;
    let mut found = ids(&rpi);
    found.sort();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(found, expected);
    let (_, _, by_number) = send(
        &server,
        Method::GET,
        &format!("{V1}/devices?inventory/mem_total_kB=eq:2048"),
        &server.admin(),
        None,
        &[],
    )
    .await;
    assert_eq!(ids(&by_number), [b.id.as_str()]);
    let (status, headers, sorted) = send(
        &server,
        Method::GET,
        &format!("{V1}/devices?sort=mem_total_kB:asc&per_page=1&page=2"),
        &server.admin(),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&sorted),
        [a.id.as_str()],
        "c has no memory now (first), then a (512), b (2048)"
    );
    assert_eq!(headers["x-total-count"], "3");
    let links: Vec<&str> = headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(links.len(), 4, "{links:?}");
    assert!(
        links[3].contains("page=3") && links[3].ends_with("rel=\"last\""),
        "{links:?}"
    );
    let (status, body) = admin(
        &server,
        Method::GET,
        &format!("{V1}/devices?per_page=501"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("parameter \"per_page\" above limit (max: 500)"))
    );
    assert!(body["request_id"].is_string());

    // v2 search: every operator, ANDed, with the attributes asked for.
    let search = |filters: Value| {
        let server = &server;
        async move {
            let (status, headers, body) = send(
                server,
                Method::POST,
                &format!("{V2}/filters/search"),
                &server.admin(),
                Some(json!({"filters": filters, "sort": [{"scope": "identity", "attribute": "mac", "order": "asc"}],
                            "attributes": [{"scope": "identity", "attribute": "mac"}]})),
                &[],
            )
            .await;
            (status, headers, body)
        }
    };
    let macs = |body: &Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                attribute(d, "identity", "mac")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let term = |attribute: &str, kind: &str, value: Value| json!({"scope": "inventory", "attribute": attribute, "type": kind, "value": value});
    for (filters, expected) in [
        (json!([term("mem_total_kB", "$gt", json!(600))]), vec!["bb"]),
        (
            json!([
                term("mem_total_kB", "$lte", json!(2048)),
                term("device_type", "$eq", json!("rpi4"))
            ]),
            vec!["aa", "bb"],
        ),
        (
            json!([term("device_type", "$in", json!(["bbb", "x86"]))]),
            vec!["cc"],
        ),
        (
            json!([term("device_type", "$nin", json!(["bbb"]))]),
            vec!["aa", "bb"],
        ),
        (
            json!([term("interfaces", "$eq", json!("wlan0"))]),
            vec!["aa", "bb"],
        ),
        (
            json!([term("mem_total_kB", "$exists", json!(false))]),
            vec!["cc"],
        ),
        (
            json!([term("device_type", "$regex", json!("^rp"))]),
            vec!["aa", "bb"],
        ),
        (
            json!([term("device_type", "$ne", json!("rpi4"))]),
            vec!["cc"],
        ),
        (
            json!([{"scope": "identity", "attribute": "id", "type": "$eq", "value": a.id}]),
            vec!["aa"],
        ),
    ] {
        let (status, headers, body) = search(filters.clone()).await;
        assert_eq!(status, 200, "{filters}: {body}");
        assert_eq!(macs(&body), expected, "{filters}");
        assert_eq!(
            headers["x-total-count"],
            expected.len().to_string().as_str()
        );
        assert!(
            headers.get("link").is_none(),
            "inventory's search sends no Link"
        );
        let names: Vec<&str> = body[0]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["mac", "updated_ts"],
            "only what was asked, and updated_ts"
        );
    }
    for bad in [
        json!([term("device_type", "$like", json!("x"))]),
        json!([term("device_type", "$ltne", json!("x"))]),
        json!([term("device_type", "$regex", json!("(open"))]),
        json!([term("device_type", "$exists", json!("yes"))]),
        json!([{"scope": "inventory", "type": "$eq", "value": 1}]),
    ] {
        let (status, _, body) = search(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string() && body["request_id"].is_string());
    }
    let (status, attributes) = admin(
        &server,
        Method::GET,
        &format!("{V2}/filters/attributes"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let count_of = |scope: &str, name: &str| {
        attributes
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["scope"] == scope && a["name"] == name)
            .map(|a| a["count"].clone())
    };
    assert_eq!(count_of("inventory", "device_type"), Some(json!(3)));
    assert_eq!(count_of("inventory", "mem_total_kB"), Some(json!(2)));
    let (_, statistics) = admin(&server, Method::GET, &format!("{V2}/statistics"), None).await;
    assert_eq!(statistics["devices_by_status"]["accepted"]["standard"], 3);

    // DELETE clears the reported attributes only; the device stays.
    let (status, _) = admin(
        &server,
        Method::DELETE,
        &format!("{V1}/devices/{}", a.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, device) = admin(
        &server,
        Method::GET,
        &format!("{V1}/devices/{}", a.id),
        None,
    )
    .await;
    assert_eq!(attribute(&device, "inventory", "device_type"), None);
    assert_eq!(attribute(&device, "identity", "mac"), Some(&json!("aa")));
    let (status, body) = admin(
        &server,
        Method::GET,
        &format!("{V1}/devices/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("Device not found"))
    );
}

async fn operators_group_and_tag_devices(postgres: bool) {
    let server = TestServer::start(postgres).await;
    let (a, b, c) = (
        admit(&server, "g1").await,
        admit(&server, "g2").await,
        admit(&server, "g3").await,
    );
    let group_of = |id: &str| format!("{V1}/devices/{id}/group");
    let (status, _) = admin(
        &server,
        Method::PUT,
        &group_of(&a.id),
        Some(json!({"group": "lab"})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, body) = admin(&server, Method::GET, &group_of(&a.id), None).await;
    assert_eq!(body, json!({"group": "lab"}));
    let (_, body) = admin(&server, Method::GET, &group_of(&c.id), None).await;
    assert_eq!(body, json!({"group": null}));

    let head = server.head().await;
    for bad in ["", "has space", "slash/", &"x".repeat(257)] {
        let (status, body) = admin(
            &server,
            Method::PUT,
            &group_of(&b.id),
            Some(json!({"group": bad})),
        )
        .await;
        assert_eq!(status, 400, "{bad:?}: {body}");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, _) = admin(
        &server,
        Method::PUT,
        &group_of(&unknown),
        Some(json!({"group": "lab"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = admin(
        &server,
        Method::PATCH,
        &format!("{V1}/groups/lab/devices"),
        Some(json!([])),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(server.head().await, head, "refused changes record nothing");

    // Members join by list; unknown ids are not matched; counts of zero are left out.
    let members = format!("{V1}/groups/lab/devices");
    let (status, body) = admin(
        &server,
        Method::PATCH,
        &members,
        Some(json!([b.id, unknown])),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"matched_count": 1, "updated_count": 1}))
    );
    let (_, body) = admin(&server, Method::PATCH, &members, Some(json!([b.id]))).await;
    assert_eq!(body, json!({"matched_count": 1}));
    let (_, body) = admin(&server, Method::PATCH, &members, Some(json!([unknown]))).await;
    assert_eq!(body, json!({}));

    let (_, groups) = admin(&server, Method::GET, &format!("{V1}/groups"), None).await;
    assert_eq!(groups, json!(["lab"]));
    // By the status of their devices: the members are accepted, none is pending.
    let groups_of = |status: &str| format!("{V1}/groups?status={status}");
    let (_, groups) = admin(&server, Method::GET, &groups_of("accepted"), None).await;
    assert_eq!(groups, json!(["lab"]));
    let (_, groups) = admin(&server, Method::GET, &groups_of("pending"), None).await;
    assert_eq!(groups, json!([]));
    let (status, headers, listed) =
        send(&server, Method::GET, &members, &server.admin(), None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-total-count"], "2");
    let mut listed: Vec<String> = serde_json::from_value(listed).unwrap();
    listed.sort();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    let (status, body) = admin(
        &server,
        Method::GET,
        &format!("{V1}/groups/none/devices"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("group not found"))
    );
    let (_, grouped) = admin(
        &server,
        Method::GET,
        &format!("{V1}/devices?group=lab"),
        None,
    )
    .await;
    assert_eq!(grouped.as_array().unwrap().len(), 2);
    let (_, ungrouped) = admin(
        &server,
        Method::GET,
        &format!("{V1}/devices?has_group=false"),
        None,
    )
    .await;
    assert_eq!(ids(&ungrouped), [c.id.as_str()]);

    // A device leaves only the group it is in.
    let (status, _) = admin(
        &server,
        Method::DELETE,
        &format!("{V1}/devices/{}/group/other", a.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = admin(
        &server,
        Method::DELETE,
        &format!("{V1}/devices/{}/group/lab", a.id),
        None,
    )
    .await;
    assert_eq!(status, 204);

    // Tags: an ETag that changes with every update, and 412 for a stale one.
    let tags = format!("{V1}/devices/{}/tags", c.id);
    let put_tags = |body: Value, etag: Option<String>| {
        let (server, tags) = (&server, tags.clone());
        async move {
            let headers: Vec<(&str, String)> = etag.into_iter().map(|e| ("if-match", e)).collect();
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            send(
                server,
                Method::PUT,
                &tags,
                &server.admin(),
                Some(body),
                &headers,
            )
            .await
            .0
        }
    };
    assert_eq!(
        put_tags(
            json!([{"name": "site", "value": "oslo", "description": "where"}]),
            None
        )
        .await,
        200
    );
    let (_, headers, device) = send(
        &server,
        Method::GET,
        &format!("{V1}/devices/{}", c.id),
        &server.admin(),
        None,
        &[],
    )
    .await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(attribute(&device, "tags", "site"), Some(&json!("oslo")));
    let tag = device["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["scope"] == "tags")
        .unwrap();
    assert_eq!(tag["description"], "where");
    assert!(tag["timestamp"].is_string(), "{tag}");
    let head = server.head().await;
    assert_eq!(
        put_tags(
            json!([{"name": "site", "value": "bergen"}]),
            Some("stale".into())
        )
        .await,
        412
    );
    assert_eq!(
        put_tags(json!([{"name": "site", "value": true}]), None).await,
        400
    );
    assert_eq!(server.head().await, head);
    assert_eq!(
        put_tags(
            json!([{"name": "rack", "value": 4}]),
            Some(format!("\"{etag}\""))
        )
        .await,
        200
    );
    assert_eq!(
        put_tags(json!([{"name": "rack", "value": 5}]), Some(etag.clone())).await,
        412,
        "the old ETag is stale now"
    );
    let (_, headers, device) = send(
        &server,
        Method::GET,
        &format!("{V1}/devices/{}", c.id),
        &server.admin(),
        None,
        &[],
    )
    .await;
    assert_ne!(headers["etag"].to_str().unwrap(), etag);
    assert_eq!(
        attribute(&device, "tags", "site"),
        None,
        "PUT replaced the tags"
    );
    assert_eq!(attribute(&device, "tags", "rack"), Some(&json!(4)));
    let (status, _) = admin(
        &server,
        Method::PUT,
        &format!("{V1}/devices/{unknown}/tags"),
        Some(json!([])),
    )
    .await;
    assert_eq!(status, 404);

    // Deleting the group takes every member out of it; it is then gone.
    let (_, body) = admin(&server, Method::DELETE, &format!("{V1}/groups/lab"), None).await;
    assert_eq!(body, json!({"updated_count": 1}));
    let (_, groups) = admin(&server, Method::GET, &format!("{V1}/groups"), None).await;
    assert_eq!(groups, json!([]));
    let (_, body) = admin(&server, Method::DELETE, &format!("{V1}/groups/lab"), None).await;
    assert_eq!(body, json!({}));

    // A decommissioned device's inventory goes with it.
    let (status, _) = admin(
        &server,
        Method::PUT,
        &group_of(&b.id),
        Some(json!({"group": "lab"})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = admin(
        &server,
        Method::DELETE,
        &format!("{DEVAUTH}/{}", b.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = admin(
        &server,
        Method::GET,
        &format!("{V1}/devices/{}", b.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, groups) = admin(&server, Method::GET, &format!("{V1}/groups"), None).await;
    assert_eq!(groups, json!([]));
}

async fn create(server: &TestServer, path: &str, body: Value) -> (u16, Value, Option<String>) {
    let (status, headers, body) = send(
        server,
        Method::POST,
        &format!("{DEPLOYMENTS}/deployments{path}"),
        &server.admin(),
        Some(body),
        &[],
    )
    .await;
    let id = headers
        .get("location")
        .map(|l| l.to_str().unwrap().rsplit('/').next().unwrap().to_owned());
    (status, body, id)
}

async fn deployments_go_to_a_group_and_to_all_devices_accepted_at_creation(postgres: bool) {
    let server = TestServer::start_with(postgres, |settings| {
        settings.standalone.admission.auto_accept = false
    })
    .await;
    server.upload_rootfs("release-9").await;
    // Two accepted devices and one pending, all in the group.
    let keys: Vec<DeviceKeys> = (0..3).map(|_| DeviceKeys::generate("ED25519")).collect();
    for (index, key) in keys.iter().enumerate() {
        let (status, _) = authenticate(&server, &format!(r#"{{"mac":"m{index}"}}"#), key).await;
        assert_eq!(status, 401, "pending");
    }
    let listed = eventually(&server, DEVAUTH, |d| {
        d.as_array().is_some_and(|d| d.len() == 3)
    })
    .await;
    let mut devices: Vec<(String, String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["identity_data"]["mac"].as_str().unwrap().to_owned(),
                d["id"].as_str().unwrap().to_owned(),
                d["auth_sets"][0]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    devices.sort();
    for (_, id, set) in &devices[..2] {
        let (status, _) = admin(
            &server,
            Method::PUT,
            &format!("{DEVAUTH}/{id}/auth/{set}/status"),
            Some(json!({"status": "accepted"})),
        )
        .await;
        assert_eq!(status, 204);
    }
    let ids: Vec<String> = devices.iter().map(|(_, id, _)| id.clone()).collect();
    let (status, _) = admin(
        &server,
        Method::PATCH,
        &format!("{V1}/groups/lab/devices"),
        Some(json!([ids[0], ids[2]])),
    )
    .await;
    assert_eq!(status, 200);

    // Refusals first, each recording nothing.
    let head = server.head().await;
    for (path, body, code, error) in [
        ("/group/empty", json!({"name": "x", "artifact_name": "release-9"}), 400, "No devices for the deployment"),
        ("/group/empty", json!({"name": "x", "artifact_name": "missing"}), 400, "No devices for the deployment"),
        ("/group/lab", json!({"name": "x", "artifact_name": "release-9", "devices": [ids[0]]}), 400,
         "The deployment for group constructor should have neither list of devices nor all_devices flag set"),
        ("/group/lab", json!({"name": "x", "artifact_name": "missing"}), 422, "No artifact for the deployment"),
        ("/group/lab", json!({"name": "x", "artifact_name": "release-9", "retries": -1}), 400,
         "retries: between 0 and 10"),
        ("/group/lab", json!({"name": "x", "artifact_name": "release-9",
                              "policy": {"failure_threshold_percent": 10, "device_timeout_seconds": 31536001}}), 400,
         "policy.device_timeout_seconds: between 60 and 31536000"),
        ("", json!({"name": "x", "artifact_name": "release-9", "all_devices": true, "devices": [ids[0]]}), 400,
         "Invalid deployments definition: list of devices provided togheter with all_devices flag"),
        ("", json!({"name": "x", "artifact_name": "missing", "all_devices": true}), 422, "No artifact for the deployment"),
    ] {
        let (status, response, _) = create(&server, path, body.clone()).await;
        assert_eq!((status, response["error"].as_str()), (code, Some(error)), "{path} {body}");
    }
    assert_eq!(server.head().await, head);

    // The group's accepted member only; the deployment shows the group.
    let (status, body, id) = create(
        &server,
        "/group/lab",
        json!({"name": "lab rollout", "artifact_name": "release-9", "retries": 3,
               "policy": {"failure_threshold_percent": 10, "device_timeout_seconds": 3600}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, deployment) = admin(
        &server,
        Method::GET,
        &format!("{DEPLOYMENTS}/deployments/{}", id.unwrap()),
        None,
    )
    .await;
    assert_eq!(deployment["max_devices"], 1);
    assert_eq!(deployment["groups"], json!(["lab"]));
    assert_eq!(deployment["retries"], 3);
    assert_eq!(
        deployment["policy"],
        json!({"failure_threshold_percent": 10, "min_finished_devices": 10,
               "on_threshold": "pause", "device_timeout_seconds": 3600})
    );

    // Every accepted device; one accepted later does not join.
    let (status, body, id) = create(
        &server,
        "",
        json!({"name": "everyone", "artifact_name": "release-9", "all_devices": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    let (_, set) = (&devices[2].1, &devices[2].2);
    let (status, _) = admin(
        &server,
        Method::PUT,
        &format!("{DEVAUTH}/{}/auth/{set}/status", ids[2]),
        Some(json!({"status": "accepted"})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, deployment) = admin(
        &server,
        Method::GET,
        &format!("{DEPLOYMENTS}/deployments/{id}"),
        None,
    )
    .await;
    assert_eq!(deployment["max_devices"], 2);
    assert!(deployment.get("groups").is_none(), "{deployment}");
    let (_, targeted) = admin(
        &server,
        Method::GET,
        &format!("{DEPLOYMENTS}/deployments/{id}/device_list"),
        None,
    )
    .await;
    let mut targeted: Vec<String> = serde_json::from_value(targeted).unwrap();
    targeted.sort();
    let mut accepted_then = ids[..2].to_vec();
    accepted_then.sort();
    assert_eq!(targeted, accepted_then);
}

/// `POST /next` as a `pi` device running `old`: the deployment id served, or the status.
async fn next(server: &TestServer, device: &Admitted) -> Result<String, u16> {
    let (status, _, body) = send(
        server,
        Method::POST,
        "/api/devices/v1/deployments/device/deployments/next",
        &device.token,
        Some(json!({"artifact_name": "old", "device_type": "pi"})),
        &[],
    )
    .await;
    match status {
        200 => Ok(body["id"].as_str().unwrap().to_owned()),
        other => Err(other),
    }
}

async fn finish(server: &TestServer, device: &Admitted, deployment: &str) {
    finish_in(server, device, deployment, "success").await
}

async fn finish_in(server: &TestServer, device: &Admitted, deployment: &str, outcome: &str) {
    let (status, _, body) = send(
        server,
        Method::PUT,
        &format!("/api/devices/v1/deployments/device/deployments/{deployment}/status"),
        &device.token,
        Some(json!({"status": outcome})),
        &[],
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

async fn dynamic_deployments_take_the_devices_that_match_when_they_ask(postgres: bool) {
    let server = TestServer::start(postgres).await;
    server.upload_rootfs("release-7").await;
    let (a, b, c) = (
        admit(&server, "dyn-a").await,
        admit(&server, "dyn-b").await,
        admit(&server, "dyn-c").await,
    );
    for (device, tier) in [(&a, "beta"), (&b, "stable"), (&c, "beta")] {
        let body = json!([{"name": "tier", "value": tier}]);
        assert_eq!(report(&server, device, Method::PATCH, body).await, 200);
    }
    let filters = format!("{V2}/filters");
    let beta = json!([{"scope": "inventory", "attribute": "tier", "type": "$eq", "value": "beta"}]);

    // Refused filters and deployments record nothing.
    let head = server.head().await;
    for bad in [
        json!({"name": "", "terms": beta}),
        json!({"name": "none", "terms": []}),
        json!({"name": "odd", "terms": [{"scope": "inventory", "attribute": "tier", "type": "$like", "value": "b"}]}),
        json!({"name": "extra", "terms": beta, "colour": "red"}),
    ] {
        let (status, body) = admin(&server, Method::POST, &filters, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(server.head().await, head);

    let (status, headers, _) = send(
        &server,
        Method::POST,
        &filters,
        &server.admin(),
        Some(json!({"name": "beta", "terms": beta})),
        &[],
    )
    .await;
    assert_eq!(status, 201);
    let location = headers["location"].to_str().unwrap();
    let filter_id = location.strip_prefix("filters/").unwrap().to_owned();
    let (status, _) = admin(
        &server,
        Method::POST,
        &filters,
        Some(json!({"name": "beta", "terms": beta})),
    )
    .await;
    assert_eq!(status, 409, "names are unique");
    let (_, saved) = admin(
        &server,
        Method::GET,
        &format!("{filters}/{filter_id}"),
        None,
    )
    .await;
    assert_eq!(
        saved,
        json!({"id": filter_id, "name": "beta", "terms": beta})
    );
    let (_, listed) = admin(&server, Method::GET, &filters, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let v2 = "/api/management/v2/deployments/deployments";
    let head = server.head().await;
    for (body, code) in [
        (json!({"name": "x", "artifact_name": "release-7"}), 400),
        (
            json!({"name": "x", "artifact_name": "release-7", "filter_id": uuid::Uuid::new_v4()}),
            400,
        ),
        (
            json!({"name": "x", "artifact_name": "release-7", "filter_id": filter_id, "max_devices": 0}),
            400,
        ),
        (
            json!({"name": "x", "artifact_name": "release-7", "filter_id": filter_id, "devices": [a.id]}),
            400,
        ),
        (
            json!({"name": "x", "artifact_name": "release-7", "filter_id": filter_id,
                   "policy": {"failure_threshold_percent": 101}}),
            400,
        ),
        (
            json!({"name": "x", "artifact_name": "release-7", "filter_id": filter_id, "retries": 11}),
            400,
        ),
        (
            json!({"name": "x", "artifact_name": "missing", "filter_id": filter_id}),
            422,
        ),
    ] {
        let (status, response) = admin(&server, Method::POST, v2, Some(body.clone())).await;
        assert_eq!(status, code, "{body}: {response}");
        assert!(response["error"].is_string() && response["request_id"].is_string());
    }
    assert_eq!(server.head().await, head);

    // Takes two devices; b does not match until its tier changes. Its policy would trip at
    // b's failure (one of two), but that report finishes the deployment's last seat.
    let policy = json!({"failure_threshold_percent": 50, "min_finished_devices": 1, "on_threshold": "pause"});
    let (status, headers, body) = send(
        &server,
        Method::POST,
        v2,
        &server.admin(),
        Some(
            json!({"name": "beta rollout", "artifact_name": "release-7", "filter_id": filter_id,
                    "max_devices": 2, "policy": policy, "retries": 0}),
        ),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (_, deployment) = admin(
        &server,
        Method::GET,
        &format!("{DEPLOYMENTS}/deployments/{id}"),
        None,
    )
    .await;
    assert_eq!(deployment["dynamic"], true);
    assert_eq!(
        deployment["filter"],
        json!({"id": filter_id, "name": "beta", "terms": beta})
    );
    assert_eq!(deployment["max_devices"], 2);
    assert_eq!(deployment["policy"], policy);
    assert_eq!(deployment["retries"], 0);

    assert_eq!(next(&server, &b).await, Err(204), "b is stable");
    assert_eq!(next(&server, &a).await.as_deref(), Ok(id.as_str()));
    let body = json!([{"name": "tier", "value": "beta"}]);
    assert_eq!(report(&server, &b, Method::PATCH, body).await, 200);
    assert_eq!(
        next(&server, &b).await.as_deref(),
        Ok(id.as_str()),
        "b matches now"
    );
    assert_eq!(
        next(&server, &c).await,
        Err(204),
        "two devices taken: no seat for c"
    );

    // The join names the filter that matched.
    let log = server.log().await;
    let stream = events::StreamName::new(format!("device-{}", b.id));
    let recorded = log
        .read_stream(&events::TenantId::default(), &stream, 0)
        .await
        .unwrap();
    let joined = recorded
        .iter()
        .find_map(|event| match event.decode().unwrap() {
            events::DomainEvent::DeviceJoinedDeployment(joined) => Some(joined),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        joined.matched_filter.map(|f| f.to_string()),
        Some(filter_id.clone())
    );

    finish(&server, &a, &id).await;
    finish_in(&server, &b, &id, "failure").await;
    let (_, deployment) = admin(
        &server,
        Method::GET,
        &format!("{DEPLOYMENTS}/deployments/{id}"),
        None,
    )
    .await;
    assert_eq!(deployment["status"], "finished", "{deployment}");
    assert_eq!(deployment["paused"], false, "{deployment}");
    assert!(deployment.get("policy_trip").is_none(), "{deployment}");
    assert_eq!(next(&server, &c).await, Err(204));

    // Deleting the filter leaves the deployment's copy.
    let (status, _) = admin(
        &server,
        Method::DELETE,
        &format!("{filters}/{filter_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = admin(
        &server,
        Method::DELETE,
        &format!("{filters}/{filter_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, deployment) = admin(
        &server,
        Method::GET,
        &format!("{DEPLOYMENTS}/deployments/{id}"),
        None,
    )
    .await;
    assert_eq!(deployment["filter"]["name"], "beta");

    // Without max_devices it runs until aborted, and takes devices that match later.
    let (status, _) = admin(
        &server,
        Method::POST,
        &filters,
        Some(json!({"name": "all beta", "terms": beta})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, listed) = admin(&server, Method::GET, &filters, None).await;
    let filter_id = listed[0]["id"].as_str().unwrap().to_owned();
    server.upload_rootfs("release-8").await;
    let (status, headers, _) = send(
        &server,
        Method::POST,
        v2,
        &server.admin(),
        Some(json!({"name": "open", "artifact_name": "release-8", "filter_id": filter_id})),
        &[],
    )
    .await;
    assert_eq!(status, 201);
    let open = headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(next(&server, &c).await.as_deref(), Ok(open.as_str()));
    finish(&server, &c, &open).await;
    let (_, deployment) = admin(
        &server,
        Method::GET,
        &format!("{DEPLOYMENTS}/deployments/{open}"),
        None,
    )
    .await;
    assert_eq!(
        deployment["status"], "inprogress",
        "an open dynamic deployment does not finish by itself"
    );
}

configured_on_both_backends!(
    reported_attributes_are_kept_filtered_sorted_and_searched,
    operators_group_and_tag_devices,
    deployments_go_to_a_group_and_to_all_devices_accepted_at_creation,
    dynamic_deployments_take_the_devices_that_match_when_they_ask
);
