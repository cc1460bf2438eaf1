//! The HTTP server under the router: hyper's HTTP/1 connection with the limits `axum::serve`
//! leaves out, so a client cannot hold the intake's connections or memory by being slow.
//!
//! - **Connections**: at most `intake.max_connections` at once per process. One over it is
//!   answered 503 (code 14, with `Retry-After`) and closed, rather than left waiting unaccepted,
//!   so a well-behaved client learns why at once; those answers are bounded too.
//! - **Header read**: a request's head (request line and headers) must arrive within
//!   `intake.header_read_timeout_secs` of its first byte, however slowly it trickles in.
//! - **Idle**: a connection that sends nothing for `intake.idle_timeout_secs` while no request
//!   is being served (a fresh connection, or a kept-alive one between requests) is closed.
//! - **Body read**: enforced where a body is read (`guard::read_body`), with the size limit.
//!
//! The header and idle deadlines live in one wrapper around the socket ([`Deadlines`]) that
//! the service tells when a request starts and ends. hyper's own `header_read_timeout` is not
//! used: it also runs between kept-alive requests, so it would close idle connections after the
//! header deadline, sooner than a reverse proxy keeping a pool of them expects.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::shutdown::Shutdown;

/// hyper's read buffer per connection, which bounds a request head: comfortably above
/// `intake.max_header_bytes` (so requests over that limit still reach the guard and get a
/// contract body), far below hyper's default of about 400 KiB per connection.
pub const HYPER_MAX_BUF: usize = 64 * 1024;
/// hyper's own header count limit, above `guard::MAX_HEADERS` for the same reason.
pub const HYPER_MAX_HEADERS: usize = 200;
/// Refusals of connections over the limit being written at once; beyond it, a connection over
/// the limit is closed without an answer (a flood gets no work out of us).
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long a closing connection is given to read its last answer (a 503 over the connection
/// limit, a 413 whose body it is still sending) before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Most bytes read and dropped while lingering; a client still sending after that is reset.
const LINGER_BYTES: usize = 256 * 1024;

/// The connection limits, from `[intake]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl ServerLimits {
    pub fn from_settings(intake: &crate::config::IntakeSettings) -> Self {
        Self {
            max_connections: intake.max_connections.max(1),
            header_read_timeout: Duration::from_secs(intake.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(intake.idle_timeout_secs),
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then stops accepting, lets every open
/// connection finish the request it is serving (hyper's graceful shutdown) and returns once all
/// are closed. The caller bounds how long that may take.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(HYPER_MAX_BUF)
        .max_headers(HYPER_MAX_HEADERS)
        // Our deadlines replace it; see the module documentation.
        .header_read_timeout(None);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // nothing to answer; pause briefly so a full fd table is not spun on.
                    tracing::debug!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.triggered() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            crate::metrics::connection_refused();
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(http, stream, router, limits, shutdown).await;
            drop(slot);
        });
    }
    // Every slot back means every connection closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    router: Router,
    limits: ServerLimits,
    shutdown: Shutdown,
) {
    let phase = Arc::new(Mutex::new(Phase::Idle(Instant::now())));
    let io = TokioIo::new(Deadlines::new(stream, limits, phase.clone()));
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let serving = Serving::start(&phase);
            // A Router is always ready (its `poll_ready` never waits), so it is called directly.
            let response = router.clone().call(request.map(axum::body::Body::new));
            async move {
                let response = response.await;
                drop(serving);
                response
            }
        });
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.triggered() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Timeouts, resets and malformed requests: the client's doing, not ours.
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Answers a connection over the limit with 503 and closes it. The request is drained (up to
/// [`REFUSAL_LINGER`]) after the answer, so closing does not reset the connection under a
/// client that is still sending, which would lose the answer.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::json!({
        "code": 14,
        "message": "the server is at its connection limit; retry later",
        "details": [],
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        if stream.write_all(answer.as_bytes()).await.is_ok() && stream.shutdown().await.is_ok() {
            let mut sink = [0u8; 4096];
            loop {
                match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    })
    .await;
}

/// Where a connection is between requests, shared by its socket wrapper and its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No request being served or read, since this instant.
    Idle(Instant),
    /// The first byte of a request head arrived at this instant.
    ReadingHead(Instant),
    /// A handler is running (its body, if it reads one, has its own deadline).
    Serving,
}

/// Marks a connection as serving for as long as it lives (the handler's future).
struct Serving(Arc<Mutex<Phase>>);

impl Serving {
    fn start(phase: &Arc<Mutex<Phase>>) -> Self {
        set(phase, Phase::Serving);
        Serving(phase.clone())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        set(&self.0, Phase::Idle(Instant::now()));
    }
}

fn set(phase: &Mutex<Phase>, to: Phase) {
    // A poisoned lock only means a panic elsewhere mid-update; the value is still usable.
    *phase
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
}

fn get(phase: &Mutex<Phase>) -> Phase {
    *phase
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The socket, failing its reads once the phase's deadline has passed: hyper then closes the
/// connection. Writes pass through (responses are small and bounded).
struct Deadlines {
    inner: TcpStream,
    limits: ServerLimits,
    phase: Arc<Mutex<Phase>>,
    timer: Pin<Box<Sleep>>,
    /// Bytes dropped since the write side was shut; `None` until then.
    lingered: Option<usize>,
}

impl Deadlines {
    fn new(inner: TcpStream, limits: ServerLimits, phase: Arc<Mutex<Phase>>) -> Self {
        Self {
            inner,
            limits,
            timer: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            phase,
            lingered: None,
        }
    }

    /// The instant the connection must have made progress by, in its current phase.
    fn deadline(&self, phase: Phase) -> Option<(Instant, &'static str)> {
        match phase {
            Phase::Idle(since) => Some((since + self.limits.idle_timeout, "idle")),
            Phase::ReadingHead(since) => {
                Some((since + self.limits.header_read_timeout, "header read"))
            }
            Phase::Serving => None,
        }
    }
}

impl AsyncRead for Deadlines {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let phase = get(&this.phase);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                // The first bytes of a request start its header deadline; later bytes of the
                // same head do not extend it.
                if let Phase::Idle(_) = phase {
                    set(&this.phase, Phase::ReadingHead(Instant::now()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline(phase) {
                None => Poll::Pending,
                Some((deadline, which)) => {
                    if this.timer.deadline() != deadline {
                        this.timer.as_mut().reset(deadline);
                    }
                    match this.timer.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("{which} timeout"),
                        ))),
                        Poll::Pending => Poll::Pending,
                    }
                }
            },
            other => other,
        }
    }
}

impl AsyncWrite for Deadlines {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// A lingering close: after the write side is shut, whatever the client is still sending
    /// (the body of a request refused on its headers) is read and dropped, until it closes its
    /// side, [`LINGER_BYTES`] were dropped or [`REFUSAL_LINGER`] passed. Closing a socket with
    /// unread data makes the kernel reset the connection, and a reset can reach the client
    /// before it has read our answer, which would then be lost.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.lingered.is_none() {
            if let Err(error) = ready!(Pin::new(&mut this.inner).poll_shutdown(cx)) {
                return Poll::Ready(Err(error));
            }
            this.lingered = Some(0);
            this.timer.as_mut().reset(Instant::now() + REFUSAL_LINGER);
        }
        let mut sink = [0u8; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut sink);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let dropped = this.lingered.unwrap_or(0) + buf.filled().len();
                    this.lingered = Some(dropped);
                    if dropped >= LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                // The client closed its side (or the connection failed): nothing left to lose.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match this.timer.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Ok(())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}
