//! Readers and writers that sit between the input and the parsers: one that watches the raw
//! input, and hashing adapters so payloads are checksummed while they stream past.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// Wraps the caller's reader. Inner layers (tar, decompressors) may rewrap or reword I/O
/// errors, so the first error of the caller's reader is kept here verbatim and the layers
/// above only see a stand-in; likewise, reaching the end of input is remembered so any later
/// failure can be reported as truncation rather than as whatever symptom it caused.
pub(crate) struct Source<R> {
    inner: R,
    count: u64,
    eof: bool,
    error: Option<io::Error>,
}

impl<R: Read> Source<R> {
    pub(crate) fn new(inner: R) -> Self {
        Source {
            inner,
            count: 0,
            eof: false,
            error: None,
        }
    }

    /// Bytes delivered so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Whether the input has ended.
    pub(crate) fn hit_eof(&self) -> bool {
        self.eof
    }

    /// The caller's reader error, if it failed.
    pub(crate) fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }
}

fn stand_in(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("input failed: {error}"))
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(error) = &self.error {
            return Err(stand_in(error));
        }
        loop {
            match self.inner.read(buf) {
                Ok(0) if !buf.is_empty() => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.count += n as u64;
                    return Ok(n);
                }
                // Retried here so no layer above has to get this right.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let shown = stand_in(&e);
                    self.error = Some(e);
                    return Err(shown);
                }
            }
        }
    }
}

/// Hashes the bytes read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Reads the rest of the input so the digest covers all of it, then returns the digest.
    pub(crate) fn finish(mut self) -> io::Result<[u8; 32]> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.hasher.finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A sink that only keeps the SHA-256 and length of what is written to it.
#[derive(Default)]
pub(crate) struct HashWriter {
    hasher: Sha256,
    len: u64,
}

impl HashWriter {
    /// Digest and byte count of everything written.
    pub(crate) fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.len)
    }
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// SHA-256 of a byte slice.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
