//! Broken, tampered and foreign inputs, each refused with its own error.

use std::path::Path;

use crate::common::*;
use artifact_format::{read_artifact, FormatError, ReadOptions};

fn read_bytes(bytes: &[u8]) -> Result<artifact_format::ParsedArtifact, FormatError> {
    read_artifact(bytes, &ReadOptions::default())
}

fn rootfs(work: &Work, out: &str, compression: &str) -> std::path::PathBuf {
    work.file("rootfs.ext4", &noise(200_000, 21));
    work.write(
        out,
        &format!("rootfs-image -n r -t dev -f rootfs.ext4 --compression {compression}"),
    )
}

fn member(path: &Path, prefix: &str) -> (u64, u64) {
    let (_, offset, size) = members(path)
        .into_iter()
        .find(|m| m.0.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} member"));
    (offset, size)
}

#[test]
fn empty_input() {
    let err = read_bytes(b"").unwrap_err();
    assert!(matches!(err, FormatError::Empty), "{err}");
    assert_eq!(err.to_string(), "artifact is empty");
}

#[test]
fn random_bytes() {
    for len in [10, 511, 512, 100_000] {
        let err = read_bytes(&noise(len, 22)).unwrap_err();
        assert!(matches!(err, FormatError::NotMender(_)), "{len}: {err}");
        assert!(err.to_string().starts_with("not a Mender artifact"));
    }
}

#[test]
fn plain_tar_of_random_files() {
    let work = Work::new();
    work.file("junk/a.txt", b"hello");
    work.file("junk/b.bin", &noise(5_000, 23));
    let tar_path = work.path("junk.tar");
    let status = std::process::Command::new("tar")
        .current_dir(work.dir.path())
        .args(["cf", tar_path.to_str().unwrap(), "junk"])
        .status()
        .unwrap();
    assert!(status.success());
    let err = read_file(&tar_path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, FormatError::NotMender(_)), "{err}");
}

#[test]
fn truncated_in_the_header() {
    let work = Work::new();
    let path = rootfs(&work, "a.mender", "gzip");
    let bytes = std::fs::read(&path).unwrap();
    let (offset, size) = member(&path, "header.tar");
    for cut in [
        offset - 300,
        offset + 10,
        offset + size / 2,
        offset + size - 1,
    ] {
        let err = read_bytes(&bytes[..cut as usize]).unwrap_err();
        assert!(
            matches!(err, FormatError::Truncated(_)),
            "cut at {cut}: {err}"
        );
        assert!(
            err.to_string().starts_with("artifact is truncated"),
            "{err}"
        );
    }
}

#[test]
fn truncated_in_the_payload() {
    let work = Work::new();
    for compression in ["none", "gzip", "lzma"] {
        let path = rootfs(&work, &format!("{compression}.mender"), compression);
        let bytes = std::fs::read(&path).unwrap();
        let (offset, size) = member(&path, "data/0000");
        // Mid-payload, at a tar block boundary inside it, right at its start, and just
        // before its last byte.
        for cut in [offset + size / 2, offset + 4096, offset, offset + size - 1] {
            let err = read_bytes(&bytes[..cut as usize]).unwrap_err();
            assert!(
                matches!(err, FormatError::Truncated(_)),
                "{compression} cut at {cut}: {err}"
            );
        }
        // Missing only the end-of-archive blocks is not a truncated artifact.
        let end = offset + size.div_ceil(512) * 512;
        let parsed = read_bytes(&bytes[..end as usize]).unwrap();
        assert_eq!(parsed.size, end);
    }
}

#[test]
fn truncated_error_names_the_member() {
    let work = Work::new();
    let path = rootfs(&work, "a.mender", "gzip");
    let bytes = std::fs::read(&path).unwrap();
    let (offset, size) = member(&path, "data/0000");
    let err = read_bytes(&bytes[..(offset + size / 2) as usize]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "artifact is truncated (the input ends inside data/0000.tar.gz)"
    );
}

#[test]
fn flipped_payload_byte_is_a_checksum_mismatch() {
    let work = Work::new();
    for compression in ["none", "gzip"] {
        let path = rootfs(&work, &format!("{compression}.mender"), compression);
        let mut bytes = std::fs::read(&path).unwrap();
        let (offset, size) = member(&path, "data/0000");
        // With no compression this is inside rootfs.ext4's bytes; with gzip the random
        // payload is stored uncompressed in deflate blocks, so it lands in the file too.
        bytes[(offset + size / 2) as usize] ^= 0x40;
        let err = read_bytes(&bytes).unwrap_err();
        assert!(
            matches!(&err, FormatError::ChecksumMismatch(p) if p == "data/0000/rootfs.ext4"),
            "{compression}: {err}"
        );
        assert_eq!(
            err.to_string(),
            "checksum mismatch for data/0000/rootfs.ext4"
        );
    }
}

#[test]
fn flipped_header_byte_is_detected() {
    let work = Work::new();
    let path = rootfs(&work, "none.mender", "none");
    let mut bytes = std::fs::read(&path).unwrap();
    let (offset, size) = member(&path, "header.tar");
    // The last byte of header.tar is end-of-archive padding: the header still parses, so
    // only the manifest checksum can notice.
    bytes[(offset + size - 1) as usize] ^= 1;
    let err = read_bytes(&bytes).unwrap_err();
    assert!(
        matches!(&err, FormatError::ChecksumMismatch(p) if p == "header.tar"),
        "{err}"
    );
}

#[test]
fn flipped_version_byte_is_detected() {
    let work = Work::new();
    let path = rootfs(&work, "a.mender", "gzip");
    let mut bytes = std::fs::read(&path).unwrap();
    let (offset, size) = member(&path, "version");
    let text = &bytes[offset as usize..(offset + size) as usize];
    assert_eq!(text, br#"{"format":"mender","version":3}"#);
    let digit = offset as usize + text.iter().position(|b| *b == b'3').unwrap();
    bytes[digit] = b'7';
    let err = read_bytes(&bytes).unwrap_err();
    assert!(matches!(err, FormatError::UnsupportedVersion(_)), "{err}");
    assert_eq!(err.to_string(), "unsupported artifact version 7");
    // A supported version that does not match the manifest's checksum of `version`.
    bytes[digit] = b'2';
    let err = read_bytes(&bytes).unwrap_err();
    assert!(
        matches!(&err, FormatError::ChecksumMismatch(p) if p == "version"),
        "{err}"
    );
}

#[test]
fn manifest_entry_without_a_file() {
    let work = Work::new();
    let path = rootfs(&work, "a.mender", "gzip");
    let edited = work.path("edited.mender");
    let extra = format!("{}  data/0000/ghost.bin\n", "ab".repeat(32));
    rewrite(&path, &edited, |name, mut bytes| {
        if name == "manifest" {
            bytes.extend_from_slice(extra.as_bytes());
        }
        Some((name.to_string(), bytes))
    });
    let err = read_file(&edited, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, FormatError::MissingFile(p) if p == "data/0000/ghost.bin"),
        "{err}"
    );
}

#[test]
fn payload_file_missing_from_the_manifest() {
    let work = Work::new();
    let path = rootfs(&work, "a.mender", "gzip");
    let edited = work.path("edited.mender");
    rewrite(&path, &edited, |name, bytes| {
        let bytes = if name == "manifest" {
            let text = String::from_utf8(bytes).unwrap();
            let kept: String = text
                .lines()
                .filter(|l| !l.ends_with("data/0000/rootfs.ext4"))
                .map(|l| format!("{l}\n"))
                .collect();
            kept.into_bytes()
        } else {
            bytes
        };
        Some((name.to_string(), bytes))
    });
    let err = read_file(&edited, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, FormatError::MissingChecksum(p) if p == "data/0000/rootfs.ext4"),
        "{err}"
    );
}

#[test]
fn missing_or_misplaced_members() {
    let work = Work::new();
    let path = rootfs(&work, "a.mender", "gzip");
    type Keep = fn(&str) -> bool;
    let cases: [(Keep, &str); 3] = [
        (
            |name| !name.starts_with("data/"),
            "the artifact lists data/0000/rootfs.ext4, but does not contain it",
        ),
        (
            |name| name != "manifest",
            "invalid artifact structure: expected manifest after version, found header.tar.gz",
        ),
        (
            |name| !name.starts_with("header"),
            "invalid artifact structure: expected header.tar[.gz|.xz|.zst], found data/0000.tar.gz",
        ),
    ];
    for (keep, message) in cases {
        let edited = work.path("edited.mender");
        rewrite(&path, &edited, |name, bytes| {
            keep(name).then(|| (name.to_string(), bytes))
        });
        let err = read_file(&edited, &ReadOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
}

/// Rebuilds `header.tar` of an uncompressed artifact with a different `header-info`, and
/// updates the manifest so only the header's contents are wrong.
fn with_header_info(work: &Work, header_info: &str) -> std::path::PathBuf {
    use sha2::{Digest, Sha256};
    use std::io::Read;

    let path = rootfs(work, "plain.mender", "none");
    let mut old_header = Vec::new();
    rewrite(&path, &work.path("scratch"), |name, bytes| {
        if name == "header.tar" {
            old_header = bytes;
        }
        None
    });
    let mut inner = tar::Archive::new(old_header.as_slice());
    let mut builder = tar::Builder::new(Vec::new());
    for entry in inner.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name == "header-info" {
            bytes = header_info.as_bytes().to_vec();
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, &name, bytes.as_slice())
            .unwrap();
    }
    let new_header = builder.into_inner().unwrap();
    let sum = hex::encode(Sha256::digest(&new_header));
    let out = work.path("edited.mender");
    rewrite(&path, &out, |name, bytes| match name {
        "manifest" => {
            let text = String::from_utf8(bytes).unwrap();
            let text: String = text
                .lines()
                .map(|l| match l.split_once("  ") {
                    Some((_, "header.tar")) => format!("{sum}  header.tar\n"),
                    _ => format!("{l}\n"),
                })
                .collect();
            Some((name.into(), text.into_bytes()))
        }
        "header.tar" => Some((name.into(), new_header.clone())),
        _ => Some((name.into(), bytes)),
    });
    out
}

#[test]
fn malformed_header_info() {
    let work = Work::new();
    let good = concat!(
        r#"{"payloads":[{"type":"rootfs-image"}],"#,
        r#""artifact_provides":{"artifact_name":"r"},"#,
        r#""artifact_depends":{"device_type":["dev"]}}"#
    );
    // The rebuilt header is itself valid, so the edits below are the only faults.
    read_file(&with_header_info(&work, good), &ReadOptions::default()).unwrap();

    let cases = [
        (
            r#"{"payloads":"#,
            "malformed header-info: EOF while parsing a value at line 1 column 12",
        ),
        (
            r#"{"payloads":[{"type":"rootfs-image"}],"artifact_provides":{"artifact_name":"r"}}"#,
            "malformed header-info: no compatible device types",
        ),
        (
            r#"{"payloads":[{"type":"rootfs-image"}],"artifact_depends":{"device_type":["dev"]}}"#,
            "malformed header-info: the artifact name is missing or empty",
        ),
        (
            concat!(
                r#"{"payloads":[{"type":"a"},{"type":"b"}],"#,
                r#""artifact_provides":{"artifact_name":"r"},"#,
                r#""artifact_depends":{"device_type":["dev"]}}"#
            ),
            "invalid artifact structure: header.tar has no headers/0001/type-info",
        ),
    ];
    for (header_info, message) in cases {
        let path = with_header_info(&work, header_info);
        let err = read_file(&path, &ReadOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
}

/// A payload file named to climb out of its directory: mender-artifact never writes one,
/// and a device's update module would see it as written.
#[test]
fn payload_file_names_that_leave_their_directory() {
    use std::io::Read;
    let work = Work::new();
    let path = rootfs(&work, "plain.mender", "none");
    for evil in ["../escape.ext4", "/etc/rootfs.ext4", "a/../../b"] {
        let edited = work.path("edited.mender");
        rewrite(&path, &edited, |name, bytes| match name {
            "data/0000.tar" => {
                let mut inner = tar::Archive::new(bytes.as_slice());
                let mut builder = tar::Builder::new(Vec::new());
                for entry in inner.entries().unwrap() {
                    let mut entry = entry.unwrap();
                    let mut content = Vec::new();
                    entry.read_to_end(&mut content).unwrap();
                    let mut header = tar::Header::new_gnu();
                    header.set_size(content.len() as u64);
                    header.set_mode(0o644);
                    header.set_mtime(1_700_000_000);
                    // `append_data` refuses `..`; write the name into the header by hand.
                    let raw = header.as_old_mut();
                    raw.name = [0; 100];
                    raw.name[..evil.len()].copy_from_slice(evil.as_bytes());
                    header.set_cksum();
                    builder.append(&header, content.as_slice()).unwrap();
                }
                Some((name.into(), builder.into_inner().unwrap()))
            }
            "manifest" => {
                let text = String::from_utf8(bytes).unwrap();
                let text = text.replace("data/0000/rootfs.ext4", &format!("data/0000/{evil}"));
                Some((name.into(), text.into_bytes()))
            }
            _ => Some((name.into(), bytes)),
        });
        let err = read_file(&edited, &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&err, FormatError::Structure(message) if message.contains(evil)),
            "{evil}: {err}"
        );
    }
}
