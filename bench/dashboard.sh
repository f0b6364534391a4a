#!/usr/bin/env bash
# dashboard.sh - what `haul watch` costs on a terminal (through a pty, 120x40):
#   idle: a database of BIG_DB's history (1,000,000 tasks in a full run), nothing running:
#         bytes/s written and CPU over WATCH_IDLE_S seconds (60)
#   busy: 10 downloads running (a `haul run` worker in the background fetching /crawl/, so
#         they stay active): bytes/s and CPU over WATCH_BUSY_S seconds (20)
# Usage: HAUL=... BIG_DB=/tmp/haul-bench-cache/store-v3-1000000.db bench/dashboard.sh RESULTS_DIR
# Writes RESULTS_DIR/dashboard.tsv (see watch_pty.py). If `haul watch` does not run (the
# dashboard is not built yet), the rows say so (valid = 0) and the script still succeeds.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RESULTS=${1:?usage: dashboard.sh RESULTS_DIR}
HAUL=${HAUL:-$REPO/target/release/haul}
BIG_DB=${BIG_DB:-}
WATCH_IDLE_S=${WATCH_IDLE_S:-60}
WATCH_BUSY_S=${WATCH_BUSY_S:-20}
WATCH_WARMUP_S=${WATCH_WARMUP_S:-3}
BASE="http://${BENCH_HOST:-127.0.0.1}:${BENCH_PORT:-18090}"
WORK=${DASH_DIR:-/dev/shm/haul-bench-dash}
TSV="$RESULTS/dashboard.tsv"
mkdir -p "$RESULTS"
rm -rf "$WORK"
mkdir -p "$WORK"

# ---- idle, with a big history
if [ -n "$BIG_DB" ] && [ -f "$BIG_DB" ]; then
  cp "$BIG_DB" "$WORK/idle.db"
  # nothing active: the running and queued tail becomes history
  python3 - "$WORK/idle.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE tasks SET status='completed', finished_at=updated_at WHERE status IN ('queued','running','interrupted')")
c.commit()
print(f"idle db: {c.execute('SELECT COUNT(*) FROM tasks').fetchone()[0]} tasks, none active", file=sys.stderr)
PY
  # The cache may predate this haul's schema; a writing command migrates it (watch never does).
  "$HAUL" --db "$WORK/idle.db" recover >/dev/null
else
  echo "dashboard.sh: no BIG_DB; the idle watcher runs on a small database" >&2
  "$HAUL" --db "$WORK/idle.db" add "$BASE/small/f000.bin" --dest "$WORK/dl-idle" >/dev/null 2>&1 || mkdir -p "$WORK/dl-idle"
  "$HAUL" --db "$WORK/idle.db" run --exit-when-idle >/dev/null 2>&1 || true
fi
python3 "$HERE/watch_pty.py" --haul "$HAUL" --db "$WORK/idle.db" --seconds "$WATCH_IDLE_S" --warmup "$WATCH_WARMUP_S" \
  --label "idle, $(python3 -c "import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('select count(*) from tasks').fetchone()[0])" "$WORK/idle.db") tasks of history" \
  --tsv "$TSV" --dump "$RESULTS/watch-idle.out" || true

# ---- busy: 10 downloads running
printf 'max_concurrent = 16\nper_host_limit = 16\n' > "$WORK/haul.toml"
for i in $(seq 0 9); do
  mkdir -p "$WORK/dl/$i"
  "$HAUL" --config "$WORK/haul.toml" --db "$WORK/busy.db" add "$BASE/crawl/big/1g.bin" --dest "$WORK/dl/$i" >/dev/null
done
"$HAUL" --config "$WORK/haul.toml" --db "$WORK/busy.db" run 2> "$RESULTS/dashboard-worker.log" &
WORKER=$!
sleep 1
python3 "$HERE/watch_pty.py" --haul "$HAUL" --db "$WORK/busy.db" --seconds "$WATCH_BUSY_S" --warmup "$WATCH_WARMUP_S" \
  --label "10 downloads running" --tsv "$TSV" --dump "$RESULTS/watch-busy.out" || true
kill -TERM "$WORKER" 2>/dev/null || true
wait "$WORKER" 2>/dev/null || true
rm -rf "$WORK"
