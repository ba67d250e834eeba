//! Events of the deployment aggregate and of each device's entry in a deployment.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ArtifactId, DeploymentId};

/// A device's state within one deployment, with Mender's wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DeviceDeploymentStatus {
    #[serde(rename = "pending")]
    Pending,
    #[serde(rename = "downloading")]
    Downloading,
    #[serde(rename = "installing")]
    Installing,
    #[serde(rename = "rebooting")]
    Rebooting,
    #[serde(rename = "pause_before_installing")]
    PauseBeforeInstalling,
    #[serde(rename = "pause_before_committing")]
    PauseBeforeCommitting,
    #[serde(rename = "pause_before_rebooting")]
    PauseBeforeRebooting,
    #[serde(rename = "success")]
    Success,
    #[serde(rename = "failure")]
    Failure,
    #[serde(rename = "noartifact")]
    NoArtifact,
    #[serde(rename = "already-installed")]
    AlreadyInstalled,
    #[serde(rename = "aborted")]
    Aborted,
    #[serde(rename = "decommissioned")]
    Decommissioned,
}

impl DeviceDeploymentStatus {
    pub const ALL: [DeviceDeploymentStatus; 13] = [
        Self::Pending,
        Self::Downloading,
        Self::Installing,
        Self::Rebooting,
        Self::PauseBeforeInstalling,
        Self::PauseBeforeCommitting,
        Self::PauseBeforeRebooting,
        Self::Success,
        Self::Failure,
        Self::NoArtifact,
        Self::AlreadyInstalled,
        Self::Aborted,
        Self::Decommissioned,
    ];

    /// The wire name, as stored in read models and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Downloading => "downloading",
            Self::Installing => "installing",
            Self::Rebooting => "rebooting",
            Self::PauseBeforeInstalling => "pause_before_installing",
            Self::PauseBeforeCommitting => "pause_before_committing",
            Self::PauseBeforeRebooting => "pause_before_rebooting",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::NoArtifact => "noartifact",
            Self::AlreadyInstalled => "already-installed",
            Self::Aborted => "aborted",
            Self::Decommissioned => "decommissioned",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Final statuses never change again (except through a new deployment).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Success
                | Self::Failure
                | Self::NoArtifact
                | Self::AlreadyInstalled
                | Self::Aborted
                | Self::Decommissioned
        )
    }
}

impl std::fmt::Display for DeviceDeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One batch of a phased rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub id: Uuid,
    /// Percent of the targeted devices; `None` for the last phase, which takes the remainder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    pub start_ts: DateTime<Utc>,
    /// Devices this phase admits, fixed when the deployment is created.
    pub max_devices: u64,
}

/// An operator created a deployment of an artifact name to a list of devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentCreated {
    pub deployment_id: DeploymentId,
    pub name: String,
    pub artifact_name: String,
    pub devices: Vec<String>,
    pub phases: Vec<Phase>,
    pub force_installation: bool,
    pub created: DateTime<Utc>,
    /// The static group the devices were taken from, for a deployment to a group.
    pub groups: Vec<String>,
    /// For a dynamic deployment (to a saved filter), the filter as it was at creation: any
    /// device that matches it when it asks for its next deployment joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<DynamicTarget>,
    /// The failure policy: when enough of the finished devices failed, the deployment pauses
    /// or aborts by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RolloutPolicy>,
    /// How many more times a device whose attempt failed gets the deployment again, on its
    /// next poll (0 to 10).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a deployment does by itself when its devices fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutPolicy {
    /// Trips once failed devices are at least this percent of the finished ones (1 to 100).
    pub failure_threshold_percent: u32,
    /// Not before this many devices have finished.
    pub min_finished_devices: u64,
    pub on_threshold: OnThreshold,
    /// A device entry left in a non-final state this long after its last change fails with
    /// substate `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_timeout_seconds: Option<u64>,
}

impl RolloutPolicy {
    /// The counts trip the policy when at least `min_finished_devices` devices finished (in
    /// success or failure) and the failed ones are at least the threshold's percent of them.
    pub fn trip(&self, finished: u64, failed: u64) -> Option<PolicyTrip> {
        if finished == 0 || finished < self.min_finished_devices {
            return None;
        }
        let failure_percent = failed as f64 * 100.0 / finished as f64;
        (failure_percent >= f64::from(self.failure_threshold_percent)).then(|| PolicyTrip {
            finished,
            failed,
            failure_percent: (failure_percent * 100.0).round() / 100.0,
        })
    }
}

/// `"policy"` as a client sends it (creating a deployment, or trying a policy on a past one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    pub failure_threshold_percent: Option<i64>,
    pub min_finished_devices: Option<i64>,
    pub on_threshold: Option<String>,
    pub device_timeout_seconds: Option<i64>,
}

/// Devices that must finish before a policy is evaluated, unless the request says.
pub const MIN_FINISHED_DEVICES: u64 = 10;

/// The shortest device timeout: a client polls and reports every few seconds to minutes, and
/// a shorter one would fail devices that are merely busy.
pub const MIN_DEVICE_TIMEOUT: i64 = 60;

/// The longest device timeout, a year: longer is no timeout at all, and a bound keeps the
/// deadline (last change plus timeout) within what a timestamp can hold.
pub const MAX_DEVICE_TIMEOUT: i64 = 365 * 24 * 60 * 60;

/// The most retries a deployment may give a device, as Mender Enterprise allows.
pub const MAX_RETRIES: i64 = 10;

impl PolicyRequest {
    /// The policy, or what is wrong with it, naming the field.
    pub fn checked(&self) -> Result<RolloutPolicy, String> {
        let failure_threshold_percent = match self.failure_threshold_percent {
            Some(percent) if (1..=100).contains(&percent) => percent as u32,
            _ => {
                return Err("policy.failure_threshold_percent: required, between 1 and 100".into())
            }
        };
        let min_finished_devices = match self.min_finished_devices {
            None => MIN_FINISHED_DEVICES,
            Some(n) if n >= 1 => n as u64,
            Some(_) => return Err("policy.min_finished_devices: at least 1".into()),
        };
        let on_threshold = match self.on_threshold.as_deref() {
            None | Some("pause") => OnThreshold::Pause,
            Some("abort") => OnThreshold::Abort,
            Some(_) => return Err("policy.on_threshold: \"pause\" or \"abort\"".into()),
        };
        let device_timeout_seconds = match self.device_timeout_seconds {
            None => None,
            Some(seconds) if (MIN_DEVICE_TIMEOUT..=MAX_DEVICE_TIMEOUT).contains(&seconds) => {
                Some(seconds as u64)
            }
            Some(_) => {
                return Err(format!(
                    "policy.device_timeout_seconds: between {MIN_DEVICE_TIMEOUT} and {MAX_DEVICE_TIMEOUT}"
                ))
            }
        };
        Ok(RolloutPolicy {
            failure_threshold_percent,
            min_finished_devices,
            on_threshold,
            device_timeout_seconds,
        })
    }
}

/// `retries` as a client sends it: 0 when absent.
pub fn checked_retries(sent: Option<i64>) -> Result<u32, String> {
    match sent {
        None => Ok(0),
        Some(retries) if (0..=MAX_RETRIES).contains(&retries) => Ok(retries as u32),
        Some(_) => Err(format!("retries: between 0 and {MAX_RETRIES}")),
    }
}

/// What a tripped policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnThreshold {
    Pause,
    Abort,
}

/// The counts a policy tripped on: devices finished (in success or failure) and failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyTrip {
    pub finished: u64,
    pub failed: u64,
    pub failure_percent: f64,
}

/// What a dynamic deployment targets: a copy of the saved filter, and how many devices it
/// takes before it finishes (none: it runs until aborted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicTarget {
    pub filter_id: Uuid,
    pub name: String,
    pub terms: Vec<crate::inventory::FilterTerm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_devices: Option<u64>,
}

/// The deployment was aborted, by an operator or (with `policy`) by its failure policy:
/// every device not yet in a final state is aborted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentAborted {
    pub deployment_id: DeploymentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyTrip>,
}

/// Why a deployment was paused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PauseCause {
    /// A user paused it; `subject` is their token's `sub`.
    Operator { subject: String },
    /// Its failure policy tripped on these counts of finished and failed devices.
    Policy(PolicyTrip),
}

/// The deployment was paused: devices that have not started it get nothing until it is
/// resumed; devices already updating go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentPaused {
    pub deployment_id: DeploymentId,
    pub cause: PauseCause,
}

/// A user started the next phase of a phased deployment now, rather than at its planned
/// time: from `started` on, it admits its batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseStarted {
    pub deployment_id: DeploymentId,
    /// Index of the phase.
    pub phase: usize,
    pub started: DateTime<Utc>,
    /// The user's token's `sub`.
    pub subject: String,
}

/// A user resumed a paused deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentResumed {
    pub deployment_id: DeploymentId,
    /// The user's token's `sub`.
    pub subject: String,
}

/// A targeted device asked for its next deployment and got an entry in this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceJoinedDeployment {
    pub deployment_id: DeploymentId,
    pub device_id: String,
    /// The artifact chosen for the device, `None` when none fits its device type.
    pub artifact_id: Option<ArtifactId>,
    /// `pending`, or a final status decided on the spot (`noartifact`, `already-installed`).
    pub status: DeviceDeploymentStatus,
    pub device_type: String,
    /// The artifact the device reported running when it asked.
    pub installed_artifact_name: String,
    /// Index of the phase that admitted the device, for phased deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<usize>,
    /// For a dynamic deployment, the saved filter the device matched when it joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_filter: Option<Uuid>,
}

/// A device's entry moved to another status: reported by the device, or imposed by an abort,
/// a decommission or a protocol violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDeploymentStatusChanged {
    pub deployment_id: DeploymentId,
    pub device_id: String,
    pub status: DeviceDeploymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substate: Option<String>,
}

/// A device whose attempt at a deployment failed asked again while the deployment had
/// retries left: its entry starts attempt `attempt` (2 for the first retry) as `pending`, with
/// what the device reported now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDeploymentRetried {
    pub deployment_id: DeploymentId,
    pub device_id: String,
    pub attempt: u32,
    pub device_type: String,
    pub installed_artifact_name: String,
}

/// A device entry stayed in a non-final state longer than its deployment's
/// `device_timeout_seconds` after its last change: it failed, with substate `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDeploymentTimedOut {
    pub deployment_id: DeploymentId,
    pub device_id: String,
    /// The status it was stuck in.
    pub status: DeviceDeploymentStatus,
    /// When its entry last changed, and the timeout that elapsed since.
    pub since: DateTime<Utc>,
    pub timeout_seconds: u64,
}

/// The substate of an entry failed by its deployment's device timeout.
pub const TIMEOUT_SUBSTATE: &str = "timeout";

/// One line of a device's deployment log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMessage {
    pub timestamp: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

/// A device uploaded the log of its attempt at this deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDeploymentLogSaved {
    pub deployment_id: DeploymentId,
    pub device_id: String,
    pub messages: Vec<LogMessage>,
}

/// A phased deployment admitted a device to one of its phases. Recorded on the deployment's
/// stream, whose version serialises admissions, so no phase takes more devices than it may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAdmittedToPhase {
    pub deployment_id: DeploymentId,
    pub device_id: String,
    pub phase: usize,
}

/// The device was removed from service: every unfinished entry it has becomes
/// `decommissioned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDecommissioned {
    pub device_id: String,
}
