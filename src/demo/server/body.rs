//! Streaming a file body in chunks: throttling, abrupt drops, stalls, and counting what was sent.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use tokio::time::Instant;

use super::plan::Cut;
use super::shared::Shared;

/// Chunk size of an unthrottled body.
const CHUNK: usize = 64 * 1024;
/// Largest chunk of a throttled body.
const THROTTLED_CHUNK_MAX: usize = 16 * 1024;
/// How long a dropping body waits after its last bytes before closing, so that hyper has
/// flushed them to the socket and the client really receives all `n` of them.
const DROP_GRACE: Duration = Duration::from_millis(100);

/// Everything the stream needs between chunks.
struct Feed {
    data: Bytes,
    pos: usize,
    limit: usize,
    cut: Cut,
    chunk: usize,
    rate_limit_bps: Option<u64>,
    started: Instant,
    shared: Arc<Shared>,
    record: usize,
    finished: bool,
}

/// A body that streams `data` and stops as `cut` says, adding each chunk it yields to the
/// byte count of request record `record`.
pub(super) fn stream_body(
    data: Bytes,
    cut: Cut,
    rate_limit_bps: Option<u64>,
    shared: Arc<Shared>,
    record: usize,
) -> Body {
    let limit = match cut {
        Cut::None => data.len(),
        Cut::Drop(n) | Cut::Stall(n) => usize::try_from(n).unwrap_or(usize::MAX).min(data.len()),
    };
    let chunk = match rate_limit_bps {
        None => CHUNK,
        Some(bps) => usize::try_from(bps / 10)
            .unwrap_or(THROTTLED_CHUNK_MAX)
            .clamp(1, THROTTLED_CHUNK_MAX),
    };
    let feed = Feed {
        data,
        pos: 0,
        limit,
        cut,
        chunk,
        rate_limit_bps: rate_limit_bps.filter(|&bps| bps > 0),
        started: Instant::now(),
        shared,
        record,
        finished: false,
    };
    Body::from_stream(stream::unfold(feed, |mut feed| async move {
        let item = feed.next().await?;
        Some((item, feed))
    }))
}

impl Feed {
    /// The next chunk, the error that ends the connection, or `None` at the end.
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.finished {
            return None;
        }
        if self.pos < self.limit {
            let end = (self.pos + self.chunk).min(self.limit);
            if let Err(err) = self.pace(end).await {
                self.finished = true;
                return Some(Err(err));
            }
            let chunk = self.data.slice(self.pos..end);
            self.pos = end;
            self.shared.add_sent(self.record, chunk.len() as u64);
            return Some(Ok(chunk));
        }
        self.finished = true;
        match self.cut {
            Cut::None => None,
            Cut::Drop(n) => {
                tokio::select! {
                    () = tokio::time::sleep(DROP_GRACE) => {}
                    () = self.shared.shutdown.cancelled() => {}
                }
                Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("sample server: dropping the connection after {n} body bytes"),
                )))
            }
            Cut::Stall(n) => {
                self.shared.shutdown.cancelled().await;
                Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("sample server: shut down while stalled after {n} body bytes"),
                )))
            }
        }
    }

    /// Waits until the throttle allows the first `end` bytes to have been sent; fails if the
    /// server shuts down meanwhile.
    async fn pace(&self, end: usize) -> io::Result<()> {
        let Some(bps) = self.rate_limit_bps else {
            return Ok(());
        };
        let due = Duration::from_secs_f64(end as f64 / bps as f64);
        tokio::select! {
            () = tokio::time::sleep_until(self.started + due) => Ok(()),
            () = self.shared.shutdown.cancelled() => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "sample server: shut down during a throttled body",
            )),
        }
    }
}
