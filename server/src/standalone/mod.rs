//! What a fleet with no other Mender service needs from the all-in-one server: devices are
//! admitted and get tokens (deviceauth's `auth_requests`), report inventory attributes, and an
//! administrator logs in (useradm's `auth/login`) with `mender-cli`. The split services never
//! serve these routes: behind a real Mender, deviceauth, inventory and useradm do.

mod admission;
mod inventory;
mod login;
mod throttle;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::FromRef;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_edge::auth::{AuthSettings, Issuer, KeyError, TokenKind, Verifier};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use self::admission::AdmissionPolicy;
use self::inventory::Inventory;
use self::login::AdminCredentials;

/// Device admission, inventory attributes and the administrator's login.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StandaloneSettings {
    /// Serve the routes at all; off when the server sits behind Mender's own services.
    pub enabled: bool,
    /// Admit every device whose request is signed by the key it presents.
    pub auto_accept: bool,
    /// Device identities admitted when `auto_accept` is off: `id_data` JSON objects, as text.
    pub preauthorized_identities: Vec<String>,
    /// PEM files of device public keys (`PUBLIC KEY` blocks, any number per file) admitted
    /// when `auto_accept` is off.
    pub preauthorized_keys: Vec<PathBuf>,
    /// The administrator's login name.
    pub admin_email: String,
    /// The administrator's password; unset, one is made once in `<data_dir>/admin.password`.
    pub admin_password: Option<SecretString>,
    /// Lifetime of device tokens, in hours.
    pub device_token_hours: u32,
    /// Lifetime of user tokens, in hours.
    pub user_token_hours: u32,
    /// Failed logins allowed per minute, per client address and per login name; past it,
    /// 429 with `Retry-After`. 0: no limit.
    pub login_failures_per_minute: u32,
    /// Admission requests allowed per minute per device identity. 0: no limit.
    pub auth_requests_per_minute: u32,
    /// Admission requests allowed per minute per client address (a fleet behind one NAT
    /// shares it). 0: no limit.
    pub auth_requests_per_address_per_minute: u32,
}

impl Default for StandaloneSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            auto_accept: true,
            preauthorized_identities: Vec::new(),
            preauthorized_keys: Vec::new(),
            admin_email: "admin@example.com".to_owned(),
            admin_password: None,
            // Mender's deviceauth and useradm both default to a week.
            device_token_hours: 168,
            user_token_hours: 168,
            login_failures_per_minute: 10,
            auth_requests_per_minute: 10,
            auth_requests_per_address_per_minute: 600,
        }
    }
}

/// The password file made when none is configured.
const ADMIN_PASSWORD_FILE: &str = "admin.password";

#[derive(Clone)]
struct StandaloneState {
    verifier: Arc<Verifier>,
    /// The command service's pipeline: admission decisions are recorded through it.
    pipeline: command_service::application::Pipeline,
    /// The most devices that may be accepted at once (`max_devices`).
    max_devices: Option<u64>,
    issuer: Arc<Issuer>,
    admission: Arc<AdmissionPolicy>,
    inventory: Arc<Inventory>,
    admin: Arc<AdminCredentials>,
    device_token_ttl: chrono::Duration,
    user_token_ttl: chrono::Duration,
    throttles: Arc<Throttles>,
}

/// The attempt limits of the routes that hand out tokens.
struct Throttles {
    login_by_address: throttle::Throttle<std::net::IpAddr>,
    login_by_name: throttle::Throttle<String>,
    admission_by_address: throttle::Throttle<std::net::IpAddr>,
    admission_by_identity: throttle::Throttle<uuid::Uuid>,
}

/// 429 with the seconds to wait.
fn too_many_attempts(wait: std::time::Duration) -> Response {
    let mut response = http_edge::error_response(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "too many attempts; try again later",
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&throttle::retry_after(wait).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

impl FromRef<StandaloneState> for Arc<Verifier> {
    fn from_ref(state: &StandaloneState) -> Self {
        state.verifier.clone()
    }
}

impl StandaloneState {
    /// A token for `subject` of the single tenant, as Mender's services answer it.
    fn token_response(&self, subject: &str, kind: TokenKind) -> Response {
        let ttl = match kind {
            TokenKind::Device => self.device_token_ttl,
            TokenKind::User => self.user_token_ttl,
        };
        // Open-source Mender has one tenant and so has a fleet with no other Mender service:
        // the default tenant, whatever tenant token a device sends.
        let claims = Issuer::claims(subject, &events::TenantId::default(), kind, ttl);
        (
            [(header::CONTENT_TYPE, "application/jwt")],
            self.issuer.issue(&claims),
        )
            .into_response()
    }
}

/// The standalone routes, or `None` when they are switched off or nothing can sign tokens.
pub(crate) fn routes(
    settings: &StandaloneSettings,
    auth: &AuthSettings,
    data_dir: &Path,
    verifier: Arc<Verifier>,
    pipeline: command_service::application::Pipeline,
    max_devices: Option<u64>,
) -> anyhow::Result<Option<Router>> {
    if !settings.enabled {
        return Ok(None);
    }
    // Verifying with public keys alone means another service issues the tokens; tokens this
    // server signed with some other key would not verify anyway.
    let issuer = match Issuer::from_settings(auth) {
        Ok(issuer) => issuer,
        Err(KeyError::NoKey) => {
            tracing::warn!(
                "device admission and login are off: no signing key (set auth.signing_key, \
                 or standalone.enabled = false to silence this)"
            );
            return Ok(None);
        }
        Err(error) => return Err(error).context("loading the key tokens are signed with"),
    };
    let admission = AdmissionPolicy::from_settings(settings)?;
    let password = match &settings.admin_password {
        Some(password) => password.expose_secret().to_owned(),
        None => {
            let password = crate::secrets::kept_secret(data_dir, ADMIN_PASSWORD_FILE)
                .context("making the administrator's password")?;
            tracing::info!(
                email = %settings.admin_email,
                password_file = %data_dir.join(ADMIN_PASSWORD_FILE).display(),
                "administrator login: the password is in the file"
            );
            password
        }
    };
    let state = StandaloneState {
        verifier,
        pipeline,
        max_devices,
        issuer: Arc::new(issuer),
        admission: Arc::new(admission),
        inventory: Arc::new(Inventory::default()),
        admin: Arc::new(AdminCredentials::new(&settings.admin_email, &password)),
        device_token_ttl: chrono::Duration::hours(settings.device_token_hours.into()),
        user_token_ttl: chrono::Duration::hours(settings.user_token_hours.into()),
        throttles: Arc::new(Throttles {
            login_by_address: throttle::Throttle::new(settings.login_failures_per_minute),
            login_by_name: throttle::Throttle::new(settings.login_failures_per_minute),
            admission_by_address: throttle::Throttle::new(
                settings.auth_requests_per_address_per_minute,
            ),
            admission_by_identity: throttle::Throttle::new(settings.auth_requests_per_minute),
        }),
    };
    tracing::info!(
        auto_accept = settings.auto_accept,
        "device admission, inventory attributes and administrator login enabled"
    );
    Ok(Some(
        Router::new()
            .merge(admission::router())
            .merge(inventory::router())
            .merge(login::router())
            .with_state(state),
    ))
}
