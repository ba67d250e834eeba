//! The header tar (`header.tar*` and the augment header): `header-info`, state scripts, and
//! per-payload `headers/NNNN/{type-info,meta-data,files,checksums/*}`.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use crate::error::FormatError;
use crate::manifest::parse_sum;
use crate::tarstream::{Kind, TarReader};

/// Largest single metadata file (header-info, type-info, meta-data) held in memory.
const FILE_LIMIT: u64 = 1 << 20;
/// Largest total of metadata held from one header tar, however many payloads it lists.
const HEADER_BUDGET: u64 = 8 << 20;

/// What `header-info` says about the whole artifact.
#[derive(Debug, Default)]
pub(crate) struct HeaderInfo {
    pub name: Option<String>,
    pub payload_types: Vec<Option<String>>,
    pub provides: BTreeMap<String, String>,
    pub depends: BTreeMap<String, Value>,
    pub device_types: Vec<String>,
}

/// The `type-info` fields that feed the artifact's provides/depends/clears.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TypeInfoFile {
    #[serde(default)]
    artifact_provides: Option<BTreeMap<String, String>>,
    #[serde(default)]
    artifact_depends: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    clears_artifact_provides: Option<Vec<String>>,
}

impl TypeInfoFile {
    pub(crate) fn provides(&self) -> impl Iterator<Item = (&String, &String)> {
        self.artifact_provides.iter().flatten()
    }

    pub(crate) fn depends(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.artifact_depends.iter().flatten()
    }

    pub(crate) fn clears(&self) -> impl Iterator<Item = &String> {
        self.clears_artifact_provides.iter().flatten()
    }
}

/// Everything `headers/NNNN/` holds for one payload.
#[derive(Debug, Default)]
pub(crate) struct PayloadHeader {
    pub type_info: Option<TypeInfoFile>,
    /// `Null` when the file is absent or empty.
    pub meta_data: Value,
    /// The v1/v2 `files` list, when present.
    pub files: Option<Vec<String>>,
    /// v1 per-file checksums, by file name.
    pub checksums: Vec<(String, [u8; 32])>,
}

/// A parsed header tar.
#[derive(Debug, Default)]
pub(crate) struct Header {
    pub info: HeaderInfo,
    pub payloads: Vec<PayloadHeader>,
}

#[derive(Deserialize)]
struct PayloadType {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct HeaderInfoV2 {
    updates: Vec<PayloadType>,
    device_types_compatible: Vec<String>,
    artifact_name: String,
}

#[derive(Deserialize)]
struct HeaderInfoV3 {
    payloads: Vec<PayloadType>,
    #[serde(default)]
    artifact_provides: Option<BTreeMap<String, String>>,
    #[serde(default)]
    artifact_depends: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct FilesFile {
    files: Vec<String>,
}

/// How to read one header tar.
pub(crate) struct HeaderContext<'a> {
    pub version: u32,
    /// The outer member, e.g. `header.tar.gz`.
    pub member: &'a str,
    /// The augment header: unsigned, so it may not carry scripts and need not be complete.
    pub augment: bool,
}

impl HeaderContext<'_> {
    fn name(&self, path: &str) -> String {
        if self.augment {
            format!("{path} in {}", self.member)
        } else {
            path.to_string()
        }
    }
}

/// Reads a header tar to its end.
pub(crate) fn read_header<R: Read>(
    tar: &mut TarReader<R>,
    ctx: &HeaderContext<'_>,
) -> Result<Header, FormatError> {
    let mut budget = HEADER_BUDGET;
    let first = tar
        .next_entry()?
        .ok_or_else(|| FormatError::Structure(format!("{} is empty", ctx.member)))?;
    if first.path != "header-info" {
        return Err(FormatError::Structure(format!(
            "{} must start with header-info, but starts with {}",
            ctx.member, first.path
        )));
    }
    let name = ctx.name("header-info");
    let bytes = read_metadata(tar, &name, ctx, &mut budget)?;
    let info = parse_header_info(&bytes, &name, ctx)?;
    let mut payloads: Vec<PayloadHeader> = std::iter::repeat_with(PayloadHeader::default)
        .take(info.payload_types.len())
        .collect();

    while let Some(entry) = tar.next_entry()? {
        let unexpected =
            || FormatError::Structure(format!("unexpected {} in {}", entry.path, ctx.member));
        match entry.kind {
            Kind::File => {}
            Kind::Directory => continue,
            Kind::Other(_) => return Err(unexpected()),
        }
        if entry.path.starts_with("scripts/") && !ctx.augment {
            // State scripts run on the device; the server only passes them along.
            continue;
        }
        let (index, file) = entry
            .path
            .strip_prefix("headers/")
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(unexpected)?;
        let payload = payload_index(index)
            .and_then(|i| payloads.get_mut(i))
            .ok_or_else(|| {
                FormatError::Structure(format!(
                    "{} has headers/{index}, but header-info lists {} payload(s)",
                    ctx.member,
                    info.payload_types.len()
                ))
            })?;
        let name = ctx.name(&entry.path);
        if file == "type-info" {
            let bytes = read_metadata(tar, &name, ctx, &mut budget)?;
            let parsed =
                serde_json::from_slice(&bytes).map_err(|e| FormatError::malformed(&name, e))?;
            if payload.type_info.replace(parsed).is_some() {
                return Err(FormatError::Structure(format!("{name} appears twice")));
            }
        } else if file == "meta-data" {
            let bytes = read_metadata(tar, &name, ctx, &mut budget)?;
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                payload.meta_data =
                    serde_json::from_slice(&bytes).map_err(|e| FormatError::malformed(&name, e))?;
            }
        } else if file == "files" {
            let bytes = read_metadata(tar, &name, ctx, &mut budget)?;
            let parsed: FilesFile =
                serde_json::from_slice(&bytes).map_err(|e| FormatError::malformed(&name, e))?;
            payload.files = Some(parsed.files);
        } else if let Some(file_name) = file
            .strip_prefix("checksums/")
            .and_then(|f| f.strip_suffix(".sha256sum"))
        {
            let bytes = read_metadata(tar, &name, ctx, &mut budget)?;
            let text = String::from_utf8_lossy(&bytes);
            let sum = text
                .split_whitespace()
                .next()
                .and_then(parse_sum)
                .ok_or_else(|| FormatError::malformed(&name, "not a SHA-256 hex digest"))?;
            payload.checksums.push((file_name.to_string(), sum));
        }
        // Anything else under headers/NNNN/ (e.g. v1 `signatures/`) carries nothing the
        // server uses, and is skipped by the next `next_entry`.
    }

    if !ctx.augment {
        if let Some(i) = payloads.iter().position(|p| p.type_info.is_none()) {
            return Err(FormatError::Structure(format!(
                "{} has no headers/{i:04}/type-info",
                ctx.member
            )));
        }
    }
    Ok(Header { info, payloads })
}

fn payload_index(text: &str) -> Option<usize> {
    if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

fn read_metadata<R: Read>(
    tar: &mut TarReader<R>,
    name: &str,
    ctx: &HeaderContext<'_>,
    budget: &mut u64,
) -> Result<Vec<u8>, FormatError> {
    let over_budget = *budget < FILE_LIMIT;
    let bytes = tar
        .read_small(name, FILE_LIMIT.min(*budget))
        .map_err(|e| match e {
            FormatError::TooLarge { .. } if over_budget => FormatError::TooLarge {
                member: format!("the metadata in {}", ctx.member),
                limit: HEADER_BUDGET,
            },
            e => e,
        })?;
    *budget -= bytes.len() as u64;
    Ok(bytes)
}

fn parse_header_info(
    bytes: &[u8],
    name: &str,
    ctx: &HeaderContext<'_>,
) -> Result<HeaderInfo, FormatError> {
    let bad = |reason: &str| FormatError::malformed(name, reason);
    let kinds = |payloads: Vec<PayloadType>| -> Vec<Option<String>> {
        // Bootstrap artifacts write `"type": null`; an empty string means the same.
        payloads
            .into_iter()
            .map(|p| p.kind.filter(|k| !k.is_empty()))
            .collect()
    };
    let info = if ctx.version < 3 {
        let raw: HeaderInfoV2 =
            serde_json::from_slice(bytes).map_err(|e| FormatError::malformed(name, e))?;
        HeaderInfo {
            name: Some(raw.artifact_name),
            payload_types: kinds(raw.updates),
            provides: BTreeMap::new(),
            depends: BTreeMap::new(),
            device_types: raw.device_types_compatible,
        }
    } else {
        let raw: HeaderInfoV3 =
            serde_json::from_slice(bytes).map_err(|e| FormatError::malformed(name, e))?;
        let provides = raw.artifact_provides.unwrap_or_default();
        let depends = raw.artifact_depends.unwrap_or_default();
        let device_types = match depends.get("device_type") {
            None => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("artifact_depends.device_type must list strings"))?,
            Some(_) => return Err(bad("artifact_depends.device_type must be a list")),
        };
        HeaderInfo {
            name: provides.get("artifact_name").cloned(),
            payload_types: kinds(raw.payloads),
            provides,
            depends,
            device_types,
        }
    };
    if ctx.augment {
        return Ok(info);
    }
    if info.payload_types.is_empty() {
        return Err(bad("lists no payloads"));
    }
    if info.name.as_deref().unwrap_or("").is_empty() {
        return Err(bad("the artifact name is missing or empty"));
    }
    if info.device_types.is_empty() || info.device_types.iter().any(String::is_empty) {
        return Err(bad("no compatible device types"));
    }
    Ok(info)
}
