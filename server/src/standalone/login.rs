//! `POST /api/management/v1/useradm/auth/login`: the administrator trades HTTP Basic
//! credentials for a user token, as `mender-cli login` expects.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::Engine;
use http_edge::error_response;
use http_edge::serve::ClientAddress;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use http_edge::throttle::{address_key, too_many_attempts};

use super::StandaloneState;

/// Namespace of user ids: the administrator keeps one id across restarts.
const USER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x3d7a_91c4_6e25_4b08_8f13_a5d2_c7e9_0b46);

pub(super) fn router() -> Router<StandaloneState> {
    Router::new().route("/api/management/v1/useradm/auth/login", post(login))
}

/// The one account this server knows.
pub(super) struct AdminCredentials {
    email: String,
    /// Compared by digest, so that neither the content nor the length of the password shows
    /// in how long a refusal takes.
    password_digest: [u8; 32],
    /// The id user tokens carry: derived from the email rather than the email itself, which
    /// would otherwise be written into every event the administrator causes.
    user_id: Uuid,
}

impl AdminCredentials {
    pub(super) fn new(email: &str, password: &str) -> Self {
        Self {
            email: email.to_owned(),
            password_digest: Sha256::digest(password.as_bytes()).into(),
            user_id: Uuid::new_v5(&USER_ID_NAMESPACE, email.to_lowercase().as_bytes()),
        }
    }

    fn accepts(&self, email: &str, password: &str) -> bool {
        let digest = Sha256::digest(password.as_bytes());
        let password_matches: bool = digest.as_slice().ct_eq(&self.password_digest).into();
        // Both checks always run: which one failed does not show either.
        password_matches & email.eq_ignore_ascii_case(&self.email)
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn login(
    State(state): State<StandaloneState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
) -> Response {
    let throttles = &state.throttles;
    let address = address_key(client);
    if let Some(wait) = throttles.login_by_address.wait(&address) {
        tracing::warn!(address = %client, "login refused: too many failed attempts from this address");
        return too_many_attempts(wait);
    }
    let Some((email, password)) = basic_credentials(&headers) else {
        throttles.login_by_address.spend(&address);
        tracing::warn!(address = %client, "login refused: no credentials");
        return error_response(StatusCode::UNAUTHORIZED, "invalid or missing auth header");
    };
    let name = email.to_lowercase();
    if let Some(wait) = throttles.login_by_name.wait(&name) {
        tracing::warn!(email = %email, address = %client, "login refused: too many failed attempts for this login");
        return too_many_attempts(wait);
    }
    if !state.admin.accepts(&email, &password) {
        throttles.login_by_address.spend(&address);
        throttles.login_by_name.spend(&name);
        tracing::warn!(email = %email, address = %client, "login refused: wrong credentials");
        return error_response(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    state.token_response(&state.admin.user_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        assert_eq!(
            basic_credentials(&basic("admin@example.com:pa:ss")),
            Some(("admin@example.com".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(&basic("no colon")), None);
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
    }

    #[test]
    fn only_the_configured_email_and_password_are_accepted() {
        let admin = AdminCredentials::new("admin@example.com", "secret");
        assert!(admin.accepts("admin@example.com", "secret"));
        assert!(admin.accepts("Admin@Example.com", "secret"));
        assert!(!admin.accepts("admin@example.com", "secret "));
        assert!(!admin.accepts("other@example.com", "secret"));
        assert!(!admin.accepts("admin@example.com", ""));
    }
}
