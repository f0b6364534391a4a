#!/usr/bin/env bash
# run.sh - every haul benchmark in one command; prints one report (Markdown) at the end.
#
#   bench/run.sh              full run (~30-40 min on 2 vCPUs): wire on tmpfs (3 rounds + 1
#                             warm-up) and on disk (1 round), store bench on tmpfs and disk,
#                             1,000 active tasks, dashboard through a pty
#   SMOKE=1 bench/run.sh      tiny sizes, 1 round, everything once: well under a minute
#                             (after the build); its own data set, port and caches
#
# Environment (defaults in brackets):
#   PARTS [wire-tmpfs wire-disk store-tmpfs store-disk frame active dashboard]  what to run
#   RESULTS_DIR [/tmp/haul-bench-results/<date>-<time>]   everything lands here; report.md last
#   ROUNDS [3] WARMUP [1]             wire rounds on tmpfs (peers.sh)
#   DISK_ROUNDS [1] DISK_WARMUP [0]   wire rounds on disk
#   TMPFS_OUT [/dev/shm/haul-bench-out]  DISK_OUT [/tmp/haul-bench-out]   download + state dirs
#   WORKLOADS, TOOLS, PAR, TIMEOUT    passed to peers.sh (see its header)
#   STORE_CACHE [/tmp/haul-bench-cache]  where the 1,000,000-task database is cached
#   ACTIVE_N [1000]                   downloads active at once for the peak-RSS run
#   WATCH_IDLE_S [60] WATCH_BUSY_S [20]  seconds the watcher is measured (after WATCH_WARMUP_S [3])
#   CRAWL_RATE [16k]                  per-connection rate of /crawl/ (keeps downloads active)
#   NO_BUILD [0]                      1 = use the binaries already in target/release
# The haul binary and the store bench are copied into RESULTS_DIR/bin before anything runs,
# so a rebuild in the work tree during the run changes nothing.
# Nothing here is part of `cargo test` or CI.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SMOKE=${SMOKE:-0}
PARTS=${PARTS:-"wire-tmpfs wire-disk store-tmpfs store-disk frame active dashboard"}
export RESULTS_DIR=${RESULTS_DIR:-/tmp/haul-bench-results/$(date +%Y%m%d-%H%M%S)}
TMPFS_OUT=${TMPFS_OUT:-/dev/shm/haul-bench-out}
DISK_OUT=${DISK_OUT:-/tmp/haul-bench-out}
STORE_ARGS=()
if [ "$SMOKE" = 1 ]; then
  export BIG_MIB=8 MID_MIB=2 SMALL_N=20 SMALL_KIB=10 TINY_N=50 TINY_KIB=1
  export BENCH_DATA=${BENCH_DATA:-/tmp/haul-bench-data-smoke}
  export BENCH_STATE=${BENCH_STATE:-/tmp/haul-bench-nginx-smoke}
  export BENCH_PORT=${BENCH_PORT:-18091}
  export ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-0} FS_GUARD=${FS_GUARD:-0} PREFAULT=${PREFAULT:-0}
  DISK_ROUNDS=${DISK_ROUNDS:-1} DISK_WARMUP=${DISK_WARMUP:-0}
  STORE_CACHE=${STORE_CACHE:-/tmp/haul-bench-cache-smoke}
  STORE_ARGS=(--quick)
  ACTIVE_N=${ACTIVE_N:-20}
  export WATCH_IDLE_S=${WATCH_IDLE_S:-2} WATCH_BUSY_S=${WATCH_BUSY_S:-2} WATCH_WARMUP_S=${WATCH_WARMUP_S:-1}
  export CRAWL_RATE=${CRAWL_RATE:-4k}
  TMPFS_OUT=/dev/shm/haul-bench-out-smoke DISK_OUT=/tmp/haul-bench-out-smoke
else
  export ROUNDS=${ROUNDS:-3} WARMUP=${WARMUP:-1}
  DISK_ROUNDS=${DISK_ROUNDS:-1} DISK_WARMUP=${DISK_WARMUP:-0}
  STORE_CACHE=${STORE_CACHE:-/tmp/haul-bench-cache}
  ACTIVE_N=${ACTIVE_N:-1000}
  export CRAWL_RATE=${CRAWL_RATE:-16k}
fi
export BENCH_DATA=${BENCH_DATA:-/tmp/haul-bench-data}
export BENCH_STATE=${BENCH_STATE:-/tmp/haul-bench-nginx}
export BENCH_PORT=${BENCH_PORT:-18090}
log() { echo "run.sh: $*" >&2; }
has() {
  case " $PARTS " in *" $1 "*) ;; *) return 1 ;; esac
  log "[$(( SECONDS - T0 )) s] $1"
}
T0=$SECONDS

mkdir -p "$RESULTS_DIR/bin"
log "results in $RESULTS_DIR (smoke=$SMOKE, parts: $PARTS)"
"$HERE/serve.sh" install

# ---- build and snapshot the binaries
if [ "${NO_BUILD:-0}" != 1 ]; then
  (cd "$REPO" && cargo build --release --bin haul >&2)
fi
bench_exe() { # name -> path of the built bench binary (its own artifact, not the haul binary)
  (cd "$REPO" && cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null) \
    | python3 -c 'import json,sys
name=sys.argv[1]
exe=[m.get("executable") for m in map(json.loads, (l for l in sys.stdin if l.startswith("{")))
     if m.get("target", {}).get("name") == name and "bench" in m.get("target", {}).get("kind", [])]
print([e for e in exe if e][-1])' "$1"
}
cp "$REPO/target/release/haul" "$RESULTS_DIR/bin/haul"
cp "$(bench_exe store)" "$RESULTS_DIR/bin/store-bench"
cp "$(bench_exe frame)" "$RESULTS_DIR/bin/frame-bench" || log "frame bench did not build (dashboard API changed?)"
export HAUL="$RESULTS_DIR/bin/haul"

# ---- machine notes
{
  echo "date: $(date -Is)"
  echo "haul: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO" && [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ' + uncommitted changes in src/' || true)"
  echo "kernel: $(uname -srm)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), nproc $(nproc), $(lscpu | sed -n 's/^Hypervisor vendor: *//p') guest"
  grep -q firecracker /proc/cmdline 2>/dev/null && echo "vm: Firecracker microVM (free page reporting: fresh memory costs extra; peers.sh prefaults)"
  echo "memory: $(free -m | awk '/^Mem:/{print $2" MiB"}'), swap $(free -m | awk '/^Swap:/{print $2" MiB"}')"
  echo "tmpfs out: $TMPFS_OUT ($(df -T /dev/shm | awk 'NR==2{print $2}'))"
  echo "disk out: $DISK_OUT ($(df -T "$(dirname "$DISK_OUT")" | awk 'NR==2{print $2" on "$1}')$(dev=$(basename "$(df "$(dirname "$DISK_OUT")" | awk 'NR==2{print $1}')"); [ "$(cat "/sys/fs/ext4/$dev/journal_task" 2>/dev/null)" = "<none>" ] && echo ', no journal'))"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
  echo "smoke: $SMOKE"
} > "$RESULTS_DIR/machine.txt"

# ---- the server
STARTED=0
if ! "$HERE/serve.sh" status >/dev/null 2>&1; then
  "$HERE/serve.sh" start
  STARTED=1
else
  "$HERE/serve.sh" gen
fi
finish() {
  if [ "$STARTED" = 1 ]; then "$HERE/serve.sh" stop || true; fi
}
trap finish EXIT

# ---- wire
if has wire-tmpfs; then
  log "wire benchmarks, output on tmpfs ($TMPFS_OUT)"
  RESULTS_DIR="$RESULTS_DIR/wire-tmpfs" OUT_DIR="$TMPFS_OUT" "$HERE/peers.sh" > /dev/null
fi
if has wire-disk; then
  log "wire benchmarks, output on disk ($DISK_OUT)"
  RESULTS_DIR="$RESULTS_DIR/wire-disk" OUT_DIR="$DISK_OUT" ROUNDS="$DISK_ROUNDS" WARMUP="$DISK_WARMUP" \
    "$HERE/peers.sh" > /dev/null
fi

# ---- store
if has store-tmpfs; then
  log "store bench on tmpfs"
  "$RESULTS_DIR/bin/store-bench" "${STORE_ARGS[@]}" --dir /dev/shm/haul-bench-store --cache "$STORE_CACHE" \
    --tsv "$RESULTS_DIR/store-tmpfs.tsv" > "$RESULTS_DIR/store-tmpfs.md"
  rm -rf /dev/shm/haul-bench-store
fi
if has store-disk; then
  log "store bench on disk"
  "$RESULTS_DIR/bin/store-bench" "${STORE_ARGS[@]}" --dir /tmp/haul-bench-store --cache "$STORE_CACHE" \
    --tsv "$RESULTS_DIR/store-disk.tsv" > "$RESULTS_DIR/store-disk.md"
  rm -rf /tmp/haul-bench-store
fi

# ---- dashboard frame time (needs the cached database the store bench made)
if has frame; then
  BIG_DB=$(ls "$STORE_CACHE"/store-v*-*.db 2>/dev/null | sort -t- -k4 -n | tail -1 || true)
  if [ -x "$RESULTS_DIR/bin/frame-bench" ] && [ -n "$BIG_DB" ]; then
    "$RESULTS_DIR/bin/frame-bench" --db "$BIG_DB" --runs "$([ "$SMOKE" = 1 ] && echo 5 || echo 31)" \
      --tsv "$RESULTS_DIR/frame.tsv" > "$RESULTS_DIR/frame.md" || log "frame bench failed"
  else
    log "frame bench skipped (no binary or no cached database: run the store bench first)"
  fi
fi

# ---- memory with many active downloads
if has active; then
  log "peak RSS with $ACTIVE_N active downloads"
  "$HERE/active_rss.sh" "$RESULTS_DIR" "$ACTIVE_N" || log "active_rss.sh failed"
fi

# ---- dashboard
if has dashboard; then
  log "dashboard: haul watch through a pty"
  BIG_DB=$(ls "$STORE_CACHE"/store-v*-*.db 2>/dev/null | sort -t- -k4 -n | tail -1 || true)
  BIG_DB="$BIG_DB" "$HERE/dashboard.sh" "$RESULTS_DIR" || log "dashboard.sh failed"
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESULTS_DIR/machine.txt"
echo "run.sh took: $(( SECONDS - T0 )) s" >> "$RESULTS_DIR/machine.txt"
python3 "$HERE/report.py" "$RESULTS_DIR" > "$RESULTS_DIR/report.md"
cat "$RESULTS_DIR/report.md"
log "report: $RESULTS_DIR/report.md"
