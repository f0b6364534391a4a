//! Sends the notification outbox: a webhook POST and/or a command with the JSON on stdin, each
//! with a timeout, retried on later rounds, recorded as failed after `max_attempts`. Runs in its
//! own tokio task, so a dead webhook never slows downloads.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use tokio::io::AsyncWriteExt;

use super::client::{self, Client};
use crate::config::NotifyConfig;
use crate::model::InstanceId;
use crate::store::{Notification, StoreActor};
use crate::text::{escape_controls, redact_url};

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
    /// The downloads' client: the same TLS roots and proxies.
    client: Client,
}

impl Notifier {
    /// `None` when `[notify]` has neither a webhook nor a command.
    pub fn new(
        config: &NotifyConfig,
        store: StoreActor,
        me: InstanceId,
        client: Client,
    ) -> Option<Notifier> {
        if config.webhook_url.is_none() && config.command.is_none() {
            return None;
        }
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
        let timeout = Duration::from_secs(self.config.timeout_secs);
        if let Some(url) = &self.config.webhook_url {
            let failed = |why: String| format!("webhook {}: {why}", redact_url(url));
            let parsed = url::Url::parse(url).map_err(|e| failed(e.to_string()))?;
            let body = Bytes::from(n.payload.clone());
            let status =
                tokio::time::timeout(timeout, self.client.post(parsed, "application/json", body))
                    .await
                    .map_err(|_| failed(format!("no answer within {} s", timeout.as_secs())))?
                    .map_err(|e| failed(escape_controls(&client::messages(&e).join(": "))))?;
            if !status.is_success() {
                return Err(format!("webhook {} answered {status}", redact_url(url)));
            }
        }
        if let Some(argv) = &self.config.command {
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
