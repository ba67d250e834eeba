//! How to reach the S3-compatible store, as read from the service configuration.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Where and how to reach the S3-compatible store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct S3Settings {
    /// Bucket holding the artifacts. Default `mender-artifacts`.
    pub bucket: String,
    /// Region to sign requests for. Default `us-east-1`.
    pub region: String,
    /// Endpoint URL of an S3-compatible server, e.g. `http://minio:9000`. Default: AWS.
    pub endpoint: Option<String>,
    /// Access key id, with `secret_access_key`. Default: the standard AWS credential chain
    /// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, the shared profile
    /// (`AWS_PROFILE`), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, as
    /// Kubernetes service accounts get them), the container's or instance's metadata).
    pub access_key_id: Option<String>,
    /// Secret access key, with `access_key_id`.
    pub secret_access_key: Option<SecretString>,
    /// Address buckets in the path rather than the host name. Default `false`; most
    /// S3-compatible servers need `true`.
    pub force_path_style: bool,
    /// When to send and check checksums. Default `when-required`.
    pub checksums: ChecksumPolicy,
    /// Create the bucket at startup when it is missing. Default `false`.
    pub create_bucket: bool,
    /// Upload part size in MiB, 5 to 5120; an upload holds up to two parts in memory.
    /// Default 8, for artifacts up to 80 GiB (S3 allows 10 000 parts).
    pub part_size_mib: u64,
    /// Endpoint URL put into download links, when devices reach the store under another
    /// address than the service does. Default: `endpoint`.
    pub presign_public_endpoint: Option<String>,
    /// Unfinished multipart uploads begun this many hours ago were abandoned by a crash and
    /// are aborted at start and every hour. Default 24: far longer than any upload takes,
    /// since other instances upload into the same bucket.
    pub abandoned_upload_hours: u64,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            bucket: "mender-artifacts".to_owned(),
            region: "us-east-1".to_owned(),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            force_path_style: false,
            checksums: ChecksumPolicy::default(),
            create_bucket: false,
            part_size_mib: 8,
            presign_public_endpoint: None,
            abandoned_upload_hours: 24,
        }
    }
}

/// When the SDK adds CRC checksums to requests and checks those in responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumPolicy {
    /// On every operation that supports them; some S3-compatible servers reject these.
    WhenSupported,
    /// Only where the operation demands them.
    #[default]
    WhenRequired,
}
