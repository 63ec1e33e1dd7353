//! The local HTTP server runner, the tutorial's `flask run`: the HTTP router under `axum::serve`, with
//! graceful shutdown on SIGTERM and Ctrl-C (stop accepting, answer what is in flight, exit 0).
//!
//! One piece is ours: a reply sent before the request body was read (a 413 for an oversized
//! upload, a 415 for a wrong content type) would make hyper close the connection with the rest
//! of the body unread, and a client that writes its whole body before reading (Python's urllib)
//! then sees "Broken pipe" instead of the reply. [`DrainUnread`] reads and discards what is left,
//! up to a bound, so every client gets the JSON reply.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::EXPECT;
use axum::Router;
use bytes::Bytes;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::net::TcpListener;

use crate::http::layers::ClientAddress;

/// How long in-flight requests may take to finish once a shutdown signal arrives.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long, at most, an unread request body is drained after its reply.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Binds `host:port` and answers requests until SIGTERM or Ctrl-C.
pub async fn serve(router: Router, addr: SocketAddr, max_body_bytes: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    run(router, listener, max_body_bytes, shutdown_signal()).await
}

/// Answers requests on an already bound listener until `shutdown` completes, then lets the
/// requests in flight finish (up to [`SHUTDOWN_GRACE`]).
pub async fn run(
    router: Router,
    listener: TcpListener,
    max_body_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Drain a few times the body limit at most: enough for any client's oversized upload to be
    // written in full, not an invitation to stream gigabytes.
    let drain_bytes = max_body_bytes.saturating_mul(4);
    let router = router.layer(axum::middleware::map_request(move |request: Request| {
        std::future::ready(drain_unread(with_client_address(request), drain_bytes))
    }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    tracing::info!("shutting down: no new connections; finishing the requests in flight");
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still in flight after the grace period; exiting");
            Ok(())
        }
    }
}

/// Completes on SIGTERM (what Lambda, systemd, Docker and Kubernetes send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Notes the TCP peer as the request's client address (a reverse proxy in front of `serve` is
/// the peer then; the proxy's own log names the client).
fn with_client_address(mut request: Request) -> Request {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    if let Some(peer) = peer {
        request.extensions_mut().insert(ClientAddress(peer));
    }
    request
}

/// Wraps the body so that whatever the handler leaves unread is drained after the reply. A
/// client that sent `Expect: 100-continue` waits for our answer before sending the body, so
/// there is nothing to drain.
fn drain_unread(request: Request, max_bytes: usize) -> Request {
    if request.headers().contains_key(EXPECT) {
        return request;
    }
    request.map(|body| Body::new(DrainUnread::new(body, max_bytes)))
}

/// A request body that, when dropped unfinished, reads and discards the rest in the background
/// (up to `max_bytes` and `DRAIN_TIME`), so hyper can deliver the reply to a client that is
/// still writing.
pub struct DrainUnread {
    inner: Option<Body>,
    finished: bool,
    max_bytes: usize,
}

impl DrainUnread {
    /// Wraps a body.
    pub fn new(inner: Body, max_bytes: usize) -> DrainUnread {
        DrainUnread {
            inner: Some(inner),
            finished: false,
            max_bytes,
        }
    }
}

impl http_body::Body for DrainUnread {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.finished = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for DrainUnread {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take() else {
            return;
        };
        if self.finished || body.is_end_stream() {
            return;
        }
        let max_bytes = self.max_bytes;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drain = async {
                let mut drained = 0usize;
                while let Some(Ok(frame)) = body.frame().await {
                    drained += frame.data_ref().map_or(0, Bytes::len);
                    if drained > max_bytes {
                        break;
                    }
                }
                drained
            };
            match tokio::time::timeout(DRAIN_TIME, drain).await {
                Ok(drained) => tracing::debug!(drained, "drained an unread request body"),
                Err(_) => tracing::debug!("stopped draining a slow request body"),
            }
        });
    }
}
