//! Serving connections so that no client can wear the server down: a cap on open
//! connections, a deadline for each request's headers (which also closes idle keep-alive
//! connections), a limit on how long a request body or a response may stall, and a shutdown
//! that ends live streams and gives in-flight requests a bounded grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Semaphore};
use tokio::time::Sleep;
use tower::ServiceExt;

/// How connections are served; the `http` section of every service's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Seconds a client has to send a request's headers, counted from the connection's
    /// start or the end of its previous response; an idle keep-alive connection is closed
    /// after this long too.
    pub header_read_timeout_seconds: u64,
    /// Seconds a request body may send nothing, or a response wait for a client that reads
    /// nothing, before the connection is closed.
    pub idle_timeout_seconds: u64,
    /// Connections served at once; more wait in the listen backlog until one closes. Keep it
    /// below the process's file-descriptor limit (`ulimit -n`).
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish after SIGTERM or Ctrl-C; live streams (the
    /// event feed) end at once.
    pub shutdown_grace_seconds: u64,
    /// Reverse proxies whose `X-Forwarded-For` is believed: behind one, the client's address
    /// (what rate limits count by) is the last address it forwarded for.
    pub trusted_proxies: Vec<IpAddr>,
    /// PEM file of the certificate chain to serve HTTPS with (leaf first); with `tls_key`.
    /// Unset: plain HTTP.
    pub tls_certificate: Option<std::path::PathBuf>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<std::path::PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_seconds: 30,
            idle_timeout_seconds: 60,
            max_connections: 1000,
            shutdown_grace_seconds: 10,
            trusted_proxies: Vec::new(),
            tls_certificate: None,
            tls_key: None,
        }
    }
}

/// Told to every handler (as an extension): resolves once the server is shutting down, so
/// that responses which never end by themselves (event streams) end.
#[derive(Clone)]
pub struct ShuttingDown(watch::Receiver<bool>);

impl ShuttingDown {
    /// One that never fires, for routers served some other way (tests).
    pub fn never() -> Self {
        let (sender, receiver) = watch::channel(false);
        // Kept alive for ever: a dropped sender would read as a shutdown.
        std::mem::forget(sender);
        Self(receiver)
    }

    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|shutting_down| *shutting_down).await;
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish for at most the grace period.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    settings: &HttpSettings,
    tls: Option<crate::tls::ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reloads = tls.clone().map(|tls| tokio::spawn(tls.follow_changes()));
    let (stop, stopping) = watch::channel(false);
    let router = router.layer(axum::Extension(ShuttingDown(stopping)));
    let connections = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let idle = Duration::from_secs(settings.idle_timeout_seconds.max(1));
    // HTTP/1.1 only: devices, Mender's clients and gateways speak it, and detecting HTTP/2
    // first would wait for a silent client's first bytes with no deadline at all.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(
            settings.header_read_timeout_seconds.max(1),
        ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let trusted: Arc<[IpAddr]> = settings.trusted_proxies.clone().into();
    let over_tls = tls.is_some();
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the cap, connections wait in the kernel's backlog, not in ours.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // pause instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn({
            let router = router.clone();
            let trusted = trusted.clone();
            move |request: Request<Incoming>| {
                let mut request = request.map(|body| Body::new(StallingBody::new(body, idle)));
                let client = client_of(remote.ip(), request.headers(), &trusted);
                request.extensions_mut().insert(ConnectInfo(remote));
                request.extensions_mut().insert(ClientAddress(client));
                if over_tls {
                    request.extensions_mut().insert(ServedOverTls);
                }
                router.clone().oneshot(request)
            }
        });
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let handshake_deadline = Duration::from_secs(settings.header_read_timeout_seconds.max(1));
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let connection = builder
                        .serve_connection(TokioIo::new(WriteDeadline::new(stream, idle)), service);
                    watcher.watch(connection).await
                }
                // The handshake is held to the header deadline: a client that opens a
                // connection and says nothing must not keep its slot.
                Some(tls) => {
                    match tokio::time::timeout(handshake_deadline, tls.acceptor().accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            let connection = builder.serve_connection(
                                TokioIo::new(WriteDeadline::new(stream, idle)),
                                service,
                            );
                            watcher.watch(connection).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %remote, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, %remote, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    let _ = stop.send(true);
    let grace = Duration::from_secs(settings.shutdown_grace_seconds);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = settings.shutdown_grace_seconds,
            "requests still running after the grace period; stopping anyway"
        );
    }
    Ok(())
}

/// A request body that fails once the client has sent nothing for `idle`: a stalled upload
/// must not hold its connection, its handler and its buffers for ever.
struct StallingBody {
    inner: Incoming,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl StallingBody {
    fn new(inner: Incoming, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

/// Why a stalled request body ended.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?}")]
struct BodyStalled(Duration);

impl HttpBody for StallingBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(context) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.idle;
                self.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => match self.deadline.as_mut().poll(context) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyStalled(self.idle).into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, failing a write that has waited `idle` for a client that reads
/// nothing. Reads are left alone: a quiet client is the header deadline's business, and a
/// streamed response legitimately reads nothing for hours.
struct WriteDeadline<S> {
    inner: S,
    idle: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            stalled_since: None,
        }
    }

    fn watch<R>(
        &mut self,
        context: &mut Context<'_>,
        outcome: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if outcome.is_ready() {
            self.stalled_since = None;
            return outcome;
        }
        let idle = self.idle;
        let deadline = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        match deadline.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing of the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(context, buffer)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(context, buffer);
        self.watch(context, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(context, buffers);
        self.watch(context, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(context);
        self.watch(context, outcome)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

/// Marks a request that reached this server over a TLS connection it terminated itself
/// (`http.tls_certificate`): what the console, beside a proxy's `X-Forwarded-Proto`, asks
/// before it marks a cookie `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedOverTls;

/// The address of the client a request came from: the peer, or behind a trusted proxy the
/// address that proxy forwarded for. Unspecified for a router served some other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddress>()
            .copied()
            .unwrap_or(ClientAddress(IpAddr::from([0, 0, 0, 0]))))
    }
}

/// Walks `X-Forwarded-For` from the right past the trusted proxies: the first address that
/// is not one of them is the client (anything further left, the client could have written).
fn client_of(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|address| address.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|address| !trusted.contains(address))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(client_of(stranger, &headers, &[proxy]), stranger);
        assert_eq!(
            client_of(proxy, &headers, &[proxy]),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the rightmost untrusted address, not the one the client wrote"
        );
        assert_eq!(
            client_of(proxy, &axum::http::HeaderMap::new(), &[proxy]),
            proxy
        );
    }
}
