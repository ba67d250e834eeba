//! Artifact files in an S3-compatible object store; devices download them through presigned
//! links, so artifact bytes never pass through the service on the way out.

use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use secrecy::ExposeSecret;

use crate::{valid_key, BlobError, BlobStore, ByteStream};

mod settings;
pub use settings::{ChecksumPolicy, S3Settings};

/// S3 rejects non-final parts below 5 MiB and any part above 5 GiB.
const PART_SIZE_MIB: std::ops::RangeInclusive<u64> = 5..=5 * 1024;
const MIB: usize = 1024 * 1024;
const MAX_PARTS: usize = 10_000;

/// The S3 adapter of [`BlobStore`].
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    presigner: Client,
    bucket: String,
    part_size: usize,
    /// Unfinished multipart uploads older than this were abandoned by a crash.
    abandoned_after: Duration,
}

fn storage(what: &str, key: &str, error: impl std::error::Error) -> BlobError {
    BlobError::Storage(format!("{what} {key}: {}", DisplayErrorContext(error)))
}

fn check_key(key: &str) -> Result<(), BlobError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(BlobError::Storage(format!("invalid storage key {key}")))
    }
}

/// The HTTP(S) client of every S3 request: rustls on ring, which the JWT code builds anyway
/// (aws-sdk-s3's default client would compile aws-lc, a large C build, for the same job).
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The keys set in the settings, if any: they take precedence over the standard chain.
fn static_credentials(settings: &S3Settings) -> Result<Option<Credentials>, BlobError> {
    match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(id), Some(secret)) => Ok(Some(Credentials::new(
            id,
            secret.expose_secret(),
            None,
            None,
            "settings",
        ))),
        (None, None) => Ok(None),
        _ => Err(BlobError::Storage(
            "S3 credentials: set both access_key_id and secret_access_key, or neither (then \
             the standard AWS chain applies: environment, shared profile, web identity, \
             container or instance metadata)"
                .to_owned(),
        )),
    }
}

impl S3Store {
    /// Builds the client and checks that the bucket is reachable, creating it if asked to.
    pub async fn connect(settings: &S3Settings) -> Result<Self, BlobError> {
        if !PART_SIZE_MIB.contains(&settings.part_size_mib) {
            return Err(BlobError::Storage(format!(
                "part_size_mib must be between {} and {}",
                PART_SIZE_MIB.start(),
                PART_SIZE_MIB.end()
            )));
        }
        let (requests, responses) = match settings.checksums {
            ChecksumPolicy::WhenSupported => (
                RequestChecksumCalculation::WhenSupported,
                ResponseChecksumValidation::WhenSupported,
            ),
            ChecksumPolicy::WhenRequired => (
                RequestChecksumCalculation::WhenRequired,
                ResponseChecksumValidation::WhenRequired,
            ),
        };
        // The standard chain finds credentials (and refreshes expiring ones) where the
        // platform puts them; the region and the endpoint are always the settings'.
        let mut shared = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .region(Region::new(settings.region.clone()));
        if let Some(credentials) = static_credentials(settings)? {
            shared = shared.credentials_provider(credentials);
        }
        let shared = shared.load().await;
        if shared.credentials_provider().is_none() {
            return Err(BlobError::Storage(
                "S3 credentials: none configured and the standard AWS chain is unavailable"
                    .to_owned(),
            ));
        }
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.force_path_style)
            .request_checksum_calculation(requests)
            .response_checksum_validation(responses);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let mut presign = config.clone();
        if let Some(endpoint) = &settings.presign_public_endpoint {
            presign = presign.endpoint_url(endpoint);
        }
        let part_size = usize::try_from(settings.part_size_mib)
            .map_err(|error| BlobError::Storage(error.to_string()))?
            * MIB;
        let store = Self {
            client: Client::from_conf(config.build()),
            presigner: Client::from_conf(presign.build()),
            bucket: settings.bucket.clone(),
            part_size,
            abandoned_after: Duration::from_secs(settings.abandoned_upload_hours * 3600),
        };
        store.ensure_bucket(settings).await?;
        Ok(store)
    }

    async fn ensure_bucket(&self, settings: &S3Settings) -> Result<(), BlobError> {
        let head = || self.client.head_bucket().bucket(&self.bucket).send();
        match head().await {
            Ok(_) => return Ok(()),
            Err(error)
                if settings.create_bucket
                    && error.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(error) => return Err(storage("bucket", &self.bucket, error)),
        }
        let mut create = self.client.create_bucket().bucket(&self.bucket);
        // us-east-1 is the one region S3 refuses as an explicit location constraint.
        if settings.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(settings.region.as_str()))
                    .build(),
            );
        }
        if let Err(error) = create.send().await {
            // Another replica may have won the race; the second look below settles it.
            let lost_race = error.as_service_error().is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            });
            if !lost_race {
                return Err(storage("create bucket", &self.bucket, error));
            }
        }
        head()
            .await
            .map(|_| ())
            .map_err(|error| storage("bucket", &self.bucket, error))
    }

    async fn put_single(&self, key: &str, body: Bytes) -> Result<(), BlobError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(body.len() as i64)
            .body(S3Body::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| storage("put", key, error))
    }

    async fn upload_part(
        &self,
        key: &str,
        id: &str,
        number: usize,
        part: Bytes,
    ) -> Result<CompletedPart, BlobError> {
        if number > MAX_PARTS {
            return Err(BlobError::Storage(format!(
                "{key} needs more than {MAX_PARTS} parts: raise part_size_mib"
            )));
        }
        let number = number as i32;
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .content_length(part.len() as i64)
            .body(S3Body::from(part))
            .send()
            .await
            .map_err(|error| storage("upload part of", key, error))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(uploaded.e_tag().map(str::to_owned))
            .build())
    }

    /// Uploads the parts of a body whose first `buffer` already holds more than one part.
    async fn upload_parts(
        &self,
        key: &str,
        id: &str,
        mut body: ByteStream,
        mut buffer: BytesMut,
    ) -> Result<u64, BlobError> {
        let (mut parts, mut size, mut more) = (Vec::new(), 0u64, true);
        loop {
            let number = parts.len() + 1;
            if !more {
                // `fill` ended the body with at most one part left, and never with none.
                let part = buffer.split().freeze();
                size += part.len() as u64;
                parts.push(self.upload_part(key, id, number, part).await?);
                break;
            }
            let part = buffer.split_to(self.part_size).freeze();
            size += part.len() as u64;
            // The next part is read while this one travels, so neither side waits.
            let (part, next) = tokio::try_join!(
                self.upload_part(key, id, number, part),
                fill(&mut body, &mut buffer, self.part_size),
            )?;
            parts.push(part);
            more = next;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|error| storage("complete upload of", key, error))?;
        Ok(size)
    }

    async fn put_multipart(
        &self,
        key: &str,
        body: ByteStream,
        buffer: BytesMut,
    ) -> Result<u64, BlobError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| storage("start upload of", key, error))?;
        let id = created
            .upload_id()
            .ok_or_else(|| BlobError::Storage(format!("no upload id for {key}")))?;
        let mut upload = PendingUpload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            id: id.to_owned(),
            finished: false,
        };
        let outcome = self.upload_parts(key, id, body, buffer).await;
        if outcome.is_err() {
            upload.abort().await;
        }
        upload.finished = true;
        outcome
    }
}

/// Reads until `buffer` holds more than `limit` bytes; `false` once the body has ended.
async fn fill(
    body: &mut ByteStream,
    buffer: &mut BytesMut,
    limit: usize,
) -> Result<bool, BlobError> {
    while buffer.len() <= limit {
        match body.next().await {
            Some(chunk) => buffer.extend_from_slice(&chunk.map_err(BlobError::Aborted)?),
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// A multipart upload that is aborted unless completed, even when the put is cancelled.
struct PendingUpload {
    client: Client,
    bucket: String,
    key: String,
    id: String,
    finished: bool,
}

impl PendingUpload {
    fn abort(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.finished = true;
        let request = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.id);
        let key = self.key.clone();
        async move {
            // Nothing is visible under the key either way; the parts only cost storage
            // until a bucket lifecycle rule removes them.
            if let Err(error) = request.send().await {
                let error = DisplayErrorContext(error);
                tracing::warn!(key, %error, "could not abort multipart upload");
            }
        }
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The put's future was dropped mid-upload (its request went away): abort in the
        // background, as no one is left to await it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(self.abort());
        }
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64, BlobError> {
        check_key(key)?;
        let mut buffer = BytesMut::new();
        if fill(&mut body, &mut buffer, self.part_size).await? {
            self.put_multipart(key, body, buffer).await
        } else {
            let size = buffer.len() as u64;
            self.put_single(key, buffer.freeze()).await?;
            Ok(size)
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        check_key(key)?;
        let request = self.client.delete_object().bucket(&self.bucket).key(key);
        match request.send().await {
            Ok(_) => Ok(()),
            // S3 itself answers 204 for a missing key; some compatible servers say so instead.
            Err(error) if matches!(error.code(), Some("NoSuchKey" | "NotFound")) => Ok(()),
            Err(error) => Err(storage("delete", key, error)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        check_key(key)?;
        let request = self.client.head_object().bucket(&self.bucket).key(key);
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(error) => Err(storage("look up", key, error)),
        }
    }

    async fn download_link(&self, key: &str, expires: DateTime<Utc>) -> Result<String, BlobError> {
        check_key(key)?;
        // Links carry whole seconds: sign from the current second so the link lapses at
        // `expires`, not up to a second later.
        let now = Utc::now();
        if expires <= now {
            return Err(BlobError::Storage(format!(
                "link for {key} would be expired"
            )));
        }
        let start = u64::try_from(now.timestamp()).unwrap_or_default();
        let lifetime = u64::try_from(expires.timestamp()).unwrap_or_default() - start;
        let config = PresigningConfig::builder()
            .start_time(UNIX_EPOCH + Duration::from_secs(start))
            .expires_in(Duration::from_secs(lifetime.max(1)))
            .build()
            .map_err(|error| storage("presign", key, error))?;
        let request = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|error| storage("presign", key, error))?;
        Ok(request.uri().to_owned())
    }

    async fn remove_incomplete(&self) -> Result<usize, BlobError> {
        // Other instances upload into the same bucket; only an upload begun this long ago
        // can no longer be anyone's.
        let before = aws_sdk_s3::primitives::DateTime::from(
            std::time::SystemTime::now() - self.abandoned_after,
        );
        let (mut removed, mut key_marker, mut id_marker) = (0, None, None);
        loop {
            let listed = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|error| storage("list uploads of", &self.bucket, error))?;
            for upload in listed.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                let abandoned = upload
                    .initiated()
                    .is_some_and(|initiated| initiated.secs() < before.secs());
                if !valid_key(key) || !abandoned {
                    continue;
                }
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(|error| storage("abort upload of", key, error))?;
                removed += 1;
            }
            if !listed.is_truncated().unwrap_or(false) {
                return Ok(removed);
            }
            key_marker = listed.next_key_marker().map(str::to_owned);
            id_marker = listed.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(removed);
            }
        }
    }
}
