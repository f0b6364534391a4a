//! Dashboard frame time on a database of 1,000,000 tasks (1,000 running, 1,000 queued), with
//! history at the top, the middle and the end: `SnapshotSource::build` (the feed thread's work,
//! off the render loop), with the history window reused and re-read by key and after another
//! connection's commit (an owner's heartbeat: every row read again), and one frame, the
//! view model plus the draw at 120×40 (`haul::tui::render_frame`). A plain binary
//! (`harness = false`), never run by `cargo test`.
//!
//! ```sh
//! cargo bench --bench store              # makes (once) the cached 1M-task database
//! cargo bench --bench frame              # then this, on a copy of it
//! cargo bench --bench frame -- --db PATH --tsv out.tsv --runs 51
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use haul::config::Config;
use haul::instance::{LivenessProbe, LocalInstance};
use haul::model::{Mode, TaskId};
use haul::snapshot::{HistoryAnchor, HistoryOrder, HistoryQuery, SnapshotSource, ViewRequest};
use haul::store::{HistoryFilter, ReadOnlyStore, Store};
use haul::tui::{Access, FrameSpec, Pane, render_frame};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;

struct Opts {
    db: PathBuf,
    work: PathBuf,
    tsv: Option<PathBuf>,
    runs: usize,
}

fn parse() -> Res<Opts> {
    let mut o = Opts {
        db: PathBuf::from("/tmp/haul-bench-cache/store-v3-1000000.db"),
        work: PathBuf::from("/dev/shm/haul-bench-frame"),
        tsv: None,
        runs: 31,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--db" => o.db = PathBuf::from(val("--db")?),
            "--work" => o.work = PathBuf::from(val("--work")?),
            "--tsv" => o.tsv = Some(PathBuf::from(val("--tsv")?)),
            "--runs" => o.runs = val("--runs")?.parse()?,
            "--bench" => {}
            "-h" | "--help" => {
                println!("frame bench: --db CACHED_DB --work DIR --tsv FILE --runs N");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(o)
}

fn median_ms(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    match (times.first(), times.get(times.len() / 2), times.last()) {
        (Some(min), Some(mid), Some(max)) => (ms(mid), ms(min), ms(max)),
        _ => (f64::NAN, f64::NAN, f64::NAN),
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn main() -> Res<()> {
    let o = parse()?;
    if !o.db.exists() {
        return Err(format!(
            "no database at {}; run `cargo bench --bench store` first (it makes and caches it)",
            o.db.display()
        )
        .into());
    }
    std::fs::create_dir_all(&o.work)?;
    let db = o.work.join("frame.db");
    remove_db(&db);
    std::fs::copy(&o.db, &db)?;
    // The running tasks belong to a live instance (this process), as in a real deployment.
    let mut store = Store::open(&db)?;
    let me = LocalInstance::start(&db, Mode::Worker, Utc::now()).map_err(|e| e.to_string())?;
    store.register_instance(&me.info)?;
    drop(store);
    let writer = rusqlite::Connection::open(&db)?;
    writer.execute(
        "UPDATE tasks SET owner_id = ?1, updated_at = ?2 WHERE owner_id = 'live-owner'",
        rusqlite::params![me.info.id.0, Utc::now().timestamp_millis()],
    )?;
    let reader = ReadOnlyStore::open(&db)?;
    let extent = reader.history_extent(&HistoryFilter::default())?;
    let (total, Some((low, high))) = (extent.count, extent.ids) else {
        return Err("the database has no tasks".into());
    };
    let probe = LivenessProbe::new(&db, Duration::from_secs(300));
    let mut source = SnapshotSource::new(reader, probe, Arc::new(Config::default()), None);
    let mut rows = String::from("group\tcase\tfs\truns\tmedian_ms\tmin_ms\tmax_ms\tnote\n");
    let mut report = |case: &str, times: &mut [Duration], note: &str| {
        let (med, min, max) = median_ms(times);
        eprintln!("  frame  {case:<72} median {med:>9.3} ms (min {min:.3}, max {max:.3}) {note}");
        let _ = writeln!(
            rows,
            "frame\t{case}\ttmpfs\t{}\t{med:.4}\t{min:.4}\t{max:.4}\t{note}",
            times.len()
        );
        println!(
            "| frame | {case} | {} | {med:.3} | {min:.3} | {max:.3} | {note} |",
            times.len()
        );
    };
    println!(
        "| group | case | runs | median ms | min ms | max ms | note |\n|---|---|---|---|---|---|---|"
    );
    let middle = TaskId(low.0 + (high.0 - low.0) / 2);
    for (depth, top) in [
        ("top", HistoryAnchor::First),
        ("middle", HistoryAnchor::At(middle)),
        ("end", HistoryAnchor::Last),
    ] {
        let request = ViewRequest {
            history: HistoryQuery {
                filter: HistoryFilter::default(),
                order: HistoryOrder::NewestFirst,
                top,
                rows: usize::from(HEIGHT),
            },
            detail: None,
        };
        // The same request again, nothing committed: the history window is reused (a refresh
        // while only the clock moved).
        let mut builds = Vec::new();
        let mut snapshot = None;
        for i in 0..o.runs + 2 {
            let t = Instant::now();
            let s = source.build(&request, Utc::now())?;
            if i >= 2 {
                builds.push(t.elapsed());
            }
            snapshot = Some(s);
        }
        // The window moves by a row each time (a scroll): history is read again, by key.
        let mut rereads = Vec::new();
        for i in 0..o.runs + 2 {
            let mut moved = request.clone();
            let start = snapshot
                .as_ref()
                .and_then(|s| s.history.rows.get(1 + i % 2));
            if let Some(task) = start {
                moved.history.top = HistoryAnchor::At(task.id);
            }
            let t = Instant::now();
            std::hint::black_box(source.build(&moved, Utc::now())?);
            if i >= 2 {
                rereads.push(t.elapsed());
            }
        }
        // Another connection commits before each build, as the owner's heartbeat does every
        // second: every row is read again.
        let mut ticked = Vec::new();
        for i in 0..o.runs + 2 {
            writer.execute(
                "UPDATE instances SET heartbeat_at = ?2 WHERE id = ?1",
                rusqlite::params![me.info.id.0, Utc::now().timestamp_millis()],
            )?;
            let t = Instant::now();
            let s = source.build(&request, Utc::now())?;
            if i >= 2 {
                ticked.push(t.elapsed());
            }
            std::hint::black_box(s);
        }
        let Some(snapshot) = snapshot else { continue };
        let note = format!("{} active rows, {total} tasks", snapshot.active.len());
        report(
            &format!("SnapshotSource::build, history {depth} (window cached)"),
            &mut builds,
            &note,
        );
        report(
            &format!("SnapshotSource::build, history {depth} (window re-read)"),
            &mut rereads,
            &note,
        );
        report(
            &format!("SnapshotSource::build, history {depth} (after a heartbeat commit)"),
            &mut ticked,
            &note,
        );
        let snapshot = Arc::new(snapshot);
        for pane in [Pane::Active, Pane::History] {
            let spec = FrameSpec {
                width: WIDTH,
                height: HEIGHT,
                pane,
                access: Access::ReadOnly,
                colour: true,
                now: Utc::now(),
                db_label: db.display().to_string(),
            };
            let mut renders = Vec::new();
            for i in 0..o.runs + 2 {
                let t = Instant::now();
                let buf = render_frame(Arc::clone(&snapshot), &spec);
                if i >= 2 {
                    renders.push(t.elapsed());
                }
                std::hint::black_box(buf);
            }
            report(
                &format!(
                    "render_frame (view model + draw) {pane:?} pane {WIDTH}x{HEIGHT}, history {depth}"
                ),
                &mut renders,
                "",
            );
        }
    }
    if let Some(path) = &o.tsv {
        std::fs::write(path, rows)?;
    }
    drop(source);
    drop(writer);
    drop(me);
    remove_db(&db);
    Ok(())
}
