//! A loopback HTTP/1.1 sample server with switchable misbehaviours.
//!
//! `haul demo` uses it for its sample downloads (fast files, a throttled large file, one that
//! 404s, one that drops mid-body and is resumed), and the integration tests use it to drive the
//! engine over real sockets. Each path is a [`Route`]: a generated body ([`sample_bytes`]) plus
//! switches for ranges, validators, throttling, dropped and stalled connections, queued error
//! statuses, content that changes under the client, redirects and `Content-Disposition`.
//! Every request is recorded ([`RequestRecord`]) with the body bytes really handed to the
//! connection.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use haul::demo::server::{Route, SampleServer, sample_bytes};
//! let server = SampleServer::start(vec![
//!     ("/big.bin".to_owned(), Route::file(sample_bytes(1, 1 << 20)).throttle(256 * 1024)),
//!     ("/flaky.bin".to_owned(), Route::file(sample_bytes(2, 1 << 16)).drop_after(1000, 1)),
//! ])
//! .await?;
//! println!("{}", server.url("/big.bin"));
//! # Ok(())
//! # }
//! ```

mod body;
mod plan;
mod route;
mod shared;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use route::{EtagMode, RangeMode, Route, sample_bytes};

use shared::{Shared, handle, normalize};

/// One request as the server saw it, with what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The request path, without the query.
    pub path: String,
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The raw `Range` header, if sent.
    pub range: Option<String>,
    /// The raw `If-Range` header, if sent.
    pub if_range: Option<String>,
    /// The raw `Referer` header, if sent.
    pub referer: Option<String>,
    /// The raw `Authorization` header, if sent.
    pub authorization: Option<String>,
    /// The status code answered.
    pub status: u16,
    /// Body bytes handed to the connection so far (what a dropped or stalled body yielded,
    /// not what it announced; `0` for `HEAD`).
    pub body_bytes_sent: u64,
}

/// A running sample server on `127.0.0.1` and an ephemeral port.
///
/// Stops when [`shutdown`](SampleServer::shutdown) is called or the value is dropped: it stops
/// accepting, closes idle connections, and ends stalled and throttled bodies with an abrupt
/// close. Unthrottled bodies already under way are allowed to finish.
pub struct SampleServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl SampleServer {
    /// Binds `127.0.0.1:0` and serves `routes` (paths like `"/a.bin"`; a missing leading slash
    /// is added) on a tokio task until shutdown. Every other path answers `404`.
    pub async fn start(routes: Vec<(String, Route)>) -> std::io::Result<SampleServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared::new(routes, shutdown.clone()));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let signal = shutdown.clone().cancelled_owned();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await;
            if let Err(err) = served {
                tracing::warn!(%addr, error = %err, "sample server stopped with an error");
            }
        });
        tracing::debug!(%addr, "sample server listening");
        Ok(SampleServer {
            addr,
            shared,
            shutdown,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/path` (a missing leading slash is added).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, normalize(path))
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// Body bytes handed to the connection for `path`, over all its requests so far.
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.shared.bytes_sent(path)
    }

    /// The content `path` serves now (after a mutation, the new bytes); `None` if unknown.
    pub fn current_body(&self, path: &str) -> Option<Bytes> {
        self.shared.current_body(path)
    }

    /// Stops the server (dropping it does the same).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SampleServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
