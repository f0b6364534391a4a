//! Proxies from the environment, as reqwest took them: http through the proxy in absolute
//! form, https through `CONNECT`, credentials from the proxy URL, `NO_PROXY` honoured, and a
//! proxy haul cannot use refused on the task (never a direct connection instead).

use haul::demo::server::{Route, sample_bytes};

use crate::support::evil::SelfSignedTls;
use crate::support::proxy::RecordingProxy;
use crate::support::{Env, Server};

/// `haul run --exit-when-idle` with `vars` set on the process alone.
fn run_with(env: &Env, vars: &[(&str, &str)]) {
    let output = env
        .cmd()
        .envs(vars.iter().copied())
        .args(["run", "--exit-when-idle"])
        .output()
        .expect("run haul");
    assert!(
        output.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn error_of(env: &Env, task: i64) -> String {
    env.query_string(&format!(
        "SELECT error_message FROM tasks WHERE id = {task}"
    ))
}

const USER_AGENT: &str = concat!("haul/", env!("CARGO_PKG_VERSION"));

#[test]
fn http_goes_to_the_proxy_in_absolute_form_with_the_proxy_urls_credentials() {
    let data = sample_bytes(71, 300_000);
    let server = Server::start(vec![("/a.bin", Route::file(data.clone()))]);
    // base64("bob:p@ss")
    let proxy = RecordingProxy::start(Some("Basic Ym9iOnBAc3M="));
    let env = Env::new();
    let task = env.add(&[&server.url("/a.bin")], &[]);
    run_with(&env, &[("http_proxy", &proxy.url(Some("bob:p%40ss")))]);

    assert_eq!(env.status(task), "completed", "{}", error_of(&env, task));
    assert_eq!(env.file("a.bin"), data);
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(s.method, "GET");
        assert_eq!(s.target, server.url("/a.bin"), "absolute form");
        assert_eq!(s.proxy_authorization.as_deref(), Some("Basic Ym9iOnBAc3M="));
    }
    let requests = server.server.requests();
    assert_eq!(
        requests.len(),
        seen.len(),
        "every request came through the proxy"
    );
    assert!(requests.iter().all(|r| r.authorization.is_none()));
}

#[test]
fn https_goes_through_a_connect_tunnel_with_the_credentials_on_the_connect() {
    let tls = SelfSignedTls::start(b"secret payload");
    let proxy = RecordingProxy::start(Some("Basic dTpw"));
    let env = Env::new();
    let task = env.add(&[&tls.url("/x.bin")], &[]);
    run_with(&env, &[("HTTPS_PROXY", &proxy.url(Some("u:p")))]);

    // The server's own (untrusted) certificate came back through the tunnel: TLS ran end to
    // end with the server, not with the proxy.
    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains("TLS certificate not trusted for 127.0.0.1"),
        "{error}"
    );
    let authority = tls.url("").trim_start_matches("https://").to_owned();
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, authority.trim_end_matches('/'));
    assert_eq!(seen[0].proxy_authorization.as_deref(), Some("Basic dTpw"));
    assert_eq!(seen[0].user_agent.as_deref(), Some(USER_AGENT));
    assert!(
        proxy.tunnelled_down() > 0,
        "the server's handshake came back"
    );
    assert_eq!(
        tls.requests(),
        0,
        "no request crossed an untrusted handshake"
    );
}

#[test]
fn a_proxy_refusing_the_credentials_fails_the_task_at_once_naming_the_proxy() {
    let tls = SelfSignedTls::start(b"secret payload");
    let proxy = RecordingProxy::start(Some("Basic dTpw"));
    let env = Env::new();
    let task = env.add(&[&tls.url("/x.bin")], &[]);
    run_with(&env, &[("https_proxy", &proxy.url(Some("u:wrong")))]);

    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains("through the proxy http://127.0.0.1:"),
        "{error}"
    );
    assert!(error.contains("proxy authorization required"), "{error}");
    assert!(
        !error.contains("wrong"),
        "no credentials in messages: {error}"
    );
    let seen = proxy.seen();
    assert!(seen.iter().all(|s| s.method == "CONNECT"));
    assert_eq!(
        seen.len(),
        1,
        "refused credentials are not tried again: {error}"
    );
}

#[test]
fn no_proxy_hosts_connect_directly() {
    let data = sample_bytes(72, 50_000);
    let server = Server::start(vec![("/b.bin", Route::file(data.clone()))]);
    let proxy = RecordingProxy::start(None);
    let env = Env::new();
    let task = env.add(&[&server.url("/b.bin")], &[]);
    run_with(
        &env,
        &[
            ("ALL_PROXY", &proxy.url(None)),
            ("no_proxy", "localhost, 127.0.0.1"),
        ],
    );

    assert_eq!(env.status(task), "completed", "{}", error_of(&env, task));
    assert_eq!(env.file("b.bin"), data);
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
}

#[test]
fn a_socks_proxy_fails_the_task_with_one_line_and_never_connects_directly() {
    let server = Server::start(vec![("/c.bin", Route::file(sample_bytes(73, 1_000)))]);
    let env = Env::new();
    let task = env.add(&[&server.url("/c.bin")], &[]);
    run_with(&env, &[("ALL_PROXY", "socks5://user:secret@127.0.0.1:1")]);

    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains(
            "proxy socks5://127.0.0.1:1 (from ALL_PROXY/HTTP_PROXY/HTTPS_PROXY) is not supported"
        ),
        "{error}"
    );
    assert!(
        !error.contains('\n') && !error.contains("secret"),
        "{error}"
    );
    assert_eq!(env.status_json(task)["retries"], 0, "not retried");
    assert!(server.server.requests().is_empty(), "no direct connection");
}

#[test]
fn an_unreachable_proxy_is_named_with_the_cause_and_never_bypassed() {
    let tls = SelfSignedTls::start(b"secret payload");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = Env::new();
    let task = env.add(&[&tls.url("/x.bin")], &[]);
    run_with(&env, &[("HTTPS_PROXY", &proxy)]);

    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains(&format!("through the proxy {proxy}")),
        "{error}"
    );
    assert!(error.contains("refused"), "the cause is kept: {error}");
    assert_eq!(tls.requests(), 0);
}

#[test]
fn an_https_proxy_is_spoken_to_over_tls_and_an_untrusted_one_is_refused_naming_it() {
    let data = sample_bytes(74, 10_000);
    let server = Server::start(vec![("/a.bin", Route::file(data))]);
    // A TLS listener with a certificate no root vouches for, named as the proxy.
    let tls_proxy = SelfSignedTls::start(b"not a proxy");
    let proxy = tls_proxy.url("");
    let env = Env::new();
    let task = env.add(&[&server.url("/a.bin")], &[]);
    run_with(&env, &[("http_proxy", &proxy)]);

    assert_eq!(env.status(task), "failed");
    let error = error_of(&env, task);
    assert!(
        error.contains(&format!("through the proxy {proxy}")),
        "the proxy is named: {error}"
    );
    assert!(
        error.contains("TLS certificate not trusted for 127.0.0.1"),
        "TLS ran with the proxy itself: {error}"
    );
    assert!(!error.contains('\n'), "{error}");
    assert_eq!(
        tls_proxy.requests(),
        0,
        "no request after a refused handshake"
    );
    assert!(server.server.requests().is_empty(), "no direct connection");
}

#[test]
fn a_webhook_goes_through_the_environments_proxy_like_the_downloads() {
    let data = sample_bytes(73, 10_000);
    let server = Server::start(vec![("/a.bin", Route::file(data))]);
    let receiver = crate::support::receiver::Receiver::start();
    // base64("bob:pw")
    let proxy = RecordingProxy::start(Some("Basic Ym9iOnB3"));
    let env = Env::with_config(&format!(
        "[notify]\nwebhook_url = \"{}\"\non_completed = true\n",
        receiver.url
    ));
    let task = env.add(&[&server.url("/a.bin")], &[]);
    run_with(&env, &[("HTTP_PROXY", &proxy.url(Some("bob:pw")))]);

    assert_eq!(env.status(task), "completed", "{}", error_of(&env, task));
    assert_eq!(receiver.count("completed"), 1, "{:?}", receiver.received());
    let posts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{:?}", proxy.seen());
    assert_eq!(posts[0].target, receiver.url, "absolute form");
    assert_eq!(
        posts[0].proxy_authorization.as_deref(),
        Some("Basic Ym9iOnB3")
    );
    assert_eq!(posts[0].user_agent.as_deref(), Some(USER_AGENT));
}
