//! `/ui/api`: the API reference, rendered on the server from the OpenAPI document CI checks
//! against the router (`server/openapi.yaml`, compiled in), and the document itself at
//! `/ui/api/openapi.json` and `/ui/api/openapi.yaml`. Public, like the document: it holds no
//! data, only what every route takes and answers.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use maud::{html, Markup};
use serde_json::Value;

use crate::layout;

const DOCUMENT: &str = include_str!("../../../server/openapi.yaml");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document as JSON, parsed once.
fn document() -> &'static Value {
    static PARSED: LazyLock<Value> = LazyLock::new(|| {
        serde_norway::from_str(DOCUMENT).expect("server/openapi.yaml is checked in CI")
    });
    &PARSED
}

pub async fn json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document().to_string(),
    )
}

pub async fn yaml() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], DOCUMENT)
}

/// One operation of the document.
struct Operation<'a> {
    method: &'a str,
    path: &'a str,
    body: &'a Value,
    /// Parameters declared on the path, shared by its operations.
    shared: &'a Value,
}

impl Operation<'_> {
    fn anchor(&self) -> String {
        match self.body["operationId"].as_str() {
            Some(id) => id.to_owned(),
            None => format!("{}-{}", self.method, self.path)
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect(),
        }
    }
}

fn operations(document: &Value) -> Vec<Operation<'_>> {
    let mut found = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return found;
    };
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                found.push(Operation {
                    method,
                    path,
                    body: &item[method],
                    shared: &item["parameters"],
                });
            }
        }
    }
    found
}

/// Follows a local `$ref` (`#/components/...`) to what it names.
fn resolved<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => document.pointer(&format!("/{pointer}")).unwrap_or(value),
        None => value,
    }
}

/// What a schema is called: its component's name, or its type.
fn schema_name(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    match schema["type"].as_str() {
        Some("array") => format!("array of {}", schema_name(&schema["items"])),
        Some(kind) => kind.to_owned(),
        None => "object".to_owned(),
    }
}

/// Markdown-ish text as paragraphs of plain text (code spans and emphasis shown as written).
fn paragraphs(text: &str) -> Markup {
    html! {
        @for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
            p { (paragraph.split_whitespace().collect::<Vec<_>>().join(" ")) }
        }
    }
}

fn operation(document: &Value, operation: &Operation<'_>) -> Markup {
    let body = operation.body;
    let parameters: Vec<&Value> = operation
        .shared
        .as_array()
        .into_iter()
        .chain(body["parameters"].as_array())
        .flatten()
        .map(|parameter| resolved(document, parameter))
        .collect();
    let request = resolved(document, &body["requestBody"]);
    let responses = body["responses"].as_object();
    html! {
        article.operation id=(operation.anchor()) {
            h3 {
                code.method { (operation.method.to_uppercase()) }
                " "
                code { (operation.path) }
            }
            @if let Some(summary) = body["summary"].as_str() {
                p.summary { strong { (summary) } }
            }
            @if let Some(description) = body["description"].as_str() {
                (paragraphs(description))
            }
            @if !parameters.is_empty() {
                table {
                    thead { tr { th { "Parameter" } th { "In" } th { "Required" } th { "Type" } th { "Meaning" } } }
                    tbody {
                        @for parameter in &parameters {
                            tr {
                                td { code { (parameter["name"].as_str().unwrap_or("")) } }
                                td { (parameter["in"].as_str().unwrap_or("")) }
                                td { @if parameter["required"].as_bool() == Some(true) { "yes" } @else { "no" } }
                                td { (schema_name(&parameter["schema"])) }
                                td { (parameter["description"].as_str().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            @if let Some(content) = request["content"].as_object() {
                p {
                    "Request body"
                    @if request["required"].as_bool() == Some(true) { " (required)" }
                    ": "
                    @for (index, (media, value)) in content.iter().enumerate() {
                        @if index > 0 { ", " }
                        code { (media) } " " (schema_name(&value["schema"]))
                    }
                }
            }
            @if let Some(responses) = responses {
                ul.responses {
                    @for (status, response) in responses {
                        li {
                            code { (status) } " "
                            (resolved(document, response)["description"].as_str().unwrap_or(""))
                        }
                    }
                }
            }
        }
    }
}

pub async fn show() -> Html<String> {
    let document = document();
    let info = &document["info"];
    let all = operations(document);
    let tags: Vec<(&str, &str)> = document["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| {
            Some((
                tag["name"].as_str()?,
                tag["description"].as_str().unwrap_or(""),
            ))
        })
        .collect();
    let tagged = |name: &str| -> Vec<&Operation<'_>> {
        all.iter()
            .filter(|op| {
                op.body["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(name)))
            })
            .collect()
    };
    let body = html! {
        p {
            "Version " (info["version"].as_str().unwrap_or("")) ", " (all.len()) " operations. "
            "The document: " a href="/ui/api/openapi.json" { "openapi.json" } ", "
            a href="/ui/api/openapi.yaml" { "openapi.yaml" } " (OpenAPI "
            (document["openapi"].as_str().unwrap_or("")) ")."
        }
        @if let Some(description) = info["description"].as_str() {
            (paragraphs(description))
        }
        nav.contents {
            ul {
                @for (name, description) in &tags {
                    li { a href=(format!("#tag-{name}")) { (name) } " — " (description) }
                }
            }
        }
        @for (name, description) in &tags {
            section id=(format!("tag-{name}")) {
                h2 { (name) }
                p { (description) }
                @for op in tagged(name) {
                    (operation(document, op))
                }
            }
        }
    };
    layout::public(info["title"].as_str().unwrap_or("API reference"), &body)
}
