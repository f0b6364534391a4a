//! [`SnapshotSource::build`] on a real database: what it reuses from one build to the next
//! never hides a commit, and what moves without a commit (the clock, an owner's lock) still
//! moves the verdicts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ActiveRow, Snapshot, SnapshotSource, ViewRequest};
use crate::config::Config;
use crate::instance::{LivenessProbe, LocalInstance};
use crate::model::{Lease, Mode, NewFile, NewTask, Source, Status};
use crate::recovery::Verdict;
use crate::store::{Actor, ClaimRules, Outcome, ReadOnlyStore, Store, TaskProgress};

/// A database with a live owner (this test's instance lock) and a snapshot source over it.
struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    owner: Option<LocalInstance>,
    by: Actor,
    source: SnapshotSource,
    start: DateTime<Utc>,
}

impl Rig {
    /// Project `quick` turns stale after 5 s without a heartbeat, the others after the default.
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("haul.db");
        let mut store = Store::open(&db).unwrap();
        // Milliseconds, as the database keeps them.
        let start = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        let owner = LocalInstance::start(&db, Mode::Worker, start).unwrap();
        store.register_instance(&owner.info).unwrap();
        let by = Actor {
            instance: owner.info.id.clone(),
            label: owner.info.label(),
        };
        let config = Config::parse("[projects.quick]\nstale_after_secs = 5\n").unwrap();
        let source = SnapshotSource::new(
            ReadOnlyStore::open(&db).unwrap(),
            LivenessProbe::new(&db, Duration::from_secs(300)),
            Arc::new(config),
            None,
        );
        Rig {
            _dir: dir,
            store,
            owner: Some(owner),
            by,
            source,
            start,
        }
    }

    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.start + chrono::Duration::seconds(secs)
    }

    fn add(&mut self, project: &str, name: &str) {
        let task = NewTask {
            project: project.into(),
            dest_dir: "/d".into(),
            files: vec![NewFile {
                url: format!("http://x/{name}"),
                name: name.into(),
                sha256_expected: None,
            }],
        };
        self.store
            .add_task(&task, "x", self.start, &self.by)
            .unwrap();
    }

    fn claim(&mut self) -> Lease {
        let rules = ClaimRules {
            max_concurrent: 10,
            per_host_limit: 10,
            ..ClaimRules::default()
        };
        let (task, _) = self
            .store
            .claim_next(&rules, &self.by, self.start)
            .unwrap()
            .unwrap();
        task.lease()
    }

    /// One heartbeat of the owner at second `secs`, with file 0 of each lease at `offset`.
    fn tick(&mut self, leases: &[Lease], offset: u64, secs: i64) {
        let progress: Vec<TaskProgress> = leases
            .iter()
            .map(|&lease| TaskProgress {
                lease,
                files: vec![(0, offset)],
                progressed: true,
                milestone: None,
            })
            .collect();
        self.store
            .heartbeat(&self.by, &progress, self.at(secs))
            .unwrap();
    }

    fn build(&mut self, secs: i64) -> Snapshot {
        let now = self.at(secs);
        self.source.build(&ViewRequest::default(), now).unwrap()
    }

    fn version(&self) -> i64 {
        self.source.data_version().unwrap()
    }
}

fn row(s: &Snapshot, name: &str) -> ActiveRow {
    s.active.iter().find(|r| r.name == name).unwrap().clone()
}

#[test]
fn every_commit_shows_in_the_next_build_with_the_owners_last_heartbeat() {
    let mut rig = Rig::new();
    rig.add("p", "a.bin");
    let s = rig.build(0);
    assert_eq!(s.active.len(), 1);
    assert_eq!((row(&s, "a.bin").status, s.log.len()), (Status::Queued, 1));

    let a = rig.claim();
    let s = rig.build(0);
    let r = row(&s, "a.bin");
    assert_eq!((r.status, r.source), (Status::Running, Source::Database));
    assert_eq!(r.owner, Some(rig.by.label.clone()));
    assert_eq!(r.bytes_done, 0);

    // A tick writes no task row, only the owner's beats: they show at once.
    rig.tick(&[a], 100, 1);
    let r = row(&rig.build(1), "a.bin");
    assert_eq!((r.bytes_done, r.heartbeat_at), (100, Some(rig.at(1))));
    rig.tick(&[a], 250, 2);
    let r = row(&rig.build(2), "a.bin");
    assert_eq!((r.bytes_done, r.heartbeat_at), (250, Some(rig.at(2))));

    // A write without an event (the file's size) shows as well.
    rig.store
        .set_file_target(a, 0, "/d/a.bin", Some(1000), None, None, &[], rig.at(2))
        .unwrap();
    assert_eq!(row(&rig.build(2), "a.bin").bytes_total, Some(1000));

    rig.store
        .finish(a, &Outcome::Completed, &[], &[], &rig.by, rig.at(3))
        .unwrap();
    let s = rig.build(3);
    assert!(s.active.is_empty(), "{:?}", s.active);
    assert!(s.log.iter().any(|l| l.text.contains("verified")));
    assert_eq!(s.history.rows[0].status, Status::Completed);
}

#[test]
fn without_a_commit_the_kept_rows_are_judged_again_by_the_clock_and_the_owners_lock() {
    let mut rig = Rig::new();
    rig.add("quick", "q.bin");
    rig.add("p", "p.bin");
    let q = rig.claim();
    let p = rig.claim();
    rig.tick(&[q, p], 10, 0);
    let version = rig.version();

    let s = rig.build(1);
    assert_eq!(row(&s, "q.bin").verdict, Verdict::Healthy);
    assert!(s.attention.is_empty());

    // Only the project with the short threshold turns stale, on rows kept from the last build.
    let s = rig.build(6);
    assert!(
        matches!(
            row(&s, "q.bin").verdict,
            Verdict::Stale { since_secs: 6, .. }
        ),
        "{:?}",
        row(&s, "q.bin").verdict
    );
    assert_eq!(row(&s, "p.bin").verdict, Verdict::Healthy);
    assert_eq!(s.attention.len(), 1);
    assert_eq!(s.attention[0].name, "q.bin");

    // The owner dies: its lock goes, the database does not change, both tasks are orphaned.
    drop(rig.owner.take());
    let s = rig.build(7);
    for name in ["q.bin", "p.bin"] {
        assert!(
            matches!(row(&s, name).verdict, Verdict::Orphaned { .. }),
            "{name}: {:?}",
            row(&s, name).verdict
        );
    }
    assert_eq!(s.attention.len(), 2);
    assert_eq!(rig.version(), version, "nothing was committed meanwhile");
}
