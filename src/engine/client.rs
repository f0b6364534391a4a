//! The HTTP client: timeouts, bounded redirects over http/https only and never from https down
//! to http, no Referer, no decompression (reqwest is built without those features).

use std::time::Duration;

use reqwest::redirect::{Attempt, Policy};

/// Builds the shared client (one connection pool for every worker of this process).
pub fn build(connect_timeout: Duration, max_redirects: u32) -> reqwest::Result<reqwest::Client> {
    let max = max_redirects as usize;
    let policy = Policy::custom(move |attempt: Attempt<'_>| {
        let scheme = attempt.url().scheme().to_owned();
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|u| u.scheme() == "https");
        if attempt.previous().len() > max {
            attempt.error(format!("too many redirects (more than {max})"))
        } else if scheme != "http" && scheme != "https" {
            attempt.error(format!("redirect to unsupported scheme {scheme}: refused"))
        } else if from_https && scheme == "http" {
            attempt.error("insecure redirect refused (https to http)")
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
