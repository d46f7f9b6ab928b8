//! Connection limits of the listeners (issue 14): at most
//! `[server] max_connections` connections per listener are open at once.
//! At the limit the listener stops accepting (new connections wait in the
//! kernel's backlog) until one closes, so many idle or slow connections
//! cannot exhaust file descriptors or the memory of their buffers. The
//! A connection that sends nothing within [`FIRST_BYTE_TIMEOUT`] of being
//! accepted is closed, so idle connections cannot hold every slot. The
//! gRPC server's per-connection bounds (concurrent streams, keepalive,
//! request timeout) are set on tonic's builder in `loupe serve`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long an accepted connection may stay silent before its first byte.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection holding one of its listener's slots until it is dropped.
#[derive(Debug)]
pub struct Limited<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
    /// Until the first byte arrives.
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Limited<S> {
    fn new(inner: S, slot: OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            _slot: slot,
            first_byte: Some(Box::pin(tokio::time::sleep(FIRST_BYTE_TIMEOUT))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got_bytes = buf.filled().len() > before;
        if let Some(deadline) = self.first_byte.as_mut() {
            match &polled {
                Poll::Ready(Ok(())) if got_bytes => self.first_byte = None,
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "nothing received within the first-byte timeout",
                    )));
                }
                _ => {}
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Limited<S> {
    type ConnectInfo = S::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Slots of one listener.
#[derive(Debug, Clone)]
pub struct ConnLimit {
    slots: Arc<Semaphore>,
}

impl ConnLimit {
    /// At most `max` connections at once (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    /// Waits for a free slot.
    async fn slot(&self) -> OwnedSemaphorePermit {
        match self.slots.clone().acquire_owned().await {
            Ok(permit) => permit,
            // Never closed; if it were, accept nothing more.
            Err(_) => std::future::pending().await,
        }
    }

    /// An axum listener that accepts only while a slot is free.
    pub fn listener<L: axum::serve::Listener>(&self, inner: L) -> LimitedListener<L>
    where
        L::Io: Unpin,
    {
        LimitedListener {
            inner,
            limit: self.clone(),
        }
    }

    /// A stream of accepted connections (for tonic) that pulls the next one
    /// only while a slot is free.
    pub fn incoming<S, I>(
        &self,
        incoming: I,
    ) -> impl futures::Stream<Item = io::Result<Limited<S>>> + Send + 'static
    where
        I: futures::Stream<Item = io::Result<S>> + Send + Unpin + 'static,
        S: Send + 'static,
    {
        let limit = self.clone();
        futures::stream::unfold((incoming, limit), |(mut incoming, limit)| async move {
            use futures::StreamExt;
            let slot = limit.slot().await;
            let next = incoming.next().await?;
            Some((
                next.map(|inner| Limited::new(inner, slot)),
                (incoming, limit),
            ))
        })
    }
}

/// See [`ConnLimit::listener`].
#[derive(Debug)]
pub struct LimitedListener<L> {
    inner: L,
    limit: ConnLimit,
}

impl<L> axum::serve::Listener for LimitedListener<L>
where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    type Io = Limited<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let slot = self.limit.slot().await;
        let (inner, addr) = self.inner.accept().await;
        (Limited::new(inner, slot), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
