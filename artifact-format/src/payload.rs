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
        if !safe_file_name(&entry.path) {
            // mender-artifact writes base names only; a name that climbs out of its
            // directory would reach a device's update module as written.
            return Err(FormatError::Structure(format!(
                "{} contains the file name {:?}, which no artifact may hold",
                ctx.member, entry.path
            )));
        }
        if !names.insert(entry.path.clone()) {
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

/// A payload file name that stays in its directory: relative, no `.` or `..` component, no
/// backslash, no control character.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.chars().any(char::is_control)
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn only_names_that_stay_in_their_directory_are_safe() {
        for name in ["rootfs.ext4", "update.sh", "dir/file", "a..b"] {
            assert!(safe_file_name(name), "{name}");
        }
        for name in [
            "",
            "../etc/passwd",
            "a/../../b",
            "/abs",
            "./x",
            "..",
            "a//b",
            "a\\b",
            "nul\0",
        ] {
            assert!(!safe_file_name(name), "{name:?}");
        }
    }
}
