//! The all-in-one server on its own: devices are admitted with keys made and signatures made
//! by OpenSSL, as mender-client would, report inventory, and an administrator logs in as
//! `mender-cli login` does.

use std::path::{Path, PathBuf};

use base64::Engine;
use deployments::settings::ServerSettings;
use http_edge::auth::{TokenKind, Verifier};
use serde_json::{json, Value};

use crate::support::TestServer;

pub(crate) const AUTH_REQUESTS: &str = "/api/devices/v1/authentication/auth_requests";
const INVENTORY: &str = "/api/devices/v1/inventory/device/attributes";
const LOGIN: &str = "/api/management/v1/useradm/auth/login";
pub(crate) const NEXT: &str = "/api/devices/v1/deployments/device/deployments/next";

/// A device's key pair, in files OpenSSL made.
pub(crate) struct DeviceKeys {
    dir: PathBuf,
    algorithm: &'static str,
    pub(crate) public_pem: String,
}

impl DeviceKeys {
    /// `algorithm`: `RSA`, `EC` (P-256) or `ED25519`.
    pub(crate) fn generate(algorithm: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let mut arguments = vec!["genpkey", "-algorithm", algorithm, "-out", "private.pem"];
        match algorithm {
            "RSA" => arguments.extend(["-pkeyopt", "rsa_keygen_bits:2048"]),
            "EC" => arguments.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]),
            _ => {}
        }
        crate::support::run_tool("openssl", &dir, &arguments);
        let public = [
            "pkey",
            "-in",
            "private.pem",
            "-pubout",
            "-out",
            "public.pem",
        ];
        crate::support::run_tool("openssl", &dir, &public);
        Self {
            public_pem: std::fs::read_to_string(dir.join("public.pem")).unwrap(),
            dir,
            algorithm,
        }
    }

    /// Base64 of the signature over exactly `body`, as `X-MEN-Signature` carries it.
    pub(crate) fn sign(&self, body: &[u8]) -> String {
        std::fs::write(self.dir.join("message"), body).unwrap();
        // Ed25519 signs the message itself, the others its SHA-256 digest.
        let digest: &[&str] = match self.algorithm {
            "ED25519" => &[],
            _ => &["-digest", "sha256"],
        };
        let sign = ["pkeyutl", "-sign", "-rawin", "-inkey", "private.pem"];
        let files = ["-in", "message", "-out", "signature"];
        crate::support::run_tool("openssl", &self.dir, &[&sign, digest, &files].concat());
        let signature = std::fs::read(self.dir.join("signature")).unwrap();
        base64::engine::general_purpose::STANDARD.encode(signature)
    }

    /// The public key in a file of its own, for `standalone.preauthorized_keys`.
    fn public_file(&self) -> PathBuf {
        let path = self.dir.join("preauthorized.pem");
        std::fs::write(&path, &self.public_pem).unwrap();
        path
    }
}

pub(crate) fn auth_body(id_data: &str, keys: &DeviceKeys) -> String {
    json!({"id_data": id_data, "pubkey": keys.public_pem, "tenant_token": ""}).to_string()
}

pub(crate) async fn post_auth_request(
    server: &TestServer,
    body: &str,
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url(AUTH_REQUESTS))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("X-MEN-Signature", signature);
    }
    request.send().await.unwrap()
}

/// Asks to be admitted with a correct signature; returns the status and the body.
pub(crate) async fn authenticate(
    server: &TestServer,
    id_data: &str,
    keys: &DeviceKeys,
) -> (u16, String) {
    let body = auth_body(id_data, keys);
    let response = post_auth_request(server, &body, Some(&keys.sign(body.as_bytes()))).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The subject of a token this server issued.
pub(crate) fn subject(server: &TestServer, token: &str) -> String {
    Verifier::from_settings(&server.settings.auth)
        .unwrap()
        .verify(token)
        .unwrap()
        .sub
}

pub(crate) async fn assert_refused(response: reqwest::Response, status: u16) {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(body["request_id"].as_str().is_some(), "{body}");
}

async fn start_with(customize: impl FnOnce(&mut ServerSettings)) -> TestServer {
    TestServer::start_with(false, customize).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_device_is_admitted_and_polls_with_its_token() {
    let server = TestServer::start(false).await;
    let keys = DeviceKeys::generate("RSA");
    let body = auth_body(r#"{"mac":"de:ad:be:ef:00:01"}"#, &keys);
    let response = post_auth_request(&server, &body, Some(&keys.sign(body.as_bytes()))).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/jwt");
    let token = response.text().await.unwrap();
    let claims = Verifier::from_settings(&server.settings.auth)
        .unwrap()
        .verify(&token)
        .unwrap();
    assert_eq!(claims.device, Some(true));
    assert!(uuid::Uuid::parse_str(&claims.sub).is_ok());

    let next = server
        .client
        .get(server.url(NEXT))
        .query(&[("artifact_name", "release-1"), ("device_type", "rpi4")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(next.status().as_u16(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_and_ed25519_devices_are_admitted() {
    let server = TestServer::start(false).await;
    for algorithm in ["EC", "ED25519"] {
        let keys = DeviceKeys::generate(algorithm);
        let (status, body) = authenticate(&server, r#"{"serial":"1"}"#, &keys).await;
        assert_eq!(status, 200, "{algorithm}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_identity_always_gets_the_same_device_id() {
    let server = TestServer::start(false).await;
    let keys = DeviceKeys::generate("RSA");
    let (_, first) = authenticate(&server, r#"{"mac":"00:11","sn":"7"}"#, &keys).await;
    let (_, again) = authenticate(&server, r#"{ "sn": "7", "mac": "00:11" }"#, &keys).await;
    let (_, other) = authenticate(&server, r#"{"mac":"00:12","sn":"7"}"#, &keys).await;
    assert_ne!(first, again, "a new token each time");
    assert_eq!(subject(&server, &first), subject(&server, &again));
    assert_ne!(subject(&server, &first), subject(&server, &other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_that_do_not_verify_are_401() {
    let server = TestServer::start(false).await;
    let keys = DeviceKeys::generate("RSA");
    let body = auth_body(r#"{"mac":"00:11"}"#, &keys);
    // Signed by another key.
    let stranger = DeviceKeys::generate("RSA");
    let signature = stranger.sign(body.as_bytes());
    assert_refused(
        post_auth_request(&server, &body, Some(&signature)).await,
        401,
    )
    .await;
    // Over other bytes than those sent.
    let signature = keys.sign(format!("{body} ").as_bytes());
    assert_refused(
        post_auth_request(&server, &body, Some(&signature)).await,
        401,
    )
    .await;
    assert_refused(
        post_auth_request(&server, &body, Some("not base64!")).await,
        401,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400() {
    let server = TestServer::start(false).await;
    let keys = DeviceKeys::generate("ED25519");
    let cases = [
        "not json".to_owned(),
        json!({"pubkey": keys.public_pem}).to_string(),
        json!({"id_data": "{\"mac\":\"1\"}", "pubkey": ""}).to_string(),
        json!({"id_data": "mac=1", "pubkey": keys.public_pem}).to_string(),
        json!({"id_data": "{\"mac\":\"1\"}", "pubkey": "not a key"}).to_string(),
    ];
    for body in cases {
        let signature = keys.sign(body.as_bytes());
        assert_refused(
            post_auth_request(&server, &body, Some(&signature)).await,
            400,
        )
        .await;
    }
    let body = auth_body(r#"{"mac":"1"}"#, &keys);
    assert_refused(post_auth_request(&server, &body, None).await, 400).await;
    // An identity far over the body limit is 413, as JSON like every other error.
    let huge = json!({"serial": "x".repeat(3 * 1024 * 1024)}).to_string();
    let body = auth_body(&huge, &keys);
    let response = post_auth_request(&server, &body, Some(&keys.sign(body.as_bytes()))).await;
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "a 413 in plain text"
    );
    assert_refused(response, 413).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_accept_only_preauthorized_devices_are_admitted() {
    let preauthorized_key = DeviceKeys::generate("RSA");
    let key_file = preauthorized_key.public_file();
    let server = start_with(|settings| {
        settings.standalone.admission.auto_accept = false;
        settings.standalone.admission.preauthorized_identities =
            vec![r#"{"sn":"1","mac":"00:01"}"#.into()];
        settings.standalone.admission.preauthorized_keys = vec![key_file];
    })
    .await;
    let other_key = DeviceKeys::generate("RSA");

    let body = auth_body(r#"{"mac":"00:99"}"#, &other_key);
    let signature = other_key.sign(body.as_bytes());
    let refused = post_auth_request(&server, &body, Some(&signature)).await;
    assert_refused(refused, 401).await;

    // Compared as JSON objects: key order does not matter.
    let (status, _) = authenticate(&server, r#"{"mac":"00:01","sn":"1"}"#, &other_key).await;
    assert_eq!(status, 200);
    let (status, _) = authenticate(&server, r#"{"mac":"00:99"}"#, &preauthorized_key).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_attributes_take_a_device_token() {
    let server = TestServer::start(false).await;
    let keys = DeviceKeys::generate("EC");
    let (_, token) = authenticate(&server, r#"{"mac":"00:11"}"#, &keys).await;
    let attributes = json!([
        {"name": "device_type", "value": "rpi4"},
        {"name": "artifact_name", "value": "release-1"},
        {"name": "kernel", "value": "6.1"},
    ]);
    for method in [reqwest::Method::PUT, reqwest::Method::PATCH] {
        let request = || server.client.request(method.clone(), server.url(INVENTORY));
        let accepted = request()
            .bearer_auth(&token)
            .json(&attributes)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status().as_u16(), 200, "{method}");
        let anonymous = request().json(&attributes).send().await.unwrap();
        assert_refused(anonymous, 401).await;
        let user = request()
            .bearer_auth(server.admin())
            .json(&attributes)
            .send()
            .await
            .unwrap();
        assert_refused(user, 403).await;
        let nameless = request()
            .bearer_auth(&token)
            .json(&json!([{"name": "", "value": "x"}]))
            .send()
            .await
            .unwrap();
        assert_refused(nameless, 400).await;
    }
}

async fn login(server: &TestServer, email: &str, password: &str) -> reqwest::Response {
    server
        .client
        .post(server.url(LOGIN))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_administrator_logs_in_with_basic_credentials() {
    let server = start_with(|settings| {
        settings.standalone.admin_email = "ops@example.com".into();
        settings.standalone.admin_password = Some("correct horse".into());
    })
    .await;
    let response = login(&server, "ops@example.com", "correct horse").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/jwt");
    let token = response.text().await.unwrap();
    let (status, _) = server
        .get("/api/management/v1/deployments/deployments", Some(&token))
        .await;
    assert_eq!(status, 200);

    assert_refused(login(&server, "ops@example.com", "wrong").await, 401).await;
    assert_refused(
        login(&server, "root@example.com", "correct horse").await,
        401,
    )
    .await;
    let anonymous = server.client.post(server.url(LOGIN)).send().await.unwrap();
    assert_refused(anonymous, 401).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_password_one_is_made_in_the_data_directory() {
    let server = TestServer::start(false).await;
    let file: &Path = &server.settings.data_dir.join("admin.password");
    let password = std::fs::read_to_string(file).unwrap();
    assert!(password.trim().len() >= 32);
    let response = login(&server, "admin@example.com", password.trim()).await;
    assert_eq!(response.status().as_u16(), 200);
    let token = response.text().await.unwrap();
    let (status, _) = server
        .get("/api/management/v1/deployments/deployments", Some(&token))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_off_the_routes_do_not_exist() {
    let server = start_with(|settings| settings.standalone.admission.enabled = false).await;
    assert!(!server.settings.data_dir.join("admin.password").exists());
    let keys = DeviceKeys::generate("ED25519");
    let (status, _) = authenticate(&server, r#"{"mac":"00:11"}"#, &keys).await;
    assert_eq!(status, 404);
    let device = server.token("device-1", "", TokenKind::Device);
    for method in [reqwest::Method::PUT, reqwest::Method::PATCH] {
        let response = server
            .client
            .request(method, server.url(INVENTORY))
            .bearer_auth(&device)
            .json(&json!([]))
            .send()
            .await
            .unwrap();
        assert_refused(response, 404).await;
    }
    assert_refused(login(&server, "admin@example.com", "anything").await, 404).await;
}

/// A client bound to its own loopback address, so that tests can be several clients.
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_from(
    server: &TestServer,
    from: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    client_from(from)
        .post(server.url(LOGIN))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap()
}

async fn assert_throttled(response: reqwest::Response) {
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert_refused(response, 429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled_by_address_and_by_login_name() {
    let server = start_with(|settings| {
        settings.standalone.admin_password = Some("correct horse".into());
        settings.standalone.login_failures_per_minute = 5;
    })
    .await;
    let admin = "admin@example.com";
    // One address guessing: five failures, then 429 whatever it sends, the right password
    // included.
    for _ in 0..5 {
        assert_refused(login_from(&server, "127.0.0.2", admin, "guess").await, 401).await;
    }
    assert_throttled(login_from(&server, "127.0.0.2", admin, "guess").await).await;
    assert_throttled(login_from(&server, "127.0.0.2", "other@example.com", "x").await).await;
    // Those five failures were also the login name's: any address now waits for it.
    assert_throttled(login_from(&server, "127.0.0.3", admin, "correct horse").await).await;
    // Another address and another name are not affected.
    assert_refused(
        login_from(&server, "127.0.0.3", "other@example.com", "x").await,
        401,
    )
    .await;
    // Successes do not count.
    let fresh = start_with(|settings| {
        settings.standalone.admin_password = Some("correct horse".into());
        settings.standalone.login_failures_per_minute = 2;
    })
    .await;
    for _ in 0..5 {
        let response = login_from(&fresh, "127.0.0.4", admin, "correct horse").await;
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_requests_are_throttled_per_identity_and_per_address() {
    let server = start_with(|settings| {
        settings.standalone.admission.auth_requests_per_minute = 3;
        settings
            .standalone
            .admission
            .auth_requests_per_address_per_minute = 8;
    })
    .await;
    let keys = DeviceKeys::generate("ED25519");
    let ask = |id_data: &str, from: &'static str| {
        let body = auth_body(id_data, &keys);
        let signature = keys.sign(body.as_bytes());
        let server = &server;
        async move {
            client_from(from)
                .post(server.url(AUTH_REQUESTS))
                .header("content-type", "application/json")
                .header("X-MEN-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(ask(r#"{"mac":"1"}"#, "127.0.0.2").await.status(), 200);
    }
    assert_throttled(ask(r#"{"mac":"1"}"#, "127.0.0.3").await).await;
    // Other identities from the first address, up to its own limit (8, with the 3 above).
    for n in 2..7 {
        let id_data = format!(r#"{{"mac":"{n}"}}"#);
        assert_eq!(ask(&id_data, "127.0.0.2").await.status(), 200, "{id_data}");
    }
    assert_throttled(ask(r#"{"mac":"7"}"#, "127.0.0.2").await).await;
    assert_eq!(ask(r#"{"mac":"7"}"#, "127.0.0.4").await.status(), 200);
}
