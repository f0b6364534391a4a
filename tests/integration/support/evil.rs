//! The "evil server": raw TCP on 127.0.0.1 for what a well-behaved HTTP library will not send
//! (a body shorter or longer than its `Content-Length`, a `206` without `Content-Range`,
//! control bytes in the reason phrase and in headers, a 1 PiB `Content-Length`), plus a TLS
//! listener with a self-signed certificate. Each request's head is recorded; a handler decides
//! the raw bytes of each answer.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one request gets.
pub enum Answer {
    /// Write these bytes, then close the connection.
    Close(Vec<u8>),
    /// Write these bytes, then keep the connection open, silent, until the server stops.
    Hang(Vec<u8>),
}

/// Decides the answer to request number `n` (from 0) whose raw head is `head`.
pub type Handler = dyn Fn(usize, &str) -> Answer + Send + Sync;

/// A running evil server; stops when dropped.
pub struct Evil {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Evil {
    /// Serves every connection with `handler`, one request per connection.
    pub fn start(handler: impl Fn(usize, &str) -> Answer + Send + Sync + 'static) -> Evil {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (h, s) = (Arc::clone(&heads), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, s, handler) = (Arc::clone(&h), Arc::clone(&s), Arc::clone(&handler));
                std::thread::spawn(move || serve(conn, &h, &s, &*handler));
            }
        });
        Evil { addr, heads, stop }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The raw heads of every request so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads").clone()
    }
}

impl Drop for Evil {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut conn: TcpStream, heads: &Mutex<Vec<String>>, stop: &AtomicBool, handler: &Handler) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(head) = read_head(&mut conn) else {
        return;
    };
    let n = {
        let mut heads = heads.lock().expect("heads");
        heads.push(head.clone());
        heads.len() - 1
    };
    match handler(n, &head) {
        Answer::Close(bytes) => {
            let _ = conn.write_all(&bytes);
            let _ = conn.flush();
            let _ = conn.shutdown(Shutdown::Both);
        }
        Answer::Hang(bytes) => {
            let _ = conn.write_all(&bytes);
            let _ = conn.flush();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn read_head(conn: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A raw response: the status line and header lines joined with CRLF, then the body.
pub fn raw(status_line: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Raw bytes for a response (status line and headers may hold any byte).
pub fn raw_bytes(head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = head.to_vec();
    out.extend_from_slice(body);
    out
}

/// The start of `Range: bytes=N-` in a request head, if any.
pub fn range_start(head: &str) -> Option<u64> {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("range")
                .then(|| value.trim().to_owned())
        })
        .and_then(|v| v.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
}

/// A correct answer for `body` with a strong ETag: `206` from the requested start, or `200`.
pub fn honest(head: &str, body: &[u8], etag: &str) -> Answer {
    let tag = format!("ETag: {etag}");
    match range_start(head) {
        Some(start) if (start as usize) < body.len() => {
            let rest = &body[start as usize..];
            let cr = format!(
                "Content-Range: bytes {start}-{}/{}",
                body.len() - 1,
                body.len()
            );
            let cl = format!("Content-Length: {}", rest.len());
            Answer::Close(raw(
                "HTTP/1.1 206 Partial Content",
                &[&cl, &cr, &tag, "Connection: close"],
                rest,
            ))
        }
        _ => {
            let cl = format!("Content-Length: {}", body.len());
            Answer::Close(raw(
                "HTTP/1.1 200 OK",
                &[&cl, &tag, "Connection: close"],
                body,
            ))
        }
    }
}

/// An HTTPS listener with a self-signed certificate for 127.0.0.1. It counts the requests
/// that got through a handshake (a client that refuses the certificate sends none).
pub struct SelfSignedTls {
    addr: SocketAddr,
    requests: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl SelfSignedTls {
    pub fn start(body: &'static [u8]) -> SelfSignedTls {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("self-signed certificate");
        let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(0usize));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(server) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                    continue;
                };
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    let mut tls = rustls::StreamOwned::new(server, &mut conn);
                    if read_head(&mut tls).is_some() {
                        *r.lock().expect("count") += 1;
                        let cl = format!("Content-Length: {}", body.len());
                        let _ = tls.write_all(&raw(
                            "HTTP/1.1 200 OK",
                            &[&cl, "Connection: close"],
                            body,
                        ));
                        let _ = tls.flush();
                    }
                });
            }
        });
        SelfSignedTls {
            addr,
            requests,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Requests that completed a TLS handshake.
    pub fn requests(&self) -> usize {
        *self.requests.lock().expect("count")
    }
}

impl Drop for SelfSignedTls {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}
