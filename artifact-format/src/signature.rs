//! `manifest.sig`: base64 text holding a signature over the exact bytes of `manifest`, made
//! with SHA-256 as mender-artifact makes and checks it: RSA PKCS#1 v1.5, or ECDSA on P-256 or
//! P-384 with the signature either as fixed-width `r‖s` (what mender-artifact 3.x writes) or as
//! ASN.1 DER (older writers, openssl, key-management services).
//!
//! Keys are read with the PEM and X.509 SubjectPublicKeyInfo parsers of RustCrypto and checked
//! with ring, the crypto backend the rest of the binary (TLS, JWTs, device keys) already uses.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use pkcs1::RsaPublicKey;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use spki::der::asn1::UintRef;
use spki::der::{Decode, Encode, Header, Length, Tag};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

use crate::error::{FormatError, KeyError};

/// Standard alphabet, padding optional: the writer's choice should not matter.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// ring's RSA verifier takes 2048 to 8192 bits: a smaller key is refused when it is loaded,
/// not by failing every signature later.
const RSA_MIN_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    /// ECDSA with the curve's scalar width in bytes (32 for P-256, 48 for P-384).
    Ecdsa(usize),
}

/// A public key artifact signatures are checked against.
#[derive(Clone)]
pub struct VerificationKey {
    kind: KeyKind,
    /// The key as ring takes it: the PKCS#1 `RSAPublicKey`, or the uncompressed curve point.
    key: Vec<u8>,
    algorithm: &'static dyn VerificationAlgorithm,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            KeyKind::Rsa => write!(f, "VerificationKey(RSA)"),
            KeyKind::Ecdsa(32) => write!(f, "VerificationKey(EC P-256)"),
            KeyKind::Ecdsa(_) => write!(f, "VerificationKey(EC P-384)"),
        }
    }
}

impl VerificationKey {
    /// Loads an RSA (PKCS#1 `RSA PUBLIC KEY` or SPKI `PUBLIC KEY`) or EC P-256/P-384 (SPKI)
    /// public key from the first PEM block of `pem`.
    pub fn from_pem(pem: &[u8]) -> Result<VerificationKey, KeyError> {
        let block = pem::parse(pem).map_err(|e| KeyError::NotPem(e.to_string()))?;
        if block.headers().iter().next().is_some() {
            return Err(KeyError::NotPem(
                "encrypted or annotated PEM is not supported".into(),
            ));
        }
        match block.tag() {
            "RSA PUBLIC KEY" => Self::rsa(block.contents()),
            "PUBLIC KEY" => Self::from_spki(block.contents()),
            label if label.contains("PRIVATE KEY") => Err(KeyError::PrivateKey(label.to_string())),
            label => Err(KeyError::Unsupported(format!(
                "a \"{label}\" PEM block (expected an RSA or EC P-256/P-384 public key)"
            ))),
        }
    }

    fn from_spki(der: &[u8]) -> Result<VerificationKey, KeyError> {
        let info =
            SubjectPublicKeyInfoRef::from_der(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let (oid, parameters) = info
            .algorithm
            .oids()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let key = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Invalid("key bits are not whole bytes".into()))?;
        match (oid, parameters) {
            (RSA_ENCRYPTION, _) => Self::rsa(key),
            (EC_PUBLIC_KEY, Some(P256)) => {
                Ok(Self::ecdsa(32, key, &signature::ECDSA_P256_SHA256_ASN1))
            }
            (EC_PUBLIC_KEY, Some(P384)) => {
                Ok(Self::ecdsa(48, key, &signature::ECDSA_P384_SHA256_ASN1))
            }
            (EC_PUBLIC_KEY, _) => Err(KeyError::Unsupported(
                "EC key on a curve other than P-256 and P-384".into(),
            )),
            (oid, _) => Err(KeyError::Unsupported(format!(
                "public key of algorithm {oid} (expected RSA or EC)"
            ))),
        }
    }

    fn rsa(pkcs1: &[u8]) -> Result<VerificationKey, KeyError> {
        let key = RsaPublicKey::from_der(pkcs1).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let modulus = key.modulus.as_bytes();
        let bits = modulus.len() * 8 - modulus.first().map_or(0, |b| b.leading_zeros() as usize);
        if bits < RSA_MIN_BITS {
            return Err(KeyError::Unsupported(format!(
                "{bits}-bit RSA key, at least {RSA_MIN_BITS} bits are required"
            )));
        }
        Ok(VerificationKey {
            kind: KeyKind::Rsa,
            key: pkcs1.to_vec(),
            algorithm: &signature::RSA_PKCS1_2048_8192_SHA256,
        })
    }

    fn ecdsa(
        width: usize,
        point: &[u8],
        algorithm: &'static dyn VerificationAlgorithm,
    ) -> VerificationKey {
        VerificationKey {
            kind: KeyKind::Ecdsa(width),
            key: point.to_vec(),
            algorithm,
        }
    }

    /// Whether `signature` (decoded from `manifest.sig`) is this key's over `message`.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let der;
        let signature = match self.kind {
            KeyKind::Ecdsa(width) if signature.len() == 2 * width => {
                match fixed_to_der(signature) {
                    Some(encoded) => {
                        der = encoded;
                        der.as_slice()
                    }
                    None => return false,
                }
            }
            _ => signature,
        };
        UnparsedPublicKey::new(self.algorithm, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

/// Checks `signature_text` (the contents of `manifest.sig`) over `manifest` against `keys`.
pub(crate) fn verify(
    manifest: &[u8],
    signature_text: &[u8],
    keys: &[VerificationKey],
) -> Result<(), FormatError> {
    let text: Vec<u8> = signature_text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = LENIENT_BASE64
        .decode(&text)
        .map_err(|_| FormatError::malformed("manifest.sig", "not base64 text"))?;
    if keys.iter().any(|key| key.verifies(manifest, &raw)) {
        Ok(())
    } else {
        Err(FormatError::BadSignature)
    }
}

/// A fixed-width ECDSA signature `r‖s` as the DER `SEQUENCE { INTEGER r, INTEGER s }` that
/// ring's ASN.1 verifiers take: ring has no fixed-width verifier for P-384 with SHA-256.
fn fixed_to_der(signature: &[u8]) -> Option<Vec<u8>> {
    let (r, s) = signature.split_at(signature.len() / 2);
    let (r, s) = (UintRef::new(r).ok()?, UintRef::new(s).ok()?);
    let length: Length = (r.encoded_len().ok()? + s.encoded_len().ok()?).ok()?;
    let mut der = Vec::with_capacity(signature.len() + 9);
    Header::new(Tag::Sequence, length)
        .ok()?
        .encode_to_vec(&mut der)
        .ok()?;
    r.encode_to_vec(&mut der).ok()?;
    s.encode_to_vec(&mut der).ok()?;
    Some(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair};

    /// A P-256 key made by ring, as a `PUBLIC KEY` PEM block, and a signer.
    fn p256() -> (Vec<u8>, EcdsaKeyPair) {
        let rng = SystemRandom::new();
        let algorithm = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &rng).unwrap();
        let spki = spki::SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifierRef {
                oid: EC_PUBLIC_KEY,
                parameters: Some(spki::der::AnyRef::from(&P256)),
            },
            subject_public_key: spki::der::asn1::BitStringRef::from_bytes(
                pair.public_key().as_ref(),
            )
            .unwrap(),
        };
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.to_der().unwrap()));
        (pem.into_bytes(), pair)
    }

    #[test]
    fn fixed_and_der_ecdsa_signatures_both_verify() {
        let (pem, pair) = p256();
        let key = VerificationKey::from_pem(&pem).unwrap();
        let rng = SystemRandom::new();
        // Signatures whose r or s has a high bit (DER adds a zero) or leading zero bytes
        // (DER drops them) come up within a few tries.
        for _ in 0..16 {
            let fixed = pair.sign(&rng, b"manifest").unwrap();
            assert_eq!(fixed.as_ref().len(), 64);
            assert!(key.verifies(b"manifest", fixed.as_ref()));
            assert!(!key.verifies(b"manifest!", fixed.as_ref()));
            let der = fixed_to_der(fixed.as_ref()).unwrap();
            assert!(key.verifies(b"manifest", &der));
        }
        assert!(!key.verifies(b"manifest", &[0u8; 64]));
        assert!(!key.verifies(b"manifest", b"short"));
    }

    #[test]
    fn private_and_garbage_keys_are_refused() {
        let private = b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            VerificationKey::from_pem(private),
            Err(KeyError::PrivateKey(_))
        ));
        assert!(matches!(
            VerificationKey::from_pem(b"hello"),
            Err(KeyError::NotPem(_))
        ));
        let encrypted = b"-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            VerificationKey::from_pem(encrypted),
            Err(KeyError::NotPem(_))
        ));
        let junk = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            VerificationKey::from_pem(junk),
            Err(KeyError::Invalid(_))
        ));
    }
}
