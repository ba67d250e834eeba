//! Version 1. mender-artifact 3.9 cannot write it, so a real v2 artifact is converted into
//! the v1 layout the format documentation describes (no manifest; per-file checksums in
//! `headers/NNNN/checksums/<file>.sha256sum`). This checks the v1 path against the
//! documentation, not against a file an old mender-artifact wrote.

use std::io::Read;

use crate::common::*;
use artifact_format::{read_artifact, FormatError, ReadOptions, VerificationKey};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// Rewrites a v2 header.tar.gz as v1: same files plus `checksums/` for each payload file.
fn header_v1(header_gz: &[u8], checksum_line: &str) -> Vec<u8> {
    let mut archive = tar::Archive::new(GzDecoder::new(header_gz));
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, &name, bytes.as_slice())
            .unwrap();
        if name == "headers/0000/files" {
            let mut header = tar::Header::new_ustar();
            header.set_size(checksum_line.len() as u64);
            header.set_mode(0o644);
            builder
                .append_data(
                    &mut header,
                    "headers/0000/checksums/rootfs.ext4.sha256sum",
                    checksum_line.as_bytes(),
                )
                .unwrap();
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn make_v1(work: &Work, checksum: &str) -> std::path::PathBuf {
    let image = noise(30_000, 41);
    work.file("rootfs.ext4", &image);
    let v2 = work.write(
        "v2.mender",
        "rootfs-image -v 2 -n old-1 -t vexpress -f rootfs.ext4",
    );
    let v1 = work.path("v1.mender");
    rewrite(&v2, &v1, |name, bytes| match name {
        "version" => Some((name.into(), br#"{"format":"mender","version":1}"#.to_vec())),
        "manifest" => None,
        "header.tar.gz" => Some((name.into(), header_v1(&bytes, &format!("{checksum}\n")))),
        _ => Some((name.into(), bytes)),
    });
    v1
}

#[test]
fn version_1_from_the_documented_layout() {
    let work = Work::new();
    let checksum = hex::encode(Sha256::digest(noise(30_000, 41)));
    let path = make_v1(&work, &checksum);
    let parsed = parse_ok(&path);
    assert_eq!(parsed.info.version, 1);
    assert_eq!(parsed.name, "old-1");
    assert!(!parsed.signed);
    assert_eq!(parsed.device_types_compatible, ["vexpress"]);
    assert_eq!(
        parsed.artifact_depends.get("device_type"),
        Some(&serde_json::json!(["vexpress"]))
    );
    let update = &parsed.updates[0];
    assert_eq!(
        update.type_info.update_type.as_deref(),
        Some("rootfs-image")
    );
    assert_eq!(update.files[0].name, "rootfs.ext4");
    assert_eq!(update.files[0].checksum, checksum);
    assert_eq!(update.files[0].size, 30_000);
}

#[test]
fn version_1_checksums_are_enforced() {
    let work = Work::new();
    let path = make_v1(&work, &"00".repeat(32));
    let err = read_file(&path, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, FormatError::ChecksumMismatch(p) if p == "data/0000/rootfs.ext4"),
        "{err}"
    );
}

#[test]
fn version_1_cannot_satisfy_required_signatures() {
    let work = Work::new();
    let checksum = hex::encode(Sha256::digest(noise(30_000, 41)));
    let path = make_v1(&work, &checksum);
    let (_, public) = work.ec_key("ec");
    let options = ReadOptions {
        verification_keys: vec![VerificationKey::from_pem(&public).unwrap()],
    };
    let err = read_artifact(std::fs::File::open(&path).unwrap(), &options).unwrap_err();
    assert!(matches!(err, FormatError::NotSigned), "{err}");
}
