//! Reads Mender artifacts (`.mender` files, format versions 1 to 3) in one streaming pass.
//!
//! The input is read once, front to back, as an upload arrives: payload files are hashed
//! while they stream past and never buffered, and metadata members are held only up to
//! fixed limits, so memory stays flat however large the artifact is. Every checksum the
//! artifact lists is verified, and so is the manifest signature when keys are configured.

mod compression;
mod error;
mod header;
mod manifest;
mod payload;
mod reader;
mod signature;
mod stream;
mod tarstream;

use std::collections::BTreeMap;
use std::io::{self, Read};

pub use error::{FormatError, KeyError};
pub use signature::VerificationKey;

use stream::Source;
use tarstream::TarReader;

/// How to read an artifact.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// When non-empty, artifacts must be signed by one of these keys.
    pub verification_keys: Vec<VerificationKey>,
}

/// What an artifact declares, after all its checksums (and signature) were verified.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedArtifact {
    /// The artifact name (`artifact_provides.artifact_name`, or v1/v2 `artifact_name`).
    pub name: String,
    /// Device types the artifact may be installed on.
    pub device_types_compatible: Vec<String>,
    /// Format and version from the `version` member.
    pub info: events::artifact::ArtifactInfo,
    /// Whether a `manifest.sig` is present (verified only if keys were configured).
    pub signed: bool,
    /// One entry per payload, in order.
    pub updates: Vec<events::artifact::Update>,
    /// header-info provides merged with every payload's type-info provides.
    pub artifact_provides: BTreeMap<String, String>,
    /// header-info depends merged with type-info depends; always holds `device_type`.
    pub artifact_depends: BTreeMap<String, serde_json::Value>,
    /// Union of the payloads' `clears_artifact_provides`, in order of appearance.
    pub clears_artifact_provides: Vec<String>,
    /// Bytes read from the input, including anything after the end of the tar.
    pub size: u64,
}

/// Reads and verifies one artifact from `reader`, then reads the input to its end.
pub fn read_artifact<R: Read>(
    reader: R,
    options: &ReadOptions,
) -> Result<ParsedArtifact, FormatError> {
    let mut tar = TarReader::new(Source::new(reader), "the artifact");
    let result = reader::read(&mut tar, options);
    let location = tar.location();
    let source = tar.get_mut();
    if let Some(error) = source.take_error() {
        return Err(FormatError::Io(error));
    }
    let mut parsed = match result {
        Ok(parsed) => parsed,
        Err(e @ (FormatError::Empty | FormatError::NotMender(_))) => return Err(e),
        // Whatever went wrong after the input ran out is a symptom of the truncation.
        Err(_) if source.hit_eof() => return Err(FormatError::Truncated(location)),
        Err(e) => return Err(e),
    };
    // Draining keeps an upload's producer from blocking, and counts any trailing bytes.
    if let Err(e) = io::copy(source, &mut io::sink()) {
        return Err(FormatError::Io(source.take_error().unwrap_or(e)));
    }
    parsed.size = source.count();
    Ok(parsed)
}
