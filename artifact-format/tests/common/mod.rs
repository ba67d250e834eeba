//! Shared helpers: run the real `mender-artifact` and `openssl`, parse `mender-artifact read`,
//! and compare its view of an artifact with ours.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use artifact_format::{read_artifact, FormatError, ParsedArtifact, ReadOptions};

mod mender_read;
pub use mender_read::*;

/// A scratch directory where artifacts and their inputs are made.
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn new() -> Work {
        // Missing tools must fail the tests: skipping would hide that nothing was checked.
        let version = Command::new("mender-artifact").arg("--version").output();
        assert!(
            version.map(|o| o.status.success()).unwrap_or(false),
            "the mender-artifact binary is required by these tests but is not runnable"
        );
        Work {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Runs `mender-artifact write <args> -o <out>` (args split on whitespace) and returns
    /// the artifact's path.
    pub fn write(&self, out: &str, args: &str) -> PathBuf {
        let output = self.path(out);
        let mut all: Vec<&str> = vec!["write"];
        all.extend(args.split_whitespace());
        all.extend_from_slice(&["-o", output.to_str().unwrap()]);
        run_ok(
            Command::new("mender-artifact")
                .current_dir(self.dir.path())
                .args(&all),
        );
        output
    }

    /// Runs `openssl <args>` in the work directory.
    pub fn openssl(&self, args: &[&str]) {
        run_ok(
            Command::new("openssl")
                .current_dir(self.dir.path())
                .args(args),
        );
    }

    /// Makes an RSA-3072 key pair; returns (private PEM path, SPKI public PEM, PKCS#1 public PEM).
    pub fn rsa_key(&self, stem: &str) -> (PathBuf, Vec<u8>, Vec<u8>) {
        let private = format!("{stem}.pem");
        self.openssl(&["genrsa", "-traditional", "-out", &private, "3072"]);
        self.openssl(&[
            "rsa",
            "-in",
            &private,
            "-pubout",
            "-out",
            &format!("{stem}.pub"),
        ]);
        self.openssl(&[
            "rsa",
            "-in",
            &private,
            "-RSAPublicKey_out",
            "-out",
            &format!("{stem}.pkcs1.pub"),
        ]);
        (
            self.path(&private),
            std::fs::read(self.path(&format!("{stem}.pub"))).unwrap(),
            std::fs::read(self.path(&format!("{stem}.pkcs1.pub"))).unwrap(),
        )
    }

    /// Makes an EC P-256 key pair; returns (private PEM path, SPKI public PEM).
    pub fn ec_key(&self, stem: &str) -> (PathBuf, Vec<u8>) {
        self.ec_key_on(stem, "prime256v1")
    }

    /// Makes an EC key pair on `curve` (openssl's name for it).
    pub fn ec_key_on(&self, stem: &str, curve: &str) -> (PathBuf, Vec<u8>) {
        let private = format!("{stem}.pem");
        self.openssl(&[
            "ecparam", "-genkey", "-name", curve, "-noout", "-out", &private,
        ]);
        self.openssl(&[
            "ec",
            "-in",
            &private,
            "-pubout",
            "-out",
            &format!("{stem}.pub"),
        ]);
        (
            self.path(&private),
            std::fs::read(self.path(&format!("{stem}.pub"))).unwrap(),
        )
    }
}

pub fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn read_file(path: &Path, options: &ReadOptions) -> Result<ParsedArtifact, FormatError> {
    read_artifact(std::fs::File::open(path).unwrap(), options)
}

pub fn parse_ok(path: &Path) -> ParsedArtifact {
    read_file(path, &ReadOptions::default()).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Parses `path` and checks it against `mender-artifact read`; also checks `size`.
pub fn parse_and_compare(path: &Path) -> ParsedArtifact {
    let parsed = parse_ok(path);
    assert_agrees(&parsed, &mender_read(path, None));
    assert_eq!(parsed.size, std::fs::metadata(path).unwrap().len(), "size");
    parsed
}

/// Offsets of the outer tar members: (name, offset of the data, size).
pub fn members(path: &Path) -> Vec<(String, u64, u64)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            (name, e.raw_file_position(), e.size())
        })
        .collect()
}

/// Rebuilds an artifact's outer tar, letting `edit` change or drop members.
pub fn rewrite(
    from: &Path,
    to: &Path,
    mut edit: impl FnMut(&str, Vec<u8>) -> Option<(String, Vec<u8>)>,
) {
    let mut archive = tar::Archive::new(std::fs::File::open(from).unwrap());
    let mut builder = tar::Builder::new(std::fs::File::create(to).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if let Some((name, bytes)) = edit(&name, bytes) {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(entry.header().mtime().unwrap());
            builder
                .append_data(&mut header, name, bytes.as_slice())
                .unwrap();
        }
    }
    builder.finish().unwrap();
}

/// A reader that hands out 1 to 7 bytes per call, to shake out buffering assumptions.
pub struct Trickle<R> {
    pub inner: R,
    pub step: usize,
}

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = self.step.wrapping_mul(31).wrapping_add(7);
        let n = buf.len().min(1 + self.step % 7);
        self.inner.read(&mut buf[..n])
    }
}

/// The `--compression` values `mender-artifact write rootfs-image --help` lists.
pub fn supported_compressions() -> Vec<String> {
    let help = run_ok(Command::new("mender-artifact").args(["write", "rootfs-image", "--help"]));
    let line = help
        .lines()
        .find(|l| l.contains("--compression"))
        .expect("--compression in help");
    let list = line
        .split("supports:")
        .nth(1)
        .expect("compression list in help");
    list.trim()
        .trim_end_matches('.')
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}
