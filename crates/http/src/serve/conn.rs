//! Connection-level defences against slow clients: a cap on connections served at once, and an
//! idle timeout on every connection.
//!
//! The cap sits in the make-service, whose `poll_ready` the server awaits after each accept: at
//! the cap the accept loop stops, so further clients wait in the kernel's listen backlog (bounded,
//! costing the process nothing) instead of each holding a task and a file descriptor. The permit
//! travels with the connection's stream and is released when the stream is dropped, however the
//! connection ends.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// Wraps the make-service: a connection is only set up once a slot is free.
pub struct LimitConnections<M> {
    inner: M,
    slots: Arc<Semaphore>,
    max: usize,
    acquiring: Option<Acquire>,
    ready: Option<OwnedSemaphorePermit>,
    /// Whether the cap was hit and not yet left, so the warning is logged once per episode
    /// rather than once per waiting client.
    saturated: bool,
}

impl<M> LimitConnections<M> {
    pub fn new(inner: M, max: usize) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            max,
            acquiring: None,
            ready: None,
            saturated: false,
        }
    }
}

impl<M, T> Service<T> for LimitConnections<M>
where
    M: Service<T>,
    M::Error: Into<BoxError>,
    M::Future: Send + 'static,
{
    type Response = Permitted<M::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        while self.ready.is_none() {
            let slots = &self.slots;
            let acquiring = self
                .acquiring
                .get_or_insert_with(|| Box::pin(Arc::clone(slots).acquire_owned()));
            match acquiring.as_mut().poll(cx) {
                Poll::Ready(Ok(permit)) => {
                    self.acquiring = None;
                    if self.saturated {
                        self.saturated = false;
                        tracing::info!(max = self.max, "below the connection limit again");
                    }
                    self.ready = Some(permit);
                }
                // The semaphore is never closed; should it be, serving cannot go on.
                Poll::Ready(Err(e)) => {
                    self.acquiring = None;
                    return Poll::Ready(Err(Box::new(e)));
                }
                Poll::Pending => {
                    if !self.saturated {
                        self.saturated = true;
                        tracing::warn!(
                            max = self.max,
                            "connection limit reached (limits.max_connections); new clients wait until a connection closes"
                        );
                    }
                    return Poll::Pending;
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, target: T) -> Self::Future {
        // The server calls poll_ready first, so a permit is waiting; taking one without waiting
        // covers a caller that did not.
        let permit = self
            .ready
            .take()
            .or_else(|| Arc::clone(&self.slots).try_acquire_owned().ok());
        let made = self.inner.call(target);
        Box::pin(async move {
            let permit = permit.ok_or("connection limit reached")?;
            let inner = made.await.map_err(Into::into)?;
            Ok(Permitted {
                inner,
                permit: Arc::new(permit),
            })
        })
    }
}

/// A connection's service with its slot; [`GuardAcceptor`] moves the slot onto the stream.
#[derive(Clone)]
pub struct Permitted<S> {
    inner: S,
    permit: Arc<OwnedSemaphorePermit>,
}

impl<S: Service<R>, R> Service<R> for Permitted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.inner.call(req)
    }
}

/// The first acceptor a TCP connection meets (before TLS): puts the slot and the idle timer on
/// the stream.
#[derive(Clone, Copy, Debug)]
pub struct GuardAcceptor {
    idle: Duration,
}

impl GuardAcceptor {
    pub fn new(idle: Duration) -> Self {
        Self { idle }
    }
}

impl<S> Accept<TcpStream, Permitted<S>> for GuardAcceptor {
    type Stream = Guarded<TcpStream>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: Permitted<S>) -> Self::Future {
        let guarded = Guarded {
            inner: stream,
            idle: self.idle,
            last: Instant::now(),
            timer: Box::pin(tokio::time::sleep(self.idle)),
            _slot: service.permit,
        };
        std::future::ready(Ok((guarded, service.inner)))
    }
}

/// A stream that fails once nothing has moved either way for `idle`, and that holds its
/// connection's slot until it is dropped.
///
/// The timer is only checked when a read or write would wait, and only re-armed when it fires,
/// so traffic costs one clock read per call and no timer updates. A request still being handled
/// never looks idle, because `limits.idle_timeout_seconds` must exceed the request timeout.
pub struct Guarded<T> {
    inner: T,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    _slot: Arc<OwnedSemaphorePermit>,
}

impl<T> Guarded<T> {
    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// Whether the connection has been idle too long; otherwise the timer is armed to wake the
    /// task when it might have been.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.last + self.idle;
            if Instant::now() >= deadline {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(n))
            }
            // A client that stops reading its response is as idle as one that stops writing.
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
