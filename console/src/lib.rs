//! The web console at `/ui/`: pages rendered on the server from the management API's own
//! reads, forms that write only through its command routes with the signed-in operator's
//! token, and live updates that follow the event feed. Templates and assets are compiled in.

pub mod api;
mod error;
mod layout;
mod live;
mod pages;
mod session;

use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub use api::Api;

/// Whether and how a server serves the console.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ConsoleSettings {
    /// Serve the console at `/ui/` (and redirect `/` there).
    pub enabled: bool,
    /// The API's base URL, for the query service of a split deployment: the gateway in front
    /// of both services. The all-in-one server calls its own routes and ignores it.
    pub api_url: Option<String>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            api_url: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct ConsoleState {
    pub api: Api,
}

/// No script but our own files, no inline style or script, no framing, forms only to us.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, reading and writing through `api`.
pub fn routes(api: Api) -> Router {
    let state = ConsoleState { api };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::dashboard::show))
        .route(
            "/ui/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/ui/sign-out", post(pages::sign_in::sign_out))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/live", get(live::tail))
        .route(
            "/ui/deployments",
            get(pages::deployments::list).post(pages::deployments::create),
        )
        .route("/ui/deployments/new", get(pages::deployments::new_form))
        .route("/ui/deployments/review", post(pages::deployments::review))
        .route("/ui/deployments/{id}", get(pages::deployments::show))
        .route(
            "/ui/deployments/{id}/devices/{device}",
            get(pages::deployments::device),
        )
        .route(
            "/ui/deployments/{id}/{action}",
            post(pages::deployments::act),
        )
        .route("/ui/releases", get(pages::releases::list))
        .route("/ui/releases/upload", post(pages::releases::upload))
        .route("/ui/artifacts/{id}", get(pages::artifact::show))
        .route(
            "/ui/artifacts/{id}/description",
            post(pages::artifact::describe),
        )
        .route("/ui/artifacts/{id}/delete", post(pages::artifact::delete))
        .route("/ui/devices", get(pages::devices::list))
        .route("/ui/devices/find", get(pages::search::find))
        .route("/ui/devices/filters", post(pages::search::save_filter))
        .route(
            "/ui/devices/preauthorize",
            post(pages::search::preauthorize),
        )
        .route("/ui/devices/{id}", get(pages::device::show))
        .route("/ui/devices/{id}/{action}", post(pages::devices::act))
        .route("/ui/devices/{id}/group", post(pages::device::group))
        .route("/ui/devices/{id}/ungroup", post(pages::device::ungroup))
        .route(
            "/ui/devices/{id}/sets/{set}/{action}",
            post(pages::device::decide_set),
        )
        .route("/ui/events", get(pages::events::list))
        .route("/ui/api", get(pages::reference::show))
        .route("/ui/api/openapi.json", get(pages::reference::json))
        .route("/ui/api/openapi.yaml", get(pages::reference::yaml))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/ui/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !is_asset {
        // Pages show one operator's fleet: no cache keeps them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The stylesheet and the script, compiled in.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("../assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("../assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}
