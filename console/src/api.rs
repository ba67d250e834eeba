//! The management API as the console sees it: every read and every write goes through the
//! same routes, tokens and tenant scoping as any other client's. In the all-in-one server the
//! routes are called in process, without a socket.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use crate::error::ConsoleError;

/// Largest JSON answer the console reads whole; pages ask for bounded pages of everything.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Where the management API is.
#[derive(Clone)]
pub struct Api {
    place: Place,
}

#[derive(Clone)]
enum Place {
    /// Served by these routes in this process (the all-in-one server).
    InProcess(Router),
    /// Behind this base URL (the split services' gateway).
    Remote {
        base: String,
        client: reqwest::Client,
    },
}

/// The caller's side of one request: whose token, from which address, under which id.
#[derive(Clone, Default)]
pub struct Caller {
    pub token: Option<String>,
    /// Request id and client address, carried so the API's logs and limits see the browser.
    pub forwarded: HeaderMap,
    pub extensions: axum::http::Extensions,
}

/// An answer with a JSON body, or none.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The API's `X-Total-Count` of a paged list.
    pub fn total(&self) -> u64 {
        self.headers
            .get("x-total-count")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    }

    /// The `error` of a refusal, for the operator to read.
    pub fn error(&self) -> String {
        self.body["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered {}", self.status))
    }
}

impl Api {
    /// The API served by `routes` in this process.
    pub fn in_process(routes: Router) -> Self {
        Self {
            place: Place::InProcess(routes),
        }
    }

    /// The API behind `base` (`http://gateway:8080`): the routes of both split services.
    pub fn remote(base: &str) -> Self {
        Self {
            place: Place::Remote {
                base: base.trim_end_matches('/').to_owned(),
                client: reqwest::Client::new(),
            },
        }
    }

    /// Sends `request` as `caller`, and answers what the API answered, body unread.
    pub async fn send(&self, caller: &Caller, mut request: Request<Body>) -> Response {
        if let Some(token) = &caller.token {
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                request.headers_mut().insert(header::AUTHORIZATION, value);
            }
        }
        for (name, value) in &caller.forwarded {
            request.headers_mut().insert(name, value.clone());
        }
        match &self.place {
            Place::InProcess(routes) => {
                request.extensions_mut().extend(caller.extensions.clone());
                let answer: Result<Response, Infallible> = routes.clone().oneshot(request).await;
                match answer {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
            Place::Remote { base, client } => remote(client, base, caller, request).await,
        }
    }

    /// Sends a request with an optional JSON body and reads the JSON answer.
    pub async fn call(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ConsoleError> {
        let mut builder = Request::builder().method(method).uri(path);
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(json).unwrap_or_default())
            }
            None => Body::empty(),
        };
        let request = builder
            .body(body)
            .map_err(|error| ConsoleError::Internal(format!("building a request: {error}")))?;
        let response = self.send(caller, request).await;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
            .await
            .map_err(|error| ConsoleError::Internal(format!("reading an answer: {error}")))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// A read that must succeed: a refusal becomes the console's error for it.
    pub async fn read<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
    ) -> Result<(T, Answer), ConsoleError> {
        let answer = self.call(caller, Method::GET, path, None).await?;
        let answer = refused_unless_ok(answer)?;
        let value = serde_json::from_value(answer.body.clone()).map_err(|error| {
            ConsoleError::Internal(format!("reading the answer of {path}: {error}"))
        })?;
        Ok((value, answer))
    }
}

/// Sends `request` to the API behind `base`, bodies streamed both ways (uploads, the live
/// feed). The browser's address goes in `X-Forwarded-For`, for the API's attempt limits when
/// it trusts this service as a proxy.
async fn remote(
    client: &reqwest::Client,
    base: &str,
    caller: &Caller,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut outgoing = client
        .request(parts.method, format!("{base}{path}"))
        .headers(parts.headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    if let Some(address) = caller.extensions.get::<http_edge::serve::ClientAddress>() {
        outgoing = outgoing.header("x-forwarded-for", address.0.to_string());
    }
    match outgoing.send().await {
        Ok(answer) => {
            let status = answer.status();
            let mut headers = answer.headers().clone();
            for hop in [header::CONNECTION, header::TRANSFER_ENCODING] {
                headers.remove(hop);
            }
            let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(error) => {
            tracing::error!(%error, base, "console: the API cannot be reached");
            let mut response = Response::new(Body::from(
                serde_json::json!({"error": "the API cannot be reached"}).to_string(),
            ));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// An answer outside 2xx as the console's error: signed out on 401, the API's message on
/// any other refusal, a server fault on 5xx.
pub fn refused_unless_ok(answer: Answer) -> Result<Answer, ConsoleError> {
    match answer.status {
        status if status.is_success() => Ok(answer),
        StatusCode::UNAUTHORIZED => Err(ConsoleError::SignedOut),
        status if status.is_server_error() => Err(ConsoleError::Upstream(status, answer.error())),
        status => Err(ConsoleError::Refused(status, answer.error())),
    }
}
