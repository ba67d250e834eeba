//! Each console page, and the API reads it makes, in the order it makes them: read from the
//! page's handler in `console/src/pages/`.

use events::Position;
use serde_json::{json, Value};

use crate::fleet::{device_id, mac, Fleet};

const DEPLOYMENTS: &str = "/api/management/v1/deployments/deployments";
const DEPLOYMENTS_V2: &str = "/api/management/v2/deployments/deployments";
const DEVAUTH: &str = "/api/management/v2/devauth/devices";
pub const ARTIFACTS: &str = "/api/management/v1/deployments/artifacts";
const GROUPS: &str = "/api/management/v1/inventory/groups";
pub const FILTERS: &str = "/api/management/v2/inventory/filters";
const EVENTS: &str = "/api/management/v1/deployments/events";

/// One read of a page or of the API: a GET, or the device search's POST of `search`.
#[derive(Clone)]
pub struct Read {
    pub path: String,
    pub search: Option<Value>,
}

pub fn get(path: impl Into<String>) -> Read {
    Read {
        path: path.into(),
        search: None,
    }
}

/// A console page, and the API reads its handler makes, in order.
pub struct Page {
    pub name: &'static str,
    pub path: String,
    pub reads: Vec<Read>,
}

fn page(name: &'static str, path: impl Into<String>, reads: Vec<Read>) -> Page {
    Page {
        name,
        path: path.into(),
        reads,
    }
}

/// The pages an operator reads, about `fleet`'s deployment in progress (and at `halfway`
/// through its devices joining), its first device, and `artifact`.
pub fn pages(fleet: &Fleet, halfway: Position, artifact: &str, devices: usize) -> Vec<Page> {
    let deployment = fleet.in_progress;
    let member = &fleet.member;
    let device = device_id(0);
    let wanted_mac = mac(devices / 2);
    let counts: Vec<Read> = ["accepted", "pending", "rejected", "preauthorized"]
        .iter()
        .map(|status| get(format!("{DEVAUTH}/count?status={status}")))
        .collect();
    vec![
        page(
            "dashboard",
            "/ui/",
            [
                counts.clone(),
                vec![
                    get(format!("{DEPLOYMENTS}?status=inprogress&per_page=10")),
                    get(format!("{DEPLOYMENTS}?status=pending&per_page=10")),
                    get(format!("{DEPLOYMENTS}?status=finished&per_page=5")),
                    get("/api/management/v1/deployments/limits/storage"),
                ],
            ]
            .concat(),
        ),
        page(
            "deployments, in progress",
            "/ui/deployments?status=inprogress",
            vec![get(format!(
                "{DEPLOYMENTS}?status=inprogress&page=1&per_page=20"
            ))],
        ),
        page(
            "deployments, finished",
            "/ui/deployments?status=finished",
            vec![get(format!(
                "{DEPLOYMENTS}?status=finished&page=1&per_page=20"
            ))],
        ),
        page(
            "create a deployment (the form)",
            "/ui/deployments/new",
            vec![
                get(format!("{DEPLOYMENTS}/releases")),
                get(GROUPS),
                get(FILTERS),
            ],
        ),
        page(
            "one deployment",
            format!("/ui/deployments/{deployment}"),
            vec![
                get(format!("{DEPLOYMENTS}/{deployment}")),
                get(format!(
                    "{DEPLOYMENTS}/{deployment}/devices/list?page=1&per_page=50"
                )),
            ],
        ),
        page(
            "one deployment in the past (as_of)",
            format!("/ui/deployments/{deployment}?as_of={}", halfway.0),
            vec![
                get(format!("{DEPLOYMENTS}/{deployment}?as_of={}", halfway.0)),
                get(format!(
                    "{DEPLOYMENTS}/{deployment}/devices?as_of={}",
                    halfway.0
                )),
                get(format!("{DEPLOYMENTS}/{deployment}")),
            ],
        ),
        page(
            "a device's history in a deployment",
            format!("/ui/deployments/{deployment}/devices/{member}"),
            vec![
                get(format!(
                    "{DEPLOYMENTS_V2}/{deployment}/devices/{member}/history"
                )),
                get(format!("{DEPLOYMENTS}/{deployment}/devices/{member}/log")),
            ],
        ),
        page(
            "devices, accepted",
            "/ui/devices",
            [
                counts.clone(),
                vec![
                    get(format!("{DEVAUTH}?status=accepted&page=1&per_page=20")),
                    get(GROUPS),
                ],
            ]
            .concat(),
        ),
        page(
            "devices, pending",
            "/ui/devices?status=pending",
            [
                counts.clone(),
                vec![
                    get(format!("{DEVAUTH}?status=pending&page=1&per_page=20")),
                    get(GROUPS),
                ],
            ]
            .concat(),
        ),
        page(
            "one device",
            format!("/ui/devices/{device}"),
            vec![
                get(format!("{DEVAUTH}/{device}")),
                get(format!("/api/management/v1/inventory/devices/{device}")),
                get(format!(
                    "/api/management/v1/inventory/devices/{device}/group"
                )),
                get(GROUPS),
                get(format!("{DEPLOYMENTS}/devices/{device}?per_page=20")),
            ],
        ),
        page(
            "finding devices by an attribute",
            format!("/ui/devices/find?attribute=identity/mac&operator=$eq&value={wanted_mac}"),
            vec![
                get(GROUPS),
                get(format!("{FILTERS}/attributes")),
                get(FILTERS),
                Read {
                    path: format!("{FILTERS}/search"),
                    search: Some(json!({"page": 1, "per_page": 20, "filters": [
                        {"scope": "identity", "attribute": "mac", "type": "$eq", "value": wanted_mac}
                    ]})),
                },
            ],
        ),
        page(
            "releases",
            "/ui/releases",
            vec![get(format!(
                "{DEPLOYMENTS}/releases/list?page=1&per_page=20"
            ))],
        ),
        page(
            "one artifact",
            format!("/ui/artifacts/{artifact}"),
            vec![get(format!("{ARTIFACTS}/{artifact}"))],
        ),
        page(
            "events",
            "/ui/events",
            vec![get(format!("{EVENTS}?before=end&limit=51"))],
        ),
        page(
            "events of a stream and type",
            "/ui/events?stream=deployment-&type=DeploymentCreated",
            vec![get(format!(
                "{EVENTS}?before=end&stream=deployment-&type=DeploymentCreated&limit=51"
            ))],
        ),
    ]
}
