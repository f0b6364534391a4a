//! Sends the notification outbox: a webhook POST and/or a command with the JSON on stdin, each
//! with a timeout, retried on later rounds, recorded as failed after `max_attempts`. Runs in its
//! own tokio task, so a dead webhook never slows downloads.

use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use tokio::io::AsyncWriteExt;

use crate::config::NotifyConfig;
use crate::model::InstanceId;
use crate::store::{Notification, StoreActor};
use crate::text::redact_url;

/// How long a claimed notification stays with its sender before another may take it.
const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// Notifications claimed per round.
const BATCH: usize = 32;

/// Sends notifications for one instance.
#[derive(Clone)]
pub struct Notifier {
    config: NotifyConfig,
    store: StoreActor,
    me: InstanceId,
    client: reqwest::Client,
}

impl Notifier {
    /// `None` when `[notify]` has neither a webhook nor a command.
    pub fn new(config: &NotifyConfig, store: StoreActor, me: InstanceId) -> Option<Notifier> {
        if config.webhook_url.is_none() && config.command.is_none() {
            return None;
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        Some(Notifier {
            config: config.clone(),
            store,
            me,
            client,
        })
    }

    /// Claims and sends what is pending; returns how many were claimed.
    pub async fn round(&self) -> usize {
        let (me, now) = (self.me.clone(), Utc::now());
        let claimed = match self
            .store
            .call(move |s| s.claim_notifications(&me, CLAIM_LEASE, BATCH, now))
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!("cannot read the notification outbox: {e}");
                return 0;
            }
        };
        let count = claimed.len();
        for notification in claimed {
            let result = self.send(&notification).await;
            let max = self.config.max_attempts;
            match &result {
                Ok(()) => tracing::info!(
                    "notified {} (notification {})",
                    notification.kind,
                    notification.id
                ),
                Err(e) if notification.tries + 1 >= max => {
                    tracing::error!(
                        "notification {} ({}) failed for good: {e}",
                        notification.id,
                        notification.kind
                    )
                }
                Err(e) => {
                    tracing::warn!("notification {} failed, will retry: {e}", notification.id)
                }
            }
            let id = notification.id;
            let _ = self
                .store
                .call(move |s| s.notification_sent(id, result, max, Utc::now()))
                .await;
        }
        count
    }

    async fn send(&self, n: &Notification) -> Result<(), String> {
        if let Some(url) = &self.config.webhook_url {
            let response = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(n.payload.clone())
                .send()
                .await
                .map_err(|e| format!("webhook {}: {}", redact_url(url), e.without_url()))?;
            if !response.status().is_success() {
                return Err(format!(
                    "webhook {} answered {}",
                    redact_url(url),
                    response.status()
                ));
            }
        }
        if let Some(argv) = &self.config.command {
            let timeout = Duration::from_secs(self.config.timeout_secs);
            tokio::time::timeout(timeout, run_command(argv, &n.payload))
                .await
                .map_err(|_| format!("command {:?} timed out", argv[0]))??;
        }
        Ok(())
    }
}

async fn run_command(argv: &[String], payload: &str) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program:?}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(payload.as_bytes())
            .await
            .map_err(|e| format!("{program:?} stdin: {e}"))?;
        stdin
            .write_all(b"\n")
            .await
            .map_err(|e| format!("{program:?} stdin: {e}"))?;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("{program:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program:?} exited with {status}"))
    }
}
