//! State shared by every connection, and the one handler that answers all paths.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use tokio_util::sync::CancellationToken;

use super::RequestRecord;
use super::body::stream_body;
use super::plan::{Incoming, Live, Reply, ReplyBody, plan};
use super::route::Route;

/// One path: its configuration and its counters.
pub(super) struct Slot {
    route: Route,
    live: Mutex<Live>,
}

/// Everything the handler and the body streams share.
pub(super) struct Shared {
    routes: HashMap<String, Slot>,
    log: Mutex<Vec<RequestRecord>>,
    /// Cancelled when the server stops; ends stalls and throttled bodies.
    pub(super) shutdown: CancellationToken,
}

/// Locks `mutex`, carrying on after a panic elsewhere: the data is counters and logs.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `/path` for `path` given with or without its leading slash.
pub(super) fn normalize(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

impl Shared {
    pub(super) fn new(routes: Vec<(String, Route)>, shutdown: CancellationToken) -> Shared {
        let routes = routes
            .into_iter()
            .map(|(path, route)| {
                let live = Mutex::new(Live::new(route.body.clone()));
                (normalize(&path), Slot { route, live })
            })
            .collect();
        Shared {
            routes,
            log: Mutex::new(Vec::new()),
            shutdown,
        }
    }

    /// Adds `bytes` to the body bytes sent for request record `index`.
    pub(super) fn add_sent(&self, index: usize, bytes: u64) {
        if let Some(record) = lock(&self.log).get_mut(index) {
            record.body_bytes_sent += bytes;
        }
    }

    pub(super) fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.log).clone()
    }

    pub(super) fn bytes_sent(&self, path: &str) -> u64 {
        let path = normalize(path);
        lock(&self.log)
            .iter()
            .filter(|record| record.path == path)
            .map(|record| record.body_bytes_sent)
            .sum()
    }

    pub(super) fn current_body(&self, path: &str) -> Option<bytes::Bytes> {
        let slot = self.routes.get(&normalize(path))?;
        Some(lock(&slot.live).body.clone())
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// Answers every request: records it, decides the reply under the route's lock, then streams.
pub(super) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let headers = request.headers();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let incoming = Incoming {
        method: method.clone(),
        range: header_text(headers, header::RANGE),
        if_range: header_text(headers, header::IF_RANGE),
    };
    let mut record = RequestRecord {
        path,
        method: method.to_string(),
        range: incoming.range.clone(),
        if_range: incoming.if_range.clone(),
        referer: header_text(headers, header::REFERER),
        authorization: header_text(headers, header::AUTHORIZATION),
        status: 0,
        body_bytes_sent: 0,
    };

    // The log stays locked while deciding, so its order is the order of decisions.
    let (reply, index) = {
        let mut log = lock(&shared.log);
        let reply = match shared.routes.get(&record.path) {
            None => Reply::text(404, &method),
            Some(_) if method != Method::GET && method != Method::HEAD => {
                let mut reply = Reply::text(405, &method);
                reply
                    .headers
                    .push((header::ALLOW, header::HeaderValue::from_static("GET, HEAD")));
                reply
            }
            Some(slot) => plan(&slot.route, &mut lock(&slot.live), &incoming),
        };
        record.status = reply.status.as_u16();
        if let ReplyBody::Small(body) = &reply.body {
            record.body_bytes_sent = body.len() as u64;
        }
        log.push(record);
        (reply, log.len() - 1)
    };

    let body = match reply.body {
        ReplyBody::Small(bytes) => Body::from(bytes),
        ReplyBody::Stream {
            data,
            cut,
            rate_limit_bps,
        } => stream_body(data, cut, rate_limit_bps, Arc::clone(&shared), index),
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let out = response.headers_mut();
    for (name, value) in reply.headers {
        out.append(name, value);
    }
    response
}
