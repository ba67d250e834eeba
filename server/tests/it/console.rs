//! The web console: sign-in and its cookie, CSRF and escaping over plain HTTP, and an
//! operator's whole rollout in Debian's headless Chromium through WebDriver.

use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{json, Value};

use crate::standalone::{authenticate, subject, DeviceKeys};
use crate::support::browser::Browser;
use crate::support::{eventually, rootfs_artifact, TestServer};

mod actions;
mod reads;

const PASSWORD: &str = "console test password";
const EMAIL: &str = "admin@example.com";
const DEPLOYMENTS: &str = "/api/management/v1/deployments/deployments";

async fn console_server(postgres: bool, auto_accept: bool) -> TestServer {
    TestServer::start_with(postgres, |settings| {
        settings.standalone.admin_password = Some(PASSWORD.into());
        settings.standalone.admission.auto_accept = auto_accept;
    })
    .await
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value a `Set-Cookie` header gives `name`, with the header's attributes.
fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
}

/// The value of a cookie in a `Set-Cookie` header.
fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value)
        .unwrap()
}

/// The value of the hidden `csrf` field of a page's first form.
fn csrf_field(html: &str) -> String {
    let start = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a csrf field")
        + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

/// An operator's browser session over plain HTTP: its cookie header and CSRF token.
struct Signed {
    cookie: String,
    csrf: String,
}

async fn sign_in_form(server: &TestServer) -> (String, String) {
    let response = client()
        .get(server.url("/ui/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie =
        cookie_value(set_cookie(response.headers(), "deployments_sign_in").unwrap()).to_owned();
    let csrf = csrf_field(&response.text().await.unwrap());
    (format!("deployments_sign_in={cookie}"), csrf)
}

async fn post_sign_in(
    server: &TestServer,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client()
        .post(server.url("/ui/sign-in"))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn sign_in(server: &TestServer) -> Signed {
    let (cookie, csrf) = sign_in_form(server).await;
    let response = post_sign_in(
        server,
        &cookie,
        &[("csrf", &csrf), ("email", EMAIL), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(response.status(), 303);
    let session = cookie_value(set_cookie(response.headers(), "deployments_session").unwrap());
    let cookie = format!("deployments_session={session}");
    let page = get_page(server, &cookie, "/ui/").await;
    Signed {
        csrf: csrf_field(&page.1),
        cookie,
    }
}

/// A response's status, page and headers.
async fn page_of(response: reqwest::Response) -> (u16, String, HeaderMap) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.unwrap(), headers)
}

async fn get_page(server: &TestServer, cookie: &str, path: &str) -> (u16, String, HeaderMap) {
    let response = client()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    page_of(response).await
}

async fn post_form(
    server: &TestServer,
    signed: &Signed,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, HeaderMap) {
    let response = client()
        .post(server.url(path))
        .header("cookie", &signed.cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    page_of(response).await
}

async fn create_deployment(server: &TestServer, name: &str, devices: &[&str]) -> String {
    create_deployment_of(
        server,
        json!({"name": name, "artifact_name": "release-1", "devices": devices}),
    )
    .await
}

/// Creates the deployment `body` describes through the API; answers its id.
async fn create_deployment_of(server: &TestServer, body: Value) -> String {
    let response = server
        .client
        .post(server.url(DEPLOYMENTS))
        .bearer_auth(server.admin())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.headers()[LOCATION]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

/// A deployment as the API shows it now.
async fn read_deployment(server: &TestServer, id: &str) -> Value {
    server
        .get(&format!("{DEPLOYMENTS}/{id}"), Some(&server.admin()))
        .await
        .1
}

/// The artifacts the API lists.
async fn artifacts(server: &TestServer) -> Value {
    server
        .get(
            "/api/management/v1/deployments/artifacts",
            Some(&server.admin()),
        )
        .await
        .1
}

/// The audit feed's events for `query`, as the administrator reads them.
async fn feed(server: &TestServer, query: &str) -> Vec<Value> {
    let (status, page) = server
        .get(
            &format!("/api/management/v1/deployments/events?{query}"),
            Some(&server.admin()),
        )
        .await;
    assert_eq!(status, 200, "{query}: {page}");
    page["events"].as_array().unwrap().clone()
}

/// A device admitted by auto-accept: its id and token, once the API lists it as accepted.
async fn accepted_device(server: &TestServer, mac: &str) -> (String, String) {
    let keys = DeviceKeys::generate("ED25519");
    let (status, token) = authenticate(server, &format!(r#"{{"mac":"{mac}"}}"#), &keys).await;
    assert_eq!(status, 200, "{token}");
    let id = subject(server, &token);
    eventually(
        server,
        &format!("/api/management/v2/devauth/devices/{id}"),
        |device| device["status"] == "accepted",
    )
    .await;
    (id, token)
}

/// The multipart body the releases page's form sends without its script: the CSRF token
/// (when given) as the first field, then the artifact file.
fn plain_upload(file: &std::path::Path, csrf: Option<&str>) -> reqwest::multipart::Form {
    let form = reqwest::multipart::Form::new();
    let form = match csrf {
        Some(token) => form.text("csrf", token.to_owned()),
        None => form,
    };
    form.part(
        "artifact",
        reqwest::multipart::Part::bytes(std::fs::read(file).unwrap()).file_name("artifact.mender"),
    )
}

/// The paths of the console's POST routes, read from its source so that a form added there
/// cannot be left out of the CSRF test.
fn console_post_routes() -> Vec<String> {
    let source = include_str!("../../../console/src/lib.rs");
    source
        .split(".route(")
        .skip(1)
        .filter(|route| route.contains("post("))
        .map(|route| route.split('"').nth(1).unwrap().to_owned())
        .collect()
}

async fn signing_in_sets_a_strict_cookie_and_a_wrong_password_sets_none(postgres: bool) {
    let server = console_server(postgres, true).await;
    let response = client().get(server.url("/ui/")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/ui/sign-in");
    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.headers()[LOCATION], "/ui/");

    let (cookie, csrf) = sign_in_form(&server).await;
    let wrong = post_sign_in(
        &server,
        &cookie,
        &[("csrf", &csrf), ("email", EMAIL), ("password", "not it")],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(wrong.headers(), "deployments_session").is_none());
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("Wrong email or password."));
    // Without the form's token (a login CSRF), the right password signs nobody in.
    let forged = post_sign_in(
        &server,
        &cookie,
        &[("email", EMAIL), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(forged.headers(), "deployments_session").is_none());

    let right = post_sign_in(
        &server,
        &cookie,
        &[("csrf", &csrf), ("email", EMAIL), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()[LOCATION], "/ui/");
    let session = set_cookie(right.headers(), "deployments_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    let cookie = format!("deployments_session={}", cookie_value(session));
    let (status, page, headers) = get_page(&server, &cookie, "/ui/").await;
    assert_eq!(status, 200);
    assert!(page.contains("Dashboard"));
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"));
    // No inline script or style for the policy to block: every script is a file.
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script src=").count()
    );
    assert!(!page.contains(" style="));
    // A first load (the page, its stylesheet and script) is small, even uncompressed.
    let mut weight = page.len();
    for asset in ["/ui/assets/console.css", "/ui/assets/console.js"] {
        let (status, body, headers) = get_page(&server, &cookie, asset).await;
        assert_eq!(status, 200, "{asset}");
        assert!(headers["content-security-policy"].to_str().is_ok());
        weight += body.len();
    }
    assert!(weight < 200 * 1024, "a first load of {weight} bytes");
    // The user token the session holds is the login route's: the API accepts it.
    let token = cookie.trim_start_matches("deployments_session=");
    let (status, _) = server.get(DEPLOYMENTS, Some(token)).await;
    assert_eq!(status, 200);

    // A token the operator already has: a user's signs in, a device's does not.
    let device_token = server.token("d1", "", http_edge::auth::TokenKind::Device);
    let (sign_in_cookie, csrf) = sign_in_form(&server).await;
    let refused = post_sign_in(
        &server,
        &sign_in_cookie,
        &[("csrf", &csrf), ("token", &device_token)],
    )
    .await;
    assert_eq!(refused.status(), 401);
    assert!(set_cookie(refused.headers(), "deployments_session").is_none());
    let user_token = server.admin();
    let accepted = post_sign_in(
        &server,
        &sign_in_cookie,
        &[("csrf", &csrf), ("token", &user_token)],
    )
    .await;
    assert_eq!(accepted.status(), 303);
    let session = set_cookie(accepted.headers(), "deployments_session").unwrap();
    assert_eq!(cookie_value(session), user_token);

    // Behind a TLS proxy the cookie is Secure.
    let (sign_in_cookie, csrf) = sign_in_form(&server).await;
    let response = client()
        .post(server.url("/ui/sign-in"))
        .header("cookie", sign_in_cookie)
        .header("x-forwarded-proto", "https")
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert!(set_cookie(response.headers(), "deployments_session")
        .unwrap()
        .contains("; Secure"));

    let signed = Signed {
        csrf: csrf_field(&page),
        cookie,
    };
    let (status, _, headers) = post_form(&server, &signed, "/ui/sign-out", &[]).await;
    assert_eq!(status, 403);
    assert!(set_cookie(&headers, "deployments_session").is_none());
    let (status, _, headers) =
        post_form(&server, &signed, "/ui/sign-out", &[("csrf", &signed.csrf)]).await;
    assert_eq!(status, 303);
    assert!(set_cookie(&headers, "deployments_session")
        .unwrap()
        .contains("Max-Age=0"));
}

async fn forms_without_the_csrf_token_change_nothing_and_names_show_as_text(postgres: bool) {
    let server = console_server(postgres, true).await;
    server.upload_rootfs("release-1").await;
    let hostile = "<img src=x onerror=alert(1)>";
    let id = create_deployment(&server, hostile, &["d1"]).await;
    let signed = sign_in(&server).await;

    for path in [
        "/ui/deployments?status=pending",
        &format!("/ui/deployments/{id}"),
        "/ui/",
    ] {
        let (status, page, _) = get_page(&server, &signed.cookie, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{path}: {page}"
        );
        assert!(!page.contains(hostile), "{path}");
    }

    // Every form of the console, posted without its token with what would otherwise change
    // something, is refused and stores nothing.
    let (device, _) = accepted_device(&server, "52:54:00:00:0c:5f").await;
    let (_, found) = server
        .get(
            &format!("/api/management/v2/devauth/devices/{device}"),
            Some(&server.admin()),
        )
        .await;
    let set = found["auth_sets"][0]["id"].as_str().unwrap().to_owned();
    let artifact = artifacts(&server).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys = DeviceKeys::generate("ED25519");
    let create = [
        ("name", "forged"),
        ("release", "release-1"),
        ("target", "devices"),
        ("devices", "d2"),
    ];
    let everything = [
        &create[..],
        &[
            ("group", "forged"),
            ("description", "forged"),
            ("identity_data", r#"{"mac":"forged"}"#),
            ("pubkey", &keys.public_pem),
            ("attribute", "device_type"),
            ("operator", "$eq"),
            ("value", "pi"),
            ("status", "accepted"),
            ("email", EMAIL),
            ("password", PASSWORD),
        ],
    ]
    .concat();
    let files = tempfile::tempdir().unwrap();
    let upload = rootfs_artifact(files.path(), "forged-release", &["pi"], 4096);
    let routes = console_post_routes();
    assert!(
        routes.contains(&"/ui/devices/{id}/group".to_owned()) && routes.len() >= 14,
        "{routes:?}"
    );
    let head = server.head().await;
    for route in &routes {
        let action = match route.starts_with("/ui/deployments") {
            true => "abort",
            false => "reject",
        };
        let path = route
            .replace("deployments/{id}", &format!("deployments/{id}"))
            .replace("artifacts/{id}", &format!("artifacts/{artifact}"))
            .replace("devices/{id}", &format!("devices/{device}"))
            .replace("{set}", &set)
            .replace("{action}", action);
        assert!(
            !path.contains('{'),
            "a parameter this test does not fill: {route}"
        );
        let request = client()
            .post(server.url(&path))
            .header("cookie", &signed.cookie);
        let request = match path.as_str() {
            "/ui/releases/upload" => request.multipart(plain_upload(&upload, None)),
            _ => request.form(&everything),
        };
        let (status, page, headers) = page_of(request.send().await.unwrap()).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(
            set_cookie(&headers, "deployments_session").is_none(),
            "{path}"
        );
        assert_eq!(server.head().await, head, "{path} appended events");
    }
    // A plain upload whose first field is another session's token is refused as well.
    let response = client()
        .post(server.url("/ui/releases/upload"))
        .header("cookie", &signed.cookie)
        .multipart(plain_upload(
            &upload,
            Some("0123456789abcdef0123456789abcdef"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(server.head().await, head);
    // The review shows what would be created, creates nothing, and keeps the token out of
    // the "change" link's URL.
    let (status, page, _) = post_form(
        &server,
        &signed,
        "/ui/deployments/review",
        &[&create[..], &[("csrf", &signed.csrf)]].concat(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("1 device") && page.contains("Create deployment"),
        "{page}"
    );
    assert_eq!(
        page.matches(&signed.csrf).count(),
        3,
        "header, create form, main: {page}"
    );
    let abort = format!("/ui/deployments/{id}/abort");
    let (status, _, _) = post_form(&server, &signed, &abort, &[("csrf", "0123456789abcdef")]).await;
    assert_eq!(status, 403);
    // The API's refusal is shown on the form, and stores nothing either.
    let (status, page, _) = post_form(
        &server,
        &signed,
        "/ui/deployments",
        &[&create[..], &[("csrf", &signed.csrf), ("retries", "11")]].concat(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("retries"), "{page}");
    assert!(
        page.contains(r#"value="forged""#),
        "the form keeps what was typed"
    );
    assert_eq!(server.head().await, head, "a refused form appended events");
    let deployment = read_deployment(&server, &id).await;
    assert_eq!(deployment["status"], "pending");

    let (status, _, headers) = post_form(&server, &signed, &abort, &[("csrf", &signed.csrf)]).await;
    assert_eq!(status, 303);
    assert!(headers[LOCATION]
        .to_str()
        .unwrap()
        .contains("notice=Aborted"));
    let deployment = read_deployment(&server, &id).await;
    assert_eq!(deployment["status"], "finished");
    // The abort names the operator who signed in (the login's user, not the test's token).
    let events = feed(&server, "limit=1000").await;
    let abort = events
        .iter()
        .rfind(|event| event["stream"].as_str().unwrap_or("").contains(&id))
        .unwrap();
    let actor = abort["actor"].as_str().unwrap_or("");
    assert!(
        actor.starts_with("user:") && actor != "user:admin",
        "{abort}"
    );
}

/// A session cookie the API no longer takes (expired, garbled, or signed with another key)
/// is cleared on the way to the sign-in page, which shows its form rather than sending the
/// browser back.
async fn a_stale_session_is_cleared_and_the_sign_in_form_shown(postgres: bool) {
    let server = console_server(postgres, true).await;
    let expired = server.issuer.issue(&http_edge::auth::Issuer::claims(
        "admin",
        &events::TenantId::new(""),
        http_edge::auth::TokenKind::User,
        chrono::Duration::hours(-2),
    ));
    for stale in [
        "deployments_session=not.a.token".to_owned(),
        format!("deployments_session={expired}"),
    ] {
        let response = client()
            .get(server.url("/ui/"))
            .header("cookie", &stale)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()[LOCATION], "/ui/sign-in");
        let cleared = set_cookie(response.headers(), "deployments_session")
            .expect("the stale cookie is cleared");
        assert!(
            cleared.starts_with("deployments_session=;")
                && cleared.contains("Max-Age=0")
                && cleared.contains("Path=/ui"),
            "{cleared}"
        );
        // Even with the cookie still sent, the form, not a redirect back to the dashboard.
        let (status, page, headers) = get_page(&server, &stale, "/ui/sign-in").await;
        assert_eq!(status, 200, "{stale}");
        assert!(page.contains(r#"id="password""#), "{page}");
        assert!(set_cookie(&headers, "deployments_session")
            .unwrap()
            .contains("Max-Age=0"));
        assert!(set_cookie(&headers, "deployments_sign_in").is_some());
    }
    // A session the API takes still goes on to the dashboard.
    let signed = sign_in(&server).await;
    let (status, _, headers) = get_page(&server, &signed.cookie, "/ui/sign-in").await;
    assert_eq!(status, 303);
    assert_eq!(headers[LOCATION], "/ui/");
    assert!(set_cookie(&headers, "deployments_session").is_none());
}

configured_on_both_backends!(
    signing_in_sets_a_strict_cookie_and_a_wrong_password_sets_none,
    forms_without_the_csrf_token_change_nothing_and_names_show_as_text,
    a_stale_session_is_cleared_and_the_sign_in_form_shown,
    fleet_and_artifact_pages_act_through_the_api
);

/// Saves a screenshot of the browser's page as `docs/screenshots/<name>.png` when
/// `CONSOLE_SCREENSHOTS` names that directory (scripts/screenshots sets it).
async fn screenshot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), browser.screenshot().await).unwrap();
    }
}

async fn device_request(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> u16 {
    let mut request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status().as_u16()
}

/// The device with `token` asks for its next deployment (as a `pi` on `factory`): the status.
async fn ask_for_next(server: &TestServer, token: &str) -> u16 {
    let next =
        "/api/devices/v1/deployments/device/deployments/next?artifact_name=factory&device_type=pi";
    device_request(server, token, reqwest::Method::GET, next, None).await
}

/// The device with `token` reports `status` in deployment `id`: the API's status.
async fn report(server: &TestServer, token: &str, id: &str, status: &str) -> u16 {
    device_request(
        server,
        token,
        reqwest::Method::PUT,
        &format!("/api/devices/v1/deployments/device/deployments/{id}/status"),
        Some(json!({ "status": status })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_rollout_from_the_browser() {
    let server = console_server(false, false).await;
    let files = tempfile::tempdir().unwrap();
    let artifact = rootfs_artifact(files.path(), "release-1", &["pi"], 64 * 1024);
    let browser = Browser::start(1280).await;

    // Signing in: a wrong password is refused on the page, the right one lands on the dashboard.
    browser.go(&server.url("/ui/")).await;
    browser.wait_for("#email").await;
    screenshot(&browser, "sign-in").await;
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", "wrong").await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_text(".error", 10, |text| {
            text.contains("Wrong email or password")
        })
        .await;
    // The browser's own cookie jar, scripts' view or not: the sign-in form's cookie, and no
    // session.
    let names = |cookies: &[Value]| -> Vec<String> {
        cookies
            .iter()
            .map(|cookie| cookie["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let cookies = browser.cookies().await;
    assert!(
        names(&cookies).contains(&"deployments_sign_in".to_owned()),
        "{cookies:?}"
    );
    assert!(
        !names(&cookies).contains(&"deployments_session".to_owned()),
        "{cookies:?}"
    );
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_text("h1", 10, |text| text == "Dashboard")
        .await;
    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|cookie| cookie["name"] == "deployments_session")
        .unwrap_or_else(|| panic!("{cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert_eq!(
        browser.run("return document.cookie").await,
        "",
        "no cookie of the console is a script's to read"
    );

    // An upload through the form, with its progress, then listed.
    browser.go(&server.url("/ui/releases")).await;
    browser
        .type_into("#artifact", artifact.to_str().unwrap())
        .await;
    browser.click("#upload button[type=submit]").await;
    browser
        .wait_for_text("#upload-result", 20, |text| text == "Uploaded.")
        .await;
    assert_eq!(
        browser
            .run("return document.getElementById('upload-progress').value")
            .await,
        100
    );
    browser
        .wait_for_text("#release-list", 10, |text| text.contains("release-1"))
        .await;
    // The same file again: the API's refusal, shown as it is.
    browser
        .type_into("#artifact", artifact.to_str().unwrap())
        .await;
    browser.click("#upload button[type=submit]").await;
    browser
        .wait_for_text("#upload-result", 20, |text| text.starts_with("Refused:"))
        .await;
    screenshot(&browser, "releases").await;

    // A device asks to join; the operator accepts it on the Devices page.
    let keys = DeviceKeys::generate("ED25519");
    let identity = r#"{"mac":"52:54:00:c0:ff:ee"}"#;
    assert_eq!(authenticate(&server, identity, &keys).await.0, 401);
    // The page reads the projections, which may trail the refusal under load: it is opened
    // once the API shows the device as pending.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, pending) = server
            .get(
                "/api/management/v2/devauth/devices?status=pending",
                Some(&server.admin()),
            )
            .await;
        if pending.to_string().contains("52:54:00:c0:ff:ee") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the device never showed as pending: {pending}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    browser.go(&server.url("/ui/devices?status=pending")).await;
    browser
        .wait_for_text("#device-list", 10, |text| {
            text.contains("52:54:00:c0:ff:ee")
        })
        .await;
    screenshot(&browser, "devices").await;
    browser.click("button[data-action=accept]").await;
    browser
        .wait_for_text(".notice", 10, |text| text == "Accepted.")
        .await;
    let (status, token) = authenticate(&server, identity, &keys).await;
    assert_eq!(status, 200, "{token}");
    let (_, devices) = server
        .get(
            "/api/management/v2/devauth/devices?status=accepted",
            Some(&server.admin()),
        )
        .await;
    let device = devices[0]["id"].as_str().unwrap().to_owned();
    let group = server
        .client
        .put(server.url(&format!(
            "/api/management/v1/inventory/devices/{device}/group"
        )))
        .bearer_auth(server.admin())
        .json(&json!({"group": "lab"}))
        .send()
        .await
        .unwrap();
    assert_eq!(group.status(), 204);

    browser
        .go(&server.url(&format!("/ui/devices/{device}")))
        .await;
    browser
        .wait_for_text("#device-group", 10, |text| text == "lab")
        .await;
    screenshot(&browser, "device").await;
    browser.go(&server.url("/ui/devices/find?group=lab")).await;
    browser
        .wait_for_text("#matches", 10, |text| text.contains(&device))
        .await;
    screenshot(&browser, "find-devices").await;
    browser.go(&server.url("/ui/releases")).await;
    browser.click("#release-list td a").await;
    browser.wait_for("#payloads").await;
    screenshot(&browser, "artifact").await;

    // A group deployment through the form.
    browser.go(&server.url("/ui/deployments/new")).await;
    browser.type_into("#name", "lab rollout").await;
    browser.click("#release option[value='release-1']").await;
    browser.click("input[name=target][value=group]").await;
    browser.click("#group option[value='lab']").await;
    browser.type_into("#retries", "1").await;
    screenshot(&browser, "create-deployment").await;
    browser.click("form.stack button[type=submit]").await;
    // A review of what the form asks for before anything is created.
    browser
        .wait_for_text("#reach", 10, |text| text == "1 device in the group now")
        .await;
    screenshot(&browser, "review-deployment").await;
    browser.click("#create").await;
    browser
        .wait_for_text("h1", 10, |text| text == "Deployment lab rollout")
        .await;
    let id = browser.url().await.rsplit('/').next().unwrap().to_owned();

    // The device takes it and reports; the page follows without being reloaded.
    browser.run("window.stayed = true").await;
    assert_eq!(ask_for_next(&server, &token).await, 200);
    assert_eq!(report(&server, &token, &id, "downloading").await, 204);
    browser
        .wait_for_text("#in-progress", 15, |text| text == "1")
        .await;
    browser
        .wait_for_text("#device-table", 10, |text| text.contains("downloading"))
        .await;
    // A moment the page has shown the download at, to look back at once it is over.
    let downloading_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(
        browser.run("return window.stayed === true").await,
        true,
        "the page was reloaded"
    );
    // One event feed for the page's life, however many updates it brought.
    let opens = browser
        .run("return document.getElementById('main').dataset.feedOpens")
        .await;
    assert_eq!(opens, "1", "the page opened its event feed {opens} times");
    assert_eq!(browser.text("#live-status").await, "● live");
    screenshot(&browser, "deployment").await;

    // The device's causal history, one click away.
    browser.click("#device-table a").await;
    browser
        .wait_for_text("#history", 10, |text| text.contains("device_report"))
        .await;
    screenshot(&browser, "device-history").await;
    browser
        .go(&server.url(&format!("/ui/deployments/{id}")))
        .await;

    // A form stripped of its token (as another site's would be) is refused on the page, and
    // changes nothing.
    browser.wait_for("button[data-action=pause]").await;
    browser
        .run(
            "const form = document.querySelector('button[data-action=pause]').form; \
             form.querySelector('input[name=csrf]').remove(); form.submit();",
        )
        .await;
    browser
        .wait_for_text(".error", 10, |text| {
            text.contains("did not come from this console")
        })
        .await;
    assert!(browser.text("main").await.contains("Status 403"));
    let deployment = read_deployment(&server, &id).await;
    assert_ne!(deployment["paused"], true, "{deployment}");
    browser
        .go(&server.url(&format!("/ui/deployments/{id}")))
        .await;

    // Abort from the page: the device's next report gets 409 and the rollout is finished.
    browser.click("button[data-action=abort]").await;
    browser
        .wait_for_text(".notice", 10, |text| text == "Aborted.")
        .await;
    browser
        .wait_for_text("#status", 10, |text| text.starts_with("finished"))
        .await;
    assert_eq!(report(&server, &token, &id, "installing").await, 409);

    // Back in time, through the page's own form: the rollout as it was while the device
    // downloaded, though it is over now.
    browser.type_into("#as-of", &downloading_at).await;
    browser.click("#as-of-slider + button").await;
    browser
        .wait_for_text(".notice", 10, |text| text.starts_with("As it was at"))
        .await;
    browser
        .wait_for_text("#device-table", 10, |text| text.contains("downloading"))
        .await;
    assert!(!browser.text("#status").await.starts_with("finished"));
    screenshot(&browser, "deployment-past").await;

    // Hostile names show as text, and run nothing.
    let hostile = "<img src=x onerror=alert(1)>";
    create_deployment(&server, hostile, &[&device]).await;
    browser
        .go(&server.url("/ui/deployments?status=pending"))
        .await;
    screenshot(&browser, "deployments").await;
    let name = browser
        .wait_for_text("#deployment-list td a", 10, |text| !text.is_empty())
        .await;
    assert_eq!(name, hostile);
    assert_eq!(browser.alert().await, None);
    assert_eq!(browser.run("return document.images.length").await, 0);

    // The dashboard and the audit feed, and the console at a phone's width.
    browser.go(&server.url("/ui/")).await;
    browser
        .wait_for_text("#active", 10, |text| text.contains(hostile))
        .await;
    screenshot(&browser, "dashboard").await;
    browser.go(&server.url("/ui/events")).await;
    let rows = browser
        .run("return document.querySelectorAll('#events tbody tr').length")
        .await;
    assert!(rows.as_u64().unwrap() > 5, "{rows}");
    // A new event appears at the end of the feed without a reload.
    let before = rows.as_u64().unwrap();
    assert_eq!(ask_for_next(&server, &token).await, 200);
    let started = std::time::Instant::now();
    while browser
        .run("return document.querySelectorAll('#events tbody tr').length")
        .await
        .as_u64()
        .unwrap()
        <= before
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the feed did not follow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    screenshot(&browser, "events").await;
    // The API reference, one click away in every page's header.
    browser.click("a.api-reference").await;
    browser.wait_for("nav.contents").await;
    // Past the introduction, to the sections and their first operations.
    browser
        .run("document.querySelector('nav.contents').scrollIntoView()")
        .await;
    screenshot(&browser, "api").await;
    drop(browser);

    let phone = Browser::start(375).await;
    phone.go(&server.url("/ui/sign-in")).await;
    phone.type_into("#email", EMAIL).await;
    phone.type_into("#password", PASSWORD).await;
    phone.click("button[type=submit]").await;
    phone
        .wait_for_text("h1", 10, |text| text == "Dashboard")
        .await;
    let artifact = artifacts(&server).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/ui/",
        "/ui/deployments?status=finished",
        &format!("/ui/deployments/{id}"),
        &format!("/ui/deployments/{id}/devices/{device}"),
        "/ui/devices",
        &format!("/ui/devices/{device}"),
        "/ui/devices/find?group=lab",
        "/ui/releases",
        &format!("/ui/artifacts/{artifact}"),
        "/ui/events",
        "/ui/deployments/new",
    ] {
        phone.go(&server.url(path)).await;
        phone.wait_for("h1").await;
        fits_a_phone_and_a_keyboard(&phone, path).await;
        if path == "/ui/" {
            assert_eq!(phone.run("return window.innerWidth").await, 375);
            screenshot(&phone, "dashboard-phone").await;
        }
    }
    // The review of the create form (a page only a post reaches), with its long request.
    phone
        .type_into("#name", "a phone's rollout with a long name")
        .await;
    phone.click("#release option[value='release-1']").await;
    phone.click("#target-group").await;
    phone.click("#group option[value='lab']").await;
    phone
        .type_into("#phases", "10\n90 2099-01-01T08:00:00Z")
        .await;
    phone.click("form.stack button[type=submit]").await;
    phone
        .wait_for_text("#reach", 10, |text| text == "1 device in the group now")
        .await;
    phone
        .run("document.querySelector('details').open = true")
        .await;
    fits_a_phone_and_a_keyboard(&phone, "the review").await;

    // A form is sent with Enter from its field.
    phone.go(&server.url("/ui/releases")).await;
    phone.type_into("#name", "release\u{E007}").await;
    let started = std::time::Instant::now();
    while !phone.url().await.contains("name=release") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Enter did not send the form"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    phone
        .wait_for_text("#release-list", 10, |text| text.contains("release-1"))
        .await;
}

/// The page `what` is no wider than the phone, labels every field it shows, and starts the
/// keyboard's way through it at the skip link.
async fn fits_a_phone_and_a_keyboard(phone: &Browser, what: &str) {
    // Against the screen: a page wider than it widens the window's own width too (the phone
    // zooms out to show it all).
    let widths = phone
        .run("return [document.documentElement.scrollWidth, window.innerWidth, screen.width]")
        .await;
    let screen = widths[2].clone();
    assert_eq!(
        widths,
        json!([screen, screen, screen]),
        "{what} is wider than a phone (page, window, screen)"
    );
    let unlabelled = phone
        .run(
            "return Array.from(document.querySelectorAll('input, select, textarea')) \
               .filter(field => field.type !== 'hidden' && field.getClientRects().length > 0) \
               .filter(field => !field.getAttribute('aria-label') && !(field.id && \
                 document.querySelector('label[for=\"' + CSS.escape(field.id) + '\"]'))) \
               .map(field => field.outerHTML)",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "{what}: fields without a label");
    phone.press("\u{E004}").await;
    let focused = phone.run("return document.activeElement.outerHTML").await;
    assert!(
        focused.as_str().unwrap().contains(r#"class="skip""#),
        "{what}: Tab first reaches {focused}"
    );
}

/// The fleet and artifact pages: each action is the API's, with its refusals shown, and
/// refused ones store nothing.
async fn fleet_and_artifact_pages_act_through_the_api(postgres: bool) {
    let server = console_server(postgres, true).await;
    server.upload_rootfs("release-1").await;
    let keys = DeviceKeys::generate("ED25519");
    let (status, token) = authenticate(&server, r#"{"mac":"52:54:00:00:00:01"}"#, &keys).await;
    assert_eq!(status, 200);
    let inventory = server
        .client
        .patch(server.url("/api/devices/v1/inventory/device/attributes"))
        .bearer_auth(&token)
        .json(&json!([{"name": "device_type", "value": "pi"}, {"name": "ram_mb", "value": 512}]))
        .send()
        .await
        .unwrap();
    assert_eq!(inventory.status(), 200);
    let admin = server.admin();
    let (_, devices) = server
        .get(
            "/api/management/v2/devauth/devices?status=accepted",
            Some(&admin),
        )
        .await;
    let device = devices[0]["id"].as_str().unwrap().to_owned();
    let signed = sign_in(&server).await;

    // The device's page, and its group set and removed there.
    let (status, page, _) =
        get_page(&server, &signed.cookie, &format!("/ui/devices/{device}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("52:54:00:00:00:01") && page.contains("ram_mb"),
        "{page}"
    );
    let group_path = format!("/ui/devices/{device}/group");
    let (status, body, headers) = post_form(
        &server,
        &signed,
        &group_path,
        &[("csrf", &signed.csrf), ("group", "lab")],
    )
    .await;
    assert_eq!(status, 303, "{headers:?} {body}");
    assert!(headers[LOCATION]
        .to_str()
        .unwrap()
        .contains("notice=Group+set"));
    let group_of = format!("/api/management/v1/inventory/devices/{device}/group");
    assert_eq!(
        server.get(&group_of, Some(&admin)).await.1,
        json!({"group": "lab"})
    );
    // A group name the API refuses: its message comes back, and nothing changes.
    let head = server.head().await;
    let (_, _, headers) = post_form(
        &server,
        &signed,
        &group_path,
        &[("csrf", &signed.csrf), ("group", "no spaces!")],
    )
    .await;
    assert!(
        headers[LOCATION].to_str().unwrap().contains("error="),
        "{headers:?}"
    );
    assert_eq!(server.head().await, head);

    // The artifact's page: its payload's checksum, and a new description (before any
    // deployment uses it: Mender refuses changing one that has been deployed).
    let (_, artifacts) = server
        .get("/api/management/v1/deployments/artifacts", Some(&admin))
        .await;
    let artifact = artifacts[0]["id"].as_str().unwrap().to_owned();
    let checksum = artifacts[0]["updates"][0]["files"][0]["checksum"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, page, _) = get_page(
        &server,
        &signed.cookie,
        &format!("/ui/artifacts/{artifact}"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains(&checksum), "{page}");
    let (status, _, headers) = post_form(
        &server,
        &signed,
        &format!("/ui/artifacts/{artifact}/description"),
        &[("csrf", &signed.csrf), ("description", "nightly <build>")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        headers[LOCATION].to_str().unwrap().contains("notice="),
        "{headers:?}"
    );
    let artifact_path = format!("/api/management/v1/deployments/artifacts/{artifact}");
    assert_eq!(
        server.get(&artifact_path, Some(&admin)).await.1["description"],
        "nightly <build>"
    );
    // Finding devices by attribute, and saving the filter.
    let find = "/ui/devices/find?attribute=device_type&operator=%24eq&value=pi&group=lab";
    let (status, page, _) = get_page(&server, &signed.cookie, find).await;
    assert_eq!(status, 200);
    assert!(page.contains(&device), "{page}");
    let (_, page, _) = get_page(
        &server,
        &signed.cookie,
        "/ui/devices/find?attribute=device_type&operator=%24eq&value=arm",
    )
    .await;
    assert!(!page.contains(&device) && page.contains("No device matches."));
    let (status, _, _) = post_form(
        &server,
        &signed,
        "/ui/devices/filters",
        &[
            ("csrf", &signed.csrf),
            ("name", "pis"),
            ("attribute", "device_type"),
            ("operator", "$eq"),
            ("value", "pi"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, filters) = server
        .get("/api/management/v2/inventory/filters", Some(&admin))
        .await;
    assert_eq!(filters[0]["name"], "pis", "{filters}");
    let filter_id = filters[0]["id"].as_str().unwrap().to_owned();

    // A dynamic deployment to the saved filter, through the create form.
    let (status, _, headers) = post_form(
        &server,
        &signed,
        "/ui/deployments",
        &[
            ("csrf", &signed.csrf),
            ("name", "to the pis"),
            ("release", "release-1"),
            ("target", "filter"),
            ("filter_id", &filter_id),
        ],
    )
    .await;
    assert_eq!(status, 303, "{headers:?}");
    let id = headers[LOCATION]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (_, deployment) = server
        .get(&format!("{DEPLOYMENTS}/{id}"), Some(&admin))
        .await;
    assert_eq!(deployment["dynamic"], true, "{deployment}");

    // ...and a delete the API refuses while that deployment is active.
    let (_, _, headers) = post_form(
        &server,
        &signed,
        &format!("/ui/artifacts/{artifact}/delete"),
        &[("csrf", &signed.csrf)],
    )
    .await;
    let location = headers[LOCATION].to_str().unwrap();
    assert!(
        location.contains("in+use+by+an+active+deployment"),
        "{location}"
    );
    assert_eq!(server.get(&artifact_path, Some(&admin)).await.0, 200);

    // Preauthorizing: an identity that is not JSON is the API's 400, and stores nothing.
    let head = server.head().await;
    let (_, _, headers) = post_form(
        &server,
        &signed,
        "/ui/devices/preauthorize",
        &[
            ("csrf", &signed.csrf),
            ("identity_data", "not json"),
            ("pubkey", &keys.public_pem),
        ],
    )
    .await;
    assert!(
        headers[LOCATION].to_str().unwrap().contains("error="),
        "{headers:?}"
    );
    assert_eq!(server.head().await, head);
    let other = DeviceKeys::generate("ED25519");
    let (_, _, headers) = post_form(
        &server,
        &signed,
        "/ui/devices/preauthorize",
        &[
            ("csrf", &signed.csrf),
            ("identity_data", r#"{"mac": "52:54:00:00:00:02"}"#),
            ("pubkey", &other.public_pem),
        ],
    )
    .await;
    assert!(
        headers[LOCATION]
            .to_str()
            .unwrap()
            .contains("notice=Preauthorized"),
        "{headers:?}"
    );
    let (_, count) = server
        .get(
            "/api/management/v2/devauth/devices/count?status=preauthorized",
            Some(&admin),
        )
        .await;
    assert_eq!(count["count"], 1);
}
