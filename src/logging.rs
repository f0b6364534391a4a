//! tracing setup: to stderr when headless, to a file while the dashboard owns the screen.
//! `-v` raises the level; `HAUL_LOG` (`target=level` directives, comma-separated, as in
//! `RUST_LOG` but without span or field filters) overrides it.

use std::path::PathBuf;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Where log lines go, with the `-v` count.
#[derive(Debug, Clone)]
pub enum Target {
    Stderr(u8),
    File(PathBuf, u8),
}

/// `HAUL_LOG` when it is set and valid, else haul's own lines at the level `-v` asks for; a
/// set but invalid `HAUL_LOG` is reported once logging is up.
fn filter(verbosity: u8) -> (Targets, Option<String>) {
    let level = match verbosity {
        0 => tracing::Level::INFO,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let fallback = || Targets::new().with_target("haul", level);
    match std::env::var("HAUL_LOG") {
        Ok(directives) if directives.trim().is_empty() => (fallback(), None),
        Ok(directives) => match parse_directives(&directives) {
            Some(targets) => (targets, None),
            None => (fallback(), Some(directives)),
        },
        Err(_) => (fallback(), None),
    }
}

/// `target=level` directives, comma-separated (a bare level applies to every target). `None`
/// for anything else: an unknown level, or a target that is not a module path (`Targets`
/// alone would take `[x{y}]` as a target name and silently show nothing).
fn parse_directives(directives: &str) -> Option<Targets> {
    let is_path = |t: &str| {
        t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let paths = directives
        .split(',')
        .map(|d| d.split_once('=').map_or(d, |(target, _)| target).trim())
        .all(is_path);
    if paths { directives.parse().ok() } else { None }
}

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(target: Target) {
    let (verbosity, file) = match target {
        Target::Stderr(v) => (v, None),
        Target::File(path, v) => {
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path);
            match opened {
                Ok(file) => (v, Some(file)),
                Err(_) => return,
            }
        }
    };
    let (targets, ignored) = filter(verbosity);
    let registry = tracing_subscriber::registry().with(targets);
    let _ = match file {
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(colour_on_stderr())
                    .with_target(false),
            )
            .try_init(),
        Some(file) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false)
                    .with_target(false),
            )
            .try_init(),
    };
    if let Some(directives) = ignored {
        tracing::warn!(
            "HAUL_LOG={directives:?} ignored: not target=level directives (e.g. haul=debug)"
        );
    }
}

/// Colour only for a terminal, and never with `NO_COLOR` set.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::parse_directives;
    use tracing::Level;

    #[test]
    fn haul_log_takes_target_level_directives_and_refuses_the_rest() {
        let targets = parse_directives("haul=debug,hyper=warn").unwrap();
        assert!(targets.would_enable("haul::engine", &Level::DEBUG));
        assert!(!targets.would_enable("haul::engine", &Level::TRACE));
        assert!(!targets.would_enable("hyper::proto", &Level::INFO));
        assert!(
            parse_directives("info")
                .unwrap()
                .would_enable("rusqlite", &Level::INFO)
        );
        assert!(parse_directives("haul=loud").is_none());
        assert!(parse_directives("[task{id=1}]=debug").is_none());
        assert!(parse_directives("haul[x]").is_none());
    }
}
