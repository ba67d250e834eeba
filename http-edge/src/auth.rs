//! Bearer JWTs: verification, the identities they carry, and issuing them for development.
//!
//! Management routes take user tokens (`mender.user: true`), device routes device tokens
//! (`mender.device: true`, `sub` = device id). The tenant (`mender.tenant`) comes from the
//! verified token only; nothing in a request can name another.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::extract::FromRef;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use events::TenantId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::error_response;

/// How tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Verify every signature against the configured keys.
    #[default]
    Verify,
    /// Decode without checking signatures: only behind a gateway that has already verified
    /// them (Mender's own API gateway does). Expiry is still enforced.
    TrustedGateway,
}

/// Token settings, shared by both services.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// `verify` (default) or `trusted-gateway`.
    pub mode: AuthMode,
    /// Shared secret for HS256 tokens; meant for development and the embedded server.
    pub hs256_secret: Option<SecretString>,
    /// PEM public keys whose tokens are accepted: RSA (RS256), EC P-256 (ES256), Ed25519 (EdDSA).
    pub public_keys: Vec<PathBuf>,
    /// PEM private key used to issue tokens (`token` subcommand); the HS256 secret otherwise.
    pub signing_key: Option<PathBuf>,
    /// Clock skew allowed when checking `exp`, in seconds.
    pub leeway_seconds: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::Verify,
            hs256_secret: None,
            public_keys: Vec::new(),
            signing_key: None,
            leeway_seconds: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an RSA, EC P-256 or Ed25519 PEM key")]
    Unsupported { path: PathBuf },
    #[error("no key configured: set auth.hs256_secret or auth.public_keys")]
    NoKey,
}

/// The claims Mender's token issuers put in user and device tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(
        rename = "mender.tenant",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tenant: Option<String>,
    #[serde(
        rename = "mender.user",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<bool>,
    #[serde(
        rename = "mender.device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device: Option<bool>,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id or the device id (`sub`).
    pub subject: String,
    pub tenant: TenantId,
    /// When the token was issued (`iat`, Unix seconds), when it says.
    pub issued_at: Option<i64>,
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token not valid yet")]
    NotYetValid,
    /// A token is a user's or a device's, never both: one that claims both could cross
    /// from one API to the other.
    #[error("token claims to be both a user's and a device's")]
    BothKinds,
    #[error("{0} token required")]
    WrongKind(&'static str),
}

/// Verifies tokens against the configured keys.
///
/// Devices present the same token on every poll; checking its signature each time (an RSA
/// verification costs tens of microseconds) would dominate the hot path. Verified tokens are
/// remembered by their SHA-256 until they expire, so a repeat costs a hash and a lookup. The
/// key is a cryptographic hash of the whole token: no other token can hit an entry.
pub struct Verifier {
    mode: AuthMode,
    keys: Vec<(Algorithm, DecodingKey)>,
    leeway: u64,
    verified: RwLock<HashMap<[u8; 32], Claims>>,
}

/// Verified tokens remembered at most; the memory is cleared when it fills.
const REMEMBERED_TOKENS: usize = 200_000;

impl Verifier {
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = &settings.hs256_secret {
            keys.push((
                Algorithm::HS256,
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            ));
        }
        for path in &settings.public_keys {
            let pem = std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.clone(),
                source,
            })?;
            keys.push(
                public_key(&pem).ok_or_else(|| KeyError::Unsupported { path: path.clone() })?,
            );
        }
        if keys.is_empty() && settings.mode == AuthMode::Verify {
            return Err(KeyError::NoKey);
        }
        Ok(Self {
            mode: settings.mode,
            keys,
            leeway: settings.leeway_seconds,
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// Checks a token's signature (unless behind a trusted gateway) and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let remembered = self
            .verified
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&digest)
            .cloned();
        if let Some(claims) = remembered {
            if claims.exp.saturating_add(self.leeway as i64) < chrono::Utc::now().timestamp() {
                return Err(AuthError::Expired);
            }
            return Ok(claims);
        }
        let claims = self.verify_fully(token)?;
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.len() >= REMEMBERED_TOKENS {
            verified.clear();
        }
        verified.insert(digest, claims.clone());
        Ok(claims)
    }

    fn verify_fully(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if self.mode == AuthMode::TrustedGateway {
            let mut validation = validation(header.alg, self.leeway);
            validation.insecure_disable_signature_validation();
            return decode(token, &DecodingKey::from_secret(&[]), &validation);
        }
        let mut outcome = Err(AuthError::BadSignature);
        for (_, key) in self.keys.iter().filter(|(alg, _)| *alg == header.alg) {
            outcome = decode(token, key, &validation(header.alg, self.leeway));
            if outcome != Err(AuthError::BadSignature) {
                break;
            }
        }
        outcome
    }

    fn bearer(&self, parts: &Parts) -> Result<Claims, AuthError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        self.verify(token.trim())
    }
}

fn validation(alg: Algorithm, leeway: u64) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = leeway;
    validation
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, AuthError> {
    let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|error| match error.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => AuthError::BadSignature,
            _ => AuthError::Malformed,
        })?;
    if claims.user == Some(true) && claims.device == Some(true) {
        return Err(AuthError::BothKinds);
    }
    Ok(claims)
}

fn public_key(pem: &[u8]) -> Option<(Algorithm, DecodingKey)> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Some((Algorithm::RS256, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Some((Algorithm::ES256, key));
    }
    DecodingKey::from_ed_pem(pem)
        .ok()
        .map(|key| (Algorithm::EdDSA, key))
}

/// Issues tokens with the configured signing key: the embedded server's own logins and the
/// `token` subcommand.
pub struct Issuer {
    algorithm: Algorithm,
    key: EncodingKey,
}

impl Issuer {
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, KeyError> {
        if let Some(path) = &settings.signing_key {
            let pem = std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.clone(),
                source,
            })?;
            return Self::from_private_pem(&pem)
                .ok_or_else(|| KeyError::Unsupported { path: path.clone() });
        }
        let secret = settings.hs256_secret.as_ref().ok_or(KeyError::NoKey)?;
        Ok(Self {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret.expose_secret().as_bytes()),
        })
    }

    pub fn from_private_pem(pem: &[u8]) -> Option<Self> {
        let (algorithm, key) = if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            (Algorithm::ES256, key)
        } else {
            (Algorithm::EdDSA, EncodingKey::from_ed_pem(pem).ok()?)
        };
        Some(Self { algorithm, key })
    }

    pub fn issue(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key)
            // Encoding fails only for keys that do not match their algorithm, which the
            // constructors rule out.
            .expect("a token signs with a key of its own algorithm")
    }

    /// Claims for a user or device token valid for `ttl` from now.
    pub fn claims(
        subject: &str,
        tenant: &TenantId,
        kind: TokenKind,
        ttl: chrono::Duration,
    ) -> Claims {
        let now = chrono::Utc::now();
        Claims {
            sub: subject.to_owned(),
            exp: (now + ttl).timestamp(),
            iat: Some(now.timestamp()),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            iss: Some("deployments".to_owned()),
            tenant: (!tenant.as_str().is_empty()).then(|| tenant.0.clone()),
            user: (kind == TokenKind::User).then_some(true),
            device: (kind == TokenKind::Device).then_some(true),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    User,
    Device,
}

/// A management request's verified user.
#[derive(Debug, Clone)]
pub struct User(pub Identity);

/// A device request's verified device.
#[derive(Debug, Clone)]
pub struct Device(pub Identity);

/// A refused request: 401 with a `WWW-Authenticate` challenge, or 403 for the wrong kind.
pub struct AuthRejection {
    error: AuthError,
    realm: &'static str,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        if let AuthError::WrongKind(_) = self.error {
            return error_response(StatusCode::FORBIDDEN, self.error.to_string());
        }
        let mut response = error_response(StatusCode::UNAUTHORIZED, self.error.to_string());
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(self.realm),
        );
        response
    }
}

fn identify(
    parts: &Parts,
    verifier: &Verifier,
    kind: TokenKind,
) -> Result<Identity, AuthRejection> {
    let realm = match kind {
        TokenKind::User => "Bearer realm=\"ManagementJWT\"",
        TokenKind::Device => "Bearer realm=\"DeviceJWT\"",
    };
    let reject = |error| AuthRejection { error, realm };
    let claims = verifier.bearer(parts).map_err(reject)?;
    let fits = match kind {
        TokenKind::User => claims.user == Some(true),
        TokenKind::Device => claims.device == Some(true),
    };
    if !fits {
        return Err(reject(AuthError::WrongKind(match kind {
            TokenKind::User => "a user",
            TokenKind::Device => "a device",
        })));
    }
    let identity = Identity {
        subject: claims.sub,
        tenant: TenantId(claims.tenant.unwrap_or_default()),
        issued_at: claims.iat,
    };
    let span = tracing::Span::current();
    span.record("tenant", identity.tenant.as_str());
    span.record("subject", identity.subject.as_str());
    Ok(identity)
}

impl<S> axum::extract::FromRequestParts<S> for User
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        identify(parts, &verifier, TokenKind::User).map(User)
    }
}

impl<S> axum::extract::FromRequestParts<S> for Device
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        identify(parts, &verifier, TokenKind::Device).map(Device)
    }
}
