//! Walks the outer tar member by member, in the order the format prescribes, and assembles
//! the result.

use std::collections::BTreeSet;
use std::io::{self, Read};

use events::artifact::{ArtifactInfo, TypeInfo, Update, UpdateFile};
use serde::Deserialize;
use serde_json::Value;

use crate::compression::Compression;
use crate::error::FormatError;
use crate::header::{read_header, Header, HeaderContext};
use crate::manifest::Checksums;
use crate::payload::{read_payload, PayloadContext};
use crate::signature;
use crate::stream::{sha256, HashingReader, Source};
use crate::tarstream::{Kind, TarEntry, TarReader};
use crate::{ParsedArtifact, ReadOptions};

const VERSION_LIMIT: u64 = 4 << 10;
const MANIFEST_LIMIT: u64 = 1 << 20;
const SIGNATURE_LIMIT: u64 = 16 << 10;

type Outer<R> = TarReader<Source<R>>;

#[derive(Deserialize)]
struct VersionFile {
    format: String,
    version: Value,
}

/// Reads the artifact's members; the caller drains the input and fills in `size`.
pub(crate) fn read<R: Read>(
    tar: &mut Outer<R>,
    options: &ReadOptions,
) -> Result<ParsedArtifact, FormatError> {
    let first = match tar.next_entry() {
        Ok(Some(entry)) => entry,
        Ok(None) if tar.get_mut().count() == 0 => return Err(FormatError::Empty),
        Ok(None) => return Err(FormatError::NotMender("the tar archive is empty".into())),
        Err(_) => {
            return Err(FormatError::NotMender(
                "the input is not a tar archive".into(),
            ))
        }
    };
    if first.path != "version" {
        return Err(FormatError::NotMender(format!(
            "its first member is {:?}, not \"version\"",
            first.path
        )));
    }
    let version_bytes = tar.read_small("version", VERSION_LIMIT)?;
    let version = parse_version(&version_bytes)?;
    let keys = &options.verification_keys;
    let mut checksums = Checksums::default();
    let mut signed = false;

    let mut entry = next_member(tar, "the header")?;
    let mut augmented = false;
    if version >= 2 {
        if entry.path != "manifest" {
            return Err(FormatError::Structure(format!(
                "expected manifest after version, found {}",
                entry.path
            )));
        }
        let manifest = tar.read_small("manifest", MANIFEST_LIMIT)?;
        checksums.add_manifest("manifest", &manifest)?;
        checksums.verify("version", &sha256(&version_bytes))?;
        entry = next_member(tar, "the header")?;
        if entry.path == "manifest.sig" {
            signed = true;
            let signature = tar.read_small("manifest.sig", SIGNATURE_LIMIT)?;
            if !keys.is_empty() {
                signature::verify(&manifest, &signature, keys)?;
            }
            entry = next_member(tar, "the header")?;
        }
        if version == 3 && entry.path == "manifest-augment" {
            let augment = tar.read_small("manifest-augment", MANIFEST_LIMIT)?;
            checksums.add_manifest("manifest-augment", &augment)?;
            augmented = true;
            entry = next_member(tar, "the header")?;
        }
    }
    // Refused before any payload byte is read.
    if !keys.is_empty() && !signed {
        return Err(FormatError::NotSigned);
    }

    let compression = expect_tar(&entry, "header")?;
    let header = read_header_member(
        tar,
        &entry.path,
        compression,
        version,
        false,
        &mut checksums,
    )?;
    // Version 1 follows the format documentation (artifact-format-v1.md) and was only checked
    // against v2 files converted to that layout: mender-artifact 3.9 cannot write v1, so it
    // has not been checked against a file an old mender-artifact wrote.
    if version == 1 {
        for (index, payload) in header.payloads.iter().enumerate() {
            for (name, sum) in &payload.checksums {
                checksums.add("header", &format!("data/{index:04}/{name}"), *sum)?;
            }
        }
    }
    let mut next = next_file(tar)?;
    let mut augment = None;
    if augmented {
        let entry = next.ok_or_else(|| {
            FormatError::Structure("manifest-augment is present but header-augment is not".into())
        })?;
        let compression = expect_tar(&entry, "header-augment")?;
        let parsed =
            read_header_member(tar, &entry.path, compression, version, true, &mut checksums)?;
        if parsed.payloads.len() > header.payloads.len() {
            return Err(FormatError::Structure(format!(
                "{} describes more payloads than the header",
                entry.path
            )));
        }
        augment = Some(parsed);
        next = next_file(tar)?;
    }

    let mut files: Vec<Vec<UpdateFile>> = vec![Vec::new(); header.payloads.len()];
    let mut index = 0;
    while let Some(entry) = next {
        let wanted = format!("data/{index:04}");
        let compression = match Compression::split_name(&entry.path)? {
            Some((stem, compression)) if stem == wanted => compression,
            _ if entry.path.starts_with("data/") => {
                return Err(FormatError::Structure(format!(
                    "found {} where {wanted}.tar* was expected",
                    entry.path
                )))
            }
            _ => {
                return Err(FormatError::Structure(format!(
                    "unexpected member {} among the payloads",
                    entry.path
                )))
            }
        };
        let payload = header.payloads.get(index).ok_or_else(|| {
            FormatError::Structure(format!(
                "{} has no payload in header-info, which lists {}",
                entry.path,
                header.payloads.len()
            ))
        })?;
        let ctx = PayloadContext {
            member: &entry.path,
            index,
            listed_files: payload.files.as_deref(),
        };
        files[index] = read_payload(tar.data(), compression, &ctx, &mut checksums)?;
        index += 1;
        next = next_file(tar)?;
    }
    for (i, payload) in header.payloads.iter().enumerate().skip(index) {
        if let Some(name) = payload.files.iter().flatten().next() {
            return Err(FormatError::MissingFile(format!("data/{i:04}/{name}")));
        }
    }
    if let Some(path) = checksums.first_unseen() {
        return Err(FormatError::MissingFile(path.to_string()));
    }
    Ok(assemble(version, signed, header, augment, files))
}

fn parse_version(bytes: &[u8]) -> Result<u32, FormatError> {
    let parsed: VersionFile = serde_json::from_slice(bytes)
        .map_err(|_| FormatError::NotMender("its version member is not Mender's JSON".into()))?;
    if parsed.format != "mender" {
        return Err(FormatError::NotMender(format!(
            "its format is {:?}, not \"mender\"",
            parsed.format
        )));
    }
    match parsed.version.as_u64() {
        Some(v @ 1..=3) => Ok(v as u32),
        Some(_) => Err(FormatError::UnsupportedVersion(parsed.version.to_string())),
        None => Err(FormatError::malformed(
            "version",
            format!("version {} is not a number", parsed.version),
        )),
    }
}

/// The next outer member that is a file; directories are skipped, anything else refused.
fn next_file<R: Read>(tar: &mut Outer<R>) -> Result<Option<TarEntry>, FormatError> {
    while let Some(entry) = tar.next_entry()? {
        match entry.kind {
            Kind::File => return Ok(Some(entry)),
            Kind::Directory => continue,
            Kind::Other(_) => {
                return Err(FormatError::Structure(format!(
                    "{} is not a regular file",
                    entry.path
                )))
            }
        }
    }
    Ok(None)
}

fn next_member<R: Read>(tar: &mut Outer<R>, wanted: &str) -> Result<TarEntry, FormatError> {
    next_file(tar)?
        .ok_or_else(|| FormatError::Structure(format!("the artifact ends before {wanted}")))
}

fn expect_tar(entry: &TarEntry, stem: &str) -> Result<Compression, FormatError> {
    match Compression::split_name(&entry.path)? {
        Some((found, compression)) if found == stem => Ok(compression),
        _ => Err(FormatError::Structure(format!(
            "expected {stem}.tar[.gz|.xz|.zst], found {}",
            entry.path
        ))),
    }
}

/// Parses a header member while hashing its raw (compressed) bytes for the manifest check.
fn read_header_member<R: Read>(
    tar: &mut Outer<R>,
    member: &str,
    compression: Compression,
    version: u32,
    augment: bool,
    checksums: &mut Checksums,
) -> Result<Header, FormatError> {
    let corrupt = |e: io::Error| FormatError::corrupt(member, e);
    let mut hashed = HashingReader::new(tar.data());
    let header = {
        let decoder = compression.decoder(&mut hashed).map_err(corrupt)?;
        let mut inner = TarReader::new(decoder, member);
        let ctx = HeaderContext {
            version,
            member,
            augment,
        };
        let header = read_header(&mut inner, &ctx)?;
        io::copy(inner.get_mut(), &mut io::sink()).map_err(corrupt)?;
        header
    };
    let sum = hashed.finish().map_err(corrupt)?;
    // v1 has no manifest; its header is not checksummed.
    if version >= 2 {
        checksums.verify(member, &sum)?;
    }
    Ok(header)
}

fn assemble(
    version: u32,
    signed: bool,
    header: Header,
    mut augment: Option<Header>,
    files: Vec<Vec<UpdateFile>>,
) -> ParsedArtifact {
    let info = header.info;
    let mut provides = info.provides;
    let mut depends = info.depends;
    let mut clears = Vec::new();
    let mut cleared = BTreeSet::new();
    let mut updates = Vec::with_capacity(header.payloads.len());
    let parts = header
        .payloads
        .into_iter()
        .zip(info.payload_types)
        .zip(files);
    for (index, ((payload, update_type), files)) in parts.enumerate() {
        let extra = augment
            .as_mut()
            .and_then(|a| a.payloads.get_mut(index))
            .map(std::mem::take)
            .unwrap_or_default();
        for type_info in [&payload.type_info, &extra.type_info].into_iter().flatten() {
            provides.extend(type_info.provides().map(|(k, v)| (k.clone(), v.clone())));
            depends.extend(type_info.depends().map(|(k, v)| (k.clone(), v.clone())));
            for clear in type_info.clears() {
                if cleared.insert(clear.clone()) {
                    clears.push(clear.clone());
                }
            }
        }
        updates.push(Update {
            type_info: TypeInfo { update_type },
            files,
            meta_data: merge_meta_data(payload.meta_data, extra.meta_data),
        });
    }
    let device_types = info.device_types;
    depends.insert(
        "device_type".to_string(),
        Value::Array(device_types.iter().cloned().map(Value::String).collect()),
    );
    ParsedArtifact {
        name: info.name.unwrap_or_default(),
        device_types_compatible: device_types,
        info: ArtifactInfo {
            format: "mender".to_string(),
            version,
        },
        signed,
        updates,
        artifact_provides: provides,
        artifact_depends: depends,
        clears_artifact_provides: clears,
        size: 0,
    }
}

/// The augment header's meta-data adds to (and overrides keys of) the original's.
fn merge_meta_data(base: Value, extra: Value) -> Value {
    match (base, extra) {
        (Value::Object(mut base), Value::Object(extra)) => {
            base.extend(extra);
            Value::Object(base)
        }
        (base, Value::Null) => base,
        (_, extra) => extra,
    }
}
