//! Download links for the local store: the service signs `path + expiry` with an HMAC key
//! from configuration and checks the signature when the link is used.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("download link expired")]
    Expired,
    #[error("download link signature is invalid")]
    BadSignature,
}

/// Signs and checks links under one public base URL.
#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
    base_url: String,
}

/// Where signed links point: the route that serves local artifact files.
pub const DOWNLOAD_PATH: &str = "/api/storage/v1/deployments/blobs";

impl UrlSigner {
    /// `base_url` is how devices reach this server, e.g. `https://updates.example.com`.
    pub fn new(key: impl Into<Vec<u8>>, base_url: &str) -> Self {
        Self {
            key: key.into(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn signature(&self, key: &str, expires: i64) -> Vec<u8> {
        // Only fails for keys HMAC cannot take, and HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub fn link(&self, key: &str, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        format!(
            "{}{DOWNLOAD_PATH}/{key}?expires={expires}&signature={}",
            self.base_url,
            hex::encode(self.signature(key, expires))
        )
    }

    /// Checks a link's signature (in constant time) and expiry.
    pub fn check(
        &self,
        key: &str,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let given = hex::decode(signature).map_err(|_| LinkError::BadSignature)?;
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac.verify_slice(&given)
            .map_err(|_| LinkError::BadSignature)?;
        if now.timestamp() >= expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(link: &str) -> (String, i64, String) {
        let (path, query) = link.split_once('?').unwrap();
        let key = path
            .split_once(DOWNLOAD_PATH)
            .unwrap()
            .1
            .trim_start_matches('/')
            .to_owned();
        let mut expires = 0;
        let mut signature = String::new();
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("expires", value) => expires = value.parse().unwrap(),
                ("signature", value) => signature = value.to_owned(),
                _ => {}
            }
        }
        (key, expires, signature)
    }

    #[test]
    fn a_link_verifies_until_it_expires_and_not_once_tampered() {
        let signer = UrlSigner::new(b"secret".to_vec(), "http://devices.example/");
        let now = Utc::now();
        let link = signer.link("artifacts/default/x", now + chrono::Duration::seconds(60));
        assert!(link.starts_with(
            "http://devices.example/api/storage/v1/deployments/blobs/artifacts/default/x?"
        ));
        let (key, expires, signature) = parts(&link);
        assert_eq!(signer.check(&key, expires, &signature, now), Ok(()));
        assert_eq!(
            signer.check(
                &key,
                expires,
                &signature,
                now + chrono::Duration::seconds(61)
            ),
            Err(LinkError::Expired)
        );
        assert_eq!(
            signer.check("artifacts/default/y", expires, &signature, now),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.check(&key, expires + 3600, &signature, now),
            Err(LinkError::BadSignature)
        );
        let other = UrlSigner::new(b"other".to_vec(), "http://devices.example");
        assert_eq!(
            other.check(&key, expires, &signature, now),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.check(&key, expires, "zz", now),
            Err(LinkError::BadSignature)
        );
    }
}
