//! What a fleet with no other Mender service needs from the all-in-one server besides the
//! command and query services' routes: an administrator logs in (useradm's `auth/login`)
//! with `mender-cli`. Devices are admitted and report inventory through the command service,
//! which reads the admission keys of the same `standalone` settings.

mod login;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::FromRef;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_edge::auth::{AuthSettings, Issuer, KeyError, TokenKind, Verifier};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use command_service::settings::AdmissionSettings;
use http_edge::throttle::Throttle;

use self::login::AdminCredentials;

/// Device admission, inventory attributes and the administrator's login. The admission
/// keys are the command service's, which serves those routes; the login is this server's.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StandaloneSettings {
    #[serde(flatten)]
    pub admission: AdmissionSettings,
    /// The administrator's login name.
    pub admin_email: String,
    /// The administrator's password; unset, one is made once in `<data_dir>/admin.password`.
    pub admin_password: Option<SecretString>,
    /// Lifetime of user tokens, in hours.
    pub user_token_hours: u32,
    /// Failed logins allowed per minute, per client address and per login name; past it,
    /// 429 with `Retry-After`. 0: no limit.
    pub login_failures_per_minute: u32,
}

impl StandaloneSettings {
    /// Every key of the `standalone` table: the login's and the admission's.
    pub fn keys() -> Vec<String> {
        let mut keys: Vec<String> = [
            "admin_email",
            "admin_password",
            "user_token_hours",
            "login_failures_per_minute",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Ok(serde_json::Value::Object(admission)) =
            serde_json::to_value(AdmissionSettings::default())
        {
            keys.extend(admission.keys().cloned());
        }
        keys
    }
}

impl Default for StandaloneSettings {
    fn default() -> Self {
        Self {
            admission: AdmissionSettings::default(),
            admin_email: "admin@example.com".to_owned(),
            admin_password: None,
            // Mender's useradm defaults to a week.
            user_token_hours: 168,
            login_failures_per_minute: 10,
        }
    }
}

/// The password file made when none is configured.
const ADMIN_PASSWORD_FILE: &str = "admin.password";

#[derive(Clone)]
struct StandaloneState {
    verifier: Arc<Verifier>,
    issuer: Arc<Issuer>,
    admin: Arc<AdminCredentials>,
    user_token_ttl: chrono::Duration,
    throttles: Arc<Throttles>,
}

/// The attempt limits of the login.
struct Throttles {
    login_by_address: Throttle<std::net::IpAddr>,
    login_by_name: Throttle<String>,
}

impl FromRef<StandaloneState> for Arc<Verifier> {
    fn from_ref(state: &StandaloneState) -> Self {
        state.verifier.clone()
    }
}

impl StandaloneState {
    /// A user token for `subject` of the single tenant, as useradm answers it.
    fn token_response(&self, subject: &str) -> Response {
        // Open-source Mender has one tenant and so has a fleet with no other Mender service.
        let claims = Issuer::claims(
            subject,
            &events::TenantId::default(),
            TokenKind::User,
            self.user_token_ttl,
        );
        (
            [(header::CONTENT_TYPE, "application/jwt")],
            self.issuer.issue(&claims),
        )
            .into_response()
    }
}

/// The login route, or `None` when the standalone routes are switched off or nothing can
/// sign tokens.
pub(crate) fn routes(
    settings: &StandaloneSettings,
    auth: &AuthSettings,
    data_dir: &Path,
    verifier: Arc<Verifier>,
) -> anyhow::Result<Option<Router>> {
    if !settings.admission.enabled {
        return Ok(None);
    }
    // Verifying with public keys alone means another service issues the tokens; tokens this
    // server signed with some other key would not verify anyway.
    let issuer = match Issuer::from_settings(auth) {
        Ok(issuer) => issuer,
        Err(KeyError::NoKey) => {
            tracing::warn!(
                "administrator login is off: no signing key (set auth.signing_key, \
                 or standalone.enabled = false to silence this)"
            );
            return Ok(None);
        }
        Err(error) => return Err(error).context("loading the key tokens are signed with"),
    };
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
        issuer: Arc::new(issuer),
        admin: Arc::new(AdminCredentials::new(&settings.admin_email, &password)),
        user_token_ttl: chrono::Duration::hours(settings.user_token_hours.into()),
        throttles: Arc::new(Throttles {
            login_by_address: Throttle::new(settings.login_failures_per_minute),
            login_by_name: Throttle::new(settings.login_failures_per_minute),
        }),
    };
    tracing::info!("administrator login enabled");
    Ok(Some(login::router().with_state(state)))
}
