//! Store benchmarks: heartbeat ticks, claims with two workers, the writes of one-file tasks'
//! lives, and the reads the dashboard and the sweep make on a database of 1,000,000 tasks. A
//! plain binary (`harness = false`); it is never run by `cargo test`.
//!
//! ```sh
//! cargo bench --bench store                          # full run, databases in /tmp (disk)
//! cargo bench --bench store -- --dir /dev/shm/haul-bench-store   # same on tmpfs
//! cargo bench --bench store -- --quick               # tiny sizes, a few seconds
//! cargo bench --bench store -- --help
//! ```
//!
//! Prints a Markdown table of medians; `--tsv FILE` also writes one row per case. The
//! 1,000,000-task database is generated once by a bulk insert and cached (`--cache DIR`,
//! default `/tmp/haul-bench-cache`); every run works on a fresh copy of it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use haul::instance::{LivenessProbe, LocalInstance};
use haul::model::{EventKind, Lease, Mode, NewFile, NewTask, PlacedFile, Status, TaskId};
use haul::store::{Actor, ClaimRules, HistoryFilter, Outcome, PageKey, Store, TaskProgress};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Bump when the generated database changes shape, so a stale cache is not reused
/// (2: schema with the `task_counts` totals; 3: schema 5, with `task_beats` and the owner's
/// running-claims index, analyzed).
const CACHE_VERSION: u32 = 3;
/// Rows of a history page (a 120×40 dashboard shows about 30).
const PAGE: usize = 50;

struct Opts {
    dir: PathBuf,
    cache: PathBuf,
    tsv: Option<PathBuf>,
    label: String,
    quick: bool,
    only: Option<Vec<String>>,
}

impl Opts {
    fn parse() -> Res<Opts> {
        let mut o = Opts {
            dir: PathBuf::from("/tmp/haul-bench-store"),
            cache: PathBuf::from("/tmp/haul-bench-cache"),
            tsv: None,
            label: String::new(),
            quick: false,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match a.as_str() {
                "--dir" => o.dir = PathBuf::from(val("--dir")?),
                "--cache" => o.cache = PathBuf::from(val("--cache")?),
                "--tsv" => o.tsv = Some(PathBuf::from(val("--tsv")?)),
                "--label" => o.label = val("--label")?,
                "--only" => o.only = Some(val("--only")?.split(',').map(str::to_owned).collect()),
                "--quick" => o.quick = true,
                // cargo bench passes --bench to every bench binary
                "--bench" => {}
                "-h" | "--help" => {
                    println!(
                        "store bench: --dir DIR (work dbs) --cache DIR (1M db cache) --tsv FILE \
                         --label FS --only heartbeat,claim,lifecycle,big --quick"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if o.label.is_empty() {
            o.label = fs_type(&o.dir);
        }
        Ok(o)
    }

    fn wants(&self, group: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|g| g.iter().any(|x| x == group))
    }
}

/// One measured case.
struct Row {
    group: &'static str,
    case: String,
    runs: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    note: String,
}

struct Report {
    rows: Vec<Row>,
    label: String,
}

impl Report {
    fn add(
        &mut self,
        group: &'static str,
        case: impl Into<String>,
        times: &[Duration],
        note: impl Into<String>,
    ) {
        let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let row = Row {
            group,
            case: case.into(),
            runs: ms.len(),
            median_ms: median(&ms),
            min_ms: ms.first().copied().unwrap_or(f64::NAN),
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
            note: note.into(),
        };
        eprintln!(
            "  {:<10} {:<52} median {:>10.3} ms  (min {:.3}, max {:.3}, n={}) {}",
            row.group, row.case, row.median_ms, row.min_ms, row.max_ms, row.runs, row.note
        );
        self.rows.push(row);
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| group | case | fs | runs | median ms | min ms | max ms | note |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {} |",
                r.group, r.case, self.label, r.runs, r.median_ms, r.min_ms, r.max_ms, r.note
            );
        }
        s
    }

    fn tsv(&self) -> String {
        let mut s = String::from("group\tcase\tfs\truns\tmedian_ms\tmin_ms\tmax_ms\tnote\n");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{}\t{}\t{}\t{}\t{:.4}\t{:.4}\t{:.4}\t{}",
                r.group, r.case, self.label, r.runs, r.median_ms, r.min_ms, r.max_ms, r.note
            );
        }
        s
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Runs `f` `warmup` times untimed, then `runs` times timed.
fn time_runs(
    warmup: usize,
    runs: usize,
    mut f: impl FnMut(usize) -> Res<()>,
) -> Res<Vec<Duration>> {
    for i in 0..warmup {
        f(i)?;
    }
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        f(warmup + i)?;
        out.push(t.elapsed());
    }
    Ok(out)
}

fn fs_type(dir: &Path) -> String {
    let probe = if dir.exists() {
        dir.to_owned()
    } else {
        dir.parent().unwrap_or(Path::new("/")).to_owned()
    };
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&probe)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => "?".into(),
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let mut locks = path.as_os_str().to_owned();
    locks.push(".instances");
    let _ = std::fs::remove_dir_all(PathBuf::from(locks));
}

fn fresh_store(dir: &Path, name: &str) -> Res<(Store, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    remove_db(&path);
    let store = Store::open(&path)?;
    Ok((store, path))
}

/// Ends a claimed task as completed, with nothing durable or placed to record.
fn complete(store: &mut Store, lease: Lease, actor: &Actor) -> Res<()> {
    store.finish(lease, &Outcome::Completed, &[], &[], actor, Utc::now())?;
    Ok(())
}

/// A live, registered instance of this process (its lock held while the value lives).
fn live_instance(store: &mut Store, db: &Path) -> Res<(LocalInstance, Actor)> {
    let me = LocalInstance::start(db, Mode::Worker, Utc::now()).map_err(|e| e.to_string())?;
    store.register_instance(&me.info)?;
    let actor = me.actor();
    Ok((me, actor))
}

fn one_file_task(i: usize) -> NewTask {
    NewTask {
        project: format!("p{}", i % 4),
        dest_dir: "/srv/downloads".into(),
        files: vec![NewFile {
            url: format!("http://127.0.0.1:18090/tiny/f{i:05}.bin"),
            name: format!("f{i:05}.bin"),
            sha256_expected: None,
        }],
    }
}

fn open_rules() -> ClaimRules {
    ClaimRules {
        max_concurrent: u32::MAX,
        per_host_limit: u32::MAX,
        ..ClaimRules::default()
    }
}

fn add_tasks(store: &mut Store, actor: &Actor, n: usize) -> Res<()> {
    let now = Utc::now();
    for i in 0..n {
        store.add_task(&one_file_task(i), "127.0.0.1", now, actor)?;
    }
    Ok(())
}

fn claim_all(store: &mut Store, actor: &Actor) -> Res<Vec<Lease>> {
    let rules = open_rules();
    let mut leases = Vec::new();
    loop {
        let claimed = store.claim_up_to(256, &rules, actor, Utc::now())?;
        if claimed.is_empty() {
            break;
        }
        leases.extend(claimed.iter().map(|(task, _files)| task.lease()));
    }
    Ok(leases)
}

fn progress(leases: &[Lease], tick: usize) -> Vec<TaskProgress> {
    leases
        .iter()
        .map(|lease| TaskProgress {
            lease: *lease,
            files: vec![(0, (tick as u64 + 1) * 1_048_576)],
            progressed: true,
            milestone: None,
        })
        .collect()
}

/// Times `ticks` heartbeat transactions for `leases` (the progress vectors are built untimed).
fn tick_times(
    store: &mut Store,
    actor: &Actor,
    leases: &[Lease],
    ticks: usize,
) -> Res<Vec<Duration>> {
    let mut times = Vec::new();
    for tick in 0..ticks + 1 {
        let p = progress(leases, tick);
        let now = Utc::now();
        let t = Instant::now();
        let replies = store.heartbeat(actor, &p, now)?;
        let took = t.elapsed();
        if replies.len() != leases.len() {
            return Err(format!(
                "heartbeat answered {} of {} tasks",
                replies.len(),
                leases.len()
            )
            .into());
        }
        if tick > 0 {
            times.push(took);
        }
    }
    Ok(times)
}

// ------------------------------------------------------------------ heartbeat

fn bench_heartbeat(o: &Opts, r: &mut Report) -> Res<()> {
    let sizes: &[usize] = if o.quick {
        &[100, 1_000]
    } else {
        &[1_000, 10_000]
    };
    let ticks = if o.quick { 5 } else { 15 };
    for &n in sizes {
        let (mut store, db) = fresh_store(&o.dir, &format!("heartbeat-{n}.db"))?;
        let (_me, actor) = live_instance(&mut store, &db)?;
        let t = Instant::now();
        add_tasks(&mut store, &actor, n)?;
        let add = t.elapsed();
        let t = Instant::now();
        let leases = claim_all(&mut store, &actor)?;
        let claim = t.elapsed();
        if leases.len() != n {
            return Err(format!("claimed {} of {n}", leases.len()).into());
        }
        r.add(
            "setup",
            format!("add_task x {n} (one commit each)"),
            &[add],
            format!("{:.1} us/task", add.as_secs_f64() * 1e6 / n as f64),
        );
        r.add(
            "setup",
            format!("claim_up_to(256) until {n} running"),
            &[claim],
            format!("{:.1} us/claim", claim.as_secs_f64() * 1e6 / n as f64),
        );
        let times = tick_times(&mut store, &actor, &leases, ticks)?;
        r.add(
            "heartbeat",
            format!("tick, {n} running tasks (fresh db)"),
            &times,
            "1 txn: instance row + fence (index walk) + changed task_beats buckets",
        );
        drop(store);
        remove_db(&db);
    }
    Ok(())
}

// ------------------------------------------------------------------ claims

fn bench_claims(o: &Opts, r: &mut Report) -> Res<()> {
    let queued = if o.quick { 500 } else { 10_000 };
    for workers in [1usize, 2] {
        let name = format!("claims-{workers}.db");
        let (mut store, db) = fresh_store(&o.dir, &name)?;
        let (_me, actor) = live_instance(&mut store, &db)?;
        add_tasks(&mut store, &actor, queued)?;
        drop(store);
        let start = std::sync::Barrier::new(workers);
        let t0 = Instant::now();
        let results: Vec<Res<(Vec<i64>, Vec<Duration>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let db = db.clone();
                    let start = &start;
                    s.spawn(move || -> Res<(Vec<i64>, Vec<Duration>)> {
                        let mut store = Store::open(&db)?;
                        let (_me, actor) = live_instance(&mut store, &db)?;
                        let rules = open_rules();
                        let mut ids = Vec::new();
                        let mut lat = Vec::new();
                        start.wait();
                        loop {
                            let t = Instant::now();
                            let claimed = store.claim_next(&rules, &actor, Utc::now())?;
                            lat.push(t.elapsed());
                            let Some((task, _)) = claimed else { break };
                            ids.push(task.id.0);
                            complete(&mut store, task.lease(), &actor)?;
                        }
                        Ok((ids, lat))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
                .collect()
        });
        let wall = t0.elapsed();
        let mut seen = HashSet::new();
        let mut lat = Vec::new();
        let mut per_worker = Vec::new();
        for res in results {
            let (ids, l) = res?;
            per_worker.push(ids.len());
            for id in ids {
                if !seen.insert(id) {
                    return Err(format!("task {id} was claimed twice").into());
                }
            }
            lat.extend(l);
        }
        if seen.len() != queued {
            return Err(format!("{} of {queued} tasks claimed", seen.len()).into());
        }
        let rate = queued as f64 / wall.as_secs_f64();
        r.add(
            "claim",
            format!("{workers} worker(s): claim+finish {queued} queued tasks, per claim_next"),
            &lat,
            format!(
                "{rate:.0} claims/s overall (claim + finish), split {per_worker:?}, wall {:.2} s",
                wall.as_secs_f64()
            ),
        );
        remove_db(&db);
    }
    Ok(())
}

// ------------------------------------------------------------------ lifecycle

/// Tasks whose writes share one group commit in [`bench_lifecycle`]: what the store thread
/// batches with 16 one-file downloads of 4 KiB running (about a dozen jobs per commit).
const LIFE_GROUP: usize = 4;

/// The store's part of a one-file task's life, the writes the engine makes for it: the claim,
/// the file's target (before its `.part` is created) and the end with the placed file, each
/// kind in a group commit of [`LIFE_GROUP`] tasks. The per-task cost bounds how many small
/// files a second one store thread can run. Every task must end completed.
fn bench_lifecycle(o: &Opts, r: &mut Report) -> Res<()> {
    let n = if o.quick { 400 } else { 10_000 };
    let (mut store, db) = fresh_store(&o.dir, "lifecycle.db")?;
    let (_me, actor) = live_instance(&mut store, &db)?;
    add_tasks(&mut store, &actor, n)?;
    let rules = open_rules();
    let dest = |lease: &Lease| format!("/srv/downloads/{}.bin", lease.task.0);
    let mut times = Vec::new();
    let t0 = Instant::now();
    loop {
        let t = Instant::now();
        let claimed = store.batch(|s| {
            (0..LIFE_GROUP)
                .map(|_| s.claim_next(&rules, &actor, Utc::now()))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let leases: Vec<Lease> = claimed.iter().flatten().map(|(t, _)| t.lease()).collect();
        if leases.is_empty() {
            break;
        }
        let targets = store.batch(|s| {
            leases
                .iter()
                .map(|lease| {
                    let now = Utc::now();
                    s.set_file_target(*lease, 0, &dest(lease), Some(4096), None, None, &[], now)
                })
                .collect::<Result<Vec<bool>, _>>()
        })?;
        let ends = store.batch(|s| {
            leases
                .iter()
                .map(|lease| {
                    let placed = [PlacedFile {
                        index: 0,
                        bytes: 4096,
                        sha256: None,
                        dest: dest(lease),
                    }];
                    let done = Outcome::Completed;
                    s.finish(*lease, &done, &[], &placed, &actor, Utc::now())
                })
                .collect::<Result<Vec<bool>, _>>()
        })?;
        if !targets.iter().chain(&ends).all(|held| *held) {
            return Err("a lifecycle write lost its lease".into());
        }
        times.push(t.elapsed() / leases.len() as u32);
    }
    let wall = t0.elapsed();
    let completed: u64 = store
        .status_counts()?
        .iter()
        .filter(|c| c.status == Status::Completed)
        .map(|c| c.count)
        .sum();
    if completed != n as u64 {
        return Err(format!("{completed} of {n} tasks completed").into());
    }
    r.add(
        "lifecycle",
        format!("claim + target + finish of {n} one-file tasks, per task"),
        &times,
        format!(
            "{LIFE_GROUP} tasks per group commit of each kind; {:.0} tasks/s",
            n as f64 / wall.as_secs_f64()
        ),
    );
    drop(store);
    remove_db(&db);
    Ok(())
}

// ------------------------------------------------------------------ 1M database

/// Generates (once) and caches a database of `rows` tasks: history (completed, failed,
/// cancelled) with one file and three events each, then 1,000 running tasks of a live
/// owner, 10 running tasks of a dead owner, and 1,000 queued tasks (the newest ids).
fn cached_big_db(o: &Opts, rows: usize, active: usize) -> Res<PathBuf> {
    std::fs::create_dir_all(&o.cache)?;
    let path = o.cache.join(format!("store-v{CACHE_VERSION}-{rows}.db"));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("  generating {} ({rows} tasks, once) ...", path.display());
    let t = Instant::now();
    let tmp = o
        .cache
        .join(format!("store-v{CACHE_VERSION}-{rows}.db.tmp"));
    remove_db(&tmp);
    drop(Store::open(&tmp)?); // creates the schema (all migrations)
    let conn = rusqlite::Connection::open(&tmp)?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")?;
    let base: i64 = Utc::now().timestamp_millis() - rows as i64 * 30_000 - 3_600_000;
    let history = rows - 2 * active - 10;
    let (done, failed, cancelled) = (
        Status::Completed.as_str(),
        Status::Failed.as_str(),
        Status::Cancelled.as_str(),
    );
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO tasks (id, project, name, dest_dir, host, status, attempt, owner_id, created_at, \
               started_at, updated_at, progress_at, finished_at, error_message, bytes_done, bytes_total, \
               files_done, files_total, retries) \
             SELECT i, 'project-' || (i % 20), 'dataset-' || i || '.tar.gz', '/srv/downloads/project-' || (i % 20), \
               'mirror' || (i % 50) || '.example.org', \
               CASE WHEN i % 100 = 0 THEN '{failed}' WHEN i % 100 = 1 THEN '{cancelled}' ELSE '{done}' END, \
               1, 'old-instance', ?2 + i * 30000, ?2 + i * 30000 + 500, ?2 + i * 30000 + 20000, \
               ?2 + i * 30000 + 19000, ?2 + i * 30000 + 20000, \
               CASE WHEN i % 100 = 0 THEN 'HTTP 404 Not Found from mirror' || (i % 50) || '.example.org' END, \
               1048576 * (1 + i % 7), 1048576 * (1 + i % 7), 1, 1, 0 FROM n"
        ),
        rusqlite::params![history as i64, base],
    )?;
    tx.execute(
        "INSERT INTO files (task_id, idx, url, name, dest_path, bytes_done, bytes_total, etag, last_modified, done) \
         SELECT id, 0, 'https://' || host || '/pub/' || name, name, dest_dir || '/' || name, bytes_done, \
           bytes_total, '\"5f3a-' || id || '\"', 'Sat, 21 Nov 2026 10:00:00 GMT', 1 FROM tasks",
        [],
    )?;
    for (kind, offset, msg) in [
        (
            EventKind::Added.as_str(),
            0,
            "'1 file(s) into ' || dest_dir",
        ),
        (
            EventKind::Claimed.as_str(),
            500,
            "'claimed by benchhost/4242'",
        ),
        (
            EventKind::Completed.as_str(),
            20000,
            "'all files downloaded and verified'",
        ),
    ] {
        tx.execute(
            &format!(
                "INSERT INTO task_events (task_id, at, attempt, kind, instance_id, by_label, message) \
                 SELECT id, created_at + {offset}, 1, '{kind}', 'old-instance', 'benchhost/4242', {msg} FROM tasks"
            ),
            [],
        )?;
    }
    // The active tail: running (live owner, fixed up per run), running (dead owner), queued.
    let now = Utc::now().timestamp_millis();
    let mut insert = tx.prepare(
        "INSERT INTO tasks (id, project, name, dest_dir, host, status, attempt, owner_id, created_at, \
           started_at, updated_at, progress_at, bytes_done, bytes_total, files_done, files_total) \
         VALUES (?1, 'project-' || (?1 % 20), 'active-' || ?1 || '.iso', '/srv/downloads', \
           'mirror' || (?1 % 50) || '.example.org', ?2, ?3, ?4, ?5, ?6, ?5, ?6, ?7, 4294967296, 0, 1)",
    )?;
    let mut file = tx.prepare(
        "INSERT INTO files (task_id, idx, url, name, bytes_done, bytes_total) \
         VALUES (?1, 0, 'https://mirror.example.org/active-' || ?1 || '.iso', 'active-' || ?1 || '.iso', ?2, 4294967296)",
    )?;
    let mut id = history as i64;
    let running = Status::Running.as_str();
    let queued = Status::Queued.as_str();
    for (count, status, owner, attempt) in [
        (active, running, Some("live-owner"), 1),
        (10, running, Some("dead-owner"), 1),
        (active, queued, None, 0),
    ] {
        for _ in 0..count {
            id += 1;
            let started = (status == running).then_some(now - 60_000);
            let done: i64 = if status == running { 123_456_789 } else { 0 };
            insert.execute(rusqlite::params![
                id,
                status,
                attempt,
                owner,
                now - 120_000,
                started,
                done
            ])?;
            file.execute(rusqlite::params![id, done])?;
        }
    }
    drop(insert);
    drop(file);
    tx.execute(
        "INSERT INTO instances (id, host, pid, mode, started_at, heartbeat_at, stopped_at) \
         VALUES ('old-instance', 'benchhost', 4242, 'worker', ?1, ?1, ?1), \
                ('dead-owner', ?2, 999999, 'worker', ?3, ?3, NULL)",
        rusqlite::params![base, haul::instance::host_name(), now - 600_000],
    )?;
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")?;
    drop(conn);
    std::fs::rename(&tmp, &path)?;
    remove_db(&tmp);
    eprintln!(
        "  generated in {:.1} s, {} MiB",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&path)?.len() >> 20
    );
    Ok(path)
}

fn bench_big(o: &Opts, r: &mut Report) -> Res<()> {
    let rows = if o.quick { 20_000 } else { 1_000_000 };
    let active = if o.quick { 100 } else { 1_000 };
    let runs = if o.quick { 5 } else { 21 };
    let cached = cached_big_db(o, rows, active)?;
    std::fs::create_dir_all(&o.dir)?;
    let db = o.dir.join("big.db");
    remove_db(&db);
    let t = Instant::now();
    std::fs::copy(&cached, &db)?;
    eprintln!(
        "  copied the {rows}-task database in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut store = Store::open(&db)?;
    let (_me, actor) = live_instance(&mut store, &db)?;
    {
        // The live owner's tasks belong to this process now.
        let conn = rusqlite::Connection::open(&db)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let n = conn.execute(
            "UPDATE tasks SET owner_id = ?1, updated_at = ?2 WHERE owner_id = 'live-owner'",
            rusqlite::params![actor.instance.0, Utc::now().timestamp_millis()],
        )?;
        if n != active {
            return Err(format!("expected {active} live running tasks, found {n}").into());
        }
    }
    let probe = LivenessProbe::new(&db, Duration::from_secs(300));
    let now: DateTime<Utc> = Utc::now();
    let label = if rows >= 1_000_000 {
        "1M".to_owned()
    } else {
        format!("{}k", rows / 1000)
    };

    // The stale sweep: what would be recovered (the 10 tasks of the dead owner).
    let mut found = 0;
    let times = time_runs(2, runs, |_| {
        found = haul::sweep::plan(&store, &probe, now)?.len();
        Ok(())
    })?;
    r.add(
        "big",
        format!("sweep::plan, {label} tasks, {active}+10 running"),
        &times,
        format!("{found} to recover"),
    );
    let times = time_runs(2, runs, |_| {
        store.running()?;
        Ok(())
    })?;
    r.add(
        "big",
        format!("Reader::running, {label} tasks"),
        &times,
        format!("{} rows", active + 10),
    );
    let mut n = 0;
    let times = time_runs(2, runs, |_| {
        n = store.unfinished()?.len();
        Ok(())
    })?;
    r.add(
        "big",
        format!("Reader::unfinished (active list), {label} tasks"),
        &times,
        format!("{n} rows"),
    );
    // History pages by key, at the top, the middle and the end, as the dashboard reads them
    // (the End key reads the oldest page; scrolling down reaches the last page by key).
    let all = HistoryFilter::default();
    let failed = HistoryFilter {
        status: Some(Status::Failed),
        ..HistoryFilter::default()
    };
    let project = HistoryFilter {
        project: Some("project-7".into()),
        ..HistoryFilter::default()
    };
    let both = HistoryFilter {
        status: Some(Status::Completed),
        project: Some("project-7".into()),
        ..HistoryFilter::default()
    };
    for (name, filter) in [
        ("", &all),
        ("status=failed ", &failed),
        ("project=project-7 ", &project),
        ("status=completed project=project-7 ", &both),
    ] {
        let extent = store.history_extent(filter)?;
        let Some((low, high)) = extent.ids else {
            return Err(format!("no task matches {filter:?}").into());
        };
        // The key of the last page: the id PAGE rows above the oldest match.
        let oldest = store.history_page(filter, PageKey::Oldest, PAGE + 1)?;
        let last_key = oldest.last().map_or(high, |t| t.id);
        let middle = TaskId(low.0 + (high.0 - low.0) / 2);
        for (case, key) in [
            ("top: newest".to_owned(), PageKey::Newest),
            (
                format!("middle: before id {}", middle.0),
                PageKey::Before(middle),
            ),
            (
                format!("last page: before id {}", last_key.0),
                PageKey::Before(last_key),
            ),
            ("end: oldest".to_owned(), PageKey::Oldest),
        ] {
            let times = time_runs(2, runs, |_| {
                if store.history_page(filter, key, PAGE)?.is_empty() {
                    return Err("empty history page".into());
                }
                Ok(())
            })?;
            r.add(
                "big",
                format!("history_page {name}{case}, limit {PAGE}, {label} tasks"),
                &times,
                format!("{} rows match", extent.count),
            );
        }
    }
    let text = HistoryFilter {
        text: Some("dataset-99999".into()),
        ..HistoryFilter::default()
    };
    let times = time_runs(1, runs.min(5), |_| {
        store.history_page(&text, PageKey::Newest, PAGE)?;
        Ok(())
    })?;
    r.add(
        "big",
        format!("history_page text search top: newest, {label} tasks"),
        &times,
        "LIKE '%…%' on name/project",
    );

    // Counts: kept totals without text (read on every refresh that saw a change), a scan
    // with text (only when the filter or the tasks changed).
    for (name, filter) in [
        ("no filter", &all),
        ("status=failed", &failed),
        ("project=project-7", &project),
    ] {
        let mut total = 0;
        let times = time_runs(2, runs, |_| {
            total = store.history_count(filter)?;
            Ok(())
        })?;
        r.add(
            "big",
            format!("history_count ({name}), {label} tasks"),
            &times,
            format!("{total} rows, from task_counts"),
        );
        let times = time_runs(2, runs, |_| {
            store.history_extent(filter)?;
            Ok(())
        })?;
        r.add(
            "big",
            format!("history_extent ({name}), {label} tasks"),
            &times,
            "count + lowest and highest id",
        );
    }
    let mut total = 0;
    let times = time_runs(1, runs.min(5), |_| {
        total = store.history_count(&text)?;
        Ok(())
    })?;
    r.add(
        "big",
        format!("history_count (text), {label} tasks"),
        &times,
        format!("{total} rows, a scan"),
    );
    let times = time_runs(2, runs, |_| {
        store.status_counts()?;
        Ok(())
    })?;
    r.add(
        "big",
        format!("status_counts (haul metrics), {label} tasks"),
        &times,
        "",
    );

    // A heartbeat tick of the live owner's tasks inside the big database.
    let leases: Vec<Lease> = store
        .running()?
        .into_iter()
        .filter(|t| t.owner.as_ref() == Some(&actor.instance))
        .map(|t| t.lease())
        .collect();
    let times = tick_times(&mut store, &actor, &leases, if o.quick { 5 } else { 15 })?;
    r.add(
        "heartbeat",
        format!("tick, {} running tasks in a {label}-task db", leases.len()),
        &times,
        "",
    );

    // Claims with 1,000 queued behind a big history (each claim is followed by finish).
    let rules = open_rules();
    let mut claim_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let claimed = store.claim_next(&rules, &actor, Utc::now())?;
        claim_times.push(t.elapsed());
        let Some((task, _)) = claimed else { break };
        complete(&mut store, task.lease(), &actor)?;
    }
    r.add(
        "claim",
        format!("claim_next, {label}-task db, {active} queued, {active} running"),
        &claim_times,
        "",
    );
    drop(store);
    remove_db(&db);
    Ok(())
}

fn main() -> Res<()> {
    let o = Opts::parse()?;
    std::fs::create_dir_all(&o.dir)?;
    let mut r = Report {
        rows: Vec::new(),
        label: fs_type(&o.dir),
    };
    if !o.label.is_empty() {
        r.label = o.label.clone();
    }
    eprintln!(
        "store bench: work dir {} ({}), cache {}",
        o.dir.display(),
        r.label,
        o.cache.display()
    );
    if o.wants("heartbeat") {
        bench_heartbeat(&o, &mut r)?;
    }
    if o.wants("claim") {
        bench_claims(&o, &mut r)?;
    }
    if o.wants("lifecycle") {
        bench_lifecycle(&o, &mut r)?;
    }
    if o.wants("big") {
        bench_big(&o, &mut r)?;
    }
    print!("{}", r.markdown());
    if let Some(path) = &o.tsv {
        std::fs::write(path, r.tsv())?;
    }
    Ok(())
}
