//! `manifest.sig`: base64 text holding an RSA PKCS#1 v1.5 / SHA-256 signature, or an ECDSA
//! P-256 / SHA-256 signature as raw `r‖s` (mender-artifact 3.x) or ASN.1 DER (older
//! writers), over the exact bytes of `manifest`.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::{FormatError, KeyError};

/// Standard alphabet, padding optional: the writer's choice should not matter.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// DER of the rsaEncryption OID (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// DER of the id-ecPublicKey OID (1.2.840.10045.2.1).
const OID_EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of the prime256v1 curve OID (1.2.840.10045.3.1.7).
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
}

/// A public key artifact signatures are checked against.
#[derive(Clone)]
pub struct VerificationKey {
    kind: KeyKind,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
        };
        write!(f, "VerificationKey({kind})")
    }
}

impl VerificationKey {
    /// Loads an RSA (PKCS#1 or SPKI) or EC P-256 (SPKI) public key from PEM.
    pub fn from_pem(pem: &[u8]) -> Result<VerificationKey, KeyError> {
        let (label, der) = decode_pem(pem)?;
        let invalid = |e: jsonwebtoken::errors::Error| KeyError::Invalid(e.to_string());
        let rsa = |spki: bool| {
            let bits = rsa_modulus_bits(&der, spki)
                .ok_or_else(|| KeyError::Invalid("cannot read the RSA modulus".into()))?;
            // The verifier only accepts 2048 bits and more; say so now rather than
            // refusing every signature later.
            if bits < 2048 {
                return Err(KeyError::Unsupported(format!(
                    "{bits}-bit RSA key, at least 2048 bits are required"
                )));
            }
            Ok(VerificationKey {
                kind: KeyKind::Rsa,
                key: DecodingKey::from_rsa_pem(pem).map_err(invalid)?,
            })
        };
        match label.as_str() {
            "RSA PUBLIC KEY" => rsa(false),
            "PUBLIC KEY" if contains(&der, OID_RSA) => rsa(true),
            "PUBLIC KEY" if contains(&der, OID_EC) => {
                if !contains(&der, OID_P256) {
                    return Err(KeyError::Unsupported(
                        "EC key on a curve other than P-256".into(),
                    ));
                }
                Ok(VerificationKey {
                    kind: KeyKind::EcP256,
                    key: DecodingKey::from_ec_pem(pem).map_err(invalid)?,
                })
            }
            "PUBLIC KEY" => Err(KeyError::Unsupported(
                "public key of an unknown algorithm".into(),
            )),
            label if label.contains("PRIVATE KEY") => Err(KeyError::PrivateKey(label.to_string())),
            label => Err(KeyError::Unsupported(format!(
                "a \"{label}\" PEM block (expected an RSA or EC P-256 public key)"
            ))),
        }
    }
}

/// Finds the first PEM block and returns its label and decoded body.
fn decode_pem(pem: &[u8]) -> Result<(String, Vec<u8>), KeyError> {
    let text = std::str::from_utf8(pem).map_err(|_| KeyError::NotPem("not UTF-8 text".into()))?;
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| KeyError::NotPem("no \"-----BEGIN ...-----\" line".into()))?
        .to_string();
    let mut body = String::new();
    for line in lines {
        if line.starts_with("-----END ") {
            let der = LENIENT_BASE64
                .decode(body.as_bytes())
                .map_err(|e| KeyError::NotPem(format!("bad base64 body: {e}")))?;
            return Ok((label, der));
        }
        if line.contains(':') {
            return Err(KeyError::NotPem(
                "encrypted or annotated PEM is not supported".into(),
            ));
        }
        body.push_str(line);
    }
    Err(KeyError::NotPem("no \"-----END ...-----\" line".into()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
    for key in keys {
        let (signature, algorithm) = match key.kind {
            KeyKind::Rsa => (raw.clone(), Algorithm::RS256),
            KeyKind::EcP256 => match ecdsa_fixed(&raw) {
                Some(fixed) => (fixed, Algorithm::ES256),
                None => continue,
            },
        };
        let encoded = URL_SAFE_NO_PAD.encode(&signature);
        if jsonwebtoken::crypto::verify(&encoded, manifest, &key.key, algorithm).unwrap_or(false) {
            return Ok(());
        }
    }
    Err(FormatError::BadSignature)
}

/// An ECDSA P-256 signature as the 64-byte `r‖s` the verifier wants, from either that form
/// or a DER `SEQUENCE { INTEGER r, INTEGER s }`.
fn ecdsa_fixed(signature: &[u8]) -> Option<Vec<u8>> {
    if signature.len() == 64 {
        return Some(signature.to_vec());
    }
    let (tag, body, rest) = der_element(signature)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (r_tag, r, rest) = der_element(body)?;
    let (s_tag, s, rest) = der_element(rest)?;
    if r_tag != 0x02 || s_tag != 0x02 || !rest.is_empty() {
        return None;
    }
    let mut fixed = vec![0u8; 64];
    let (r_slot, s_slot) = fixed.split_at_mut(32);
    for (integer, slot) in [(r, r_slot), (s, s_slot)] {
        let start = integer
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(integer.len());
        let digits = &integer[start..];
        if digits.len() > 32 {
            return None;
        }
        slot[32 - digits.len()..].copy_from_slice(digits);
    }
    Some(fixed)
}

/// Bit length of an RSA public key's modulus, from PKCS#1 or SPKI DER.
fn rsa_modulus_bits(der: &[u8], spki: bool) -> Option<u32> {
    let mut pkcs1 = der;
    if spki {
        let (_, key_info, _) = der_element(der)?;
        let (_, _algorithm, rest) = der_element(key_info)?;
        let (tag, bit_string, _) = der_element(rest)?;
        if tag != 0x03 {
            return None;
        }
        // The first content byte counts unused bits; the key follows it.
        pkcs1 = bit_string.get(1..)?;
    }
    let (_, key, _) = der_element(pkcs1)?;
    let (tag, modulus, _) = der_element(key)?;
    if tag != 0x02 {
        return None;
    }
    let start = modulus.iter().position(|b| *b != 0)?;
    let digits = &modulus[start..];
    let bytes = u32::try_from(digits.len()).ok()?;
    Some(bytes * 8 - digits.first()?.leading_zeros())
}

/// Splits one DER element off `input`: (tag, contents, remainder).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            if rest.len() < count {
                return None;
            }
            let (digits, rest) = rest.split_at(count);
            let len = digits
                .iter()
                .fold(0usize, |len, b| (len << 8) | usize::from(*b));
            (len, rest)
        }
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    let (body, rest) = rest.split_at(len);
    Some((tag, body, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_ecdsa_signatures_become_fixed_width() {
        // r has a sign-padding zero, s is short.
        let mut der = vec![0x30, 0x27, 0x02, 0x21, 0x00];
        der.extend([0xff; 32]);
        der.extend([0x02, 0x02, 0x01, 0x02]);
        let fixed = ecdsa_fixed(&der).unwrap();
        assert_eq!(&fixed[..32], &[0xff; 32]);
        assert_eq!(&fixed[32..62], &[0; 30]);
        assert_eq!(&fixed[62..], &[1, 2]);
        assert!(ecdsa_fixed(&[0x30, 0x05, 0x02]).is_none());
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
    }
}
