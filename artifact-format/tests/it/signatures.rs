//! Signed artifacts: RSA-3072 and ECDSA P-256/P-384 keys made by openssl, artifacts signed by
//! `mender-artifact write -k` (or re-signed by openssl), checked against `mender-artifact read -k`.

use crate::common::*;
use artifact_format::{FormatError, KeyError, ReadOptions, VerificationKey};
use base64::Engine;

fn keys(pems: &[&[u8]]) -> ReadOptions {
    ReadOptions {
        verification_keys: pems
            .iter()
            .map(|pem| VerificationKey::from_pem(pem).expect("public key"))
            .collect(),
    }
}

fn signed_artifact(
    work: &Work,
    out: &str,
    key: &std::path::Path,
    version: &str,
) -> std::path::PathBuf {
    work.file("rootfs.ext4", &noise(50_000, 11));
    work.write(
        out,
        &format!(
            "rootfs-image -v {version} -n signed -t dev -f rootfs.ext4 -k {}",
            key.to_str().unwrap()
        ),
    )
}

#[test]
fn rsa_signatures() {
    let work = Work::new();
    let (private, spki, pkcs1) = work.rsa_key("rsa");
    let (_, other_spki, _) = work.rsa_key("other");
    let (_, ec_spki) = work.ec_key("ec");
    for version in ["2", "3"] {
        let path = signed_artifact(&work, &format!("rsa-v{version}.mender"), &private, version);
        let view = mender_read(&path, Some(&work.path("rsa.pub")));
        assert_eq!(view.signature, "signed and verified correctly");

        // No keys configured: accepted, and reported as signed.
        let parsed = parse_and_compare(&path);
        assert!(parsed.signed);

        for good in [&spki, &pkcs1] {
            let verified = read_file(&path, &keys(&[good])).unwrap();
            assert_eq!(verified, parsed);
        }
        // One matching key among several is enough.
        read_file(&path, &keys(&[&ec_spki, &other_spki, &spki])).unwrap();

        for wrong in [&other_spki, &ec_spki] {
            let err = read_file(&path, &keys(&[wrong])).unwrap_err();
            assert!(matches!(err, FormatError::BadSignature), "{err}");
            assert_eq!(
                err.to_string(),
                "artifact signature does not verify against any configured key"
            );
        }
    }
}

#[test]
fn ecdsa_p256_signatures() {
    let work = Work::new();
    let (private, spki) = work.ec_key("ec");
    let (_, other_spki) = work.ec_key("other");
    let (_, rsa_spki, _) = work.rsa_key("rsa");
    let path = signed_artifact(&work, "ec.mender", &private, "3");
    let view = mender_read(&path, Some(&work.path("ec.pub")));
    assert_eq!(view.signature, "signed and verified correctly");

    let parsed = parse_and_compare(&path);
    assert!(parsed.signed);
    assert_eq!(read_file(&path, &keys(&[&spki])).unwrap(), parsed);
    for wrong in [&other_spki, &rsa_spki] {
        let err = read_file(&path, &keys(&[wrong])).unwrap_err();
        assert!(matches!(err, FormatError::BadSignature), "{err}");
    }
}

/// Signs `artifact`'s manifest with openssl (SHA-256, ASN.1 DER signature) using `private`,
/// as signing services and older writers do, and writes the result to `out`.
fn resigned_with_openssl(
    work: &Work,
    artifact: &std::path::Path,
    private: &std::path::Path,
    out: &str,
) -> std::path::PathBuf {
    let mut manifest = Vec::new();
    rewrite(artifact, &work.path("copy.mender"), |name, bytes| {
        if name == "manifest" {
            manifest = bytes.clone();
        }
        Some((name.to_string(), bytes))
    });
    work.file("manifest", &manifest);
    work.openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        private.to_str().unwrap(),
        "-out",
        "manifest.der",
        "manifest",
    ]);
    let der = std::fs::read(work.path("manifest.der")).unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let resigned = work.path(out);
    rewrite(artifact, &resigned, |name, bytes| {
        if name == "manifest.sig" {
            return Some((name.to_string(), text.clone().into_bytes()));
        }
        Some((name.to_string(), bytes))
    });
    resigned
}

#[test]
fn ecdsa_p384_and_der_signatures() {
    let work = Work::new();
    let (p256_private, p256) = work.ec_key("p256");
    let (p384_private, p384) = work.ec_key_on("p384", "secp384r1");
    let (_, other_p384) = work.ec_key_on("other", "secp384r1");
    let signed = signed_artifact(&work, "p256.mender", &p256_private, "3");
    let parsed = parse_and_compare(&signed);

    // mender-artifact writes P-256 signatures as r||s; a DER one over the same manifest, as
    // older writers and openssl make them, is accepted too.
    let der_p256 = resigned_with_openssl(&work, &signed, &p256_private, "der-p256.mender");
    assert_eq!(read_file(&der_p256, &keys(&[&p256])).unwrap(), parsed);

    // mender-artifact cannot sign with P-384 but verifies with such a key.
    let p384_signed = resigned_with_openssl(&work, &signed, &p384_private, "p384.mender");
    assert_eq!(read_file(&p384_signed, &keys(&[&p384])).unwrap(), parsed);
    for wrong in [&other_p384, &p256] {
        let err = read_file(&p384_signed, &keys(&[wrong])).unwrap_err();
        assert!(matches!(err, FormatError::BadSignature), "{err}");
    }
    let err = read_file(&signed, &keys(&[&p384])).unwrap_err();
    assert!(matches!(err, FormatError::BadSignature), "{err}");
}

#[test]
fn unsigned_artifacts_are_refused_when_keys_are_configured() {
    let work = Work::new();
    let (_, spki) = work.ec_key("ec");
    work.file("rootfs.ext4", &noise(1_000, 12));
    for version in ["2", "3"] {
        let path = work.write(
            &format!("u{version}.mender"),
            &format!("rootfs-image -v {version} -n u -t dev -f rootfs.ext4"),
        );
        assert!(!parse_ok(&path).signed);
        let err = read_file(&path, &keys(&[&spki])).unwrap_err();
        assert!(matches!(err, FormatError::NotSigned), "{err}");
        assert!(err.to_string().starts_with("artifact is not signed"));
    }
}

#[test]
fn a_manifest_edited_after_signing_is_refused() {
    let work = Work::new();
    let (private, spki, _) = work.rsa_key("rsa");
    let path = signed_artifact(&work, "s.mender", &private, "3");
    let edited = work.path("edited.mender");
    // Appending a line keeps every checksum intact, so only the signature can catch it.
    rewrite(&path, &edited, |name, mut bytes| {
        if name == "manifest" {
            bytes.extend_from_slice(b"\n");
        }
        Some((name.to_string(), bytes))
    });
    parse_ok(&edited);
    let err = read_file(&edited, &keys(&[&spki])).unwrap_err();
    assert!(matches!(err, FormatError::BadSignature), "{err}");
}

#[test]
fn key_loading() {
    let work = Work::new();
    let (private, _, _) = work.rsa_key("rsa");
    let (ec_private, _) = work.ec_key("ec");
    for path in [private, ec_private] {
        let pem = std::fs::read(path).unwrap();
        let err = VerificationKey::from_pem(&pem).unwrap_err();
        assert!(matches!(err, KeyError::PrivateKey(_)), "{err}");
    }
    let (_, p384) = work.ec_key_on("p384", "secp384r1");
    VerificationKey::from_pem(&p384).unwrap();
    let (_, k256) = work.ec_key_on("k256", "secp256k1");
    let err = VerificationKey::from_pem(&k256).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported key: EC key on a curve other than P-256 and P-384"
    );
    work.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"]);
    work.openssl(&["pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub"]);
    let ed = std::fs::read(work.path("ed.pub")).unwrap();
    let err = VerificationKey::from_pem(&ed).unwrap_err();
    assert!(matches!(err, KeyError::Unsupported(_)), "{err}");
    work.openssl(&["genrsa", "-out", "small.pem", "1024"]);
    work.openssl(&["rsa", "-in", "small.pem", "-pubout", "-out", "small.pub"]);
    let small = std::fs::read(work.path("small.pub")).unwrap();
    let err = VerificationKey::from_pem(&small).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported key: 1024-bit RSA key, at least 2048 bits are required"
    );
    assert!(matches!(
        VerificationKey::from_pem(b"not a key"),
        Err(KeyError::NotPem(_))
    ));
}
