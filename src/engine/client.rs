//! The HTTP client: timeouts, bounded redirects over http/https only and never from https down
//! to http, no Referer, no decompression (reqwest is built without those features).
//!
//! The client follows only same-origin redirects. A redirect to another origin comes back to
//! the caller (`download::send`), which follows it without the project's headers or the URL's
//! credentials: reqwest strips `Authorization` across hosts, but not a custom token header.

use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::{Attempt, Policy};

/// How many times one request may move to another origin (each leg also has its own limit of
/// `max_redirects` same-origin hops).
pub const MAX_HOST_CHANGES: u32 = 5;

/// Builds the shared client (one connection pool for every worker of this process).
pub fn build(connect_timeout: Duration, max_redirects: u32) -> reqwest::Result<reqwest::Client> {
    let max = max_redirects as usize;
    let policy = Policy::custom(move |attempt: Attempt<'_>| {
        let Some(previous) = attempt.previous().last().cloned() else {
            return attempt.follow();
        };
        if let Some(reason) = refuse_redirect(&previous, attempt.url()) {
            attempt.error(reason)
        } else if attempt.previous().len() > max {
            attempt.error(format!("too many redirects (more than {max})"))
        } else if !same_origin(&previous, attempt.url()) {
            // Handed back to the caller, which follows it without credentials.
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(policy)
        .referer(false)
        .tcp_nodelay(true)
        .user_agent(concat!("haul/", env!("CARGO_PKG_VERSION")))
        .build()
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
}
