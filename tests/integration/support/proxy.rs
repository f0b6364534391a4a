//! A recording HTTP proxy on 127.0.0.1: absolute-form requests are forwarded with their
//! method and `Content-Length` body (one per connection, `Connection: close` upstream),
//! `CONNECT` opens a tunnel. It can demand
//! credentials (`407` without them) and records every request head it saw.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target as sent: `http://host:port/path` or `host:port`.
    pub target: String,
    pub proxy_authorization: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Default)]
struct Log {
    seen: Vec<Seen>,
    /// Bytes that came back from servers through tunnels.
    tunnelled_down: u64,
}

/// The proxy, serving on its own runtime as long as this value lives.
pub struct RecordingProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    _runtime: tokio::runtime::Runtime,
}

impl RecordingProxy {
    /// A proxy that lets every request through, or only those with `Proxy-Authorization:
    /// required` when `required` is set.
    pub fn start(required: Option<&str>) -> RecordingProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Log::default()));
        let required = required.map(str::to_owned);
        let l = Arc::clone(&log);
        runtime.spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, Arc::clone(&l), required.clone()));
            }
        });
        RecordingProxy {
            addr,
            log,
            _runtime: runtime,
        }
    }

    /// `http://[user:password@]127.0.0.1:port`.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("http://{u}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().expect("log").seen.clone()
    }

    pub fn tunnelled_down(&self) -> u64 {
        self.log.lock().expect("log").tunnelled_down
    }
}

async fn serve(conn: TcpStream, log: Arc<Mutex<Log>>, required: Option<String>) {
    let mut client = BufReader::new(conn);
    let Some((line, headers)) = read_head(&mut client).await else {
        return;
    };
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let seen = Seen {
        method: method.to_owned(),
        target: target.to_owned(),
        proxy_authorization: header("proxy-authorization"),
        user_agent: header("user-agent"),
    };
    let allowed = required.is_none() || seen.proxy_authorization == required;
    log.lock().expect("log").seen.push(seen);
    if method != "CONNECT" && allowed {
        let length = header("content-length").and_then(|v| v.parse().ok());
        let mut body = vec![0; length.unwrap_or(0)];
        if client.read_exact(&mut body).await.is_ok() {
            forward(client.into_inner(), method, target, &headers, &body).await;
        }
        return;
    }
    let mut client = client.into_inner();
    if !allowed {
        let _ = client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    // CONNECT: a tunnel.
    let Ok(mut server) = TcpStream::connect(target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    if let Ok((_, down)) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
        log.lock().expect("log").tunnelled_down += down;
    }
}

/// Sends an absolute-form request on to its server in origin form and relays the answer.
async fn forward(
    mut client: TcpStream,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) {
    let Some(rest) = target.strip_prefix("http://") else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut server) = TcpStream::connect(authority).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for (name, value) in headers {
        let hop = ["proxy-authorization", "connection", "proxy-connection"];
        if !hop.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    if server.write_all(head.as_bytes()).await.is_err() || server.write_all(body).await.is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer).await;
    let _ = client.write_all(&answer).await;
}

/// The request line and headers, up to the blank line.
async fn read_head(conn: &mut BufReader<TcpStream>) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    conn.read_line(&mut line).await.ok()?;
    let request = line.trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Some((request, headers));
        }
        let (name, value) = l.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}
