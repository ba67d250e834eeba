//! The checksums an artifact promises: `manifest` and `manifest-augment` lines for v2/v3,
//! `headers/NNNN/checksums/*` for v1. Every listed path must be checked exactly once.

use std::collections::BTreeMap;

use crate::error::FormatError;

struct Expected {
    sum: [u8; 32],
    seen: bool,
}

/// Expected SHA-256 sums by artifact path (`version`, `header.tar.gz`, `data/0000/<file>`).
#[derive(Default)]
pub(crate) struct Checksums {
    entries: BTreeMap<String, Expected>,
}

impl Checksums {
    /// Adds the lines of a manifest: `<sha256 hex>  <path>`, as `sha256sum` prints them.
    pub(crate) fn add_manifest(&mut self, member: &str, text: &[u8]) -> Result<(), FormatError> {
        let text = std::str::from_utf8(text)
            .map_err(|_| FormatError::malformed(member, "not UTF-8 text"))?;
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason: &str| {
                FormatError::malformed(member, format!("line {}: {reason}", number + 1))
            };
            let (hex_sum, path) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected \"<sha256>  <path>\""))?;
            let path = path.trim();
            if path.is_empty() {
                return Err(bad("missing path"));
            }
            let sum = parse_sum(hex_sum).ok_or_else(|| bad("not a SHA-256 hex digest"))?;
            self.add(member, path, sum)?;
        }
        Ok(())
    }

    /// Adds one expected checksum; a path may be listed only once across all sources.
    pub(crate) fn add(
        &mut self,
        member: &str,
        path: &str,
        sum: [u8; 32],
    ) -> Result<(), FormatError> {
        if self.entries.contains_key(path) {
            return Err(FormatError::malformed(
                member,
                format!("{path} is listed more than once"),
            ));
        }
        self.entries
            .insert(path.to_string(), Expected { sum, seen: false });
        Ok(())
    }

    /// Checks `actual` against the sum listed for `path`, and marks the path as present.
    pub(crate) fn verify(&mut self, path: &str, actual: &[u8; 32]) -> Result<(), FormatError> {
        let expected = self
            .entries
            .get_mut(path)
            .ok_or_else(|| FormatError::MissingChecksum(path.to_string()))?;
        if expected.seen {
            return Err(FormatError::Structure(format!(
                "{path} appears more than once"
            )));
        }
        expected.seen = true;
        if &expected.sum != actual {
            return Err(FormatError::ChecksumMismatch(path.to_string()));
        }
        Ok(())
    }

    /// The first listed path that nothing in the artifact matched.
    pub(crate) fn first_unseen(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, expected)| !expected.seen)
            .map(|(path, _)| path.as_str())
    }
}

/// Parses a hex SHA-256 (as in manifests and v1 `.sha256sum` files).
pub(crate) fn parse_sum(text: &str) -> Option<[u8; 32]> {
    let mut sum = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut sum).ok()?;
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUM: &str = "c5a9ef40e5fd81fe4c6756a5796c6397881e18ffb81dc88e857e08838aea14aa";

    #[test]
    fn parses_and_tracks_entries() {
        let mut sums = Checksums::default();
        let text = format!("{SUM}  data/0000/rootfs.ext4\n{SUM}  version\n");
        sums.add_manifest("manifest", text.as_bytes()).unwrap();
        let sum = parse_sum(SUM).unwrap();
        sums.verify("version", &sum).unwrap();
        assert_eq!(sums.first_unseen(), Some("data/0000/rootfs.ext4"));
        assert!(matches!(
            sums.verify("data/0000/rootfs.ext4", &[0; 32]),
            Err(FormatError::ChecksumMismatch(_))
        ));
        assert!(matches!(
            sums.verify("header.tar.gz", &sum),
            Err(FormatError::MissingChecksum(_))
        ));
        assert_eq!(sums.first_unseen(), None);
    }

    #[test]
    fn rejects_garbled_lines() {
        let mut sums = Checksums::default();
        let err = sums
            .add_manifest("manifest", b"xyz  version\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed manifest: line 1: not a SHA-256 hex digest"
        );
        let dup = format!("{SUM}  version\n{SUM}  version\n");
        assert!(sums.add_manifest("manifest", dup.as_bytes()).is_err());
    }
}
