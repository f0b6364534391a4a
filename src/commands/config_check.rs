//! `haul config check [FILE]`: validate a config and print the effective settings, with
//! header values masked.

use std::path::Path;

use crate::config::{Config, default_config_path};
use crate::error::{EXIT_OK, Error};

/// What secrets look like in printed settings.
const MASK: &str = "***";

pub fn run(file: Option<&Path>) -> Result<u8, Error> {
    let (config, source) = match file {
        Some(path) => (Config::load(path)?, path.display().to_string()),
        None => match default_config_path().filter(|p| p.exists()) {
            Some(path) => (Config::load(&path)?, path.display().to_string()),
            None => (
                Config::default(),
                "built-in defaults (no config file)".to_owned(),
            ),
        },
    };
    println!("# {source}: ok");
    println!("# effective settings (header values masked)");
    print!("{}", effective_toml(&config)?);
    Ok(EXIT_OK)
}

/// The config as TOML with every project's resolved policy and secrets masked.
pub fn effective_toml(config: &Config) -> Result<String, Error> {
    let mut shown = config.clone();
    for (name, project) in shown.projects.iter_mut() {
        let policy = config.policy(name);
        project.download_dir = Some(policy.download_dir);
        project.max_concurrent = policy.max_concurrent;
        project.stale_after_secs = Some(policy.stale_after.as_secs());
        project.auto_resume = Some(policy.auto_resume);
        project.retry = Some(policy.retry);
        for value in project.headers.values_mut() {
            *value = MASK.to_owned();
        }
    }
    if let Some(url) = &shown.notify.webhook_url {
        shown.notify.webhook_url = Some(crate::text::redact_url(url));
    }
    toml::to_string(&shown).map_err(|e| Error::Other(format!("cannot print the config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_masked_and_projects_resolved() {
        let config = Config::parse(
            "stale_after_secs = 120\n[projects.p]\nexclusive = true\n[projects.p.headers]\nAuthorization = \"Bearer s3cret\"\n",
        )
        .unwrap();
        let text = effective_toml(&config).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("Authorization = \"***\""), "{text}");
        assert!(text.contains("stale_after_secs = 120"), "{text}");
        assert!(
            text.contains("max_concurrent = 1"),
            "exclusive resolves to one: {text}"
        );
    }
}
