//! The S3 adapter against a real S3-compatible server (s3s-fs, with signatures checked).
//! Start one with `eval "$(scripts/s3-test-server)"` from the workspace root.
#![cfg(feature = "s3")]

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use blob_store::s3::{ChecksumPolicy, S3Settings, S3Store};
use blob_store::{artifact_key, BlobError, BlobStore, ByteStream};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;

const MIB: usize = 1024 * 1024;

/// The tests look at the server's shared data directory for leftover uploads, so they take
/// turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need a real S3-compatible server. Start one with \
             `eval \"$(scripts/s3-test-server)\"` in the workspace root, then run \
             `cargo test -p blob-store --features s3` from the same shell"
        )
    })
}

fn settings() -> S3Settings {
    S3Settings {
        bucket: format!("blob-store-test-{}", uuid::Uuid::new_v4().simple()),
        endpoint: Some(env("TEST_S3_ENDPOINT")),
        access_key_id: Some(env("TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(env("TEST_S3_SECRET_KEY").into()),
        force_path_style: true,
        create_bucket: true,
        part_size_mib: 5,
        ..S3Settings::default()
    }
}

/// A store on a bucket of its own, and a plain client to look behind its back.
async fn fresh_store() -> (S3Store, aws_sdk_s3::Client, String) {
    let settings = settings();
    let store = S3Store::connect(&settings).await.unwrap();
    (store, client(&settings), settings.bucket)
}

fn client(settings: &S3Settings) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(blob_store::s3::https_client())
        .region(Region::new(settings.region.clone()))
        .endpoint_url(settings.endpoint.clone().unwrap())
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            settings.access_key_id.clone().unwrap(),
            secrecy::ExposeSecret::expose_secret(settings.secret_access_key.as_ref().unwrap())
                .to_owned(),
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn key() -> String {
    artifact_key("5f0d2a3b4c5d6e7f80912345", events::ArtifactId::new())
}

/// Reproducible bytes that differ from part to part, so a misplaced part shows.
fn data(len: usize) -> Bytes {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<_>>()
        .into()
}

/// `data` in chunks of an odd size, so chunks straddle part boundaries.
fn body(data: Bytes) -> ByteStream {
    Box::pin(futures::stream::iter(chunked(data)))
}

fn chunked(data: Bytes) -> Vec<Result<Bytes, std::io::Error>> {
    (0..data.len())
        .step_by(100_003)
        .map(|start| Ok(data.slice(start..(start + 100_003).min(data.len()))))
        .collect()
}

/// `len` bytes, then the client goes away.
fn failing_body(len: usize) -> ByteStream {
    let mut chunks = chunked(data(len));
    chunks.push(Err(std::io::ErrorKind::ConnectionReset.into()));
    Box::pin(futures::stream::iter(chunks))
}

async fn get(link: &str, range: Option<&str>) -> (StatusCode, Bytes) {
    let mut request = reqwest::Client::new().get(link);
    if let Some(range) = range {
        request = request.header(reqwest::header::RANGE, range);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.bytes().await.unwrap())
}

fn in_a_minute() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::seconds(60)
}

async fn objects(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listing = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    listing
        .contents()
        .iter()
        .filter_map(|object| object.key().map(str::to_owned))
        .collect()
}

/// Unfinished multipart uploads: from ListMultipartUploads where the server has it, else
/// (s3s-fs) from the part and upload files in its data directory, which all buckets share.
async fn pending_uploads(client: &aws_sdk_s3::Client, bucket: &str) -> BTreeSet<String> {
    match client.list_multipart_uploads().bucket(bucket).send().await {
        Ok(listing) => listing
            .uploads()
            .iter()
            .filter_map(|upload| upload.upload_id().map(str::to_owned))
            .collect(),
        Err(error) if error.code() == Some("NotImplemented") => {
            let root = std::env::var("TEST_S3_ROOT").unwrap_or_else(|_| {
                panic!(
                    "the server has no ListMultipartUploads; set TEST_S3_ROOT to its data \
                     directory (scripts/s3-test-server exports it)"
                )
            });
            std::fs::read_dir(root)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(".upload") || name.contains(".upload-"))
                .collect()
        }
        Err(error) => panic!("{}", aws_sdk_s3::error::DisplayErrorContext(error)),
    }
}

#[tokio::test]
async fn a_small_body_is_stored_and_its_link_downloads_it_whole_or_in_ranges() {
    let _serial = SERIAL.lock().await;
    let (store, client, bucket) = fresh_store().await;
    let key = key();
    let size = store
        .put(&key, body(Bytes::from_static(b"hello world")))
        .await
        .unwrap();
    assert_eq!(size, 11);
    assert!(store.exists(&key).await.unwrap());
    assert_eq!(objects(&client, &bucket).await, vec![key.clone()]);

    let link = store.download_link(&key, in_a_minute()).await.unwrap();
    assert!(link.starts_with(&env("TEST_S3_ENDPOINT")), "{link}");
    assert_eq!(
        get(&link, None).await,
        (StatusCode::OK, Bytes::from_static(b"hello world"))
    );
    assert_eq!(
        get(&link, Some("bytes=6-10")).await,
        (StatusCode::PARTIAL_CONTENT, Bytes::from_static(b"world"))
    );
}

#[tokio::test]
async fn a_body_of_several_parts_is_stored_whole() {
    let _serial = SERIAL.lock().await;
    let (store, client, bucket) = fresh_store().await;
    let before = pending_uploads(&client, &bucket).await;
    let key = key();
    let content = data(20 * MIB + 12_345);
    let size = store.put(&key, body(content.clone())).await.unwrap();
    assert_eq!(size, content.len() as u64);
    assert!(store.exists(&key).await.unwrap());
    assert_eq!(pending_uploads(&client, &bucket).await, before);

    let link = store.download_link(&key, in_a_minute()).await.unwrap();
    let (status, downloaded) = get(&link, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(downloaded == content, "downloaded bytes differ");
    let across_parts = 5 * MIB - 10..5 * MIB + 10;
    let range = format!("bytes={}-{}", across_parts.start, across_parts.end - 1);
    assert_eq!(
        get(&link, Some(&range)).await,
        (StatusCode::PARTIAL_CONTENT, content.slice(across_parts))
    );
}

#[tokio::test]
async fn bodies_at_the_part_boundary_are_stored_whole() {
    let _serial = SERIAL.lock().await;
    let (store, _client, _bucket) = fresh_store().await;
    for len in [0, 5 * MIB - 1, 5 * MIB, 5 * MIB + 1, 10 * MIB] {
        let key = key();
        let content = data(len);
        assert_eq!(
            store.put(&key, body(content.clone())).await.unwrap(),
            len as u64
        );
        let link = store.download_link(&key, in_a_minute()).await.unwrap();
        let (status, downloaded) = get(&link, None).await;
        assert_eq!(status, StatusCode::OK, "{len} bytes");
        assert!(downloaded == content, "{len} bytes differ");
    }
}

async fn assert_aborted_body_leaves_nothing(len: usize) {
    let _serial = SERIAL.lock().await;
    let (store, client, bucket) = fresh_store().await;
    let before = pending_uploads(&client, &bucket).await;
    let key = key();
    let outcome = store.put(&key, failing_body(len)).await;
    assert!(matches!(outcome, Err(BlobError::Aborted(_))), "{outcome:?}");
    assert!(!store.exists(&key).await.unwrap());
    assert_eq!(objects(&client, &bucket).await, Vec::<String>::new());
    assert_eq!(pending_uploads(&client, &bucket).await, before);
}

#[tokio::test]
async fn a_body_failing_within_the_first_part_stores_nothing() {
    assert_aborted_body_leaves_nothing(3 * MIB).await;
}

#[tokio::test]
async fn a_body_failing_after_several_parts_stores_nothing() {
    assert_aborted_body_leaves_nothing(17 * MIB).await;
}

#[tokio::test]
async fn a_put_dropped_mid_upload_aborts_its_parts() {
    let _serial = SERIAL.lock().await;
    let (store, client, bucket) = fresh_store().await;
    let before = pending_uploads(&client, &bucket).await;
    let key = key();
    // Two parts' worth, then a client that neither sends more nor hangs up.
    let stalled: ByteStream =
        Box::pin(futures::stream::iter(chunked(data(12 * MIB))).chain(futures::stream::pending()));
    let put = tokio::spawn({
        let (store, key) = (store.clone(), key.clone());
        async move { store.put(&key, stalled).await }
    });
    let mut started = false;
    for _ in 0..100 {
        if pending_uploads(&client, &bucket).await.len() > before.len() {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started, "the upload never started");
    // Time for the first part to land, so there are parts to clean up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    put.abort();
    assert!(put.await.unwrap_err().is_cancelled());
    let mut left = BTreeSet::new();
    for _ in 0..100 {
        left = pending_uploads(&client, &bucket).await;
        if left == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, before);
    assert!(!store.exists(&key).await.unwrap());
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused() {
    let _serial = SERIAL.lock().await;
    let (good, _client, bucket) = fresh_store().await;
    let bad = S3Settings {
        bucket,
        secret_access_key: Some("not-the-secret".into()),
        create_bucket: false,
        ..settings()
    };
    let key = key();
    match S3Store::connect(&bad).await {
        Err(error) => assert!(matches!(error, BlobError::Storage(_)), "{error:?}"),
        Ok(store) => {
            let outcome = store.put(&key, body(data(10))).await;
            assert!(matches!(outcome, Err(BlobError::Storage(_))), "{outcome:?}");
        }
    }
    assert!(!good.exists(&key).await.unwrap());
}

#[tokio::test]
async fn delete_removes_and_deleting_again_is_fine() {
    let _serial = SERIAL.lock().await;
    let (store, client, bucket) = fresh_store().await;
    let key = key();
    store.put(&key, body(data(1000))).await.unwrap();
    let link = store.download_link(&key, in_a_minute()).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(!store.exists(&key).await.unwrap());
    store.delete(&key).await.unwrap();
    assert_eq!(objects(&client, &bucket).await, Vec::<String>::new());
    assert_eq!(get(&link, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let _serial = SERIAL.lock().await;
    let (store, _client, _bucket) = fresh_store().await;
    let key = key();
    store.put(&key, body(data(1000))).await.unwrap();
    // Links last whole seconds, so one second could be none at all; and a loaded machine may
    // take a second to make the first request. Four leave room for both.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(4);
    let link = store.download_link(&key, expires).await.unwrap();
    assert_eq!(get(&link, None).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(get(&link, None).await.0, StatusCode::FORBIDDEN);
    assert!(store
        .download_link(&key, chrono::Utc::now() - chrono::Duration::seconds(1))
        .await
        .is_err());
}

#[tokio::test]
async fn links_name_the_public_endpoint_when_one_is_set() {
    let _serial = SERIAL.lock().await;
    let settings = S3Settings {
        presign_public_endpoint: Some("http://devices.example:9000".to_owned()),
        ..settings()
    };
    let store = S3Store::connect(&settings).await.unwrap();
    let link = store.download_link(&key(), in_a_minute()).await.unwrap();
    assert!(link.starts_with("http://devices.example:9000/"), "{link}");
}

#[tokio::test]
async fn checksums_when_supported_work_and_keep_links_plain() {
    let _serial = SERIAL.lock().await;
    let settings = S3Settings {
        checksums: ChecksumPolicy::WhenSupported,
        ..settings()
    };
    let store = S3Store::connect(&settings).await.unwrap();
    let key = key();
    let content = data(11 * MIB);
    store.put(&key, body(content.clone())).await.unwrap();
    let link = store.download_link(&key, in_a_minute()).await.unwrap();
    let (status, downloaded) = get(&link, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(downloaded == content, "downloaded bytes differ");
}

#[tokio::test]
async fn keys_that_no_artifact_could_have_are_refused() {
    let _serial = SERIAL.lock().await;
    let (store, _client, _bucket) = fresh_store().await;
    for key in [
        "../escape",
        "artifacts/default/../../x",
        "artifacts/default/not-a-uuid",
    ] {
        assert!(store.put(key, body(data(1))).await.is_err(), "{key}");
        assert!(store.exists(key).await.is_err(), "{key}");
        assert!(store.delete(key).await.is_err(), "{key}");
        assert!(
            store.download_link(key, in_a_minute()).await.is_err(),
            "{key}"
        );
    }
}

#[test]
fn settings_default_field_by_field_and_keep_the_secret_out_of_logs() {
    let parsed: S3Settings =
        serde_json::from_str(r#"{"checksums": "when-supported", "secret_access_key": "s3cr3t"}"#)
            .unwrap();
    assert_eq!(parsed.checksums, ChecksumPolicy::WhenSupported);
    assert_eq!(parsed.bucket, "mender-artifacts");
    assert_eq!(parsed.region, "us-east-1");
    assert_eq!(parsed.part_size_mib, 8);
    assert!(!parsed.force_path_style && !parsed.create_bucket);
    assert_eq!(
        S3Settings::default().checksums,
        ChecksumPolicy::WhenRequired
    );
    assert!(!format!("{parsed:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn part_sizes_s3_would_refuse_are_refused_at_connect() {
    let settings = S3Settings {
        part_size_mib: 4,
        endpoint: Some("http://127.0.0.1:9".to_owned()),
        access_key_id: Some("a".to_owned()),
        secret_access_key: Some("b".into()),
        ..S3Settings::default()
    };
    assert!(S3Store::connect(&settings).await.is_err());
}
