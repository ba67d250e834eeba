//! Artifacts through the real HTTP API, with real `.mender` files from `mender-artifact`, on
//! embedded SQLite and on PostgreSQL (local file storage on both).

/// `mender-artifact read` and its comparison with a parsed artifact, shared with the reader's
/// own tests.
#[path = "../../../artifact-format/tests/common/mod.rs"]
mod mender_tool;

use std::path::Path;

use crate::support::{mender_artifact, rootfs_artifact, TestServer};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::{Digest, Sha256};

const ARTIFACTS: &str = "/api/management/v1/deployments/artifacts";

fn form(file: &Path) -> Form {
    let bytes = std::fs::read(file).unwrap();
    form_of(bytes, Some("a description"))
}

fn form_of(bytes: Vec<u8>, description: Option<&str>) -> Form {
    let mut form = Form::new().text("size", bytes.len().to_string());
    if let Some(description) = description {
        form = form.text("description", description.to_owned());
    }
    form.part("artifact", Part::bytes(bytes).file_name("artifact.mender"))
}

async fn upload(server: &TestServer, form: Form) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = server
        .client
        .post(server.url(ARTIFACTS))
        .bearer_auth(server.admin())
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn uploaded(server: &TestServer, file: &Path) -> String {
    let (status, headers, body) = upload(server, form(file)).await;
    assert_eq!(status, 201, "{body}");
    let location = headers["location"].to_str().unwrap();
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(location, format!("{ARTIFACTS}/{id}"));
    id
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

async fn usage(server: &TestServer) -> u64 {
    let (status, limits) = server
        .get(
            "/api/management/v1/deployments/limits/storage",
            Some(&server.admin()),
        )
        .await;
    assert_eq!(status, 200);
    limits["usage"].as_u64().unwrap()
}

async fn an_uploaded_artifact_reads_back_field_by_field(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let file = rootfs_artifact(
        dir.path(),
        "release-1",
        &["raspberrypi4", "beaglebone"],
        20_000,
    );
    let id = uploaded(&server, &file).await;

    // Read-your-writes: the 201 came after the projection applied the upload.
    let (status, artifact) = server
        .get(&format!("{ARTIFACTS}/{id}"), Some(&server.admin()))
        .await;
    assert_eq!(status, 200, "{artifact}");
    assert_eq!(artifact["id"], id);
    assert_eq!(artifact["name"], "release-1");
    assert_eq!(artifact["description"], "a description");
    assert_eq!(
        artifact["device_types_compatible"],
        serde_json::json!(["raspberrypi4", "beaglebone"])
    );
    assert_eq!(
        artifact["info"],
        serde_json::json!({"format": "mender", "version": 3})
    );
    assert_eq!(artifact["signed"], false);
    assert_eq!(artifact["size"], std::fs::metadata(&file).unwrap().len());
    let update = &artifact["updates"][0];
    assert_eq!(update["type_info"]["type"], "rootfs-image");
    let payload = dir.path().join("release-1.ext4");
    assert_eq!(update["files"][0]["name"], "release-1.ext4");
    assert_eq!(update["files"][0]["size"], 20_000);
    assert_eq!(update["files"][0]["checksum"], sha256(&payload));
    assert_eq!(artifact["artifact_provides"]["artifact_name"], "release-1");
    assert_eq!(
        artifact["artifact_provides"]["rootfs-image.checksum"],
        sha256(&payload)
    );
    assert_eq!(
        artifact["artifact_depends"]["device_type"],
        serde_json::json!(["raspberrypi4", "beaglebone"])
    );
    assert!(artifact["clears_artifact_provides"]
        .as_array()
        .unwrap()
        .contains(&Value::from("rootfs-image.*")));
    assert!(chrono::DateTime::parse_from_rfc3339(artifact["modified"].as_str().unwrap()).is_ok());

    let (status, all) = server.get(ARTIFACTS, Some(&server.admin())).await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0], artifact);
    assert_eq!(
        usage(&server).await,
        std::fs::metadata(&file).unwrap().len()
    );
    assert_eq!(server.stored_files().len(), 1);
}

/// The API's artifact as the reader's result, to hold it against `mender-artifact read`.
fn as_parsed(artifact: &Value) -> artifact_format::ParsedArtifact {
    let field = |name: &str| artifact.get(name).cloned().unwrap_or(Value::Null);
    let or_empty = |name: &str, empty: Value| {
        let value = field(name);
        if value.is_null() {
            empty
        } else {
            value
        }
    };
    artifact_format::ParsedArtifact {
        name: serde_json::from_value(field("name")).unwrap(),
        device_types_compatible: serde_json::from_value(field("device_types_compatible")).unwrap(),
        info: serde_json::from_value(field("info")).unwrap(),
        signed: serde_json::from_value(field("signed")).unwrap(),
        updates: serde_json::from_value(field("updates")).unwrap(),
        artifact_provides: serde_json::from_value(or_empty(
            "artifact_provides",
            serde_json::json!({}),
        ))
        .unwrap(),
        artifact_depends: serde_json::from_value(or_empty(
            "artifact_depends",
            serde_json::json!({}),
        ))
        .unwrap(),
        clears_artifact_provides: serde_json::from_value(or_empty(
            "clears_artifact_provides",
            serde_json::json!([]),
        ))
        .unwrap(),
        size: serde_json::from_value(field("size")).unwrap(),
    }
}

async fn the_api_agrees_with_mender_artifact_read(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("payload.bin"), vec![42u8; 6000]).unwrap();
    std::fs::write(
        dir.path().join("meta.json"),
        r#"{"mode": "fast", "levels": [1, 2]}"#,
    )
    .unwrap();
    let variants: [(&str, &[&str]); 4] = [
        (
            "rootfs-v3",
            &[
                "write",
                "rootfs-image",
                "-t",
                "pi",
                "-t",
                "bbb",
                "-n",
                "rootfs-v3",
                "-f",
                "payload.bin",
                "-o",
                "rootfs-v3.mender",
            ],
        ),
        (
            "rootfs-v2",
            &[
                "write",
                "rootfs-image",
                "-v",
                "2",
                "-t",
                "pi",
                "-n",
                "rootfs-v2",
                "-f",
                "payload.bin",
                "-o",
                "rootfs-v2.mender",
            ],
        ),
        (
            "module-xz",
            &[
                "write",
                "module-image",
                "-T",
                "docker",
                "-t",
                "pi",
                "-n",
                "module-xz",
                "-f",
                "payload.bin",
                "-m",
                "meta.json",
                "--provides",
                "app:1",
                "--depends",
                "os:2",
                "--clears-provides",
                "app*",
                "--compression",
                "lzma",
                "-o",
                "module-xz.mender",
            ],
        ),
        (
            "plain",
            &[
                "write",
                "rootfs-image",
                "-t",
                "pi",
                "-n",
                "plain",
                "-f",
                "payload.bin",
                "--compression",
                "none",
                "-o",
                "plain.mender",
            ],
        ),
    ];
    for (name, arguments) in variants {
        mender_artifact(dir.path(), arguments);
        let file = dir.path().join(format!("{name}.mender"));
        let id = uploaded(&server, &file).await;
        let (_, artifact) = server
            .get(&format!("{ARTIFACTS}/{id}"), Some(&server.admin()))
            .await;
        let view = mender_tool::mender_read(&file, None);
        mender_tool::assert_agrees(&as_parsed(&artifact), &view);
        assert_eq!(
            artifact["size"],
            std::fs::metadata(&file).unwrap().len(),
            "{name}"
        );
    }
}

async fn a_module_image_keeps_its_meta_data_provides_and_depends(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("payload.txt"), "hello device\n".repeat(400)).unwrap();
    std::fs::write(
        dir.path().join("meta.json"),
        r#"{"channel": "beta", "retries": 3}"#,
    )
    .unwrap();
    mender_artifact(
        dir.path(),
        &[
            "write",
            "module-image",
            "-T",
            "my-module",
            "-t",
            "qemux86-64",
            "-n",
            "app-2.0",
            "-f",
            "payload.txt",
            "-m",
            "meta.json",
            "--provides",
            "app.version:2.0",
            "--depends",
            "app.version:1.9",
            "--clears-provides",
            "app.*",
            "-o",
            "app.mender",
        ],
    );
    let id = uploaded(&server, &dir.path().join("app.mender")).await;
    let (_, artifact) = server
        .get(&format!("{ARTIFACTS}/{id}"), Some(&server.admin()))
        .await;
    let update = &artifact["updates"][0];
    assert_eq!(update["type_info"]["type"], "my-module");
    assert_eq!(
        update["meta_data"],
        serde_json::json!({"channel": "beta", "retries": 3})
    );
    assert_eq!(artifact["artifact_provides"]["app.version"], "2.0");
    assert_eq!(artifact["artifact_depends"]["app.version"], "1.9");
    assert_eq!(
        artifact["artifact_depends"]["device_type"],
        serde_json::json!(["qemux86-64"])
    );
    assert!(artifact["clears_artifact_provides"]
        .as_array()
        .unwrap()
        .contains(&Value::from("app.*")));
}

async fn a_v2_artifact_is_accepted(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rootfs.ext4"), vec![7u8; 10_000]).unwrap();
    mender_artifact(
        dir.path(),
        &[
            "write",
            "rootfs-image",
            "-v",
            "2",
            "-t",
            "qemu",
            "-n",
            "old-release",
            "-f",
            "rootfs.ext4",
            "-o",
            "v2.mender",
        ],
    );
    let id = uploaded(&server, &dir.path().join("v2.mender")).await;
    let (_, artifact) = server
        .get(&format!("{ARTIFACTS}/{id}"), Some(&server.admin()))
        .await;
    assert_eq!(artifact["info"]["version"], 2);
    assert_eq!(artifact["name"], "old-release");
    assert_eq!(
        artifact["artifact_depends"]["device_type"],
        serde_json::json!(["qemu"])
    );
}

async fn the_description_can_be_changed_until_used(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let id = uploaded(
        &server,
        &rootfs_artifact(dir.path(), "release-1", &["pi"], 5000),
    )
    .await;
    let path = format!("{ARTIFACTS}/{id}");
    let put = |body: &'static str, content_type: &'static str| {
        server
            .client
            .put(server.url(&path))
            .bearer_auth(server.admin())
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let response = put(r#"{"description": "promoted"}"#, "application/json")
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (_, artifact) = server.get(&path, Some(&server.admin())).await;
    assert_eq!(artifact["description"], "promoted");

    let before = server.head().await;
    let response = put(r#"{"description": 5"#, "application/json")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = put(r#"{"description": "x"}"#, "text/plain").await.unwrap();
    assert_eq!(response.status(), 415);
    let long = format!(r#"{{"description": "{}"}}"#, "x".repeat(4097));
    let response = server
        .client
        .put(server.url(&path))
        .bearer_auth(server.admin())
        .json(&serde_json::from_str::<Value>(&long).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = server
        .client
        .put(server.url(&format!("{ARTIFACTS}/{}", uuid::Uuid::new_v4())))
        .bearer_auth(server.admin())
        .json(&serde_json::json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = server
        .client
        .put(server.url(&format!("{ARTIFACTS}/not-a-uuid")))
        .bearer_auth(server.admin())
        .json(&serde_json::json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        server.head().await,
        before,
        "a refused edit appended an event"
    );
    let (_, artifact) = server.get(&path, Some(&server.admin())).await;
    assert_eq!(artifact["description"], "promoted");
}

async fn a_deleted_artifact_and_its_file_are_gone(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let file = rootfs_artifact(dir.path(), "release-1", &["pi"], 5000);
    let id = uploaded(&server, &file).await;
    let other = uploaded(
        &server,
        &rootfs_artifact(dir.path(), "release-2", &["pi"], 6000),
    )
    .await;
    assert_eq!(server.stored_files().len(), 2);
    let response = server
        .client
        .delete(server.url(&format!("{ARTIFACTS}/{id}")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        server
            .get(&format!("{ARTIFACTS}/{id}"), Some(&server.admin()))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .get(&format!("{ARTIFACTS}/{other}"), Some(&server.admin()))
            .await
            .0,
        200
    );
    assert_eq!(server.stored_files().len(), 1);
    let remaining = std::fs::metadata(dir.path().join("release-2.mender"))
        .unwrap()
        .len();
    assert_eq!(usage(&server).await, remaining);
    let again = server
        .client
        .delete(server.url(&format!("{ARTIFACTS}/{id}")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

async fn releases_group_artifacts_by_name(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    for (name, device_type) in [
        ("release-1", "pi"),
        ("release-1", "bbb"),
        ("release-2", "pi"),
        ("beta-3", "pi"),
    ] {
        let sub = dir.path().join(format!("{name}-{device_type}"));
        std::fs::create_dir(&sub).unwrap();
        uploaded(&server, &rootfs_artifact(&sub, name, &[device_type], 3000)).await;
    }
    let admin = server.admin();
    let (status, releases) = server
        .get(
            "/api/management/v1/deployments/deployments/releases",
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["beta-3", "release-1", "release-2"]);
    assert_eq!(releases[1]["artifacts"].as_array().unwrap().len(), 2);
    let (_, filtered) = server
        .get(
            "/api/management/v1/deployments/deployments/releases?name=release-2",
            Some(&admin),
        )
        .await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);

    let response = server
        .client
        .get(
            server
                .url("/api/management/v1/deployments/deployments/releases/list?per_page=2&page=1"),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "3");
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("rel=\"next\""), "{link}");
    let page: Value = response.json().await.unwrap();
    assert_eq!(page.as_array().unwrap().len(), 2);
    // Mender's lenient paging: an unreadable per_page is the default, not an error.
    let response =
        server
            .client
            .get(server.url(
                "/api/management/v1/deployments/deployments/releases/list?per_page=abc&name=REL",
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-total-count"], "2");

    let response = server
        .client
        .get(server.url(&format!(
            "{ARTIFACTS}/list?per_page=3&page=2&sort=name:desc"
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "4");
    assert!(response.headers()["link"]
        .to_str()
        .unwrap()
        .contains("rel=\"prev\""));
    let page: Value = response.json().await.unwrap();
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["name"], "beta-3");
    let (_, by_type) = server
        .get(&format!("{ARTIFACTS}/list?device_type=bbb"), Some(&admin))
        .await;
    assert_eq!(by_type.as_array().unwrap().len(), 1);

    // A release disappears with its last artifact.
    let beta = page[0]["id"].as_str().unwrap();
    server
        .client
        .delete(server.url(&format!("{ARTIFACTS}/{beta}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (_, releases) = server
        .get(
            "/api/management/v1/deployments/deployments/releases",
            Some(&admin),
        )
        .await;
    assert_eq!(releases.as_array().unwrap().len(), 2);
}

async fn a_download_link_serves_the_file_until_it_expires(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let file = rootfs_artifact(dir.path(), "release-1", &["pi"], 9000);
    let bytes = std::fs::read(&file).unwrap();
    let id = uploaded(&server, &file).await;
    let (status, link) = server
        .get(&format!("{ARTIFACTS}/{id}/download"), Some(&server.admin()))
        .await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(link["method"], "GET");
    let uri = link["uri"].as_str().unwrap().to_owned();
    let expire = chrono::DateTime::parse_from_rfc3339(link["expire"].as_str().unwrap()).unwrap();
    let lifetime = expire
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((890..=900).contains(&lifetime), "{lifetime}");

    // No token: the link itself is the authorisation.
    let response = reqwest::get(&uri).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        bytes.len().to_string()
    );
    let last_modified = response.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let range = server
        .client
        .get(&uri)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(
        range.headers()["content-range"],
        format!("bytes 100-199/{}", bytes.len())
    );
    assert_eq!(range.bytes().await.unwrap().as_ref(), &bytes[100..200]);

    let local = server.settings.storage.backend == blob_store::StorageBackend::Local;
    if local {
        // Our own links take HEAD too; an S3 presigned link is signed for GET alone.
        let head = server.client.head(&uri).send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-length"], bytes.len().to_string());
    }
    // Conditional requests are ours to answer only for local links; S3 links get whatever
    // the store implements (the test server ignores them).
    if local {
        let unchanged = server
            .client
            .get(&uri)
            .header("If-Modified-Since", &last_modified)
            .send()
            .await
            .unwrap();
        assert_eq!(unchanged.status(), 304);
        let stale = server
            .client
            .get(&uri)
            .header("If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 412);
    }
    let post = server.client.post(&uri).send().await.unwrap();
    assert!(
        matches!(post.status().as_u16(), 403 | 405),
        "{}",
        post.status()
    );

    // Both kinds of link end in their signature: change its last digit.
    let mut tampered = uri.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    let other_file = uri.replace(&id, &uuid::Uuid::new_v4().to_string());
    assert_eq!(reqwest::get(&other_file).await.unwrap().status(), 403);
    if server.postgres_url.is_none() {
        // Our own links with the signature left off: Mender's error body, not the parser's.
        let unsigned = uri.split('?').next().unwrap();
        let answer = reqwest::get(unsigned).await.unwrap();
        assert_eq!(answer.status(), 400);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("signature"),
            "{body}"
        );
        assert!(body["request_id"].is_string(), "{body}");
    }
}

async fn bad_uploads_are_refused_and_store_nothing(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(rootfs_artifact(dir.path(), "release-1", &["pi"], 30_000)).unwrap();
    let members = tar_members(&good);
    let header_at = members
        .iter()
        .find(|(name, _, _)| name.starts_with("header.tar"))
        .unwrap()
        .1;
    let (_, data_at, data_len) = *members
        .iter()
        .find(|(name, _, _)| name.starts_with("data/"))
        .unwrap();
    let mut flipped = good.clone();
    flipped[data_at + data_len / 2] ^= 0x55;
    let plain_tar = {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_cksum();
        builder
            .append_data(&mut header, "hello.txt", &b"hello"[..])
            .unwrap();
        builder.into_inner().unwrap()
    };
    let random: Vec<u8> = (0..50_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated in the header", good[..header_at + 100].to_vec()),
        (
            "truncated in the payload",
            good[..data_at + data_len / 2].to_vec(),
        ),
        ("a flipped payload byte", flipped),
        ("a plain tar", plain_tar),
        ("random bytes", random),
    ];
    let head = server.head().await;
    for (case, bytes) in cases {
        let (status, _, body) = upload(&server, form_of(bytes, None)).await;
        assert_eq!(status, 400, "{case}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("reading artifact error: "),
            "{case}: {body}"
        );
        assert!(!body["request_id"].as_str().unwrap().is_empty());
    }

    let response = server
        .client
        .post(server.url(ARTIFACTS))
        .bearer_auth(server.admin())
        .header("Content-Type", "application/octet-stream")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let (status, _, body) = upload(&server, Form::new().text("description", "no file")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "request does not contain the artifact file");
    let bad_id = Form::new()
        .text("artifact_id", "nope")
        .part("artifact", Part::bytes(good.clone()).file_name("a.mender"));
    let (status, _, body) = upload(&server, bad_id).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "artifact_id is not a valid UUID");
    // Two files in one upload: the second would be silently dropped.
    let two = Form::new()
        .part("artifact", Part::bytes(good.clone()).file_name("a.mender"))
        .part("artifact", Part::bytes(good.clone()).file_name("b.mender"));
    let (status, _, body) = upload(&server, two).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        "the request contains more than one artifact file"
    );
    // A declared size the file does not have, smaller or larger.
    for declared in [good.len() - 100, good.len() + 100] {
        let form = Form::new()
            .text("size", declared.to_string())
            .part("artifact", Part::bytes(good.clone()).file_name("a.mender"));
        let (status, _, body) = upload(&server, form).await;
        assert_eq!(status, 400, "size {declared}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("size: "),
            "size {declared}: {body}"
        );
        assert!(body["request_id"].is_string());
    }

    assert_eq!(
        server.head().await,
        head,
        "a refused upload appended an event"
    );
    assert!(
        server.stored_files().is_empty(),
        "a refused upload left {:?}",
        server.stored_files()
    );
    assert_eq!(usage(&server).await, 0);
}

async fn a_duplicate_name_and_device_type_is_409_naming_the_artifact(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let first = uploaded(
        &server,
        &rootfs_artifact(dir.path(), "release-1", &["pi", "bbb"], 4000),
    )
    .await;
    let sub = dir.path().join("again");
    std::fs::create_dir(&sub).unwrap();
    let again = rootfs_artifact(&sub, "release-1", &["bbb"], 4100);
    let head = server.head().await;
    let (status, _, body) = upload(&server, form(&again)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["metadata"]["conflict"]["id"], first);
    assert_eq!(body["metadata"]["conflict"]["name"], "release-1");
    assert_eq!(server.head().await, head);
    assert_eq!(server.stored_files().len(), 1);
    // Another device type is another artifact of the same release.
    let sub = dir.path().join("other");
    std::fs::create_dir(&sub).unwrap();
    uploaded(&server, &rootfs_artifact(&sub, "release-1", &["x86"], 4200)).await;
}

async fn unauthenticated_and_device_callers_are_refused(server: TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let file = rootfs_artifact(dir.path(), "release-1", &["pi"], 3000);
    let response = server
        .client
        .post(server.url(ARTIFACTS))
        .multipart(form(&file))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let device = server.token("dev-1", "", http_edge::auth::TokenKind::Device);
    let response = server
        .client
        .post(server.url(ARTIFACTS))
        .bearer_auth(device)
        .multipart(form(&file))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(server.stored_files().is_empty());
}

async fn an_upload_over_the_maximum_size_is_413_and_stores_nothing(postgres: bool) {
    let server = TestServer::start_with(postgres, |settings| {
        settings.storage.max_upload_bytes = 50_000;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let big = rootfs_artifact(dir.path(), "big", &["pi"], 200_000);
    let head = server.head().await;
    // Declared by Content-Length: refused before the body is read.
    let (status, _, body) = upload(&server, form(&big)).await;
    assert_eq!(status, 413, "{body}");
    // Streamed without a length: refused once the limit is passed.
    let bytes = std::fs::read(&big).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(8192).map(|chunk| Ok(chunk.to_vec())).collect();
    let streamed = Form::new().part(
        "artifact",
        Part::stream(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .file_name("big.mender"),
    );
    let (status, _, body) = upload(&server, streamed).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(server.head().await, head);
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );
    // Within the limit still works.
    uploaded(
        &server,
        &rootfs_artifact(dir.path(), "small", &["pi"], 10_000),
    )
    .await;
}

async fn an_upload_over_the_storage_limit_is_422_and_stores_nothing(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let first = rootfs_artifact(dir.path(), "first", &["pi"], 30_000);
    let first_size = std::fs::metadata(&first).unwrap().len();
    let server = TestServer::start_with(postgres, |settings| {
        settings.storage.limit_bytes = first_size + 5_000;
    })
    .await;
    uploaded(&server, &first).await;
    let (_, limits) = server
        .get(
            "/api/management/v1/deployments/limits/storage",
            Some(&server.admin()),
        )
        .await;
    assert_eq!(limits["limit"], first_size + 5_000);
    assert_eq!(limits["usage"], first_size);
    let head = server.head().await;
    let second = rootfs_artifact(dir.path(), "second", &["pi"], 30_000);
    let (status, _, body) = upload(&server, form(&second)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(server.head().await, head);
    assert_eq!(server.stored_files().len(), 1);
    assert_eq!(usage(&server).await, first_size);
}

async fn a_client_that_disconnects_mid_upload_leaves_nothing(server: TestServer) {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(rootfs_artifact(dir.path(), "cut", &["pi"], 100_000)).unwrap();
    let head = server.head().await;
    let boundary = "cut-boundary";
    let opening = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"a.mender\"\r\n\r\n"
    );
    let length = opening.len() + bytes.len() + 100;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST {ARTIFACTS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n{opening}",
        server.admin()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    socket.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
    socket.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(socket);
    // The server notices the closed connection on its own time: wait (bounded) for the
    // abandoned upload to be cleaned up, then check that nothing was recorded.
    let incoming = server.settings.data_dir.join("artifacts/.incoming");
    let leftovers = || {
        server.stored_files().len() + std::fs::read_dir(&incoming).map(|d| d.count()).unwrap_or(0)
    };
    for _ in 0..100 {
        if leftovers() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(server.head().await, head);
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );
    assert_eq!(
        std::fs::read_dir(incoming).map(|d| d.count()).unwrap_or(0),
        0
    );
}

async fn signatures_are_verified_when_keys_are_configured(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let run = |arguments: &[&str]| {
        let status = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(arguments)
            .output()
            .unwrap();
        assert!(status.status.success(), "openssl {arguments:?}");
    };
    run(&["genrsa", "-traditional", "-out", "rsa.pem", "3072"]);
    run(&["rsa", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub"]);
    run(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        "ec.pem",
    ]);
    run(&["ec", "-in", "ec.pem", "-pubout", "-out", "ec.pub"]);
    run(&["genrsa", "-traditional", "-out", "stranger.pem", "3072"]);
    let keys = vec![dir.path().join("rsa.pub"), dir.path().join("ec.pub")];
    let server = TestServer::start_with(postgres, |settings| {
        settings.artifacts.verification_keys = keys;
    })
    .await;
    std::fs::write(dir.path().join("rootfs.ext4"), vec![3u8; 8000]).unwrap();
    let write = |name: &str, key: Option<&str>| {
        let output = format!("{name}.mender");
        let mut arguments = vec![
            "write",
            "rootfs-image",
            "-t",
            "pi",
            "-n",
            name,
            "-f",
            "rootfs.ext4",
            "-o",
            &output,
        ];
        if let Some(key) = key {
            arguments.extend(["-k", key]);
        }
        mender_artifact(dir.path(), &arguments);
        dir.path().join(output)
    };
    let rsa_signed = write("rsa-signed", Some("rsa.pem"));
    let ec_signed = write("ec-signed", Some("ec.pem"));
    let unsigned = write("unsigned", None);
    let stranger = write("stranger", Some("stranger.pem"));

    let head = server.head().await;
    let (status, _, body) = upload(&server, form(&unsigned)).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = upload(&server, form(&stranger)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(server.head().await, head);
    assert!(server.stored_files().is_empty());
    for signed in [rsa_signed, ec_signed] {
        let id = uploaded(&server, &signed).await;
        let (_, artifact) = server
            .get(&format!("{ARTIFACTS}/{id}"), Some(&server.admin()))
            .await;
        assert_eq!(artifact["signed"], true);
    }
}

async fn a_download_link_stops_working_when_it_expires(postgres: bool) {
    let server = TestServer::start_with(postgres, |settings| {
        settings.download_link_seconds = 1;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let id = uploaded(
        &server,
        &rootfs_artifact(dir.path(), "short", &["pi"], 5000),
    )
    .await;
    let (_, link) = server
        .get(&format!("{ARTIFACTS}/{id}/download"), Some(&server.admin()))
        .await;
    let uri = link["uri"].as_str().unwrap().to_owned();
    assert_eq!(reqwest::get(&uri).await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(reqwest::get(&uri).await.unwrap().status(), 403);
}

/// Names, offsets and sizes of the members of an uncompressed tar.
fn tar_members(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.path().unwrap().to_string_lossy().into_owned(),
                entry.raw_file_position() as usize,
                entry.size() as usize,
            )
        })
        .collect()
}

on_both_backends!(
    an_uploaded_artifact_reads_back_field_by_field,
    the_api_agrees_with_mender_artifact_read,
    a_module_image_keeps_its_meta_data_provides_and_depends,
    a_v2_artifact_is_accepted,
    the_description_can_be_changed_until_used,
    a_deleted_artifact_and_its_file_are_gone,
    releases_group_artifacts_by_name,
    a_download_link_serves_the_file_until_it_expires,
    bad_uploads_are_refused_and_store_nothing,
    a_duplicate_name_and_device_type_is_409_naming_the_artifact,
    unauthenticated_and_device_callers_are_refused,
    a_client_that_disconnects_mid_upload_leaves_nothing
);

configured_on_both_backends!(
    an_upload_over_the_maximum_size_is_413_and_stores_nothing,
    an_upload_over_the_storage_limit_is_422_and_stores_nothing,
    signatures_are_verified_when_keys_are_configured,
    a_download_link_stops_working_when_it_expires
);
