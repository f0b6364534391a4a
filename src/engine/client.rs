//! The download client: hyper's pooled client over [`connect`](super::connect) (TCP without
//! Nagle, rustls, a read pace that keeps hyper's read buffers small on slow connections), GET
//! with bounded redirects over http/https only and never from https down to http, no
//! Referer, no decompression, and haul's user agent; through the proxy the environment names
//! ([`proxy`](super::proxy)), as reqwest did. Webhooks POST through the same connector and
//! proxies ([`Client::post`]), without redirects.
//!
//! The client follows only same-origin redirects. A redirect to another origin comes back to
//! the caller (`download::send`), which follows it without the project's headers or the URL's
//! credentials.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use super::connect::Connector;
use super::proxy::{Proxies, Route};

/// How many times one request may move to another origin (each leg also has its own limit of
/// `max_redirects` same-origin hops).
pub const MAX_HOST_CHANGES: u32 = 5;

/// How long an idle connection stays in the pool.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Idle connections kept per host: enough to reuse for as many downloads as run at once in
/// the common case; beyond that a finished download's connection (~25 KiB in hyper) closes.
const POOL_IDLE_PER_HOST: usize = super::connect::FREE_CONNECTIONS;

const USER_AGENT: &str = concat!("haul/", env!("CARGO_PKG_VERSION"));

/// The shared client (one connection pool for every worker of this process). Every task holds
/// a clone, so it is one pointer.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    hyper: legacy::Client<Connector, Empty<Bytes>>,
    /// For requests with a body (webhooks): a pool of its own, so that the downloads' requests
    /// stay bodiless (every open connection keeps room for 32 of them).
    with_body: legacy::Client<Connector, Full<Bytes>>,
    proxies: Arc<Proxies>,
    max_redirects: u32,
}

/// Builds the shared client, with the proxies of the environment (fails only when rustls
/// refuses the TLS settings).
pub fn build(connect_timeout: Duration, max_redirects: u32) -> Result<Client, rustls::Error> {
    let proxies = Arc::new(Proxies::from_env());
    let user_agent = HeaderValue::from_static(USER_AGENT);
    let connector = Connector::new(connect_timeout, Arc::clone(&proxies), user_agent)?;
    let mut builder = legacy::Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    Ok(Client {
        inner: Arc::new(Inner {
            hyper: builder.build(connector.clone()),
            with_body: builder.build(connector),
            proxies,
            max_redirects,
        }),
    })
}

impl Client {
    /// GETs `url` with `headers` (the URL's own credentials become Basic authorization unless
    /// `headers` has one) and follows same-origin redirects. A redirect to another origin is
    /// returned as it came; a refused one (scheme, downgrade, too many) is an error.
    pub async fn get(&self, mut url: Url, mut headers: HeaderMap) -> Result<Response, Error> {
        if let Some(auth) = take_credentials(&mut url)
            && !headers.contains_key(header::AUTHORIZATION)
        {
            headers.insert(header::AUTHORIZATION, auth);
        }
        headers
            .entry(header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        headers
            .entry(header::ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        let mut hops = 0;
        loop {
            let response = self.send(&url, &headers).await?;
            let Some(next) = same_origin_hop(&response) else {
                return Ok(response);
            };
            if let Some(reason) = refuse_redirect(&url, &next) {
                return Err(Error::redirect(reason));
            }
            hops += 1;
            let max = self.inner.max_redirects;
            if hops > max {
                return Err(Error::redirect(format!(
                    "too many redirects (more than {max})"
                )));
            }
            if !same_origin(&url, &next) {
                // Handed back to the caller, which follows it without credentials.
                return Ok(response);
            }
            url = next;
            // Credentials in a Location are the server's, never sent on.
            take_credentials(&mut url);
        }
    }

    /// POSTs `body` as `content_type` to `url` (its credentials become Basic authorization)
    /// and returns the status; redirects are not followed. The response body is not read.
    pub async fn post(
        &self,
        mut url: Url,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<StatusCode, Error> {
        let mut headers = HeaderMap::new();
        if let Some(auth) = take_credentials(&mut url) {
            headers.insert(header::AUTHORIZATION, auth);
        }
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        let request = self.request(Method::POST, &url, headers, Full::new(body))?;
        let response = self
            .inner
            .with_body
            .request(request)
            .await
            .map_err(|e| Error::new(Kind::Request, e))?;
        Ok(response.status())
    }

    async fn send(&self, url: &Url, headers: &HeaderMap) -> Result<Response, Error> {
        let request = self.request(Method::GET, url, headers.clone(), Empty::new())?;
        let response = self
            .inner
            .hyper
            .request(request)
            .await
            .map_err(|e| Error::new(Kind::Request, e))?;
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            url: url.clone(),
            body,
        })
    }

    /// A `method` request of `url` with `headers` and `body`, addressed for its route: to a
    /// proxy that forwards it, with the proxy's credentials beside (a tunnel carries them
    /// itself).
    fn request<B>(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: B,
    ) -> Result<Request<B>, Error> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(Error::message(
                Kind::Builder,
                format!("unsupported URL scheme {scheme}"),
            ));
        }
        let uri: hyper::Uri = url
            .as_str()
            .parse()
            .map_err(|e| Error::new(Kind::Builder, e))?;
        let route = self
            .inner
            .proxies
            .route(&uri)
            .map_err(|e| Error::new(Kind::Proxy, e))?;
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.headers_mut() = headers;
        if let Route::Forward(proxy) = route
            && let Some(auth) = proxy.auth
        {
            request
                .headers_mut()
                .entry(header::PROXY_AUTHORIZATION)
                .or_insert(auth);
        }
        *request.uri_mut() = uri;
        Ok(request)
    }
}

/// Where a redirect the client may follow itself points (301, 302, 303, 307, 308 with a
/// usable `Location`), else `None`: the response is the answer.
fn same_origin_hop(response: &Response) -> Option<Url> {
    let followed = matches!(
        response.status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    );
    if !followed {
        return None;
    }
    let location = response.headers.get(header::LOCATION)?.to_str().ok()?;
    response.url.join(location).ok()
}

/// Removes `user:password@` from `url`, as a Basic authorization value.
fn take_credentials(url: &mut Url) -> Option<HeaderValue> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = url.password().map(decode).unwrap_or_default();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A response whose body has not been read yet.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    url: Url,
    body: Incoming,
}

impl Response {
    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The response's headers, to edit.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The URL that answered (after the same-origin redirects).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body's length when the server announced it.
    pub fn content_length(&self) -> Option<u64> {
        self.body.size_hint().exact()
    }

    /// The body, to read once the head has been looked at.
    pub fn into_body(self) -> Body {
        Body {
            incoming: self.body,
        }
    }
}

/// A response's body, without its head (a download holds it to the end, 1,000 at a time).
pub struct Body {
    incoming: Incoming,
}

impl Body {
    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        while let Some(frame) = self.incoming.frame().await {
            let frame = frame.map_err(|e| Error::new(Kind::Body, e))?;
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The request could not be made (URL, TLS setup).
    Builder,
    /// Connecting, sending or reading the response head failed.
    Request,
    /// Reading the body failed.
    Body,
    /// A redirect was refused.
    Redirect,
    /// The environment names a proxy haul cannot use.
    Proxy,
}

/// Why a request failed. Its sources say what went wrong; none of it holds the URL.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Error {
    fn new(kind: Kind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error {
            kind,
            source: source.into(),
        }
    }

    fn message(kind: Kind, text: String) -> Error {
        Error::new(kind, text)
    }

    fn redirect(reason: String) -> Error {
        Error::message(Kind::Redirect, reason)
    }

    /// A redirect was refused (scheme, downgrade, too many).
    pub fn is_redirect(&self) -> bool {
        self.kind == Kind::Redirect
    }

    /// The request could not be made (URL, TLS setup).
    pub fn is_builder(&self) -> bool {
        self.kind == Kind::Builder
    }

    /// The proxy of the environment cannot be used, or refused haul's credentials (retrying
    /// will not help).
    pub fn is_proxy(&self) -> bool {
        self.kind == Kind::Proxy
            || std::iter::successors(Some(self as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<super::connect::ProxyRefused>())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Builder => "bad request",
            Kind::Request => "request failed",
            Kind::Body => "error reading the body",
            Kind::Redirect => "redirect refused",
            Kind::Proxy => "unusable proxy",
        })
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Why a redirect from `from` to `to` must not be followed, or `None` when it may be.
pub fn refuse_redirect(from: &Url, to: &Url) -> Option<String> {
    let scheme = to.scheme();
    if scheme != "http" && scheme != "https" {
        Some(format!("redirect to unsupported scheme {scheme}: refused"))
    } else if from.scheme() == "https" && scheme == "http" {
        Some("insecure redirect refused (https to http)".into())
    } else {
        None
    }
}

/// The message of `err` and of each of its sources, outermost first.
pub fn messages(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    std::iter::successors(Some(err), |e| e.source())
        .map(|e| e.to_string())
        .collect()
}

/// Same scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn downgrades_and_other_schemes_are_refused() {
        let https = url("https://a.example/x");
        let refusal = refuse_redirect(&https, &url("http://a.example/x")).unwrap();
        assert!(refusal.contains("https to http"), "{refusal}");
        let refusal = refuse_redirect(&https, &url("file:///etc/passwd")).unwrap();
        assert!(refusal.contains("unsupported scheme file"), "{refusal}");
        assert!(refuse_redirect(&https, &url("ftp://a.example/x")).is_some());
        assert!(refuse_redirect(&url("http://a.example/"), &url("https://b.example/")).is_none());
        assert!(refuse_redirect(&https, &url("https://b.example/")).is_none());
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        let a = url("http://a.example/x");
        assert!(same_origin(&a, &url("http://a.example:80/y?q")));
        assert!(!same_origin(&a, &url("http://b.example/x")));
        assert!(!same_origin(&a, &url("http://a.example:8080/x")));
        assert!(!same_origin(&a, &url("https://a.example/x")));
    }

    #[test]
    fn credentials_in_the_url_become_basic_authorization() {
        let mut u = url("http://bob:hunter%202@a.example/x");
        let auth = take_credentials(&mut u).unwrap();
        // base64("bob:hunter 2")
        assert_eq!(auth.to_str().unwrap(), "Basic Ym9iOmh1bnRlciAy");
        assert!(auth.is_sensitive());
        assert_eq!(u.as_str(), "http://a.example/x");
        assert!(take_credentials(&mut u).is_none());
    }
}
