//! `haul metrics`: Prometheus text exposition, one shot.

use std::fmt::Write;

use chrono::Utc;

use super::Context;
use crate::error::{EXIT_OK, Error};
use crate::health::Assessor;
use crate::recovery::age_secs;

pub fn run(ctx: &Context) -> Result<u8, Error> {
    let reader = ctx.reader()?;
    let now = Utc::now();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP haul_tasks Tasks by project and status.\n# TYPE haul_tasks gauge"
    );
    for c in reader.status_counts()? {
        let _ = writeln!(
            out,
            "haul_tasks{{project=\"{}\",status=\"{}\"}} {}",
            label(&c.project),
            c.status,
            c.count
        );
    }
    let probe = ctx.probe();
    let mut assessor = Assessor::new(&reader, &probe, &ctx.config, now);
    let (mut stale, mut orphaned, mut oldest) = (0u64, 0u64, 0u64);
    for task in reader.running()? {
        let a = assessor.assess(task)?;
        match a.verdict.label() {
            "stale" => stale += 1,
            "orphaned" => orphaned += 1,
            _ => {}
        }
        oldest = oldest.max(age_secs(a.task.updated_at, now).unwrap_or(0));
    }
    let _ = writeln!(
        out,
        "# HELP haul_stale_tasks Running tasks with no heartbeat for their stale threshold.\n# TYPE haul_stale_tasks gauge\nhaul_stale_tasks {stale}"
    );
    let _ = writeln!(
        out,
        "# HELP haul_orphaned_tasks Running tasks whose owner is dead.\n# TYPE haul_orphaned_tasks gauge\nhaul_orphaned_tasks {orphaned}"
    );
    let _ = writeln!(
        out,
        "# HELP haul_oldest_heartbeat_age_seconds Age of the oldest heartbeat of a running task.\n# TYPE haul_oldest_heartbeat_age_seconds gauge\nhaul_oldest_heartbeat_age_seconds {oldest}"
    );
    let _ = writeln!(
        out,
        "# HELP haul_bytes_downloaded Bytes durably downloaded, by project.\n# TYPE haul_bytes_downloaded gauge"
    );
    for (project, bytes) in reader.bytes_by_project()? {
        let _ = writeln!(
            out,
            "haul_bytes_downloaded{{project=\"{}\"}} {bytes}",
            label(&project)
        );
    }
    print!("{out}");
    Ok(EXIT_OK)
}

/// A Prometheus label value: backslash, quote and newline escaped, controls dropped.
fn label(value: &str) -> String {
    crate::text::escape_controls(value)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}
