//! Fuzzes what haul makes of a server's response headers: the parsers the engine acts on
//! (`Content-Range`, the 416 total, `Retry-After`, `Content-Disposition`, ETag strength) and the
//! name and text sanitizers their values pass through. Input: header values separated by
//! newlines, in that order. Every parser must return without panicking, and what it returns
//! must hold the invariants the engine relies on.

#![no_main]

use chrono::{DateTime, Utc};
use haul::engine::http::{
    content_disposition_filename, is_strong_etag, parse_content_range, parse_retry_after,
    parse_unsatisfied_range,
};
use haul::names::sanitize_file_name;
use haul::text::{escape_controls, is_unsafe_char};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut values = text.split('\n');
    let mut next = || values.next().unwrap_or_default();

    if let Some(range) = parse_content_range(next()) {
        assert!(range.start <= range.end);
        if let Some(total) = range.total {
            assert!(range.end < total);
        }
    }
    let _ = parse_unsatisfied_range(next());
    let now = DateTime::<Utc>::UNIX_EPOCH;
    let _ = parse_retry_after(next(), now);
    let disposition = next();
    if let Some(raw) = content_disposition_filename(disposition) {
        let name = sanitize_file_name(&raw);
        assert!(!name.is_empty() && name.len() <= 255);
        assert!(!name.contains('/') && !name.contains('\\') && !name.starts_with('.'));
        assert!(!name.chars().any(is_unsafe_char));
        assert_eq!(sanitize_file_name(&name), name);
    }
    let etag = next();
    let _ = is_strong_etag(etag);
    let shown = escape_controls(etag);
    assert!(!shown.chars().any(is_unsafe_char));
    assert_eq!(escape_controls(&shown), shown);
});
