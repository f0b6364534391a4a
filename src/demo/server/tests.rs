//! The sample server driven by reqwest over real loopback sockets.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE,
    LAST_MODIFIED, LOCATION, RANGE, RETRY_AFTER,
};
use reqwest::{Client, Response, StatusCode};
use sha2::{Digest, Sha256};

use super::*;

const LEN: usize = 200_000;

fn client() -> Client {
    Client::builder().no_proxy().build().expect("client")
}

async fn server_with(route: Route) -> SampleServer {
    SampleServer::start(vec![("/f.bin".to_owned(), route)])
        .await
        .expect("server starts")
}

fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

fn strong_tag(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(body)[..8]))
}

/// Reads a body chunk by chunk; returns what arrived and whether the stream ended in an error.
async fn read_body(response: Response) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => got.extend_from_slice(&bytes),
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

async fn get(server: &SampleServer, headers: &[(&str, &str)]) -> Response {
    let mut request = client().get(server.url("/f.bin"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("response")
}

#[tokio::test]
async fn full_get_has_body_length_and_validators() {
    let body = sample_bytes(1, LEN);
    let server = server_with(Route::file(body.clone())).await;
    let response = get(&server, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, ETAG), Some(strong_tag(&body)));
    assert_eq!(header(&response, ACCEPT_RANGES).as_deref(), Some("bytes"));
    assert_eq!(header(&response, CONTENT_LENGTH), Some(LEN.to_string()));
    assert_eq!(
        header(&response, LAST_MODIFIED).as_deref(),
        Some("Mon, 01 Jan 2024 00:00:00 GMT")
    );
    let (got, errored) = read_body(response).await;
    assert!(!errored);
    assert_eq!(got, body);
    assert_eq!(server.bytes_sent("/f.bin"), LEN as u64);
    let records = server.requests();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].method.as_str(), records[0].status),
        ("GET", 200)
    );
}

#[tokio::test]
async fn range_gets_206_with_exact_content_range_or_416_past_the_end() {
    let body = sample_bytes(2, LEN);
    let server = server_with(Route::file(body.clone())).await;

    let response = get(&server, &[("Range", "bytes=1000-1999")]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let expected = format!("bytes 1000-1999/{LEN}");
    assert_eq!(header(&response, CONTENT_RANGE), Some(expected));
    assert_eq!(response.bytes().await.expect("body"), body[1000..2000]);

    let response = get(&server, &[("Range", "bytes=150000-")]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let expected = format!("bytes 150000-{}/{LEN}", LEN - 1);
    assert_eq!(header(&response, CONTENT_RANGE), Some(expected));
    assert_eq!(response.bytes().await.expect("body"), body[150_000..]);

    let past = format!("bytes={LEN}-");
    let response = get(&server, &[("Range", &past)]).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header(&response, CONTENT_RANGE),
        Some(format!("bytes */{LEN}"))
    );
    assert_eq!(
        server.requests()[0].range.as_deref(),
        Some("bytes=1000-1999")
    );
}

#[tokio::test]
async fn if_range_must_match_the_strong_etag_or_last_modified() {
    let body = sample_bytes(3, LEN);
    let server = server_with(Route::file(body.clone())).await;
    let tag = strong_tag(&body);
    let range = ("Range", "bytes=100-");

    let response = get(&server, &[range, ("If-Range", "\"stale\"")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.expect("body"), body);

    let response = get(&server, &[range, ("If-Range", &tag)]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let date = "Mon, 01 Jan 2024 00:00:00 GMT";
    let response = get(&server, &[range, ("If-Range", date)]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(server.requests()[1].if_range, Some(tag));
}

#[tokio::test]
async fn weak_etag_never_satisfies_if_range() {
    let body = sample_bytes(4, LEN);
    let route = Route::file(body.clone())
        .etag(EtagMode::Weak)
        .last_modified(false);
    let server = server_with(route).await;
    let weak = format!("W/{}", strong_tag(&body));
    let response = get(&server, &[]).await;
    assert_eq!(header(&response, ETAG), Some(weak.clone()));
    assert_eq!(header(&response, LAST_MODIFIED), None);
    let response = get(
        &server,
        &[(RANGE.as_str(), "bytes=10-"), (IF_RANGE.as_str(), &weak)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn misbehaving_range_modes() {
    let body = sample_bytes(5, LEN);
    let off = Route::file(body.clone()).ranges(RangeMode::Off);
    let wrong = Route::file(body.clone()).ranges(RangeMode::WrongStart);
    let whole = Route::file(body.clone()).ranges(RangeMode::WholeAs206);
    let server = SampleServer::start(vec![
        ("/off".to_owned(), off),
        ("/wrong".to_owned(), wrong),
        ("/whole".to_owned(), whole),
    ])
    .await
    .expect("server starts");
    let ranged = |path: &str| {
        client()
            .get(server.url(path))
            .header("Range", "bytes=500-")
            .send()
    };

    let response = ranged("/off").await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, ACCEPT_RANGES), None);
    assert_eq!(response.bytes().await.expect("body"), body);

    let response = ranged("/wrong").await.expect("response");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let expected = format!("bytes 499-{}/{LEN}", LEN - 1);
    assert_eq!(header(&response, CONTENT_RANGE), Some(expected));
    assert_eq!(response.bytes().await.expect("body"), body[499..]);

    let response = ranged("/whole").await.expect("response");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let expected = format!("bytes 0-{}/{LEN}", LEN - 1);
    assert_eq!(header(&response, CONTENT_RANGE), Some(expected));
    assert_eq!(response.bytes().await.expect("body"), body);
}

#[tokio::test]
async fn drop_after_closes_mid_body_and_a_resume_completes() {
    let body = sample_bytes(6, LEN);
    let server = server_with(Route::file(body.clone()).drop_after(70_000, 1)).await;

    let response = get(&server, &[]).await;
    assert_eq!(header(&response, CONTENT_LENGTH), Some(LEN.to_string()));
    let (got, errored) = read_body(response).await;
    assert!(errored, "an abrupt close is an error for the client");
    assert_eq!(got.len(), 70_000);
    assert_eq!(got, body[..70_000]);
    assert_eq!(server.bytes_sent("/f.bin"), 70_000);

    let tag = strong_tag(&body);
    let response = get(&server, &[("Range", "bytes=70000-"), ("If-Range", &tag)]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let (rest, errored) = read_body(response).await;
    assert!(!errored, "only the first response drops");
    assert_eq!([got, rest].concat(), body);
    assert_eq!(server.bytes_sent("/f.bin"), LEN as u64);
}

#[tokio::test]
async fn stall_hangs_until_shutdown() {
    let body = sample_bytes(7, LEN);
    let server = server_with(Route::file(body).stall_after(1000, 1)).await;
    let response = get(&server, &[]).await;
    let mut stream = response.bytes_stream();
    let mut got = 0;
    while got < 1000 {
        got += stream.next().await.expect("chunk").expect("bytes").len();
    }
    assert_eq!(got, 1000);
    let more = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
    assert!(more.is_err(), "a stalled body sends nothing more");
    assert_eq!(server.bytes_sent("/f.bin"), 1000);

    server.shutdown();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("shutdown ends the stall");
    assert!(matches!(end, Some(Err(_))), "the stall ends in an error");
}

#[tokio::test]
async fn statuses_are_used_one_per_request_then_the_file() {
    let body = sample_bytes(8, 1000);
    let route = Route::file(body.clone()).statuses(vec![(503, Some(1)), (503, None)]);
    let server = server_with(route).await;

    let first = get(&server, &[]).await;
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&first, RETRY_AFTER).as_deref(), Some("1"));
    let second = get(&server, &[]).await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&second, RETRY_AFTER), None);
    let third = get(&server, &[]).await;
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(third.bytes().await.expect("body"), body);
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
}

#[tokio::test]
async fn statuses_are_counted_across_concurrent_clients() {
    let route = Route::file(sample_bytes(9, 1000)).statuses(vec![(500, None); 5]);
    let server = server_with(route).await;
    let requests = (0..10).map(|_| get(&server, &[]));
    let responses = futures_util::future::join_all(requests).await;
    let errors = responses
        .iter()
        .filter(|r| r.status() == StatusCode::INTERNAL_SERVER_ERROR)
        .count();
    assert_eq!(errors, 5);
    assert_eq!(server.requests().len(), 10);
}

#[tokio::test]
async fn mutate_after_changes_bytes_etag_and_last_modified() {
    let body = sample_bytes(10, LEN);
    let server = server_with(Route::file(body.clone()).mutate_after(1)).await;

    let first = get(&server, &[]).await;
    let (tag1, date1) = (header(&first, ETAG), header(&first, LAST_MODIFIED));
    assert_eq!(first.bytes().await.expect("body"), body);

    let second = get(&server, &[]).await;
    let (tag2, date2) = (header(&second, ETAG), header(&second, LAST_MODIFIED));
    let changed = second.bytes().await.expect("body");
    assert_ne!(tag1, tag2);
    assert_ne!(date1, date2);
    assert_eq!(changed.len(), LEN);
    assert!(changed.iter().zip(body.iter()).all(|(a, b)| a != b));
    assert_eq!(server.current_body("/f.bin"), Some(changed.clone()));
    assert_eq!(tag2, Some(strong_tag(&changed)));

    let old = tag1.expect("etag");
    let response = get(&server, &[("Range", "bytes=10-"), ("If-Range", &old)]).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a stale validator gets the new file"
    );
}

#[tokio::test]
async fn unknown_paths_and_status_routes() {
    let server = SampleServer::start(vec![("/gone".to_owned(), Route::status(410))])
        .await
        .expect("server starts");
    let response = client()
        .get(server.url("/nope"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = client()
        .get(server.url("gone"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(server.current_body("/nope"), None);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/nope", "/gone"]);
}

#[tokio::test]
async fn redirect_sends_302_with_location() {
    let body = sample_bytes(11, 5000);
    let server = SampleServer::start(vec![
        ("/old".to_owned(), Route::redirect("/new.bin")),
        ("/new.bin".to_owned(), Route::file(body.clone())),
    ])
    .await
    .expect("server starts");
    let followed = client()
        .get(server.url("/old"))
        .send()
        .await
        .expect("response");
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(followed.url().path(), "/new.bin");
    assert_eq!(followed.bytes().await.expect("body"), body);

    let manual = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = manual
        .get(server.url("/old"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(header(&response, LOCATION).as_deref(), Some("/new.bin"));
}

#[tokio::test]
async fn head_announces_length_without_a_body() {
    let route =
        Route::file(sample_bytes(12, LEN)).content_disposition("attachment; filename=\"a b.bin\"");
    let server = server_with(route).await;
    let response = client()
        .head(server.url("/f.bin"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, CONTENT_LENGTH), Some(LEN.to_string()));
    assert_eq!(
        header(&response, CONTENT_DISPOSITION).as_deref(),
        Some("attachment; filename=\"a b.bin\"")
    );
    assert!(response.bytes().await.expect("body").is_empty());
    assert_eq!(server.bytes_sent("/f.bin"), 0);
    assert_eq!(server.requests()[0].method, "HEAD");
}

#[tokio::test]
async fn throttle_slows_the_body() {
    let body = sample_bytes(13, 64 * 1024);
    let server = server_with(Route::file(body.clone()).throttle(256 * 1024)).await;
    let started = Instant::now();
    let response = get(&server, &[]).await;
    assert_eq!(response.bytes().await.expect("body"), body);
    // 64 KiB at 256 KiB/s takes 250 ms; only the lower bound is reliable.
    assert!(started.elapsed() >= Duration::from_millis(240));
}

#[test]
fn sample_bytes_is_deterministic() {
    assert_eq!(sample_bytes(42, 1001), sample_bytes(42, 1001));
    assert_ne!(sample_bytes(42, 64), sample_bytes(43, 64));
    assert_eq!(sample_bytes(42, 1001)[..13], sample_bytes(42, 13));
}
