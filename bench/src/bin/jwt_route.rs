//! The limit for device polls: an axum server whose one route only checks the device's JWT,
//! with the server's own verifier and edge middleware (request ids, metrics), and answers 204.
//! What `next` costs beyond it is the deciding.
//!
//!   jwt_route <file holding the HS256 secret>     prints the port it listens on

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use http_edge::auth::{AuthSettings, Device, Verifier};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: jwt_route <hs256 secret file>"))?;
    let secret = std::fs::read_to_string(&path)?;
    let verifier = Arc::new(Verifier::from_settings(&AuthSettings {
        hs256_secret: Some(secret.trim().into()),
        ..AuthSettings::default()
    })?);
    let routes = Router::new()
        .route(
            "/api/devices/v1/deployments/device/deployments/next",
            get(|_: Device| async { StatusCode::NO_CONTENT }),
        )
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    axum::serve(listener, http_edge::service::with_edge(routes)).await?;
    Ok(())
}
