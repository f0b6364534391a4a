//! Connections for the download client: TCP (no Nagle, keepalive), TLS through
//! rustls with the webpki roots (ALPN h2 and http/1.1), the proxy of the environment
//! ([`proxy`](super::proxy): to the proxy for http, a `CONNECT` tunnel for https), and a read
//! pace that keeps hyper's HTTP/1 read buffer small on connections that do not need a big one.
//!
//! hyper sizes that buffer by what one read returned: it starts at 8 KiB and doubles whenever
//! a read fills it (up to ~400 KiB), and keeps it for the connection's life. A slow server
//! that sends its bytes in bursts (nginx with `limit_rate` sends 16 KiB at a time) makes every
//! connection hold 32 KiB or more, which a thousand connections pay a thousand times. So while
//! many connections are open, a connection that is not moving much data reads at most
//! [`SLOW_READ`] bytes at a time, and hyper's buffer never grows past its first 8 KiB; a fast
//! one (and every one while few are open) reads as much as hyper asks for.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use hyper::Uri;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use tower_service::Service;

use super::proxy::{Proxies, Proxy, Route};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// TCP to the server or to a proxy, and TLS to an `https://` proxy.
type Transport = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// What hyper reads and writes: the transport, or TLS to the server over it.
type Stream = Either<Transport, Box<TlsStream<Transport>>>;

/// The most a slow connection reads at once: one byte less than hyper's first read buffer
/// (8 KiB), so no read ever fills it and it is never doubled.
pub const SLOW_READ: usize = 8 * 1024 - 1;

/// Up to this many open connections, every connection reads as much as hyper asks for.
pub const FREE_CONNECTIONS: usize = 64;

/// A connection that reads at least this much within [`PACE_WINDOW`] counts as fast (1 MiB/s).
const FAST_BYTES: usize = 256 * 1024;
const PACE_WINDOW: Duration = Duration::from_millis(250);

/// Idle time after which the kernel probes a connection (reqwest's default).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// Makes the connections of one client (cheap to clone: every clone shares the count).
#[derive(Clone)]
pub struct Connector {
    tcp: HttpConnector,
    /// Bounds a whole connect: name lookup, TCP, the proxy's `CONNECT` and every TLS handshake.
    connect_timeout: Duration,
    /// To servers: ALPN h2 and http/1.1.
    tls: TlsConnector,
    /// To `https://` proxies: no ALPN, so HTTP/1.1 (a `CONNECT` or an absolute-form request).
    tls_proxy: TlsConnector,
    proxies: Arc<Proxies>,
    user_agent: HeaderValue,
    open: Arc<AtomicUsize>,
}

impl Connector {
    /// Connections through `proxies`, sending `user_agent` on a `CONNECT`.
    pub fn new(
        connect_timeout: Duration,
        proxies: Arc<Proxies>,
        user_agent: HeaderValue,
    ) -> Result<Connector, rustls::Error> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false); // https is ours to wrap
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(TCP_KEEPALIVE));
        let tls = tls_config()?;
        let mut to_proxy = tls.clone();
        to_proxy.alpn_protocols.clear();
        Ok(Connector {
            tcp,
            connect_timeout,
            tls: TlsConnector::from(Arc::new(tls)),
            tls_proxy: TlsConnector::from(Arc::new(to_proxy)),
            proxies,
            user_agent,
            open: Arc::new(AtomicUsize::new(0)),
        })
    }

    async fn connect(self, dst: Uri) -> Result<TokioIo<Conn>, BoxError> {
        let (stream, forwarded) = match self.proxies.route(&dst)? {
            Route::Direct => {
                let socket = self.tcp.clone().call(dst.clone()).await?.into_inner();
                (self.to_server(&dst, Either::Left(socket)).await?, false)
            }
            Route::Forward(proxy) => {
                let transport = self
                    .to_proxy(&proxy.uri)
                    .await
                    .map_err(|e| via(&proxy, e))?;
                (Either::Left(transport), true)
            }
            Route::Tunnel(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri.clone(), ToProxy(self.clone()))
                    .with_headers(self.connect_headers(&proxy));
                let tunnelled = tunnel.call(dst.clone()).await.map_err(|e| {
                    let refused = e.to_string() == PROXY_AUTH_REQUIRED;
                    let message = via_message(&proxy, e);
                    if refused {
                        Box::new(ProxyRefused(message)) as BoxError
                    } else {
                        message.into()
                    }
                })?;
                (self.to_server(&dst, tunnelled.into_inner()).await?, false)
            }
        };
        Ok(TokioIo::new(Conn::new(stream, forwarded, self.open)))
    }

    /// TLS to the server over `transport` for an https `dst`; as it is for http.
    async fn to_server(&self, dst: &Uri, transport: Transport) -> Result<Stream, BoxError> {
        if dst.scheme_str() != Some("https") {
            return Ok(Either::Left(transport));
        }
        let name = server_name(dst)?;
        Ok(Either::Right(Box::new(
            self.tls.connect(name, transport).await?,
        )))
    }

    /// TCP to the proxy at `uri`, and TLS when it is an `https://` proxy.
    async fn to_proxy(&self, uri: &Uri) -> Result<Transport, BoxError> {
        let socket = self.tcp.clone().call(uri.clone()).await?.into_inner();
        if uri.scheme_str() != Some("https") {
            return Ok(Either::Left(socket));
        }
        let name = server_name(uri)?;
        Ok(Either::Right(Box::new(
            self.tls_proxy.connect(name, socket).await?,
        )))
    }

    /// The `CONNECT` request's headers: haul's user agent and the proxy's credentials.
    fn connect_headers(&self, proxy: &Proxy) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, self.user_agent.clone());
        if let Some(auth) = &proxy.auth {
            headers.insert(header::PROXY_AUTHORIZATION, auth.clone());
        }
        headers
    }
}

/// The name TLS checks the certificate against (an IPv6 literal comes bracketed in the URI,
/// never in the certificate).
fn server_name(uri: &Uri) -> Result<ServerName<'static>, BoxError> {
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(ServerName::try_from(host.to_owned())?)
}

/// hyper-util's words for a `407` answer to a `CONNECT` (its error type is private).
const PROXY_AUTH_REQUIRED: &str = "tunnel error: proxy authorization required";

/// A tunnelling proxy refused haul's credentials (`407`): another try with the same ones
/// cannot succeed.
#[derive(Debug)]
pub struct ProxyRefused(String);

impl std::fmt::Display for ProxyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxyRefused {}

/// A failure on the way through `proxy`, naming it (never its credentials), with the causes
/// (a tunnel's own message hides why it could not reach the proxy).
fn via(proxy: &Proxy, err: impl Into<BoxError>) -> BoxError {
    via_message(proxy, err).into()
}

/// The words of [`via`].
fn via_message(proxy: &Proxy, err: impl Into<BoxError>) -> String {
    let err: BoxError = err.into();
    let proxy = proxy.uri.to_string();
    let mut message = format!("through the proxy {}", proxy.trim_end_matches('/'));
    for m in super::client::messages(&*err) {
        message.push_str(": ");
        message.push_str(&m);
    }
    message
}

/// TLS 1.2 and 1.3 with ring, the Mozilla roots of `webpki-roots`, SNI, ALPN h2 + http/1.1.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl Service<Uri> for Connector {
    type Response = TokioIo<Conn>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Conn>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    /// A connect that does not finish within the connect timeout fails; hyper may also finish a
    /// connect in the background when a pooled connection came free first, so nothing else would
    /// bound it.
    fn call(&mut self, dst: Uri) -> Self::Future {
        let limit = self.connect_timeout;
        let connect = self.clone().connect(dst);
        Box::pin(async move {
            tokio::time::timeout(limit, connect).await.map_err(|_| {
                BoxError::from(format!("connect timed out after {} s", limit.as_secs_f32()))
            })?
        })
    }
}

/// The connector the `CONNECT` tunnel opens its connection to the proxy with.
struct ToProxy(Connector);

impl Service<Uri> for ToProxy {
    type Response = TokioIo<Transport>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Transport>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, proxy: Uri) -> Self::Future {
        let connector = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(connector.to_proxy(&proxy).await?)) })
    }
}

/// One open connection, counted while it lives, with its read pace.
pub struct Conn {
    stream: Stream,
    /// Requests go to a proxy in absolute form.
    forwarded: bool,
    open: Arc<AtomicUsize>,
    pace: Pace,
}

impl Conn {
    fn new(stream: Stream, forwarded: bool, open: Arc<AtomicUsize>) -> Conn {
        open.fetch_add(1, Ordering::Relaxed);
        Conn {
            stream,
            forwarded,
            open,
            pace: Pace::new(Instant::now()),
        }
    }

    fn many_open(&self) -> bool {
        self.open.load(Ordering::Relaxed) > FREE_CONNECTIONS
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match &self.stream {
            Either::Right(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                Connected::new().negotiated_h2()
            }
            _ => Connected::new().proxy(self.forwarded),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let limit = (!this.pace.fast && this.many_open()).then_some(SLOW_READ);
        let stream = Pin::new(&mut this.stream);
        let read = match limit {
            Some(limit) if buf.remaining() > limit => {
                let mut small = ReadBuf::new(buf.initialize_unfilled_to(limit));
                ready!(stream.poll_read(cx, &mut small))?;
                let n = small.filled().len();
                buf.advance(n);
                n
            }
            _ => {
                let before = buf.filled().len();
                ready!(stream.poll_read(cx, buf))?;
                buf.filled().len() - before
            }
        };
        this.pace.record(read, Instant::now());
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Whether a connection moves enough data to deserve big reads: fast once it read
/// [`FAST_BYTES`] within one [`PACE_WINDOW`], slow again after a window with less.
#[derive(Debug, Clone, Copy)]
struct Pace {
    fast: bool,
    window_start: Instant,
    window_bytes: usize,
}

impl Pace {
    fn new(now: Instant) -> Pace {
        Pace {
            fast: false,
            window_start: now,
            window_bytes: 0,
        }
    }

    fn record(&mut self, bytes: usize, now: Instant) {
        self.window_bytes = self.window_bytes.saturating_add(bytes);
        if self.window_bytes >= FAST_BYTES {
            self.fast = true;
        } else if now.saturating_duration_since(self.window_start) < PACE_WINDOW {
            return;
        } else {
            self.fast = false;
        }
        self.window_start = now;
        self.window_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_fast_while_it_moves_a_megabyte_a_second() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        pace.record(SLOW_READ, t0 + Duration::from_millis(10));
        assert!(!pace.fast);
        for i in 0..40 {
            pace.record(SLOW_READ, t0 + Duration::from_millis(20 + i));
        }
        assert!(pace.fast, "{pace:?}");
        // A quiet window makes it slow again.
        pace.record(100, t0 + Duration::from_millis(200));
        assert!(pace.fast, "still within the window: {pace:?}");
        pace.record(100, t0 + Duration::from_millis(700));
        assert!(!pace.fast, "{pace:?}");
    }

    #[test]
    fn a_burst_every_second_stays_slow() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        for s in 0..10 {
            let at = t0 + Duration::from_secs(s);
            pace.record(SLOW_READ, at);
            pace.record(SLOW_READ, at);
            assert!(!pace.fast, "second {s}");
        }
    }
}
