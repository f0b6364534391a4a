//! Which proxy a download goes through, read from the environment as reqwest 0.12 read it:
//! `HTTP_PROXY`/`http_proxy` for http URLs, `HTTPS_PROXY`/`https_proxy` for https URLs,
//! `ALL_PROXY`/`all_proxy` for both when the narrower one is unset, and `NO_PROXY`/`no_proxy`
//! for the hosts that connect directly (hyper-util's matcher parses them all, curl's rules).
//!
//! An http URL goes to an `http://` or `https://` proxy in absolute form, with the proxy URL's
//! credentials as `Proxy-Authorization`; an https URL goes through a `CONNECT` tunnel, the
//! credentials on the `CONNECT`. A SOCKS proxy is refused with a message: haul was never built
//! with SOCKS, and a direct connection would bypass what the operator asked for.

use std::fmt;

use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};

/// The proxy rules of this process (read once, when the client is built).
pub struct Proxies {
    matcher: Matcher,
}

/// How one destination is reached.
pub enum Route {
    /// No proxy: straight to the server.
    Direct,
    /// An http URL: the request goes to the proxy in absolute form.
    Forward(Proxy),
    /// An https URL: a `CONNECT` tunnel through the proxy, TLS to the server inside it.
    Tunnel(Proxy),
}

/// An HTTP(S) proxy to use.
pub struct Proxy {
    /// `http://host:port/` or `https://host:port/`, without credentials.
    pub uri: Uri,
    /// `Basic …` from the proxy URL's user and password, marked sensitive.
    pub auth: Option<HeaderValue>,
}

impl Proxies {
    /// The rules from the environment variables (none set: every route is direct).
    pub fn from_env() -> Proxies {
        Proxies {
            matcher: Matcher::from_env(),
        }
    }

    /// The route to `dst` (an `http` or `https` URI), or why it cannot be taken.
    pub fn route(&self, dst: &Uri) -> Result<Route, Unsupported> {
        let Some(intercept) = self.matcher.intercept(dst) else {
            return Ok(Route::Direct);
        };
        let proxy = proxy(&intercept)?;
        Ok(if dst.scheme_str() == Some("https") {
            Route::Tunnel(proxy)
        } else {
            Route::Forward(proxy)
        })
    }
}

fn proxy(intercept: &Intercept) -> Result<Proxy, Unsupported> {
    let uri = intercept.uri();
    match uri.scheme_str() {
        Some("http" | "https") => Ok(Proxy {
            uri: uri.clone(),
            auth: intercept.basic_auth().cloned(),
        }),
        _ => Err(Unsupported {
            proxy: uri.to_string(),
        }),
    }
}

/// A proxy from the environment that haul cannot speak to (SOCKS).
#[derive(Debug)]
pub struct Unsupported {
    /// The proxy's URI, without credentials.
    proxy: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proxy {} (from ALL_PROXY/HTTP_PROXY/HTTPS_PROXY) is not supported: haul uses \
             http:// and https:// proxies only; change it, or list the host in NO_PROXY",
            self.proxy.trim_end_matches('/')
        )
    }
}

impl std::error::Error for Unsupported {}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(all: &str, https: &str, no: &str) -> Proxies {
        Proxies {
            matcher: Matcher::builder().all(all).https(https).no(no).build(),
        }
    }

    fn route(p: &Proxies, dst: &str) -> Result<Route, Unsupported> {
        p.route(&dst.parse().unwrap())
    }

    #[test]
    fn http_forwards_https_tunnels_and_no_proxy_goes_direct() {
        let p = proxies("http://u:p%40ss@proxy.example:3128", "", "direct.example");
        let Ok(Route::Forward(proxy)) = route(&p, "http://a.example/x") else {
            panic!("http is forwarded");
        };
        assert_eq!(proxy.uri, "http://proxy.example:3128/");
        // base64("u:p@ss")
        assert_eq!(proxy.auth.unwrap(), "Basic dTpwQHNz");
        assert!(matches!(
            route(&p, "https://a.example/x"),
            Ok(Route::Tunnel(_))
        ));
        assert!(matches!(
            route(&p, "https://direct.example/x"),
            Ok(Route::Direct)
        ));
        assert!(matches!(
            route(&p, "http://sub.direct.example/x"),
            Ok(Route::Direct)
        ));
    }

    #[test]
    fn the_narrower_variable_wins_and_none_means_direct() {
        let p = proxies("http://all.example:1", "https://tls.example:2", "");
        let Ok(Route::Tunnel(proxy)) = route(&p, "https://a.example/") else {
            panic!("https is tunnelled");
        };
        assert_eq!(proxy.uri, "https://tls.example:2/");
        assert!(proxy.auth.is_none());
        assert!(matches!(
            route(&proxies("", "", ""), "https://a.example/"),
            Ok(Route::Direct)
        ));
    }

    #[test]
    fn a_socks_proxy_is_refused_with_a_message_and_no_credentials() {
        let p = proxies("socks5://u:secret@127.0.0.1:1080", "", "");
        let Err(refused) = route(&p, "https://a.example/") else {
            panic!("socks is refused");
        };
        let message = refused.to_string();
        assert!(
            message.contains("proxy socks5://127.0.0.1:1080 (from"),
            "{message}"
        );
        assert!(message.contains("not supported"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert!(route(&p, "http://a.example/").is_err());
    }
}
