//! `server/openapi.yaml` against the router, both ways: every route the source declares is
//! documented with the service that serves it, every documented operation is declared, and
//! the running server hands each documented operation to a handler rather than to its 404
//! and 405 fallbacks.
//!
//! The routes are read from the source rather than from the built router, which axum does
//! not list: each `.route(<path>, <method router>)` call, its path resolved from string
//! literals, `format!` and `&str` constants. Route forms the reader does not understand
//! (`nest`, `route_service`, `any`, ...) fail the test, so that it is extended rather than
//! silently blind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::support::TestServer;
use reqwest::Method;
use serde_norway::Value as Yaml;

/// Crates whose routes the all-in-one server serves, with the service each stands for in the
/// document's `x-service`.
const ROUTE_SOURCES: [(&str, &str); 4] = [
    ("command-service/src", "command-service"),
    ("query-service/src", "query-service"),
    ("server/src", "all-in-one only"),
    ("http-edge/src", "http-edge"),
];

/// Crates whose `&str` constants a route path may name (`blob_store::DOWNLOAD_PATH`).
const CONSTANT_SOURCES: [&str; 8] = [
    "events/src",
    "event-log/src",
    "http-edge/src",
    "artifact-format/src",
    "blob-store/src",
    "command-service/src",
    "query-service/src",
    "server/src",
];

const HTTP_METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// What fills a path parameter when the document's operations are sent to the server.
const PLACEHOLDER: &str = "00000000-0000-4000-8000-000000000000";

/// The fallbacks' bodies (http-edge/src/error.rs): a route answering 404 says it otherwise or
/// is told apart by probing its path.
const FALLBACK_NOT_FOUND: &str = "Resource not found";
const FALLBACK_METHOD: &str = "Method not allowed";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
    found.sort();
}

// ---------------------------------------------------------------------------------------------
// Reading Rust source: just enough of the lexical grammar to find route calls and constants.

/// The source with comments blanked out (string and char literals kept), so that a route
/// named in a comment or doc comment is not taken for one.
fn without_comments(source: &str) -> Vec<char> {
    let text: Vec<char> = source.chars().collect();
    let mut kept = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with(&['/', '/']) {
            while i < text.len() && text[i] != '\n' {
                kept.push(' ');
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            let mut depth = 0;
            while i < text.len() {
                if text[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    kept.extend([' ', ' ']);
                    i += 2;
                } else if text[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    kept.extend([' ', ' ']);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    kept.push(if text[i] == '\n' { '\n' } else { ' ' });
                    i += 1;
                }
            }
        } else if let Some(end) = literal_end(&text, i) {
            kept.extend_from_slice(&text[i..end]);
            i = end;
        } else {
            kept.push(text[i]);
            i += 1;
        }
    }
    kept
}

/// Where the string or char literal starting at `start` ends, if one starts there.
fn literal_end(text: &[char], start: usize) -> Option<usize> {
    let at = |i: usize| text.get(i).copied();
    let identifier_before = start > 0 && is_identifier_char(text[start - 1]);
    match at(start)? {
        '"' => {
            let mut i = start + 1;
            while let Some(c) = at(i) {
                match c {
                    '\\' => i += 2,
                    '"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
            Some(text.len())
        }
        'r' | 'b' if !identifier_before => {
            // r"..", r#".."#, br"..", b".."
            let mut i = start + 1;
            if at(start) == Some('b') && at(i) == Some('r') {
                i += 1;
            } else if at(start) == Some('b') {
                return (at(i) == Some('"')).then(|| literal_end(text, i)).flatten();
            }
            let hashes = text[i..].iter().take_while(|c| **c == '#').count();
            i += hashes;
            if at(i) != Some('"') {
                return None;
            }
            i += 1;
            while i < text.len() {
                if text[i] == '"' && text[i + 1..].iter().take(hashes).all(|c| *c == '#') {
                    return Some((i + 1 + hashes).min(text.len()));
                }
                i += 1;
            }
            Some(text.len())
        }
        '\'' => {
            // A char literal ('x', '\n', '\''), not a lifetime ('a).
            if at(start + 1) == Some('\\') {
                // Past the escaped character, which may itself be a quote.
                let mut i = start + 3;
                while at(i).is_some_and(|c| c != '\'') {
                    i += 1;
                }
                Some(i + 1)
            } else if at(start + 2) == Some('\'') {
                Some(start + 3)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The value of the string literal `literal` (quotes included).
fn string_value(literal: &str) -> Option<String> {
    let literal = literal.trim();
    if let Some(raw) = literal.strip_prefix('r') {
        let hashes = raw.chars().take_while(|c| *c == '#').count();
        let body = raw.get(hashes + 1..raw.len().checked_sub(hashes + 1)?)?;
        return Some(body.to_owned());
    }
    let body = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut value = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next()? {
            'n' => value.push('\n'),
            't' => value.push('\t'),
            'r' => value.push('\r'),
            '0' => value.push('\0'),
            '\n' => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            other => value.push(other),
        }
    }
    Some(value)
}

/// The index just past the bracket matching the one at `open`.
fn matching_close(text: &[char], open: usize) -> usize {
    let mut depth = 0;
    let mut i = open;
    while i < text.len() {
        if let Some(end) = literal_end(text, i) {
            i = end;
            continue;
        }
        match text[i] {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced brackets in {}", text.iter().collect::<String>());
}

/// Splits a bracket's contents at its top-level commas, dropping a trailing empty part.
fn top_level_parts(text: &[char]) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    let mut i = 0;
    while i < text.len() {
        if let Some(end) = literal_end(text, i) {
            current.extend(&text[i..end]);
            i = end;
            continue;
        }
        match text[i] {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current).trim().to_owned());
                i += 1;
                continue;
            }
            _ => {}
        }
        current.push(text[i]);
        i += 1;
    }
    if !current.trim().is_empty() {
        parts.push(current.trim().to_owned());
    }
    parts
}

/// Every position where `needle` starts in `text`.
fn occurrences(text: &[char], needle: &str) -> Vec<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (0..text.len().saturating_sub(needle.len() - 1))
        .filter(|&i| text[i..].starts_with(&needle))
        .collect()
}

/// `&str` constants of the workspace's crates, by crate and by file.
#[derive(Default)]
struct Constants {
    /// (crate as code names it, constant) → values.
    by_crate: HashMap<(String, String), BTreeSet<String>>,
    /// (file, constant) → value.
    by_file: HashMap<(PathBuf, String), String>,
}

impl Constants {
    fn read(root: &Path) -> Self {
        let mut constants = Self::default();
        for dir in CONSTANT_SOURCES {
            let crate_name = dir.trim_end_matches("/src").replace('-', "_");
            let mut files = Vec::new();
            rust_files(&root.join(dir), &mut files);
            for file in files {
                let text = without_comments(&std::fs::read_to_string(&file).unwrap());
                for at in occurrences(&text, "const ") {
                    if at > 0 && is_identifier_char(text[at - 1]) {
                        continue;
                    }
                    let rest: String = text[at + 6..].iter().take(400).collect();
                    let Some((name, rest)) = rest.split_once(':') else {
                        continue;
                    };
                    let name = name.trim();
                    let rest = rest.trim_start();
                    let Some(rest) = rest
                        .strip_prefix("&str")
                        .or_else(|| rest.strip_prefix("&'static str"))
                    else {
                        continue;
                    };
                    let Some(value) = rest.trim_start().strip_prefix('=') else {
                        continue;
                    };
                    let value: Vec<char> = value.trim_start().chars().collect();
                    let Some(end) = literal_end(&value, 0) else {
                        continue;
                    };
                    let Some(value) = string_value(&value[..end].iter().collect::<String>()) else {
                        continue;
                    };
                    constants
                        .by_crate
                        .entry((crate_name.clone(), name.to_owned()))
                        .or_default()
                        .insert(value.clone());
                    constants
                        .by_file
                        .insert((file.clone(), name.to_owned()), value);
                }
            }
        }
        constants
    }

    /// The value of the constant `path` names in `file` of crate `crate_name`.
    fn resolve(&self, path: &str, file: &Path, crate_name: &str) -> String {
        let segments: Vec<&str> = path.split("::").map(str::trim).collect();
        let name = segments[segments.len() - 1].to_owned();
        if segments.len() == 1 {
            if let Some(value) = self.by_file.get(&(file.to_path_buf(), name.clone())) {
                return value.clone();
            }
        }
        let owner = match segments[0] {
            "crate" | "self" | "super" => crate_name.to_owned(),
            _ if segments.len() == 1 => crate_name.to_owned(),
            other => other.to_owned(),
        };
        match self.by_crate.get(&(owner.clone(), name)) {
            Some(values) if values.len() == 1 => values.iter().next().unwrap().clone(),
            found => panic!(
                "{}: cannot tell the value of `{path}` in a route path (crate {owner}: {found:?}); \
                 extend server/tests/openapi.rs",
                file.display()
            ),
        }
    }
}

/// The string a route's path expression makes: a literal, a constant or `format!`.
fn path_value(expression: &str, file: &Path, crate_name: &str, constants: &Constants) -> String {
    let expression = expression.trim().trim_start_matches('&').trim();
    let chars: Vec<char> = expression.chars().collect();
    if literal_end(&chars, 0) == Some(chars.len()) {
        return string_value(expression)
            .unwrap_or_else(|| panic!("{}: bad literal {expression}", file.display()));
    }
    if let Some(arguments) = expression.strip_prefix("format!") {
        let arguments: Vec<char> = arguments.trim().chars().collect();
        let end = matching_close(&arguments, 0);
        let parts = top_level_parts(&arguments[1..end - 1]);
        let template = string_value(&parts[0])
            .unwrap_or_else(|| panic!("{}: format! without a literal", file.display()));
        let mut positional = Vec::new();
        let mut named = HashMap::new();
        for part in &parts[1..] {
            match part.split_once('=') {
                Some((name, value))
                    if name.trim().chars().all(is_identifier_char) && !value.starts_with('=') =>
                {
                    named.insert(
                        name.trim().to_owned(),
                        path_value(value, file, crate_name, constants),
                    );
                }
                _ => positional.push(path_value(part, file, crate_name, constants)),
            }
        }
        let mut positional = positional.into_iter();
        let mut value = String::new();
        let mut template = template.chars().peekable();
        while let Some(c) = template.next() {
            match c {
                '{' if template.peek() == Some(&'{') => {
                    template.next();
                    value.push('{');
                }
                '}' if template.peek() == Some(&'}') => {
                    template.next();
                    value.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    for c in template.by_ref() {
                        if c == '}' {
                            break;
                        }
                        name.push(c);
                    }
                    let name = name.split(':').next().unwrap_or_default().trim().to_owned();
                    value.push_str(&if name.is_empty() {
                        positional.next().unwrap_or_else(|| {
                            panic!("{}: format! lacks an argument", file.display())
                        })
                    } else if let Some(named) = named.get(&name) {
                        named.clone()
                    } else {
                        constants.resolve(&name, file, crate_name)
                    });
                }
                other => value.push(other),
            }
        }
        return value;
    }
    if expression
        .chars()
        .all(|c| is_identifier_char(c) || c == ':')
    {
        return constants.resolve(expression, file, crate_name);
    }
    panic!(
        "{}: cannot read the route path `{expression}`; extend server/tests/openapi.rs",
        file.display()
    )
}

/// The HTTP methods a method router expression (`get(a).post(b)`) serves.
fn methods_of(expression: &str, file: &Path) -> Vec<String> {
    let text: Vec<char> = expression.chars().collect();
    let mut methods = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < text.len() {
        if let Some(end) = literal_end(&text, i) {
            i = end;
            continue;
        }
        match text[i] {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            c if depth == 0
                && is_identifier_char(c)
                && (i == 0 || !is_identifier_char(text[i - 1])) =>
            {
                let start = i;
                while i < text.len() && is_identifier_char(text[i]) {
                    i += 1;
                }
                let word: String = text[start..i].iter().collect();
                let called = text[i..]
                    .iter()
                    .find(|c| !c.is_whitespace())
                    .is_some_and(|c| *c == '(');
                let method = word.strip_suffix("_service").unwrap_or(&word);
                if called && HTTP_METHODS.contains(&method) {
                    methods.push(method.to_uppercase());
                } else if called && matches!(method, "any" | "on") {
                    panic!(
                        "{}: `{word}(...)` in `{expression}`: the methods cannot be read; \
                         extend server/tests/openapi.rs",
                        file.display()
                    );
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    assert!(
        !methods.is_empty(),
        "{}: no method in `{expression}`",
        file.display()
    );
    methods
}

/// axum's `{param}` and `{*rest}` (and the older `:param`, `*rest`) as OpenAPI's `{param}`.
fn openapi_path(axum_path: &str) -> String {
    axum_path
        .split('/')
        .map(|segment| {
            if let Some(name) = segment.strip_prefix(':').or(segment.strip_prefix('*')) {
                format!("{{{name}}}")
            } else {
                segment.replace("{*", "{")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A route the source declares.
#[derive(Debug, Clone)]
struct DeclaredRoute {
    /// The path as axum matches it (and as the request metrics label it).
    axum_path: String,
    services: BTreeSet<String>,
}

/// (method, axum path) of every `.route(...)` call in `source`.
fn routes_in(
    source: &str,
    file: &Path,
    crate_name: &str,
    constants: &Constants,
) -> Vec<(String, String)> {
    let text = without_comments(source);
    for unsupported in [".nest(", ".nest_service(", ".route_service("] {
        assert!(
            occurrences(&text, unsupported).is_empty(),
            "{}: `{unsupported}` is not read by server/tests/openapi.rs; extend it",
            file.display()
        );
    }
    let mut routes = Vec::new();
    for at in occurrences(&text, ".route(") {
        let open = at + ".route".len();
        let close = matching_close(&text, open);
        let parts = top_level_parts(&text[open + 1..close - 1]);
        assert_eq!(
            parts.len(),
            2,
            "{}: a route call of {} arguments: {parts:?}",
            file.display(),
            parts.len()
        );
        let axum_path = path_value(&parts[0], file, crate_name, constants);
        for method in methods_of(&parts[1], file) {
            routes.push((method, axum_path.clone()));
        }
    }
    routes
}

/// (method, OpenAPI path) → where the source declares it.
fn declared_routes() -> BTreeMap<(String, String), DeclaredRoute> {
    let root = workspace();
    let constants = Constants::read(&root);
    let mut routes: BTreeMap<(String, String), DeclaredRoute> = BTreeMap::new();
    for (dir, service) in ROUTE_SOURCES {
        let crate_name = dir.trim_end_matches("/src").replace('-', "_");
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            for (method, axum_path) in routes_in(&source, &file, &crate_name, &constants) {
                routes
                    .entry((method, openapi_path(&axum_path)))
                    .or_insert_with(|| DeclaredRoute {
                        axum_path: axum_path.clone(),
                        services: BTreeSet::new(),
                    })
                    .services
                    .insert(service.to_owned());
            }
        }
    }
    routes
}

// ---------------------------------------------------------------------------------------------
// Reading the document.

fn document() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (method, path) → the operation, for every operation of the document.
fn documented_operations(document: &Yaml) -> BTreeMap<(String, String), Yaml> {
    let paths = document["paths"]
        .as_mapping()
        .expect("the document has paths");
    let mut operations = BTreeMap::new();
    for (path, item) in paths {
        let path = path.as_str().expect("paths are strings").to_owned();
        let item = item.as_mapping().expect("a path item is a mapping");
        for (key, operation) in item {
            let key = key.as_str().expect("path item keys are strings");
            if HTTP_METHODS.contains(&key) {
                operations.insert((key.to_uppercase(), path.clone()), operation.clone());
            }
        }
    }
    operations
}

/// The services an operation's `x-service` names: one, or a list.
fn services_of(operation: &Yaml) -> BTreeSet<String> {
    match &operation["x-service"] {
        Yaml::String(service) => BTreeSet::from([service.clone()]),
        Yaml::Sequence(services) => services
            .iter()
            .filter_map(|service| service.as_str().map(str::to_owned))
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Follows a local `$ref` (`#/components/...`).
fn resolved<'a>(document: &'a Yaml, value: &'a Yaml) -> &'a Yaml {
    let Some(reference) = value["$ref"].as_str() else {
        return value;
    };
    let mut target = document;
    for segment in reference
        .strip_prefix("#/")
        .unwrap_or_else(|| panic!("only local references: {reference}"))
        .split('/')
    {
        target = &target[segment];
    }
    assert!(!target.is_null(), "{reference} names nothing");
    target
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Yaml, found: &mut Vec<String>) {
    match value {
        Yaml::Mapping(mapping) => {
            for (key, value) in mapping {
                if key.as_str() == Some("$ref") {
                    found.extend(value.as_str().map(str::to_owned));
                } else {
                    references(value, found);
                }
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_route_reader_reads_what_rustfmt_and_axum_write() {
    let file = Path::new("command-service/src/http/example.rs");
    let mut constants = Constants::default();
    constants
        .by_file
        .insert((file.to_path_buf(), "BASE".into()), "/api/x".into());
    constants.by_crate.insert(
        ("blob_store".into(), "DOWNLOAD_PATH".into()),
        BTreeSet::from(["/blobs".to_owned()]),
    );
    let source = r#"
        /// Not a route: `.route("/documented", get(h))`.
        pub fn router() -> Router<AppState> {
            Router::new()
                // .route("/commented", get(nothing))
                .route(
                    &format!("{BASE}/{{id}}"),
                    // Comments may sit inside the call.
                    put(change).delete(remove),
                )
                .route(&format!("{}/{{*key}}", blob_store::DOWNLOAD_PATH), get(serve))
                .route("/a,b", post(create).layer(DefaultBodyLimit::max(')' as usize)))
                .route(BASE, routing::get(list).patch(edit))
        }
    "#;
    let routes = routes_in(source, file, "command_service", &constants);
    let expected = [
        ("PUT", "/api/x/{id}"),
        ("DELETE", "/api/x/{id}"),
        ("GET", "/blobs/{*key}"),
        ("POST", "/a,b"),
        ("GET", "/api/x"),
        ("PATCH", "/api/x"),
    ]
    .map(|(method, path)| (method.to_owned(), path.to_owned()));
    assert_eq!(routes, expected);
    assert_eq!(openapi_path("/blobs/{*key}"), "/blobs/{key}");
    assert_eq!(openapi_path("/old/:id/*rest"), "/old/{id}/{rest}");
}

#[test]
fn the_document_lists_exactly_the_routes_the_source_declares() {
    let declared = declared_routes();
    let document = document();
    let documented = documented_operations(&document);
    assert!(
        declared.len() >= 30,
        "the source reader found only {} routes: {declared:?}",
        declared.len()
    );

    let mut problems = Vec::new();
    for ((method, path), route) in &declared {
        match documented.get(&(method.clone(), path.clone())) {
            None => problems.push(format!(
                "{method} {path} is served ({}) but not documented",
                route
                    .services
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(operation) if services_of(operation) != route.services => problems.push(format!(
                "{method} {path}: x-service says {:?}, the source declares it in {:?}",
                services_of(operation),
                route.services
            )),
            Some(_) => {}
        }
    }
    for ((method, path), operation) in &documented {
        if declared.contains_key(&(method.clone(), path.clone())) {
            continue;
        }
        // axum answers HEAD with a route's GET handler.
        let get = declared.get(&("GET".to_owned(), path.clone()));
        match get {
            Some(route) if method == "HEAD" => {
                if services_of(operation) != route.services {
                    problems.push(format!(
                        "HEAD {path}: x-service says {:?}, its GET is declared in {:?}",
                        services_of(operation),
                        route.services
                    ));
                }
            }
            _ => problems.push(format!(
                "{method} {path} is documented but no route declares it"
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "server/openapi.yaml and the router disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_document_is_well_formed() {
    let document = document();
    assert_eq!(document["openapi"].as_str(), Some("3.0.3"));
    let mut found = Vec::new();
    references(&document, &mut found);
    for reference in &found {
        let mut reference_holder = serde_norway::Mapping::new();
        reference_holder.insert("$ref".into(), reference.as_str().into());
        resolved(&document, &Yaml::Mapping(reference_holder));
    }
    let mut problems = Vec::new();
    let mut operation_ids = BTreeMap::new();
    for ((method, path), operation) in documented_operations(&document) {
        let name = format!("{method} {path}");
        // Every operation named once, in lowerCamelCase, for code generators and anchors.
        match operation["operationId"].as_str() {
            Some(id)
                if id.starts_with(|c: char| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                if let Some(other) = operation_ids.insert(id.to_owned(), name.clone()) {
                    problems.push(format!("{name}: operationId {id} is also {other}'s"));
                }
            }
            other => problems.push(format!("{name}: operationId {other:?}")),
        }
        if services_of(&operation).is_empty() {
            problems.push(format!("{name}: no x-service"));
        }
        if operation["responses"]
            .as_mapping()
            .is_none_or(|r| r.is_empty())
        {
            problems.push(format!("{name}: no responses"));
        }
        if operation["security"].is_null() && document["security"].is_null() {
            problems.push(format!("{name}: no security requirement (use [] for none)"));
        }
        let mut declared_parameters = BTreeSet::new();
        let item = &document["paths"][path.as_str()];
        for list in [&item["parameters"], &operation["parameters"]] {
            for parameter in list.as_sequence().into_iter().flatten() {
                let parameter = resolved(&document, parameter);
                if parameter["in"].as_str() == Some("path") {
                    declared_parameters.insert(parameter["name"].as_str().unwrap_or("").to_owned());
                }
            }
        }
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        if in_path != declared_parameters {
            problems.push(format!(
                "{name}: path parameters {in_path:?}, declared {declared_parameters:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One answer of the server, with the `error` of its body when it has one.
struct Answer {
    status: u16,
    error: Option<String>,
}

async fn send(server: &TestServer, method: Method, path: &str) -> Answer {
    let response = server
        .client
        .request(method.clone(), server.url(path))
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let body = if method == Method::HEAD {
        String::new()
    } else {
        response.text().await.unwrap_or_default()
    };
    let error = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned));
    Answer { status, error }
}

/// `path` with every parameter filled in.
fn filled(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                PLACEHOLDER
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_reaches_a_handler() {
    let server = TestServer::start(false).await;
    let declared = declared_routes();
    let documented = documented_operations(&document());
    // A method no route takes: on a routed path the router answers 405, elsewhere 404.
    let probe = Method::from_bytes(b"PROBE").unwrap();
    let mut problems = Vec::new();
    let mut probed: BTreeMap<String, Answer> = BTreeMap::new();
    for (method, path) in documented.keys() {
        let url = filled(path);
        let answer = send(
            &server,
            Method::from_bytes(method.as_bytes()).unwrap(),
            &url,
        )
        .await;
        println!("{method:6} {path} → {} {:?}", answer.status, answer.error);
        let fallback_404 =
            answer.status == 404 && answer.error.as_deref() == Some(FALLBACK_NOT_FOUND);
        let fallback_405 = answer.status == 405 && answer.error.as_deref() == Some(FALLBACK_METHOD);
        if fallback_405 {
            problems.push(format!(
                "{method} {path}: 405, the path does not take {method}"
            ));
        }
        if fallback_404 {
            // A handler may answer Mender's 404 too: the path is routed when another method
            // gets the router's 405.
            if !probed.contains_key(&url) {
                probed.insert(url.clone(), send(&server, probe.clone(), &url).await);
            }
            let routed = &probed[&url];
            if !(routed.status == 405 && routed.error.as_deref() == Some(FALLBACK_METHOD)) {
                problems.push(format!(
                    "{method} {path}: 404 from the fallback, the path is not routed"
                ));
            }
        }
    }

    // The request metrics name the route each request matched: every documented operation
    // must have reached the route of its own path, not a parameterised neighbour.
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served: BTreeSet<(String, String, String)> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("deployments_http_requests_total{"))
        .filter_map(|line| {
            // Route labels hold braces ({id}): the labels end at the last "} ".
            let labels = line.rsplit_once("} ")?.0;
            let label = |name: &str| {
                let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
                Some(labels[start..].split('"').next()?.to_owned())
            };
            Some((label("route")?, label("method")?, label("status")?))
        })
        .collect();
    for (method, path) in documented.keys() {
        let declared_as = declared
            .get(&(method.clone(), path.clone()))
            .or_else(|| declared.get(&("GET".to_owned(), path.clone())));
        let Some(route) = declared_as else {
            problems.push(format!("{method} {path}: no route declares it"));
            continue;
        };
        let matched = served.iter().any(|(served_route, served_method, status)| {
            *served_route == route.axum_path && served_method == method && status != "405"
        });
        if !matched {
            problems.push(format!(
                "{method} {path}: no request reached the route {} (metrics: {:?})",
                route.axum_path,
                served
                    .iter()
                    .filter(|(_, served_method, _)| served_method == method)
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "documented operations the server does not route:\n  {}",
        problems.join("\n  ")
    );
}

/// The document is served (JSON and YAML) with a reference page listing every operation,
/// without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_with_a_reference_page() {
    let server = TestServer::start(false).await;
    let document = document();
    let get = |path: &'static str| {
        let request = server.client.get(server.url(path));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            (kind, response.text().await.unwrap())
        }
    };
    let (kind, yaml) = get("/ui/api/openapi.yaml").await;
    assert_eq!(kind, "application/yaml");
    assert_eq!(
        yaml,
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml"))
            .unwrap()
    );
    let (kind, json) = get("/ui/api/openapi.json").await;
    assert_eq!(kind, "application/json");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let expected: serde_json::Value = serde_norway::from_value(document.clone()).unwrap();
    assert_eq!(json, expected);

    let (kind, page) = get("/ui/api").await;
    assert!(kind.starts_with("text/html"), "{kind}");
    let operations = documented_operations(&document);
    assert_eq!(
        page.matches("<article").count(),
        operations.len(),
        "one entry per operation"
    );
    for (method, path) in operations.keys() {
        let heading = format!(
            "<code class=\"method\">{}</code> <code>{path}</code>",
            method.to_uppercase()
        );
        assert!(page.contains(&heading), "{heading} is not on the page");
    }
}

/// The example bodies of the Deployments management API v1 reference this server was built
/// from (requests, and answers with their status), each checked against the schema this
/// document gives the same operation: every field the reference shows is documented here with
/// its type (answers may carry more), and a request the reference shows has every field the
/// document requires.
#[test]
fn the_document_agrees_with_the_reference_examples() {
    let document: serde_json::Value = serde_norway::from_value(document()).unwrap();
    let examples: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("seed_examples.json")).unwrap();
    // `{id}` and `{deployment_id}` name the same segment.
    let shape = |path: &str| -> String {
        path.split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "{}"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut problems = Vec::new();
    assert!(
        examples.len() >= 13,
        "the reference's examples are all here"
    );
    for example in &examples {
        let method = example["method"].as_str().unwrap().to_lowercase();
        let path = example["path"].as_str().unwrap();
        let which = example["example"].as_str().unwrap();
        let (_, item) = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(documented, _)| shape(documented) == shape(path))
            .unwrap_or_else(|| panic!("{path} is not documented"));
        let operation = &item[&method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let media = if which == "request" {
            json_resolved(&document, &operation["requestBody"])["content"].clone()
        } else {
            json_resolved(&document, &operation["responses"][which])["content"].clone()
        };
        let schema = &media["application/json"]["schema"];
        let at = format!("{method} {path} ({which})");
        if schema.is_null() {
            problems.push(format!("{at}: no application/json schema documented"));
            continue;
        }
        let request = which == "request";
        conforms(
            &document,
            schema,
            &example["body"],
            &at,
            request,
            &mut problems,
        );
    }
    // Where the reference's examples contradict the reference's own schema tables, the
    // tables (and Mender's servers and clients) win: its Artifact schema has `type_info`,
    // `files` and `meta_data` inside `updates[]`, while its artifact examples still show them
    // at the artifact's top level, as an older format did.
    const ERRATA: [&str; 3] = [".files: ", ".metadata: ", ".info.type_info: "];
    let (explained, problems): (Vec<_>, Vec<_>) = problems.into_iter().partition(|problem| {
        problem.contains("artifacts")
            && problem.ends_with("in the reference, not documented")
            && ERRATA.iter().any(|field| problem.contains(field))
    });
    assert!(!explained.is_empty(), "the errata above are still needed");
    assert!(
        problems.is_empty(),
        "the document and the reference's examples disagree:\n  {}",
        problems.join("\n  ")
    );
}

/// Follows a local `$ref` of a JSON-converted document.
fn json_resolved<'a>(
    document: &'a serde_json::Value,
    value: &'a serde_json::Value,
) -> &'a serde_json::Value {
    match value["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => document
            .pointer(pointer)
            .unwrap_or_else(|| panic!("unresolved $ref {pointer}")),
        None => value,
    }
}

/// Checks `value` against an OpenAPI 3.0 schema: types, required and declared properties,
/// array items, enums, `nullable`, `allOf`/`oneOf`/`anyOf`.
fn conforms(
    document: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
    check_required: bool,
    problems: &mut Vec<String>,
) {
    let schema = json_resolved(document, schema);
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            conforms(document, part, value, at, check_required, problems);
        }
        return;
    }
    if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let fits = choices.iter().any(|choice| {
            let mut found = Vec::new();
            conforms(document, choice, value, at, check_required, &mut found);
            found.is_empty()
        });
        if !fits {
            problems.push(format!(
                "{at}: {value} fits none of the documented alternatives"
            ));
        }
        return;
    }
    if value.is_null() {
        if schema["nullable"] != true && schema.as_object().is_some_and(|s| !s.is_empty()) {
            problems.push(format!("{at}: null, but not documented as nullable"));
        }
        return;
    }
    let kind = schema["type"]
        .as_str()
        .or(schema["properties"].is_object().then_some("object"));
    let fits = match kind {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !fits {
        problems.push(format!("{at}: {value} is not a {}", kind.unwrap_or("?")));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(items) = value.as_array() {
        for (index, item) in items.iter().enumerate() {
            let at = format!("{at}[{index}]");
            conforms(
                document,
                &schema["items"],
                item,
                &at,
                check_required,
                problems,
            );
        }
    }
    if let Some(object) = value.as_object() {
        let required = schema["required"].as_array().filter(|_| check_required);
        for required in required.into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !object.contains_key(name) {
                problems.push(format!(
                    "{at}: the reference's example has no `{name}`, which the document requires"
                ));
            }
        }
        let declared = schema["properties"].as_object();
        for (name, field) in object {
            let at = format!("{at}.{name}");
            match declared.and_then(|properties| properties.get(name)) {
                Some(property) => {
                    conforms(document, property, field, &at, check_required, problems)
                }
                None => match &schema["additionalProperties"] {
                    serde_json::Value::Object(_) => conforms(
                        document,
                        &schema["additionalProperties"],
                        field,
                        &at,
                        check_required,
                        problems,
                    ),
                    serde_json::Value::Bool(true) => {}
                    _ if declared.is_none() => {}
                    _ => problems.push(format!("{at}: in the reference, not documented")),
                },
            }
        }
    }
}
