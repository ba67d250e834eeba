//! The reader as an upload sees it: bytes arriving in arbitrary small pieces, interrupted
//! reads, and a client that goes away mid-upload.

use std::fs::File;
use std::io::{self, Read};

use crate::common::*;
use artifact_format::{read_artifact, FormatError, ReadOptions, VerificationKey};

/// A varied set of real artifacts: every compression, module meta-data, augment, signature.
fn artifacts(work: &Work) -> Vec<(std::path::PathBuf, ReadOptions)> {
    work.file("rootfs.ext4", &noise(120_000, 31));
    work.file("f.txt", b"module file\n");
    work.file("aug.txt", b"augment file\n");
    work.file("meta.json", br#"{"k":[1,2,3]}"#);
    let (ec_private, ec_public) = work.ec_key("ec");
    let signed = ReadOptions {
        verification_keys: vec![VerificationKey::from_pem(&ec_public).unwrap()],
    };
    let mut out = Vec::new();
    for compression in supported_compressions() {
        let path = work.write(
            &format!("{compression}.mender"),
            &format!("rootfs-image -n r -t dev -f rootfs.ext4 --compression {compression}"),
        );
        out.push((path, ReadOptions::default()));
    }
    let module = work.write(
        "module.mender",
        &format!(
            "module-image -n m -t dev -T mod -f f.txt -f rootfs.ext4 -m meta.json \
        --augment-file aug.txt --augment-type mod --compression lzma -k {}",
            ec_private.to_str().unwrap()
        ),
    );
    out.push((module, signed));
    out
}

#[test]
fn tiny_reads_give_the_same_result() {
    let work = Work::new();
    for (path, options) in artifacts(&work) {
        let whole = read_file(&path, &options).unwrap();
        for seed in [0, 5] {
            let trickle = Trickle {
                inner: File::open(&path).unwrap(),
                step: seed,
            };
            let pieces = read_artifact(trickle, &options).unwrap();
            assert_eq!(pieces, whole, "{path:?}");
        }
    }
}

/// Fails with `Interrupted` before every successful read, as signals can make a read do.
struct Interrupting<R> {
    inner: R,
    interrupt_next: bool,
}

impl<R: Read> Read for Interrupting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt_next = !self.interrupt_next;
        if self.interrupt_next {
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.inner.read(buf)
    }
}

#[test]
fn interrupted_reads_are_retried() {
    let work = Work::new();
    for (path, options) in artifacts(&work) {
        let whole = read_file(&path, &options).unwrap();
        let reader = Interrupting {
            inner: File::open(&path).unwrap(),
            interrupt_next: false,
        };
        assert_eq!(read_artifact(reader, &options).unwrap(), whole);
    }
}

#[derive(Debug)]
struct ClientGone;

impl std::fmt::Display for ClientGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client went away")
    }
}

impl std::error::Error for ClientGone {}

/// Serves `limit` bytes, then fails the way an aborted upload does.
struct Aborting<R> {
    inner: io::Take<R>,
}

impl<R: Read> Read for Aborting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf)? {
            0 if !buf.is_empty() => {
                Err(io::Error::new(io::ErrorKind::ConnectionAborted, ClientGone))
            }
            n => Ok(n),
        }
    }
}

#[test]
fn reader_errors_are_passed_through_unchanged() {
    let work = Work::new();
    for (path, options) in artifacts(&work) {
        let len = std::fs::metadata(&path).unwrap().len();
        let offsets = members(&path);
        let header = offsets
            .iter()
            .find(|m| m.0.starts_with("header.tar"))
            .unwrap();
        let data = offsets.iter().find(|m| m.0.starts_with("data/")).unwrap();
        // Before anything, inside the header, inside a payload, and after the tar's end
        // (while the reader drains the input).
        for limit in [0, header.1 + 5, data.1 + data.2 / 2, len] {
            let reader = Aborting {
                inner: File::open(&path).unwrap().take(limit),
            };
            let err = read_artifact(reader, &options).unwrap_err();
            let FormatError::Io(inner) = err else {
                panic!("{path:?} at {limit}: expected Io, got {err}");
            };
            assert_eq!(inner.kind(), io::ErrorKind::ConnectionAborted);
            assert!(inner
                .get_ref()
                .unwrap()
                .downcast_ref::<ClientGone>()
                .is_some());
        }
    }
}

#[test]
fn the_input_is_read_to_its_end() {
    let work = Work::new();
    for (path, options) in artifacts(&work) {
        let mut file = File::open(&path).unwrap();
        let parsed = read_artifact(&mut file, &options).unwrap();
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(parsed.size, std::fs::metadata(&path).unwrap().len());
    }
}
