//! What one path serves: the body, its validators and the misbehaviours switched on for it.

use bytes::Bytes;

/// Deterministic pseudo-random content: the same `seed` and `len` always give the same bytes.
///
/// Uses splitmix64, so the output never changes with a dependency upgrade.
pub fn sample_bytes(seed: u64, len: usize) -> Bytes {
    let mut out = Vec::with_capacity(len);
    let mut state = seed;
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&z.to_le_bytes()[..take]);
    }
    Bytes::from(out)
}

/// How a route answers a `Range` request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RangeMode {
    /// Honour a single `bytes=N-`, `bytes=N-M` or `bytes=-S` range with an exact `206`, answer
    /// `416` when it starts past the end, and send `Accept-Ranges: bytes`.
    #[default]
    On,
    /// Ignore `Range` and always send `200` with the full body; no `Accept-Ranges`.
    Off,
    /// Send a `206` whose `Content-Range` (and body) starts one byte earlier than asked, or one
    /// byte later when the client asked from byte 0, so it is always wrong.
    WrongStart,
    /// Answer any `Range` request with a `206` carrying the whole body as `bytes 0-(len-1)/len`.
    WholeAs206,
}

/// Which `ETag` a route sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EtagMode {
    /// A strong tag: the quoted hex of the first 8 bytes of the current body's sha256.
    #[default]
    Strong,
    /// The same tag marked weak (`W/"…"`); per RFC 9110 it never satisfies `If-Range`.
    Weak,
    /// No `ETag` header at all.
    None,
}

/// One path of a [`SampleServer`](super::SampleServer): a file plus switchable misbehaviours.
///
/// Build it with [`Route::file`], [`Route::status`] or [`Route::redirect`] and the builder
/// setters. Every counter (statuses, drops, stalls, mutation) belongs to this route and is
/// shared safely by concurrent requests.
#[derive(Clone)]
pub struct Route {
    /// The content served (before any mutation).
    pub body: Bytes,
    /// How `Range` requests are answered. Default [`RangeMode::On`].
    pub ranges: RangeMode,
    /// Which `ETag` is sent. Default [`EtagMode::Strong`].
    pub etag: EtagMode,
    /// Send a fixed `Last-Modified` date (a different fixed date after a mutation). Default on.
    pub last_modified: bool,
    /// Throttle the body to about this many bytes per second.
    pub rate_limit_bps: Option<u64>,
    /// `(n, times)`: the first `times` GET responses whose body is longer than `n` close the
    /// connection abruptly after `n` body bytes, although `Content-Length` announced them all.
    pub drop_after_bytes: Option<(u64, u32)>,
    /// `(n, times)`: the first `times` GET responses whose body is longer than `n` send `n`
    /// body bytes and then hang with the connection open until the server shuts down.
    pub stall_after_bytes: Option<(u64, u32)>,
    /// Answers used one per request, before normal serving: `(status, Retry-After seconds)`.
    pub statuses: Vec<(u16, Option<u64>)>,
    /// After this many requests (counting every request to the route, at least one) the
    /// content changes once: different bytes of the same length, so a different `ETag` and
    /// `Last-Modified`.
    pub mutate_after_requests: Option<u32>,
    /// Answer `302 Found` with this `Location` (a path or a full URL) instead of the body.
    pub redirect_to: Option<String>,
    /// A raw `Content-Disposition` value sent with the body (bytes outside ASCII allowed).
    pub content_disposition: Option<String>,
    /// Answer every request (after `statuses`) with this status and a short text body.
    pub fixed_status: Option<u16>,
}

impl Route {
    /// A well-behaved file: ranges on, strong `ETag`, `Last-Modified`, full speed.
    #[must_use]
    pub fn file(body: Bytes) -> Route {
        Route {
            body,
            ranges: RangeMode::On,
            etag: EtagMode::Strong,
            last_modified: true,
            rate_limit_bps: None,
            drop_after_bytes: None,
            stall_after_bytes: None,
            statuses: Vec::new(),
            mutate_after_requests: None,
            redirect_to: None,
            content_disposition: None,
            fixed_status: None,
        }
    }

    /// A path that always answers `code` (for example `404` or `500`) with a short text body.
    #[must_use]
    pub fn status(code: u16) -> Route {
        Route {
            fixed_status: Some(code),
            ..Route::file(Bytes::new())
        }
    }

    /// A path that always answers `302 Found` with `Location: to`.
    #[must_use]
    pub fn redirect(to: &str) -> Route {
        Route {
            redirect_to: Some(to.to_owned()),
            ..Route::file(Bytes::new())
        }
    }

    /// Throttle the body to about `bytes_per_second`.
    #[must_use]
    pub fn throttle(mut self, bytes_per_second: u64) -> Route {
        self.rate_limit_bps = Some(bytes_per_second);
        self
    }

    /// Choose how `Range` requests are answered.
    #[must_use]
    pub fn ranges(mut self, mode: RangeMode) -> Route {
        self.ranges = mode;
        self
    }

    /// Choose which `ETag` is sent.
    #[must_use]
    pub fn etag(mut self, mode: EtagMode) -> Route {
        self.etag = mode;
        self
    }

    /// Send `Last-Modified` or not.
    #[must_use]
    pub fn last_modified(mut self, send: bool) -> Route {
        self.last_modified = send;
        self
    }

    /// Close the connection after `n` body bytes, for the first `times` responses.
    #[must_use]
    pub fn drop_after(mut self, n: u64, times: u32) -> Route {
        self.drop_after_bytes = Some((n, times));
        self
    }

    /// Hang after `n` body bytes with the connection open, for the first `times` responses.
    #[must_use]
    pub fn stall_after(mut self, n: u64, times: u32) -> Route {
        self.stall_after_bytes = Some((n, times));
        self
    }

    /// Answer the first requests with these `(status, Retry-After seconds)`, one each.
    #[must_use]
    pub fn statuses(mut self, statuses: Vec<(u16, Option<u64>)>) -> Route {
        self.statuses = statuses;
        self
    }

    /// Change the content once after `requests` requests.
    #[must_use]
    pub fn mutate_after(mut self, requests: u32) -> Route {
        self.mutate_after_requests = Some(requests);
        self
    }

    /// Send this raw `Content-Disposition` value with the body.
    #[must_use]
    pub fn content_disposition(mut self, value: &str) -> Route {
        self.content_disposition = Some(value.to_owned());
        self
    }
}

/// The content a route serves after its one mutation: every byte differs from the original.
pub(super) fn mutated(body: &Bytes) -> Bytes {
    let mask = sample_bytes(0x6D75_7461_7465, body.len());
    body.iter()
        .zip(mask.iter())
        .map(|(byte, m)| byte ^ (m | 1))
        .collect::<Vec<u8>>()
        .into()
}
