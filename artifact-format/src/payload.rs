//! One `data/NNNN.tar*` member: every file is streamed through SHA-256 and checked against
//! the checksum the artifact lists for `data/NNNN/<name>`. Nothing is buffered.

use std::collections::BTreeSet;
use std::io::{self, Read};

use chrono::DateTime;
use events::artifact::UpdateFile;

use crate::compression::Compression;
use crate::error::FormatError;
use crate::manifest::Checksums;
use crate::stream::HashWriter;
use crate::tarstream::{Kind, TarReader};

/// Which payload is being read.
pub(crate) struct PayloadContext<'a> {
    /// The outer member, e.g. `data/0000.tar.gz`.
    pub member: &'a str,
    pub index: usize,
    /// The v1/v2 `headers/NNNN/files` list, when the header had one.
    pub listed_files: Option<&'a [String]>,
}

/// Reads a payload tar to its end and returns its files.
pub(crate) fn read_payload<R: Read>(
    input: R,
    compression: Compression,
    ctx: &PayloadContext<'_>,
    checksums: &mut Checksums,
) -> Result<Vec<UpdateFile>, FormatError> {
    let corrupt = |e: io::Error| FormatError::corrupt(ctx.member, e);
    let decoder = compression.decoder(input).map_err(corrupt)?;
    let mut tar = TarReader::new(decoder, ctx.member);
    let mut files = Vec::new();
    let mut names = BTreeSet::new();
    while let Some(entry) = tar.next_entry()? {
        match entry.kind {
            Kind::File => {}
            Kind::Directory => continue,
            Kind::Other(_) => {
                return Err(FormatError::Structure(format!(
                    "{} contains {}, which is not a regular file",
                    ctx.member, entry.path
                )))
            }
        }
        let path = format!("data/{:04}/{}", ctx.index, entry.path);
        if entry.path.is_empty() || !names.insert(entry.path.clone()) {
            return Err(FormatError::Structure(format!(
                "{path} appears more than once"
            )));
        }
        if let Some(listed) = ctx.listed_files {
            if !listed.contains(&entry.path) {
                return Err(FormatError::Structure(format!(
                    "{} contains {}, which headers/{:04}/files does not list",
                    ctx.member, entry.path, ctx.index
                )));
            }
        }
        let mut hasher = HashWriter::default();
        io::copy(&mut tar.data(), &mut hasher).map_err(corrupt)?;
        let (sum, size) = hasher.finish();
        checksums.verify(&path, &sum)?;
        let date = DateTime::from_timestamp(entry.mtime, 0).ok_or_else(|| {
            FormatError::corrupt(ctx.member, format!("{} has an invalid mtime", entry.path))
        })?;
        files.push(UpdateFile {
            name: entry.path,
            checksum: hex::encode(sum),
            size,
            date,
        });
    }
    // Reading on to the end makes the decompressor check its own trailer (gzip CRC, xz check).
    io::copy(tar.get_mut(), &mut io::sink()).map_err(corrupt)?;
    if let Some(listed) = ctx.listed_files {
        if let Some(missing) = listed.iter().find(|name| !names.contains(*name)) {
            return Err(FormatError::MissingFile(format!(
                "data/{:04}/{missing}",
                ctx.index
            )));
        }
    }
    Ok(files)
}
