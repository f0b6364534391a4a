//! Deciding one answer: statuses, redirects, validators, `Range`/`If-Range`, drops and stalls.
//!
//! Pure decisions over a route's counters; no sockets. The caller holds the route's lock.

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::route::{EtagMode, RangeMode, Route, mutated};

/// `Last-Modified` of a route's original content.
const LAST_MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";
/// `Last-Modified` once the content has mutated.
const LAST_MODIFIED_MUTATED: &str = "Tue, 02 Jan 2024 00:00:00 GMT";

/// A route's mutable side: counters and the content served now.
pub(super) struct Live {
    requests: u32,
    statuses_used: usize,
    drops_used: u32,
    stalls_used: u32,
    mutated: bool,
    pub(super) body: Bytes,
    tag: String,
}

impl Live {
    pub(super) fn new(body: Bytes) -> Live {
        let tag = tag_of(&body);
        Live {
            requests: 0,
            statuses_used: 0,
            drops_used: 0,
            stalls_used: 0,
            mutated: false,
            body,
            tag,
        }
    }

    fn mutate(&mut self) {
        self.body = mutated(&self.body);
        self.tag = tag_of(&self.body);
        self.mutated = true;
    }

    fn etag(&self, mode: EtagMode) -> Option<String> {
        match mode {
            EtagMode::Strong => Some(format!("\"{}\"", self.tag)),
            EtagMode::Weak => Some(format!("W/\"{}\"", self.tag)),
            EtagMode::None => None,
        }
    }

    fn last_modified(&self, send: bool) -> Option<&'static str> {
        match (send, self.mutated) {
            (false, _) => None,
            (true, false) => Some(LAST_MODIFIED),
            (true, true) => Some(LAST_MODIFIED_MUTATED),
        }
    }
}

fn tag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    hex::encode(&digest[..8])
}

/// The parts of a request that decide the answer.
pub(super) struct Incoming {
    pub(super) method: Method,
    pub(super) range: Option<String>,
    pub(super) if_range: Option<String>,
}

/// Where a streamed body stops early, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cut {
    /// Send it all.
    None,
    /// Close the connection abruptly after this many bytes.
    Drop(u64),
    /// Hang after this many bytes until the server shuts down.
    Stall(u64),
}

/// The body of an answer.
pub(super) enum ReplyBody {
    /// A short body sent at once (empty for `HEAD`).
    Small(Bytes),
    /// A file body streamed in chunks.
    Stream {
        data: Bytes,
        cut: Cut,
        rate_limit_bps: Option<u64>,
    },
}

/// One decided answer.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) body: ReplyBody,
}

impl Reply {
    /// A status with a one-line text body, such as `404 Not Found`.
    pub(super) fn text(code: u16, method: &Method) -> Reply {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let line = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(line.clone())
        };
        Reply {
            status,
            headers: vec![
                (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
                (header::CONTENT_LENGTH, HeaderValue::from(line.len())),
            ],
            body: ReplyBody::Small(body),
        }
    }

    fn header(mut self, name: HeaderName, value: HeaderValue) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// Decides the answer to one request for `route`, updating its counters.
pub(super) fn plan(route: &Route, live: &mut Live, req: &Incoming) -> Reply {
    live.requests = live.requests.saturating_add(1);
    let reply = decide(route, live, req);
    let due = route
        .mutate_after_requests
        .is_some_and(|n| live.requests >= n);
    if due && !live.mutated {
        live.mutate();
    }
    reply
}

fn decide(route: &Route, live: &mut Live, req: &Incoming) -> Reply {
    if let Some(&(code, retry_after)) = route.statuses.get(live.statuses_used) {
        live.statuses_used += 1;
        let reply = Reply::text(code, &req.method);
        return match retry_after {
            Some(secs) => reply.header(header::RETRY_AFTER, HeaderValue::from(secs)),
            None => reply,
        };
    }
    if let Some(to) = &route.redirect_to {
        let reply = Reply::text(302, &req.method);
        return match HeaderValue::from_str(to) {
            Ok(location) => reply.header(header::LOCATION, location),
            Err(_) => Reply::text(500, &req.method),
        };
    }
    if let Some(code) = route.fixed_status {
        return Reply::text(code, &req.method);
    }
    serve(route, live, req)
}

/// Which part of the body to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// `200` with everything.
    Full,
    /// `206` with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// `416`: the range starts at or past the end.
    Unsatisfiable,
}

/// Parses a single-range `Range` value against a body of `len` bytes. Anything it does not
/// understand (other units, several ranges, `M < N`) is ignored, as RFC 9110 allows.
pub(super) fn parse_range(value: &str, len: u64) -> Part {
    let Some((unit, spec)) = value.trim().split_once('=') else {
        return Part::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Part::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Part::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return match last.parse::<u64>() {
            Ok(0) => Part::Unsatisfiable,
            Ok(_) if len == 0 => Part::Unsatisfiable,
            Ok(suffix) => Part::Partial {
                start: len - suffix.min(len),
                end: len - 1,
            },
            Err(_) => Part::Full,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return Part::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return Part::Full,
        }
    };
    if start >= len {
        return Part::Unsatisfiable;
    }
    Part::Partial {
        start,
        end: end.min(len - 1),
    }
}

/// Which part the route's [`RangeMode`] actually sends for an honoured `Range` value.
fn part_for(mode: RangeMode, range: &str, len: u64) -> Part {
    let asked = parse_range(range, len);
    match (mode, asked) {
        (RangeMode::Off, _) => Part::Full,
        (RangeMode::On, asked) => asked,
        (RangeMode::WrongStart, Part::Partial { start, end }) => {
            let wrong = match start {
                0 if end > 0 => 1,
                0 => 0,
                start => start - 1,
            };
            Part::Partial { start: wrong, end }
        }
        (RangeMode::WrongStart, other) => other,
        (RangeMode::WholeAs206, _) if len == 0 => Part::Full,
        (RangeMode::WholeAs206, _) => Part::Partial {
            start: 0,
            end: len - 1,
        },
    }
}

fn serve(route: &Route, live: &mut Live, req: &Incoming) -> Reply {
    let len = live.body.len() as u64;
    let etag = live.etag(route.etag);
    let last_modified = live.last_modified(route.last_modified);
    let strong = etag.as_deref().filter(|_| route.etag == EtagMode::Strong);
    let validator_holds = req.if_range.as_deref().is_none_or(|value| {
        let value = value.trim();
        Some(value) == strong || Some(value) == last_modified
    });
    let part = match (&req.range, route.ranges) {
        (_, RangeMode::Off) => Part::Full,
        (Some(range), mode) if validator_holds => part_for(mode, range, len),
        _ => Part::Full,
    };

    let mut headers = Vec::new();
    if route.ranges != RangeMode::Off {
        headers.push((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
    }
    if let Some(value) = etag.and_then(|tag| HeaderValue::from_str(&tag).ok()) {
        headers.push((header::ETAG, value));
    }
    if let Some(date) = last_modified {
        headers.push((header::LAST_MODIFIED, HeaderValue::from_static(date)));
    }
    if let Some(value) = route
        .content_disposition
        .as_ref()
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        headers.push((header::CONTENT_DISPOSITION, value));
    }

    let (status, data) = match part {
        Part::Unsatisfiable => {
            let reply = Reply::text(416, &req.method);
            let range = HeaderValue::from_str(&format!("bytes */{len}"));
            let mut reply = match range {
                Ok(range) => reply.header(header::CONTENT_RANGE, range),
                Err(_) => reply,
            };
            reply.headers.extend(headers);
            return reply;
        }
        Part::Full => (StatusCode::OK, live.body.clone()),
        Part::Partial { start, end } => {
            if let Ok(range) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                headers.push((header::CONTENT_RANGE, range));
            }
            let slice = live.body.slice(start as usize..=end as usize);
            (StatusCode::PARTIAL_CONTENT, slice)
        }
    };
    headers.push((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    ));
    headers.push((header::CONTENT_LENGTH, HeaderValue::from(data.len())));

    if req.method == Method::HEAD {
        return Reply {
            status,
            headers,
            body: ReplyBody::Small(Bytes::new()),
        };
    }
    let cut = cut_for(route, live, data.len() as u64);
    Reply {
        status,
        headers,
        body: ReplyBody::Stream {
            data,
            cut,
            rate_limit_bps: route.rate_limit_bps,
        },
    }
}

/// Spends a drop or a stall on this body if one is left and the body is long enough to cut.
fn cut_for(route: &Route, live: &mut Live, len: u64) -> Cut {
    if let Some((n, times)) = route.drop_after_bytes
        && live.drops_used < times
        && len > n
    {
        live.drops_used += 1;
        return Cut::Drop(n);
    }
    if let Some((n, times)) = route.stall_after_bytes
        && live.stalls_used < times
        && len > n
    {
        live.stalls_used += 1;
        return Cut::Stall(n);
    }
    Cut::None
}

#[cfg(test)]
mod tests {
    use super::{Part, parse_range};

    #[test]
    fn parses_single_ranges() {
        let partial = |start, end| Part::Partial { start, end };
        assert_eq!(parse_range("bytes=0-99", 1000), partial(0, 99));
        assert_eq!(parse_range("bytes=500-", 1000), partial(500, 999));
        assert_eq!(parse_range("bytes=900-5000", 1000), partial(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), partial(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), partial(0, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), Part::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Part::Unsatisfiable);
    }

    #[test]
    fn ignores_what_it_does_not_understand() {
        for value in [
            "items=0-1",
            "bytes=0-1,5-9",
            "bytes=9-1",
            "bytes=x-",
            "bytes",
        ] {
            assert_eq!(parse_range(value, 1000), Part::Full, "{value}");
        }
    }
}
