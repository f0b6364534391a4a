//! Pure parsers for the response headers the engine acts on: Content-Range, Retry-After,
//! Content-Disposition and entity validators. No I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A parsed `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

/// Parses a satisfied byte range; `None` for anything malformed or unsatisfied (`*/T`).
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.trim().split_once('-')?;
    let start: u64 = parse_digits(start)?;
    let end: u64 = parse_digits(end)?;
    let total = match total.trim() {
        "*" => None,
        t => Some(parse_digits(t)?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(ContentRange { start, end, total })
}

/// The total of an unsatisfied range (`bytes */TOTAL`, sent with 416).
pub fn parse_unsatisfied_range(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    parse_digits(rest.strip_prefix("*/")?.trim())
}

fn parse_digits(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `Retry-After` as delay-seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Some(secs) = parse_digits(value) {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        when.with_timezone(&Utc)
            .signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The file name a `Content-Disposition` value suggests (unsanitized; sanitize before use).
/// `filename*=UTF-8''…` wins over `filename=`.
pub fn content_disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    for param in split_params(value).into_iter().skip(1) {
        let Some((key, val)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let val = val.trim();
        if key == "filename*" {
            let (charset, rest) = val.split_once('\'')?;
            let (_lang, encoded) = rest.split_once('\'')?;
            if charset.eq_ignore_ascii_case("utf-8") {
                return percent_decode_utf8(encoded);
            }
        } else if key == "filename" {
            plain = Some(unquote(val));
        }
    }
    plain.filter(|p| !p.is_empty())
}

fn split_params(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                current.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ';' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

fn unquote(val: &str) -> String {
    let Some(inner) = val.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return val.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn percent_decode_utf8(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// True for an ETag usable with `If-Range` (strong: not `W/`, quoted).
pub fn is_strong_etag(etag: &str) -> bool {
    let etag = etag.trim();
    !etag.starts_with("W/") && etag.len() >= 2 && etag.starts_with('"') && etag.ends_with('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some(ContentRange {
                start: 100,
                end: 199,
                total: Some(1000)
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/*"),
            Some(ContentRange {
                start: 0,
                end: 9,
                total: None
            })
        );
        assert_eq!(parse_content_range("bytes 10-5/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes -1-5/10"), None);
        assert_eq!(parse_unsatisfied_range("bytes */1000"), Some(1000));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn content_disposition_names() {
        assert_eq!(
            content_disposition_filename("attachment; filename=\"a b.pdf\"").as_deref(),
            Some("a b.pdf")
        );
        assert_eq!(
            content_disposition_filename("attachment; filename=x.bin; filename*=UTF-8''%C3%A9.bin")
                .as_deref(),
            Some("é.bin")
        );
        assert_eq!(
            content_disposition_filename("attachment; filename=\"a;b\\\".txt\"").as_deref(),
            Some("a;b\".txt")
        );
        assert_eq!(content_disposition_filename("inline"), None);
    }

    #[test]
    fn strong_and_weak_etags() {
        assert!(is_strong_etag("\"abc\""));
        assert!(!is_strong_etag("W/\"abc\""));
        assert!(!is_strong_etag("abc"));
    }

    proptest! {
        #[test]
        fn parsed_ranges_are_consistent(s in "\\PC*") {
            if let Some(r) = parse_content_range(&s) {
                prop_assert!(r.start <= r.end);
                if let Some(t) = r.total { prop_assert!(r.end < t); }
            }
        }

        #[test]
        fn formatted_ranges_round_trip(start in 0u64..1 << 50, len in 1u64..1 << 20, extra in 0u64..1000) {
            let end = start + len - 1;
            let total = end + 1 + extra;
            let parsed = parse_content_range(&format!("bytes {start}-{end}/{total}"));
            prop_assert_eq!(parsed, Some(ContentRange { start, end, total: Some(total) }));
        }
    }
}
