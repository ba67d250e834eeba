//! A forward-only tar reader.
//!
//! The `tar` crate is used for decoding header blocks, but not for iteration: its iterator
//! reads GNU long-name and PAX extension records into memory without a bound, and an upload
//! endpoint must not let a crafted header allocate gigabytes. Here extensions are capped, an
//! entry cut short by the end of input is an error instead of a short read, and nothing is
//! ever sought or read twice.

use std::io::{self, Read};

use crate::error::FormatError;

const BLOCK: u64 = 512;
/// Largest GNU long-name or PAX record accepted; real ones are a few hundred bytes.
const EXTENSION_LIMIT: u64 = 64 * 1024;

/// What kind of tar entry this is, as far as the reader cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    Other(u8),
}

/// The header of one tar entry.
#[derive(Debug, Clone)]
pub(crate) struct TarEntry {
    pub path: String,
    pub mtime: i64,
    pub kind: Kind,
}

/// Reads tar entries one after another from a non-seekable stream.
pub(crate) struct TarReader<R> {
    inner: R,
    label: String,
    remaining: u64,
    padding: u64,
    current: Option<String>,
    done: bool,
}

impl<R: Read> TarReader<R> {
    /// `label` names the archive in error messages.
    pub(crate) fn new(inner: R, label: impl Into<String>) -> Self {
        TarReader {
            inner,
            label: label.into(),
            remaining: 0,
            padding: 0,
            current: None,
            done: false,
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Where in the archive the reader is, for truncation messages.
    pub(crate) fn location(&self) -> String {
        match &self.current {
            Some(member) => member.clone(),
            None => format!("a tar header of {}", self.label),
        }
    }

    fn corrupt(&self, reason: impl ToString) -> FormatError {
        FormatError::corrupt(self.label.clone(), reason)
    }

    /// Skips whatever is left of the current entry and returns the next one; `None` at the
    /// end-of-archive marker or at a clean end of input.
    pub(crate) fn next_entry(&mut self) -> Result<Option<TarEntry>, FormatError> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.remaining.saturating_add(self.padding))?;
        self.remaining = 0;
        self.padding = 0;
        self.current = None;

        let mut long_name: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<u8>> = None;
        loop {
            let mut block = [0u8; BLOCK as usize];
            if !self.read_block(&mut block)? {
                self.done = true;
                if long_name.is_some() || pax.is_some() {
                    return Err(self.corrupt("extension header without a following entry"));
                }
                return Ok(None);
            }
            // One zero block ends the archive; whatever follows is drained by the caller.
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            self.verify_checksum(&block)?;
            let header = tar::Header::from_byte_slice(&block);
            let size = header.entry_size().map_err(|e| self.corrupt(e))?;
            let kind = header.entry_type();
            if kind.is_gnu_longname() {
                long_name = Some(self.read_extension(size)?);
                continue;
            }
            if kind.is_pax_local_extensions() {
                pax = Some(self.read_extension(size)?);
                continue;
            }
            if kind.is_pax_global_extensions() || kind.is_gnu_longlink() {
                self.skip(size.saturating_add(padding(size)))?;
                continue;
            }

            let mut path = match long_name.take() {
                Some(mut name) => {
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    name
                }
                None => header.path_bytes().into_owned(),
            };
            let mut size = size;
            let mut mtime = header.mtime().map_err(|e| self.corrupt(e))?;
            if let Some(records) = pax.take() {
                for record in tar::PaxExtensions::new(&records) {
                    let record = record.map_err(|e| self.corrupt(e))?;
                    let value = record.value().unwrap_or("");
                    match record.key() {
                        Ok("path") => path = record.value_bytes().to_vec(),
                        Ok("size") => {
                            size = value
                                .parse()
                                .map_err(|_| self.corrupt("bad PAX size record"))?;
                        }
                        Ok("mtime") => {
                            let secs = value.split('.').next().unwrap_or("");
                            mtime = secs
                                .parse()
                                .map_err(|_| self.corrupt("bad PAX mtime record"))?;
                        }
                        _ => {}
                    }
                }
            }
            let path = String::from_utf8(path)
                .map_err(|_| self.corrupt("an entry name is not valid UTF-8"))?;
            let path = path.trim_start_matches("./").to_string();
            let mtime = i64::try_from(mtime)
                .map_err(|_| self.corrupt(format!("{path} has an out-of-range mtime")))?;
            let kind = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                tar::EntryType::Directory => Kind::Directory,
                other => Kind::Other(other.as_byte()),
            };
            self.remaining = size;
            self.padding = padding(size);
            self.current = Some(path.clone());
            return Ok(Some(TarEntry { path, mtime, kind }));
        }
    }

    /// The current entry's contents; ends where the entry ends.
    pub(crate) fn data(&mut self) -> EntryData<'_, R> {
        EntryData { tar: self }
    }

    /// Reads the whole current entry into memory, refusing entries above `limit` bytes.
    pub(crate) fn read_small(&mut self, what: &str, limit: u64) -> Result<Vec<u8>, FormatError> {
        if self.remaining > limit {
            return Err(FormatError::TooLarge {
                member: what.to_string(),
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(self.remaining as usize);
        self.data()
            .read_to_end(&mut bytes)
            .map_err(|e| FormatError::corrupt(what, e))?;
        Ok(bytes)
    }

    fn read_extension(&mut self, size: u64) -> Result<Vec<u8>, FormatError> {
        if size > EXTENSION_LIMIT {
            return Err(FormatError::TooLarge {
                member: format!("a tar extension header in {}", self.label),
                limit: EXTENSION_LIMIT,
            });
        }
        let mut bytes = vec![0u8; size as usize];
        self.inner
            .read_exact(&mut bytes)
            .map_err(|e| self.corrupt(e))?;
        self.skip(padding(size))?;
        Ok(bytes)
    }

    fn read_block(&mut self, block: &mut [u8]) -> Result<bool, FormatError> {
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(self.corrupt("the input ends inside a tar header")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.corrupt(e)),
            }
        }
        Ok(true)
    }

    fn skip(&mut self, amount: u64) -> Result<(), FormatError> {
        let copied = io::copy(&mut (&mut self.inner).take(amount), &mut io::sink())
            .map_err(|e| self.corrupt(e))?;
        if copied < amount {
            return Err(self.corrupt("unexpected end of input"));
        }
        Ok(())
    }

    fn verify_checksum(&self, block: &[u8; BLOCK as usize]) -> Result<(), FormatError> {
        let header = tar::Header::from_byte_slice(block);
        let stored = header
            .cksum()
            .map_err(|_| self.corrupt("not a tar header"))?;
        let field = 148..156;
        let (mut unsigned, mut signed) = (0u32, 0i32);
        for (i, byte) in block.iter().enumerate() {
            let byte = if field.contains(&i) { b' ' } else { *byte };
            unsigned += u32::from(byte);
            signed += i32::from(byte as i8);
        }
        // Some historic writers summed signed bytes; accept either as tar(1) does.
        if stored == unsigned || i64::from(stored) == i64::from(signed) {
            Ok(())
        } else {
            Err(self.corrupt("tar header checksum mismatch"))
        }
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// Reads the current entry's bytes. Ending early is an error, never a short entry.
pub(crate) struct EntryData<'a, R> {
    tar: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tar.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.tar.remaining).unwrap_or(usize::MAX));
        let n = self.tar.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the input ends inside a tar entry",
            ));
        }
        self.tar.remaining -= n as u64;
        Ok(n)
    }
}
