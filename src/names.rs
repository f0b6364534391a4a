//! File names from servers and URLs, made safe: one path component, no control or bidi
//! characters, no dotfile, no reserved name, at most 255 bytes, confined to the destination.

use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

use crate::text::is_unsafe_char;

/// The longest file name most file systems accept, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// Room kept for a ` (99)` collision suffix and the `.part` extension.
const SUFFIX_ROOM: usize = 16;
/// Used when nothing usable is left of a name.
pub const FALLBACK_NAME: &str = "download";

const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Turns an untrusted name into a safe single file name. Idempotent.
pub fn sanitize_file_name(raw: &str) -> String {
    let visible: String = raw.chars().filter(|c| !is_unsafe_char(*c)).collect();
    let normalized: String = visible.nfc().collect();
    // Only the last path component counts, whichever separator the server used.
    let last = normalized.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last
        .chars()
        .map(|c| if c == ':' { '_' } else { c })
        .collect();
    name = name.trim_matches(|c: char| c == ' ' || c == '.').to_owned();
    if name.is_empty() {
        return FALLBACK_NAME.to_owned();
    }
    let stem = name.split('.').next().unwrap_or_default();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        name = format!("_{name}");
    }
    truncate_on_char_boundary(&mut name, MAX_NAME_BYTES - SUFFIX_ROOM);
    let name = name.trim_end_matches([' ', '.']).to_owned();
    if name.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        name
    }
}

fn truncate_on_char_boundary(s: &mut String, max_bytes: usize) {
    if s.len() <= max_bytes {
        return;
    }
    let mut cut = max_bytes;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
}

/// The name a URL's last path segment suggests, sanitized.
pub fn name_from_url(url: &url::Url) -> String {
    let segment = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default();
    let decoded = percent_decode(segment);
    sanitize_file_name(&decoded)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `name` with ` (n)` before its extension: `a.tar.gz` → `a (1).tar.gz`.
pub fn with_counter(name: &str, n: u32) -> String {
    match name.find('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// `dir/name`, checked to stay inside `dir` (the name must already be sanitized).
pub fn confined_join(dir: &Path, name: &str) -> Option<PathBuf> {
    let candidate = dir.join(name);
    (candidate.parent() == Some(dir) && sanitize_file_name(name) == name).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_names_become_plain_names() {
        assert_eq!(sanitize_file_name("../../.bashrc"), "bashrc");
        assert_eq!(sanitize_file_name("/etc/x"), "x");
        assert_eq!(sanitize_file_name("a\\..\\b"), "b");
        assert_eq!(sanitize_file_name("C:x"), "C_x");
        assert_eq!(sanitize_file_name(".wgetrc"), "wgetrc");
        assert_eq!(sanitize_file_name("CON"), "_CON");
        assert_eq!(sanitize_file_name("\x1b]0;pwn\x07.zip"), "]0;pwn.zip");
        assert_eq!(sanitize_file_name("\u{202e}txt.exe"), "txt.exe");
        assert_eq!(sanitize_file_name(".."), FALLBACK_NAME);
        assert_eq!(sanitize_file_name(""), FALLBACK_NAME);
        assert!(sanitize_file_name(&"é".repeat(300)).len() <= MAX_NAME_BYTES);
    }

    #[test]
    fn url_names_are_decoded_and_sanitized() {
        let url = url::Url::parse("http://h/dir/my%20file%2F..%2Fx.pdf?q=1").unwrap();
        assert_eq!(name_from_url(&url), "x.pdf");
        let url = url::Url::parse("http://h/").unwrap();
        assert_eq!(name_from_url(&url), FALLBACK_NAME);
    }

    #[test]
    fn counters_go_before_the_extension() {
        assert_eq!(with_counter("a.tar.gz", 1), "a (1).tar.gz");
        assert_eq!(with_counter("README", 2), "README (2)");
    }

    /// 100 bytes of one letter, to push names past the length cap.
    const LONG_RUN: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

    proptest! {
        #[test]
        fn sanitized_names_stay_in_the_directory(raw in any::<String>()) {
            let name = sanitize_file_name(&raw);
            prop_assert!(!name.is_empty());
            prop_assert!(name.len() <= MAX_NAME_BYTES);
            prop_assert!(!name.contains('/') && !name.contains('\\'));
            prop_assert!(!name.starts_with('.'));
            prop_assert!(!name.chars().any(is_unsafe_char));
            prop_assert_eq!(sanitize_file_name(&name), name.clone());
            let dir = Path::new("/downloads");
            prop_assert!(confined_join(dir, &name).is_some());
        }

        /// Names made only of what attacks use: separators, dots, drive colons, reserved
        /// names, escapes, bidi overrides and long runs (`any::<String>()` rarely hits them).
        #[test]
        fn hostile_alphabet_names_stay_in_the_directory(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("/"), Just("\\"), Just("."), Just(".."), Just(":"), Just(" "),
                    Just("\u{1b}]0;"), Just("\u{7}"), Just("\u{9b}"), Just("\u{202e}"),
                    Just("\u{2066}"), Just("CON"), Just("nul"), Just("a"), Just("é"),
                    Just("\u{301}"), Just(LONG_RUN),
                ],
                0..24,
            )
        ) {
            let raw: String = parts.concat();
            let name = sanitize_file_name(&raw);
            prop_assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES);
            prop_assert!(!name.contains(['/', '\\', ':']));
            prop_assert!(!name.starts_with('.') && !name.ends_with(['.', ' ']));
            prop_assert!(!name.chars().any(is_unsafe_char));
            let stem = name.split('.').next().unwrap_or_default();
            prop_assert!(!RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)));
            prop_assert_eq!(sanitize_file_name(&name), name.clone());
            let dir = Path::new("/downloads");
            let joined = confined_join(dir, &name);
            prop_assert!(joined.as_ref().is_some_and(|p| p.parent() == Some(dir)));
        }
    }
}
