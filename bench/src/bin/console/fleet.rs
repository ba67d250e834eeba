//! The fleet the pages show: recorded straight into the log, and what an operator makes
//! through the API (artifacts, a saved filter).

use std::path::Path;

use bench::single;
use event_log::AppendRequest;
use events::admission::{AuthSetAdded, AuthSetStatus};
use events::deployment::{DeviceDeploymentStatus, DeviceDeploymentStatusChanged};
use events::{DeploymentId, DomainEvent};
use serde_json::json;
use uuid::Uuid;

use crate::pages::{ARTIFACTS, FILTERS};

/// Devices in each deployment.
const PER_DEPLOYMENT: usize = 10;

pub fn device_id(n: usize) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("bench-device-{n}").as_bytes()).to_string()
}

/// The MAC address in device `n`'s identity, the attribute the device search filters on.
pub fn mac(n: usize) -> String {
    format!("02:00:{n:08x}")
}

fn admitted(n: usize, status: AuthSetStatus) -> AppendRequest {
    let mut identity = serde_json::Map::new();
    identity.insert("mac".into(), mac(n).into());
    single(
        &format!("devauth-{}", device_id(n)),
        DomainEvent::AuthSetAdded(AuthSetAdded {
            device_id: device_id(n),
            auth_set_id: Uuid::new_v4(),
            identity_data: identity,
            pubkey: "-----BEGIN PUBLIC KEY-----\nbench\n-----END PUBLIC KEY-----\n".into(),
            status,
        }),
    )
}

/// The recorded history, and the deployment the pages about one deployment show.
pub struct Fleet {
    pub requests: Vec<AppendRequest>,
    /// The first deployment in progress, its devices downloading.
    pub in_progress: DeploymentId,
    /// Its first device.
    pub member: String,
    /// The request after which half its devices had joined it: the past its page is read at.
    pub halfway: usize,
}

/// Every device admitted and 1% more waiting, every deployment created with its devices
/// joined, the first tenth of the deployments finished and the next tenth downloading: an
/// operator's fleet after a while.
pub fn record(deployments: usize, devices: usize) -> Fleet {
    let mut requests: Vec<AppendRequest> = (0..devices)
        .map(|n| admitted(n, AuthSetStatus::Accepted))
        .collect();
    requests
        .extend((devices..devices + devices / 100).map(|n| admitted(n, AuthSetStatus::Pending)));
    let mut chosen = None;
    for d in 0..deployments {
        let deployment = DeploymentId::new();
        let members: Vec<String> = (0..PER_DEPLOYMENT)
            .map(|k| device_id((d * PER_DEPLOYMENT + k) % devices.max(1)))
            .collect();
        requests.push(single(
            &format!("deployment-{deployment}"),
            bench::deployment_created(
                deployment,
                &format!("rollout {d}"),
                &format!("release-{}", d % 50),
                members.clone(),
            ),
        ));
        let report = match d * 10 / deployments.max(1) {
            0 => Some(DeviceDeploymentStatus::Success),
            1 => Some(DeviceDeploymentStatus::Downloading),
            _ => None,
        };
        let is_chosen = chosen.is_none()
            && (report == Some(DeviceDeploymentStatus::Downloading) || d + 1 == deployments);
        for (k, device) in members.iter().enumerate() {
            requests.push(single(
                &format!("device-{device}"),
                bench::device_joined(deployment, device),
            ));
            if let Some(status) = report {
                requests.push(single(
                    &format!("device-{device}"),
                    DomainEvent::DeviceDeploymentStatusChanged(DeviceDeploymentStatusChanged {
                        deployment_id: deployment,
                        device_id: device.clone(),
                        status,
                        substate: None,
                    }),
                ));
            }
            if is_chosen && k + 1 == PER_DEPLOYMENT / 2 {
                chosen = Some((deployment, members[0].clone(), requests.len() - 1));
            }
        }
    }
    // The last deployment is chosen when no tenth is downloading (a fleet under ten).
    let (in_progress, member, halfway) = chosen.expect("a fleet has a deployment");
    Fleet {
        requests,
        in_progress,
        member,
        halfway,
    }
}

/// Makes three small rootfs-image artifacts of releases the deployments install, with
/// `mender-artifact`, and uploads them as an operator would; answers the first one's id.
pub async fn upload_artifacts(
    client: &reqwest::Client,
    base: &str,
    bearer: &str,
    dir: &Path,
) -> anyhow::Result<String> {
    let payload = dir.join("payload.ext4");
    std::fs::write(&payload, vec![0x5a_u8; 64 * 1024])?;
    let mut first = None;
    for release in ["release-0", "release-1", "release-2"] {
        let file = dir.join(format!("{release}.mender"));
        let made = std::process::Command::new("mender-artifact")
            .args(["write", "rootfs-image", "-t", "bench", "-n", release, "-f"])
            .arg(&payload)
            .arg("-o")
            .arg(&file)
            .output()
            .map_err(|error| {
                anyhow::anyhow!("mender-artifact does not run ({error}): is it installed?")
            })?;
        anyhow::ensure!(
            made.status.success(),
            "mender-artifact: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let form = reqwest::multipart::Form::new()
            .text("description", format!("{release} for the bench"))
            .part(
                "artifact",
                reqwest::multipart::Part::bytes(std::fs::read(&file)?)
                    .file_name(format!("{release}.mender")),
            );
        let answer = client
            .post(format!("{base}{ARTIFACTS}"))
            .header("authorization", bearer)
            .multipart(form)
            .send()
            .await?;
        let status = answer.status().as_u16();
        let location = answer
            .headers()
            .get("location")
            .and_then(|location| location.to_str().ok())
            .and_then(|location| location.rsplit('/').next())
            .map(str::to_owned);
        anyhow::ensure!(
            status == 201,
            "uploading {release}: {status} {}",
            answer.text().await?
        );
        first = first.or(location);
    }
    first.ok_or_else(|| anyhow::anyhow!("the upload answered no location"))
}

/// Saves the filter a dynamic deployment would target: every device with a MAC address.
pub async fn save_filter(client: &reqwest::Client, base: &str, bearer: &str) -> anyhow::Result<()> {
    let answer = client
        .post(format!("{base}{FILTERS}"))
        .header("authorization", bearer)
        .json(&json!({"name": "every device with a MAC",
                      "terms": [{"scope": "identity", "attribute": "mac", "type": "$exists", "value": true}]}))
        .send()
        .await?;
    let status = answer.status().as_u16();
    anyhow::ensure!(
        status == 201,
        "saving a filter: {status} {}",
        answer.text().await?
    );
    Ok(())
}
