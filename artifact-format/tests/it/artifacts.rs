//! Well-formed artifacts written by the real `mender-artifact`, read back and compared field
//! by field with `mender-artifact read` and with the inputs they were made from.

use crate::common::*;
use artifact_format::ReadOptions;
use serde_json::json;
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn rootfs_image_v3() {
    let work = Work::new();
    let image = noise(300_000, 1);
    work.file("rootfs.ext4", &image);
    let path = work.write(
        "a.mender",
        "rootfs-image -n release-1 -t raspberrypi4 -t beaglebone -f rootfs.ext4",
    );
    let parsed = parse_and_compare(&path);
    assert_eq!(parsed.name, "release-1");
    assert_eq!(parsed.info.version, 3);
    assert!(!parsed.signed);
    assert_eq!(
        parsed.device_types_compatible,
        ["raspberrypi4", "beaglebone"]
    );
    let update = &parsed.updates[0];
    assert_eq!(
        update.type_info.update_type.as_deref(),
        Some("rootfs-image")
    );
    assert_eq!(update.meta_data, serde_json::Value::Null);
    assert_eq!(update.files[0].name, "rootfs.ext4");
    assert_eq!(update.files[0].size, image.len() as u64);
    assert_eq!(update.files[0].checksum, sha256_hex(&image));
    assert_eq!(
        parsed.artifact_provides.get("rootfs-image.checksum"),
        Some(&sha256_hex(&image))
    );
    assert_eq!(
        parsed
            .artifact_provides
            .get("rootfs-image.version")
            .map(String::as_str),
        Some("release-1")
    );
    assert_eq!(
        parsed.clears_artifact_provides,
        ["artifact_group", "rootfs_image_checksum", "rootfs-image.*"]
    );
    assert_eq!(
        parsed.artifact_depends.get("device_type"),
        Some(&json!(["raspberrypi4", "beaglebone"]))
    );
}

#[test]
fn rootfs_image_v2() {
    let work = Work::new();
    let image = noise(70_000, 2);
    work.file("rootfs.ext4", &image);
    let path = work.write(
        "a.mender",
        "rootfs-image -v 2 -n release-2 -t qemu -t q2 -f rootfs.ext4",
    );
    let parsed = parse_and_compare(&path);
    assert_eq!(parsed.name, "release-2");
    assert_eq!(parsed.info.version, 2);
    assert_eq!(parsed.device_types_compatible, ["qemu", "q2"]);
    assert!(parsed.artifact_provides.is_empty());
    assert!(parsed.clears_artifact_provides.is_empty());
    assert_eq!(
        parsed.artifact_depends,
        [("device_type".to_string(), json!(["qemu", "q2"]))].into()
    );
    assert_eq!(parsed.updates[0].files[0].checksum, sha256_hex(&image));
}

#[test]
fn module_image_with_metadata_provides_depends_and_clears() {
    let work = Work::new();
    let small = b"hello module\n".to_vec();
    let big = noise(40_000, 3);
    work.file("f1.txt", &small);
    work.file("f2.bin", &big);
    work.file("meta.json", br#"{"a":1,"nested":{"b":[1,2]},"s":"x"}"#);
    let path = work.write(
        "m.mender",
        "module-image -n mod-1 -t a -t b -t c -T my-module -f f1.txt -f f2.bin \
        -m meta.json --provides foo:bar --depends baz:qux \
        --clears-provides x.* -g grp1 -G g1 -G g2 -N prev-1",
    );
    let parsed = parse_and_compare(&path);
    let update = &parsed.updates[0];
    assert_eq!(update.type_info.update_type.as_deref(), Some("my-module"));
    assert_eq!(
        update.meta_data,
        json!({"a": 1, "nested": {"b": [1, 2]}, "s": "x"})
    );
    let names: Vec<_> = update.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["f1.txt", "f2.bin"]);
    assert_eq!(update.files[0].checksum, sha256_hex(&small));
    assert_eq!(update.files[1].size, big.len() as u64);
    let provides = &parsed.artifact_provides;
    assert_eq!(provides.get("foo").map(String::as_str), Some("bar"));
    assert_eq!(
        provides.get("artifact_group").map(String::as_str),
        Some("grp1")
    );
    assert_eq!(
        provides
            .get("rootfs-image.my-module.version")
            .map(String::as_str),
        Some("mod-1")
    );
    let depends = &parsed.artifact_depends;
    assert_eq!(depends.get("baz"), Some(&json!("qux")));
    assert_eq!(depends.get("artifact_group"), Some(&json!(["g1", "g2"])));
    assert_eq!(depends.get("artifact_name"), Some(&json!(["prev-1"])));
    assert_eq!(depends.get("device_type"), Some(&json!(["a", "b", "c"])));
    assert_eq!(
        parsed.clears_artifact_provides,
        ["x.*", "rootfs-image.my-module.*"]
    );
}

#[test]
fn every_compression_mender_artifact_supports() {
    let work = Work::new();
    let image = noise(150_000, 4);
    work.file("rootfs.ext4", &image);
    let compressions = supported_compressions();
    assert!(compressions.len() >= 3, "{compressions:?}");
    for compression in &compressions {
        for version in ["2", "3"] {
            let out = format!("{compression}-v{version}.mender");
            let path = work.write(
                &out,
                &format!(
                    "rootfs-image -v {version} -n rel -t dev -f rootfs.ext4 \
                --compression {compression}"
                ),
            );
            let parsed = parse_and_compare(&path);
            assert_eq!(
                parsed.updates[0].files[0].checksum,
                sha256_hex(&image),
                "{out}"
            );
        }
    }
}

/// mender-artifact 3.9 cannot write zstd, so a real artifact is transcoded member by member:
/// the tars inside are the ones mender-artifact wrote, only their compression changes.
#[test]
fn zstd_members_transcoded_from_a_real_artifact() {
    let work = Work::new();
    work.file("f.bin", &noise(20_000, 5));
    let plain = work.write(
        "plain.mender",
        "module-image -n z -t dev -T mod -f f.bin --compression none",
    );
    let zstd_path = work.path("zstd.mender");
    let mut header_sum = None;
    let mut manifest_original = Vec::new();
    // First pass: the new header's checksum must be in the manifest, which comes first.
    rewrite(&plain, &work.path("scratch"), |name, bytes| {
        if name == "header.tar" {
            let packed = zstd::encode_all(bytes.as_slice(), 3).unwrap();
            header_sum = Some(sha256_hex(&packed));
        }
        if name == "manifest" {
            manifest_original = bytes.clone();
        }
        None
    });
    let header_sum = header_sum.unwrap();
    rewrite(&plain, &zstd_path, |name, bytes| match name {
        "manifest" => {
            let text = String::from_utf8(bytes).unwrap();
            let text = text
                .lines()
                .map(|line| match line.split_once("  ") {
                    Some((_, "header.tar")) => format!("{header_sum}  header.tar.zst\n"),
                    _ => format!("{line}\n"),
                })
                .collect::<String>();
            Some((name.to_string(), text.into_bytes()))
        }
        "header.tar" | "data/0000.tar" => Some((
            format!("{name}.zst"),
            zstd::encode_all(bytes.as_slice(), 3).unwrap(),
        )),
        _ => Some((name.to_string(), bytes)),
    });
    assert!(!manifest_original.is_empty());
    let names: Vec<_> = members(&zstd_path).into_iter().map(|m| m.0).collect();
    assert_eq!(
        names,
        ["version", "manifest", "header.tar.zst", "data/0000.tar.zst"]
    );
    let mut original = parse_ok(&plain);
    let transcoded = parse_ok(&zstd_path);
    original.size = transcoded.size;
    assert_eq!(transcoded, original);
}

#[test]
fn bootstrap_artifact() {
    let work = Work::new();
    // mender-artifact refuses to write a v2 bootstrap artifact ("Empty Payload").
    let path = work.write(
        "boot.mender",
        "bootstrap-artifact -n boot-1 -t a -p k:v --no-progress",
    );
    let parsed = parse_and_compare(&path);
    assert_eq!(parsed.updates.len(), 1);
    assert_eq!(parsed.updates[0].type_info.update_type, None);
    assert!(parsed.updates[0].files.is_empty());
    assert_eq!(parsed.updates[0].meta_data, serde_json::Value::Null);
    assert_eq!(
        parsed.artifact_provides.get("k").map(String::as_str),
        Some("v")
    );
}

#[test]
fn state_scripts_are_accepted() {
    let work = Work::new();
    work.file("rootfs.ext4", &noise(10_000, 6));
    work.file(
        "scripts/ArtifactInstall_Enter_00",
        b"#!/bin/sh\necho enter\n",
    );
    work.file("scripts/ArtifactCommit_Leave_10", b"#!/bin/sh\n");
    let path = work.write(
        "s.mender",
        "rootfs-image -n scripted -t dev -f rootfs.ext4 \
        -s scripts/ArtifactInstall_Enter_00 -s scripts/ArtifactCommit_Leave_10",
    );
    let mut view = mender_read(&path, None);
    // mender-artifact lists the scripts in no fixed order.
    view.scripts.sort();
    assert_eq!(
        view.scripts,
        ["ArtifactCommit_Leave_10", "ArtifactInstall_Enter_00"]
    );
    let parsed = parse_and_compare(&path);
    assert_eq!(parsed.name, "scripted");
}

#[test]
fn augmented_module_image() {
    let work = Work::new();
    work.file("f1.txt", b"original\n");
    work.file("aug.txt", b"augment\n");
    work.file("meta.json", br#"{"a":1,"b":2}"#);
    work.file("aug-meta.json", br#"{"c":3}"#);
    let path = work.write(
        "aug.mender",
        "module-image -n aug-1 -t dev -T my-module -f f1.txt -m meta.json \
        --augment-type my-module --augment-file aug.txt \
        --augment-provides ap:av --augment-depends ad:dv \
        --augment-meta-data aug-meta.json",
    );
    let names: Vec<_> = members(&path).into_iter().map(|m| m.0).collect();
    assert!(
        names.contains(&"header-augment.tar.gz".to_string()),
        "{names:?}"
    );
    let parsed = parse_and_compare(&path);
    let files: Vec<_> = parsed.updates[0]
        .files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(files, ["f1.txt", "aug.txt"]);
    assert_eq!(
        parsed.artifact_provides.get("ap").map(String::as_str),
        Some("av")
    );
    assert_eq!(parsed.artifact_depends.get("ad"), Some(&json!("dv")));
}

#[test]
fn several_payload_files_and_long_names() {
    let work = Work::new();
    let long = format!("{}.bin", "n".repeat(150));
    work.file(&long, &noise(3_000, 7));
    work.file("empty.txt", b"");
    let path = work.write(
        "long.mender",
        &format!("module-image -n long -t dev -T m -f {long} -f empty.txt"),
    );
    let parsed = parse_and_compare(&path);
    assert_eq!(parsed.updates[0].files[0].name, long);
    assert_eq!(parsed.updates[0].files[1].size, 0);
}

#[test]
fn trailing_bytes_after_the_tar_are_counted() {
    let work = Work::new();
    work.file("rootfs.ext4", &noise(5_000, 8));
    let path = work.write("t.mender", "rootfs-image -n t -t dev -f rootfs.ext4");
    let mut bytes = std::fs::read(&path).unwrap();
    let clean = parse_ok(&path);
    bytes.extend(noise(3_333, 9));
    let parsed = artifact_format::read_artifact(bytes.as_slice(), &ReadOptions::default()).unwrap();
    assert_eq!(parsed.size, bytes.len() as u64);
    assert_eq!(parsed.updates, clean.updates);
}

/// Recompresses the data member of an artifact as several gzip members or xz streams, one
/// after another: valid files (`cat a.gz b.gz`, parallel compressors), which must be read
/// whole.
#[test]
fn payloads_of_several_gzip_members_or_xz_streams() {
    use std::io::{Read, Write};
    let work = Work::new();
    let image = noise(300_000, 9);
    work.file("rootfs.ext4", &image);
    for (compression, member) in [("gzip", "data/0000.tar.gz"), ("lzma", "data/0000.tar.xz")] {
        let path = work.write(
            &format!("{compression}.mender"),
            &format!("rootfs-image -n multi -t pi -f rootfs.ext4 --compression {compression}"),
        );
        let split = work.path(&format!("{compression}-split.mender"));
        let mut rewritten = false;
        rewrite(&path, &split, |name, bytes| {
            if name != member {
                return Some((name.to_string(), bytes));
            }
            let mut tar = Vec::new();
            if compression == "gzip" {
                flate2::read::GzDecoder::new(bytes.as_slice())
                    .read_to_end(&mut tar)
                    .unwrap();
            } else {
                liblzma::read::XzDecoder::new(bytes.as_slice())
                    .read_to_end(&mut tar)
                    .unwrap();
            }
            let mut joined = Vec::new();
            for part in tar.chunks(tar.len() / 3 + 1) {
                if compression == "gzip" {
                    let mut encoder =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    encoder.write_all(part).unwrap();
                    joined.extend(encoder.finish().unwrap());
                } else {
                    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
                    encoder.write_all(part).unwrap();
                    joined.extend(encoder.finish().unwrap());
                }
            }
            rewritten = true;
            Some((name.to_string(), joined))
        });
        assert!(rewritten, "no {member} in the {compression} artifact");
        let parsed = parse_ok(&split);
        assert_eq!(parsed.updates[0].files[0].checksum, sha256_hex(&image));
        assert_eq!(parsed.updates[0].files[0].size, image.len() as u64);
    }
}
