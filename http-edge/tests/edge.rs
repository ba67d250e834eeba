//! The HTTP edge over real HTTP: every auth case, request ids, error bodies, chunked bodies.

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use events::TenantId;
use http_edge::auth::{AuthMode, AuthSettings, Device, Issuer, TokenKind, User, Verifier};
use serde_json::Value;

fn key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn issuer(private_key: &str) -> Issuer {
    Issuer::from_private_pem(&std::fs::read(key(private_key)).unwrap()).unwrap()
}

fn hs256() -> Issuer {
    Issuer::from_settings(&AuthSettings {
        hs256_secret: Some("development secret".into()),
        ..AuthSettings::default()
    })
    .unwrap()
}

fn token(issuer: &Issuer, subject: &str, kind: TokenKind) -> String {
    issuer.issue(&Issuer::claims(
        subject,
        &TenantId::new("acme"),
        kind,
        chrono::Duration::hours(1),
    ))
}

async fn serve(mode: AuthMode) -> String {
    let settings = AuthSettings {
        mode,
        hs256_secret: Some("development secret".into()),
        public_keys: vec![
            key("rsa.pub.pem"),
            key("ec.pub.pem"),
            key("ed25519.pub.pem"),
        ],
        signing_key: None,
        leeway_seconds: 0,
    };
    let verifier = Arc::new(Verifier::from_settings(&settings).unwrap());
    let app = Router::new()
        .route(
            "/management",
            get(|User(user): User| async move {
                Json(serde_json::json!({"user": user.subject, "tenant": user.tenant.0}))
            }),
        )
        .route(
            "/device",
            get(|Device(device): Device| async move {
                Json(serde_json::json!({"device": device.subject, "tenant": device.tenant.0}))
            }),
        )
        .route(
            "/echo",
            post(|Json(body): Json<Value>| async move { Json(body) }),
        )
        .fallback(http_edge::fallback_not_found)
        .layer(middleware::from_fn(http_edge::with_request_id))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn call(url: &str, bearer: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn assert_refused(status: u16, headers: &reqwest::header::HeaderMap, body: &Value, realm: &str) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        headers["www-authenticate"],
        format!("Bearer realm=\"{realm}\"")
    );
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(
        body["request_id"],
        headers["x-men-requestid"].to_str().unwrap()
    );
}

#[tokio::test]
async fn every_supported_algorithm_is_accepted_and_carries_its_tenant() {
    let base = serve(AuthMode::Verify).await;
    for issuer in [
        hs256(),
        issuer("rsa.pem"),
        issuer("ec.pem"),
        issuer("ed25519.pem"),
    ] {
        let (status, _, body) = call(
            &format!("{base}/management"),
            Some(&token(&issuer, "alice", TokenKind::User)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, serde_json::json!({"user": "alice", "tenant": "acme"}));
        let (status, _, body) = call(
            &format!("{base}/device"),
            Some(&token(&issuer, "dev-7", TokenKind::Device)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["device"], "dev-7");
    }
}

#[tokio::test]
async fn a_missing_token_is_401_with_a_challenge() {
    let base = serve(AuthMode::Verify).await;
    let (status, headers, body) = call(&format!("{base}/management"), None).await;
    assert_refused(status, &headers, &body, "ManagementJWT");
    let (status, headers, body) = call(&format!("{base}/device"), None).await;
    assert_refused(status, &headers, &body, "DeviceJWT");
}

#[tokio::test]
async fn a_malformed_token_is_401() {
    let base = serve(AuthMode::Verify).await;
    for bad in ["not-a-jwt", "a.b.c", ""] {
        let (status, headers, body) = call(&format!("{base}/management"), Some(bad)).await;
        assert_refused(status, &headers, &body, "ManagementJWT");
    }
    let response = reqwest::Client::new()
        .get(format!("{base}/management"))
        .header(
            "Authorization",
            format!("Basic {}", token(&hs256(), "alice", TokenKind::User)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let base = serve(AuthMode::Verify).await;
    let issuer = issuer("rsa.pem");
    let expired = issuer.issue(&Issuer::claims(
        "alice",
        &TenantId::default(),
        TokenKind::User,
        chrono::Duration::minutes(-10),
    ));
    let (status, headers, body) = call(&format!("{base}/management"), Some(&expired)).await;
    assert_refused(status, &headers, &body, "ManagementJWT");
    assert_eq!(body["error"], "token expired");
}

#[tokio::test]
async fn a_token_signed_by_an_unknown_key_is_401() {
    let base = serve(AuthMode::Verify).await;
    let forged = token(&issuer("other-rsa.pem"), "alice", TokenKind::User);
    let (status, headers, body) = call(&format!("{base}/management"), Some(&forged)).await;
    assert_refused(status, &headers, &body, "ManagementJWT");
    assert_eq!(body["error"], "token signature does not verify");

    let wrong_secret = Issuer::from_settings(&AuthSettings {
        hs256_secret: Some("guessed".into()),
        ..AuthSettings::default()
    })
    .unwrap();
    let (status, _, _) = call(
        &format!("{base}/management"),
        Some(&token(&wrong_secret, "alice", TokenKind::User)),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_wrong_kind_of_token_is_403() {
    let base = serve(AuthMode::Verify).await;
    let issuer = hs256();
    let (status, _, body) = call(
        &format!("{base}/management"),
        Some(&token(&issuer, "dev-1", TokenKind::Device)),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "a user token required");
    let (status, _, _) = call(
        &format!("{base}/device"),
        Some(&token(&issuer, "alice", TokenKind::User)),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn behind_a_trusted_gateway_signatures_are_not_checked_but_expiry_is() {
    let base = serve(AuthMode::TrustedGateway).await;
    let foreign = issuer("other-rsa.pem");
    let (status, _, body) = call(
        &format!("{base}/management"),
        Some(&token(&foreign, "alice", TokenKind::User)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let expired = foreign.issue(&Issuer::claims(
        "alice",
        &TenantId::default(),
        TokenKind::User,
        chrono::Duration::minutes(-10),
    ));
    let (status, _, _) = call(&format!("{base}/management"), Some(&expired)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_request_id_is_echoed_or_generated_on_every_response() {
    let base = serve(AuthMode::Verify).await;
    let response = reqwest::Client::new()
        .get(format!("{base}/management"))
        .header("X-MEN-RequestID", "my-request-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-men-requestid"], "my-request-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "my-request-42");

    let (status, headers, body) = call(&format!("{base}/no/such/route"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "Resource not found");
    let generated = headers["x-men-requestid"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok());
    assert_eq!(body["request_id"], generated);
}

#[tokio::test]
async fn chunked_request_bodies_are_accepted() {
    let base = serve(AuthMode::Verify).await;
    let chunks = vec![
        Ok::<_, std::io::Error>("{\"status\":"),
        Ok("\"downloading\"}"),
    ];
    let response = reqwest::Client::new()
        .post(format!("{base}/echo"))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "downloading"}));
}

#[tokio::test]
async fn a_remembered_token_is_still_refused_once_it_expires() {
    let base = serve(AuthMode::Verify).await;
    let short = issuer("rsa.pem").issue(&Issuer::claims(
        "dev-1",
        &TenantId::default(),
        TokenKind::Device,
        chrono::Duration::seconds(2),
    ));
    for _ in 0..3 {
        assert_eq!(call(&format!("{base}/device"), Some(&short)).await.0, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (status, _, body) = call(&format!("{base}/device"), Some(&short)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "token expired");
    // A token that differs in one signature character is not the remembered one.
    let mut forged = issuer("rsa.pem").issue(&Issuer::claims(
        "dev-1",
        &TenantId::default(),
        TokenKind::Device,
        chrono::Duration::hours(1),
    ));
    assert_eq!(call(&format!("{base}/device"), Some(&forged)).await.0, 200);
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(call(&format!("{base}/device"), Some(&forged)).await.0, 401);
}

/// Signs arbitrary claims with the development secret the test server accepts.
fn hs256_raw(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"development secret"),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_not_valid_yet_is_401() {
    let base = serve(AuthMode::Verify).await;
    let now = chrono::Utc::now().timestamp();
    let early = hs256_raw(serde_json::json!({
        "sub": "alice", "exp": now + 3600, "nbf": now + 600, "mender.user": true,
    }));
    let (status, headers, body) = call(&format!("{base}/management"), Some(&early)).await;
    assert_refused(status, &headers, &body, "ManagementJWT");
    assert_eq!(body["error"], "token not valid yet");
    // The same claims with nbf in the past are let in: the refusal is the nbf's.
    let valid = hs256_raw(serde_json::json!({
        "sub": "alice", "exp": now + 3600, "nbf": now - 60, "mender.user": true,
    }));
    assert_eq!(
        call(&format!("{base}/management"), Some(&valid)).await.0,
        200
    );
}

#[tokio::test]
async fn a_token_claiming_both_a_user_and_a_device_is_401_on_both_sides() {
    for mode in [AuthMode::Verify, AuthMode::TrustedGateway] {
        let base = serve(mode).await;
        let now = chrono::Utc::now().timestamp();
        let both = hs256_raw(serde_json::json!({
            "sub": "alice", "exp": now + 3600, "mender.user": true, "mender.device": true,
        }));
        let (status, headers, body) = call(&format!("{base}/management"), Some(&both)).await;
        assert_refused(status, &headers, &body, "ManagementJWT");
        let (status, headers, body) = call(&format!("{base}/device"), Some(&both)).await;
        assert_refused(status, &headers, &body, "DeviceJWT");
    }
}
