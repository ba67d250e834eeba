//! Device public keys as Mender clients present them (PEM `PUBLIC KEY`, i.e. an X.509
//! SubjectPublicKeyInfo) and the signatures they make with them, checked as deviceauth does:
//! RSA PKCS#1 v1.5 over SHA-256, ECDSA over SHA-256 with an ASN.1 signature, Ed25519 over the
//! message itself.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use spki::der::Decode;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

#[derive(Debug, thiserror::Error)]
pub enum DeviceKeyError {
    #[error("cannot decode public key: {0}")]
    Malformed(String),
    #[error("unsupported public key: {0}")]
    Unsupported(String),
}

/// A device's public key, and what its signatures are checked with.
pub struct DeviceKey {
    /// The SubjectPublicKeyInfo DER: DER has one encoding per value, so two keys are the same
    /// key exactly when these bytes are equal, however their PEM was wrapped.
    spki: Vec<u8>,
    /// The key itself (the PKCS#1 key, the curve point, the Ed25519 key), as ring takes it.
    key: Vec<u8>,
    algorithm: &'static dyn VerificationAlgorithm,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({:?})", self.algorithm)
    }
}

impl PartialEq for DeviceKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

impl DeviceKey {
    /// The first PEM block of `text`, which must be a `PUBLIC KEY`.
    pub fn from_pem(text: &str) -> Result<Self, DeviceKeyError> {
        let block = pem::parse(text).map_err(|e| DeviceKeyError::Malformed(e.to_string()))?;
        Self::from_block(&block)
    }

    /// Every PEM block of `text` (a file listing a fleet's keys).
    pub fn all_from_pem(text: &str) -> Result<Vec<Self>, DeviceKeyError> {
        let blocks = pem::parse_many(text).map_err(|e| DeviceKeyError::Malformed(e.to_string()))?;
        if blocks.is_empty() {
            return Err(DeviceKeyError::Malformed("no PEM block".into()));
        }
        blocks.iter().map(Self::from_block).collect()
    }

    fn from_block(block: &pem::Pem) -> Result<Self, DeviceKeyError> {
        if block.tag() != "PUBLIC KEY" {
            return Err(DeviceKeyError::Malformed(format!(
                "a \"{}\" PEM block, not \"PUBLIC KEY\"",
                block.tag()
            )));
        }
        let spki = block.contents();
        let info = SubjectPublicKeyInfoRef::from_der(spki)
            .map_err(|e| DeviceKeyError::Malformed(e.to_string()))?;
        let (oid, parameters) = info
            .algorithm
            .oids()
            .map_err(|e| DeviceKeyError::Malformed(e.to_string()))?;
        let algorithm: &'static dyn VerificationAlgorithm = match (oid, parameters) {
            // ring takes 2048 to 8192 bits; mender-client makes 3072-bit keys.
            (RSA_ENCRYPTION, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (EC_PUBLIC_KEY, Some(P256)) => &signature::ECDSA_P256_SHA256_ASN1,
            (EC_PUBLIC_KEY, Some(P384)) => &signature::ECDSA_P384_SHA256_ASN1,
            (EC_PUBLIC_KEY, curve) => {
                return Err(DeviceKeyError::Unsupported(format!(
                    "EC curve {curve:?}; P-256 and P-384 are supported"
                )))
            }
            (ED25519, _) => &signature::ED25519,
            (oid, _) => {
                return Err(DeviceKeyError::Unsupported(format!(
                    "algorithm {oid}; RSA, ECDSA and Ed25519 are supported"
                )))
            }
        };
        let key = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| DeviceKeyError::Malformed("key bits not whole bytes".into()))?
            .to_vec();
        Ok(Self {
            spki: spki.to_vec(),
            key,
            algorithm,
        })
    }

    /// The key as one canonical PEM block (64-column lines, `\n` endings): the same key
    /// always has the same text, so auth sets compare keys by it.
    pub fn canonical_pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", self.spki.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// Whether `signature` is this key's over exactly `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.algorithm, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn pem(der: Vec<u8>) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", der))
    }

    /// SubjectPublicKeyInfo of an Ed25519 key: a fixed prefix, then the 32 key bytes.
    fn ed25519_spki(key: &[u8]) -> Vec<u8> {
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(key);
        der
    }

    #[test]
    fn ed25519_signatures_verify_over_the_exact_message() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = DeviceKey::from_pem(&pem(ed25519_spki(pair.public_key().as_ref()))).unwrap();
        let signature = pair.sign(b"{\"id_data\":\"{}\"}");
        assert!(key.verifies(b"{\"id_data\":\"{}\"}", signature.as_ref()));
        assert!(!key.verifies(b"{\"id_data\":\"{} \"}", signature.as_ref()));
    }

    #[test]
    fn ecdsa_p256_signatures_verify() {
        let rng = SystemRandom::new();
        let algorithm = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &rng).unwrap();
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let key = DeviceKey::from_pem(&pem(spki)).unwrap();
        let signature = pair.sign(&rng, b"body").unwrap();
        assert!(key.verifies(b"body", signature.as_ref()));
        assert!(!key.verifies(b"other", signature.as_ref()));
    }

    #[test]
    fn the_same_key_compares_equal_however_its_pem_is_wrapped() {
        let der = ed25519_spki(&[7; 32]);
        let wrapped = pem(der.clone());
        let unwrapped = wrapped.replace('\n', "\r\n");
        assert_eq!(
            DeviceKey::from_pem(&wrapped).unwrap(),
            DeviceKey::from_pem(&unwrapped).unwrap()
        );
        assert_ne!(
            DeviceKey::from_pem(&wrapped).unwrap(),
            DeviceKey::from_pem(&pem(ed25519_spki(&[8; 32]))).unwrap()
        );
    }

    #[test]
    fn private_keys_and_garbage_are_refused() {
        let private = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2, 3]));
        assert!(matches!(
            DeviceKey::from_pem(&private),
            Err(DeviceKeyError::Malformed(_))
        ));
        assert!(DeviceKey::from_pem("hello").is_err());
        assert!(DeviceKey::from_pem(&pem(vec![0x30, 0x00])).is_err());
        assert!(DeviceKey::all_from_pem("").is_err());
    }
}
