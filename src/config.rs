//! The configuration: one TOML file, defaults in one place, unknown keys rejected, per-project
//! overrides resolved into a [`ProjectPolicy`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where downloads go when `add` names no `--dest` and the project has no `download_dir`.
    pub download_dir: PathBuf,
    /// Running tasks across every instance sharing the database.
    pub max_concurrent: u32,
    /// Running tasks per server host across every instance.
    pub per_host_limit: u32,
    /// Files of one task transferred at once (a task of many files).
    pub files_in_parallel: u32,
    /// How often an owner writes its heartbeat and durable progress.
    pub heartbeat_interval_ms: u64,
    /// A running task with no heartbeat for this long is stale.
    pub stale_after_secs: u64,
    /// A transfer with no new byte for this long is aborted and retried by its owner.
    pub stall_timeout_secs: u64,
    /// TCP + TLS connect timeout.
    pub connect_timeout_secs: u64,
    /// Redirects followed per request (http/https only, never https → http).
    pub max_redirects: u32,
    /// Requeue interrupted tasks automatically so any live worker resumes them.
    pub auto_resume: bool,
    /// Refuse a file whose declared size is larger than this.
    pub max_file_size_bytes: u64,
    pub retry: RetryPolicy,
    pub notify: NotifyConfig,
    /// Per-project overrides, `[projects.NAME]`.
    pub projects: BTreeMap<String, ProjectConfig>,
}

/// How failed transfers are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Tries per file, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles each retry, with full jitter.
    pub base_delay_ms: u64,
    /// Longest backoff (and longest `Retry-After` honoured).
    pub max_delay_ms: u64,
}

/// `[notify]`: hooks fired once per transition (whichever instance notices it first sends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// POST a JSON document here for each transition.
    pub webhook_url: Option<String>,
    /// Run this program (argv) with the same JSON on stdin.
    pub command: Option<Vec<String>>,
    pub on_stale: bool,
    pub on_orphan_recovered: bool,
    pub on_failed: bool,
    pub on_completed: bool,
    /// Per try of a webhook or command.
    pub timeout_secs: u64,
    /// Tries per notification before it is recorded as failed.
    pub max_attempts: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhook_url: None,
            command: None,
            on_stale: true,
            on_orphan_recovered: true,
            on_failed: true,
            on_completed: false,
            timeout_secs: 5,
            max_attempts: 3,
        }
    }
}

impl NotifyConfig {
    /// The transitions to record: none when no webhook or command is set.
    pub fn kinds(&self) -> NotifyKinds {
        if self.webhook_url.is_none() && self.command.is_none() {
            return NotifyKinds::default();
        }
        NotifyKinds {
            stale: self.on_stale,
            orphan_recovered: self.on_orphan_recovered,
            failed: self.on_failed,
            completed: self.on_completed,
        }
    }
}

/// Which transitions produce a notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyKinds {
    pub stale: bool,
    pub orphan_recovered: bool,
    pub failed: bool,
    pub completed: bool,
}

/// `[projects.NAME]`: every key is optional and falls back to the top level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectConfig {
    pub download_dir: Option<PathBuf>,
    pub max_concurrent: Option<u32>,
    /// One active task at a time in this project; a second start is a collision.
    pub exclusive: bool,
    pub stale_after_secs: Option<u64>,
    pub auto_resume: Option<bool>,
    pub retry: Option<RetryPolicy>,
    /// Extra request headers (e.g. a token). Sent with this project's requests; never logged
    /// or shown (`haul config check` masks the values).
    pub headers: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            download_dir: PathBuf::from("."),
            max_concurrent: 8,
            per_host_limit: 8,
            files_in_parallel: 8,
            heartbeat_interval_ms: 1000,
            stale_after_secs: 300,
            stall_timeout_secs: 30,
            connect_timeout_secs: 10,
            max_redirects: 5,
            auto_resume: true,
            max_file_size_bytes: 1 << 40,
            retry: RetryPolicy::default(),
            notify: NotifyConfig::default(),
            projects: BTreeMap::new(),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

/// The settings that apply to one project, overrides resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectPolicy {
    pub download_dir: PathBuf,
    pub max_concurrent: Option<u32>,
    pub exclusive: bool,
    pub stale_after: Duration,
    pub auto_resume: bool,
    pub retry: RetryPolicy,
    pub headers: BTreeMap<String, String>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: format!("cannot read config: {e}"),
        })?;
        Config::parse(&text).map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })
    }

    /// Reads `path` when given; else the default file when it exists; else the defaults.
    pub fn load_or_default(explicit: Option<&Path>) -> Result<Config, Error> {
        match explicit {
            Some(path) => Config::load(path),
            None => match default_config_path() {
                Some(path) if path.exists() => Config::load(&path),
                _ => Ok(Config::default()),
            },
        }
    }

    /// Parses TOML text; the error is one line with `line:column` and the key.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_concurrent", self.max_concurrent as u64),
            ("per_host_limit", self.per_host_limit as u64),
            ("files_in_parallel", self.files_in_parallel as u64),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("stale_after_secs", self.stale_after_secs),
            ("stall_timeout_secs", self.stall_timeout_secs),
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("max_file_size_bytes", self.max_file_size_bytes),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("`{key}` must be greater than 0"));
            }
        }
        if self.stale_after_secs.saturating_mul(1000) <= self.heartbeat_interval_ms {
            return Err(format!(
                "`stale_after_secs` ({}) must be longer than `heartbeat_interval_ms` ({} ms)",
                self.stale_after_secs, self.heartbeat_interval_ms
            ));
        }
        self.retry.validate("retry")?;
        if let Some(url) = &self.notify.webhook_url {
            let ok = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(format!(
                    "`notify.webhook_url` {url:?} is not an http(s) URL"
                ));
            }
        }
        if self.notify.command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err("`notify.command` must name a program: [\"program\", \"arg\", ...]".into());
        }
        if self.notify.timeout_secs == 0 || self.notify.max_attempts == 0 {
            return Err(
                "`notify.timeout_secs` and `notify.max_attempts` must be greater than 0".into(),
            );
        }
        for (name, project) in &self.projects {
            if project.max_concurrent == Some(0) {
                return Err(format!(
                    "`projects.{name}.max_concurrent` must be greater than 0"
                ));
            }
            if project.stale_after_secs == Some(0) {
                return Err(format!(
                    "`projects.{name}.stale_after_secs` must be greater than 0"
                ));
            }
            if let Some(retry) = &project.retry {
                retry.validate(&format!("projects.{name}.retry"))?;
            }
            for (header, value) in &project.headers {
                let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if header.is_empty() || !header.chars().all(token) {
                    return Err(format!(
                        "`projects.{name}.headers`: {header:?} is not a header name"
                    ));
                }
                if value.chars().any(|c| c.is_control() && c != '\t') {
                    return Err(format!(
                        "`projects.{name}.headers.{header}`: the value holds control characters"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The effective settings of `project`.
    pub fn policy(&self, project: &str) -> ProjectPolicy {
        let over = self.projects.get(project).cloned().unwrap_or_default();
        let max_concurrent = if over.exclusive {
            Some(1)
        } else {
            over.max_concurrent
        };
        ProjectPolicy {
            download_dir: over
                .download_dir
                .unwrap_or_else(|| self.download_dir.clone()),
            max_concurrent,
            exclusive: over.exclusive,
            stale_after: Duration::from_secs(
                over.stale_after_secs.unwrap_or(self.stale_after_secs),
            ),
            auto_resume: over.auto_resume.unwrap_or(self.auto_resume),
            retry: over.retry.unwrap_or_else(|| self.retry.clone()),
            headers: over.headers,
        }
    }

    /// The stale threshold of `project` (its policy's, without building the whole policy).
    pub fn stale_after(&self, project: &str) -> Duration {
        let over = self.projects.get(project).and_then(|p| p.stale_after_secs);
        Duration::from_secs(over.unwrap_or(self.stale_after_secs))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
}

impl RetryPolicy {
    fn validate(&self, at: &str) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err(format!("`{at}.max_attempts` must be at least 1"));
        }
        if self.base_delay_ms > self.max_delay_ms {
            return Err(format!(
                "`{at}.base_delay_ms` ({}) must not exceed `{at}.max_delay_ms` ({})",
                self.base_delay_ms, self.max_delay_ms
            ));
        }
        Ok(())
    }
}

/// `$XDG_CONFIG_HOME/haul/config.toml` (or the platform's equivalent).
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("haul").join("config.toml"))
}

fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_equals_the_defaults() {
        let text = include_str!("../config.example.toml");
        let parsed = Config::parse(text).expect("config.example.toml parses");
        // The example shows one project section; everything else must be the defaults.
        let expected = Config {
            projects: parsed.projects.clone(),
            ..Config::default()
        };
        assert_eq!(parsed, expected);
        assert!(parsed.projects.contains_key("archive"));
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let err = Config::parse("max_concurrent = 2\nmax_concurent = 3\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("max_concurent"), "{err}");
    }

    #[test]
    fn impossible_values_are_refused() {
        let err = Config::parse("max_concurrent = 0\n").unwrap_err();
        assert!(err.contains("max_concurrent"), "{err}");
        let err = Config::parse("[retry]\nbase_delay_ms = 10\nmax_delay_ms = 1\n").unwrap_err();
        assert!(err.contains("retry.base_delay_ms"), "{err}");
        let err = Config::parse("stale_after_secs = -1\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn projects_override_the_top_level() {
        let config = Config::parse(
            "stale_after_secs = 300\n[projects.fast]\nstale_after_secs = 5\nexclusive = true\n",
        )
        .unwrap();
        assert_eq!(config.stale_after("fast"), Duration::from_secs(5));
        assert_eq!(config.stale_after("other"), Duration::from_secs(300));
        for project in ["fast", "other"] {
            assert_eq!(
                config.policy(project).stale_after,
                config.stale_after(project)
            );
        }
        assert_eq!(config.policy("fast").max_concurrent, Some(1));
    }
}
