//! tracing setup: to stderr when headless, to a file while the dashboard owns the screen.
//! `-v` raises the level; `HAUL_LOG` (an env-filter directive) overrides it.

use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

/// Where log lines go, with the `-v` count.
#[derive(Debug, Clone)]
pub enum Target {
    Stderr(u8),
    File(PathBuf, u8),
}

fn filter(verbosity: u8) -> EnvFilter {
    let level = match verbosity {
        0 => "haul=info",
        1 => "haul=debug",
        _ => "haul=trace",
    };
    EnvFilter::try_from_env("HAUL_LOG").unwrap_or_else(|_| EnvFilter::new(level))
}

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(target: Target) {
    match target {
        Target::Stderr(v) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter(v))
                .with_writer(std::io::stderr)
                .with_ansi(colour_on_stderr())
                .with_target(false)
                .try_init();
        }
        Target::File(path, v) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path);
            if let Ok(file) = file {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(filter(v))
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false)
                    .with_target(false)
                    .try_init();
            }
        }
    }
}

/// Colour only for a terminal, and never with `NO_COLOR` set.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
