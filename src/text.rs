//! Making untrusted strings safe to store and show: control characters escaped, secrets redacted.

/// True for characters that must never reach a terminal raw: C0, DEL, C1 and bidi controls.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Replaces every unsafe character with a visible escape (`\x1b`, `\u{202e}`), so the text can be
/// printed to a terminal or stored for display. Idempotent on its own output.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(is_unsafe_char) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            let code = c as u32;
            if code <= 0xff {
                out.push_str(&format!("\\x{code:02x}"));
            } else {
                out.push_str(&format!("\\u{{{code:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The URL without credentials and with query values hidden, safe for logs, JSON and the screen.
pub fn redact_url(raw: &str) -> String {
    let shown = match url::Url::parse(raw) {
        Ok(mut url) => {
            if !url.username().is_empty() || url.password().is_some() {
                let _ = url.set_username("***");
                let _ = url.set_password(None);
            }
            if url.query().is_some() {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, _)| (k.into_owned(), "***".to_owned()))
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => raw.split(['?', '#']).next().unwrap_or_default().to_owned(),
    };
    escape_controls(&shown)
}

/// The message a panic carried (`panic!` with a literal or a formatted string).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// Shortens `s` to at most `max` characters, ending with `…` when cut.
pub fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(1);
    let mut out: String = s.chars().take(keep).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_esc_bell_and_bidi() {
        let s = "\x1b]0;pwn\x07\u{202e}txt.exe";
        let e = escape_controls(s);
        assert_eq!(e, "\\x1b]0;pwn\\x07\\u{202e}txt.exe");
        assert!(!e.chars().any(is_unsafe_char));
        assert_eq!(escape_controls(&e), e);
    }

    #[test]
    fn redacts_userinfo_and_query_values() {
        let r = redact_url("https://bob:secret@example.org/a.bin?token=abc&x=1");
        assert!(!r.contains("secret"));
        assert!(!r.contains("abc"));
        assert!(!r.contains("bob"));
        assert!(r.contains("example.org/a.bin"));
        assert!(r.contains("token=***"));
    }

    proptest::proptest! {
        /// Whatever the credentials and query values, none survives redaction.
        #[test]
        fn redaction_hides_every_secret(
            user in "[a-z]{1,8}",
            pass in "[A-Za-z0-9]{6,12}",
            key in "[a-z]{1,6}",
            value in "[A-Za-z0-9]{6,12}",
            path in "[a-z/]{0,12}",
        ) {
            let url = format!("https://{user}:{pass}@example.org/{path}?{key}={value}");
            let shown = redact_url(&url);
            proptest::prop_assert!(!shown.contains(&format!(":{pass}@")), "{}", shown);
            proptest::prop_assert!(!shown.contains(&format!("={value}")), "{}", shown);
            proptest::prop_assert!(!shown.contains(&format!("//{user}:")), "{}", shown);
            proptest::prop_assert!(shown.starts_with("https://***@example.org/"), "{}", shown);
        }
    }

    #[test]
    fn redacts_unparsable_urls_by_cutting_the_query() {
        assert_eq!(redact_url("not a url?token=x"), "not a url");
    }
}
