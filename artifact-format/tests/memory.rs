//! Memory stays flat in the artifact's size: reading large artifacts must not raise this
//! process's peak resident set by anything near their size. Kept as the only test in its
//! binary so no other test's allocations disturb the measurement.

mod common;

use std::fs::File;
use std::io::{BufWriter, Write};

use artifact_format::{read_artifact, ReadOptions};
use common::*;

const MIB: u64 = 1 << 20;

/// Peak resident set size of this process, from Linux's /proc.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

#[test]
fn memory_is_flat_in_artifact_and_payload_size() {
    let work = Work::new();

    // 64 MiB of incompressible payload, stored uncompressed: the artifact file is as large.
    {
        let mut out = BufWriter::new(File::create(work.path("big.img")).unwrap());
        for chunk in 0..64 {
            out.write_all(&noise(MIB as usize, chunk + 100)).unwrap();
        }
        out.flush().unwrap();
    }
    let big = work.write(
        "big.mender",
        "rootfs-image -n big -t dev -f big.img --compression none",
    );
    // 512 MiB of zeros, gzip: a small file whose payload inflates far beyond any buffer.
    File::create(work.path("zeros.img"))
        .unwrap()
        .set_len(512 * MIB)
        .unwrap();
    let zeros = work.write(
        "zeros.mender",
        "rootfs-image -n zeros -t dev -f zeros.img --compression gzip",
    );

    let before = peak_rss();
    let parsed = read_artifact(File::open(&big).unwrap(), &ReadOptions::default()).unwrap();
    assert!(parsed.size > 64 * MIB);
    assert_eq!(parsed.updates[0].files[0].size, 64 * MIB);
    let parsed = read_artifact(File::open(&zeros).unwrap(), &ReadOptions::default()).unwrap();
    assert_eq!(parsed.updates[0].files[0].size, 512 * MIB);
    let growth = peak_rss().saturating_sub(before);
    assert!(
        growth < 16 * MIB,
        "peak RSS grew by {} MiB while reading",
        growth / MIB
    );
}
