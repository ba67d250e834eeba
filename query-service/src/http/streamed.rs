//! Unpaged lists (Mender's API has a few) written page by page, so that one request for a
//! deployment's hundred thousand devices holds one page in memory, not the whole list.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// Rows read per query while streaming a list.
pub const PAGE: usize = 1000;

/// A JSON array answered as it is read: `fetch(cursor)` gives the next page and the cursor
/// after it, or `None` once the list is done. A failure after the first page can no longer
/// change the status, so it cuts the body short (the client sees an incomplete response)
/// and is logged.
pub fn json_array<T, C, F, Fut>(start: C, fetch: F) -> Response
where
    T: Serialize + Send + 'static,
    C: Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<(Vec<T>, C)>, ApiError>> + Send + 'static,
{
    enum Step<C> {
        Next { cursor: C, first: bool },
        Done,
    }
    let fetch = std::sync::Arc::new(fetch);
    let chunks = futures::stream::unfold(
        Step::Next {
            cursor: start,
            first: true,
        },
        move |step| {
            let fetch = fetch.clone();
            async move {
                match step {
                    Step::Done => None,
                    Step::Next { cursor, first } => match fetch(cursor).await {
                        Ok(Some((items, next))) => {
                            let mut chunk = Vec::with_capacity(items.len() * 128 + 2);
                            for (index, item) in items.iter().enumerate() {
                                chunk.push(if first && index == 0 { b'[' } else { b',' });
                                if let Err(error) = serde_json::to_writer(&mut chunk, item) {
                                    return Some((Err(error.to_string()), Step::Done));
                                }
                            }
                            let first = first && items.is_empty();
                            Some((
                                Ok(Bytes::from(chunk)),
                                Step::Next {
                                    cursor: next,
                                    first,
                                },
                            ))
                        }
                        Ok(None) if first => Some((Ok(Bytes::from_static(b"[]")), Step::Done)),
                        Ok(None) => Some((Ok(Bytes::from_static(b"]")), Step::Done)),
                        Err(error) => {
                            tracing::error!(%error, "a streamed list failed part way");
                            Some((Err(error.to_string()), Step::Done))
                        }
                    },
                }
            }
        },
    );
    let body = Body::from_stream(futures::StreamExt::map(chunks, |chunk| {
        chunk.map_err(std::io::Error::other)
    }));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
