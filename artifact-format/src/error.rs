//! Errors of the reader. Messages end up in HTTP 400 bodies, so they name the offending
//! member and say what is wrong in an operator's words.

use std::io;

/// Why an artifact was refused.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The underlying reader failed (for an upload: the client disconnected or aborted).
    /// Carries the reader's own error untouched.
    #[error("reading the artifact failed: {0}")]
    Io(#[source] io::Error),
    /// The input held no bytes at all.
    #[error("artifact is empty")]
    Empty,
    /// The input is not a tar archive whose first member is a Mender `version`.
    #[error("not a Mender artifact: {0}")]
    NotMender(String),
    /// The input ended before the artifact was complete; names where it stopped.
    #[error("artifact is truncated (the input ends inside {0})")]
    Truncated(String),
    /// The `version` member names a format version this reader does not know.
    #[error("unsupported artifact version {0}")]
    UnsupportedVersion(String),
    /// A member's name ends in a compression suffix this reader does not know.
    #[error("unsupported compression for {0} (supported: none, .gz, .xz, .zst)")]
    UnsupportedCompression(String),
    /// A member or payload file does not hash to what the manifest says.
    #[error("checksum mismatch for {0}")]
    ChecksumMismatch(String),
    /// A member or payload file has no checksum to verify it against.
    #[error("{0} has no checksum in the manifest")]
    MissingChecksum(String),
    /// A checksum or file list names a file the artifact does not contain.
    #[error("the artifact lists {0}, but does not contain it")]
    MissingFile(String),
    /// Verification keys are configured, but the artifact carries no signature.
    #[error("artifact is not signed, but a signature is required")]
    NotSigned,
    /// The signature verifies against none of the configured keys.
    #[error("artifact signature does not verify against any configured key")]
    BadSignature,
    /// A metadata member is not what the format prescribes.
    #[error("malformed {member}: {reason}")]
    Malformed { member: String, reason: String },
    /// Members are missing, misplaced or unexpected.
    #[error("invalid artifact structure: {0}")]
    Structure(String),
    /// A member's bytes could not be decoded (broken compression or tar framing).
    #[error("corrupt data in {member}: {reason}")]
    Corrupt { member: String, reason: String },
    /// A metadata member is larger than the reader is willing to hold in memory.
    #[error("{member} is larger than the {limit}-byte limit")]
    TooLarge { member: String, limit: u64 },
}

impl FormatError {
    pub(crate) fn malformed(member: impl Into<String>, reason: impl ToString) -> Self {
        FormatError::Malformed {
            member: member.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn corrupt(member: impl Into<String>, reason: impl ToString) -> Self {
        FormatError::Corrupt {
            member: member.into(),
            reason: reason.to_string(),
        }
    }
}

/// Why a verification key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not a PEM block.
    #[error("not a PEM-encoded key: {0}")]
    NotPem(String),
    /// A private key was given where the public key belongs.
    #[error("the PEM block is a private key ({0}); configure the matching public key")]
    PrivateKey(String),
    /// A key type or curve this reader cannot verify with.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// The PEM block claims a supported type but its contents do not parse.
    #[error("invalid public key: {0}")]
    Invalid(String),
}
