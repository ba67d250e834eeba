//! Compression of the inner tars (`header.tar*`, `header-augment.tar*`, `data/NNNN.tar*`),
//! chosen by the member's name suffix as mender-artifact does.

use std::io::{self, Read};

use crate::error::FormatError;

/// Cap on the xz decoder's memory. xz lets the *file* choose the dictionary size, so without
/// a cap a crafted upload could make the server allocate up to 4 GiB; `xz -9` needs 64 MiB.
const XZ_MEMORY_LIMIT: u64 = 128 << 20;

/// A compression an inner tar may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// Splits `name` into the part before `.tar` and the compression its suffix names;
    /// `None` if `name` does not contain `.tar`.
    pub(crate) fn split_name(name: &str) -> Result<Option<(&str, Compression)>, FormatError> {
        let Some(at) = name.find(".tar") else {
            return Ok(None);
        };
        let (stem, suffix) = (&name[..at], &name[at + ".tar".len()..]);
        let compression = match suffix {
            "" => Compression::None,
            ".gz" => Compression::Gzip,
            ".xz" => Compression::Xz,
            ".zst" => Compression::Zstd,
            _ => return Err(FormatError::UnsupportedCompression(name.to_string())),
        };
        Ok(Some((stem, compression)))
    }

    /// A reader yielding the decompressed bytes of `input`.
    pub(crate) fn decoder<'a, R: Read + 'a>(self, input: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            // Several gzip members, or xz streams, one after another are one valid file
            // (`cat a.gz b.gz`, parallel compressors write them); read them all.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Compression::Xz => {
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    XZ_MEMORY_LIMIT,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(input, stream))
            }
            // zstd's default window limit (128 MiB) already bounds its memory.
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_compressions() {
        let split = |n| Compression::split_name(n).unwrap();
        assert_eq!(split("header.tar"), Some(("header", Compression::None)));
        assert_eq!(split("header.tar.gz"), Some(("header", Compression::Gzip)));
        assert_eq!(
            split("data/0001.tar.xz"),
            Some(("data/0001", Compression::Xz))
        );
        assert_eq!(
            split("header-augment.tar.zst"),
            Some(("header-augment", Compression::Zstd))
        );
        assert_eq!(split("manifest"), None);
        assert!(matches!(
            Compression::split_name("header.tar.bz2"),
            Err(FormatError::UnsupportedCompression(_))
        ));
    }
}
