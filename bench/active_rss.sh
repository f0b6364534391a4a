#!/usr/bin/env bash
# active_rss.sh - peak memory of `haul run` with N downloads active at once.
#
# N one-file tasks (added untimed, one `haul add` each) fetch /crawl/small/fNNN.bin, which nginx
# sends at CRAWL_RATE per connection (serve.sh; 16k by default in run.sh), so every task stays
# active for several seconds and all N run at the same time (max_concurrent = per_host_limit = N).
# The worker runs as a user would: `haul run --exit-when-idle`, its database in the state dir.
# Peak RSS comes from /usr/bin/time (%M); RSS, threads and open files are also sampled every
# 0.2 s from /proc, and the number of running tasks from the database (read-only).
#
# Usage: HAUL=target/release/haul bench/active_rss.sh RESULTS_DIR [N]
# Writes RESULTS_DIR/active_rss.tsv (one row) and RESULTS_DIR/active_rss-samples.tsv.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RESULTS=${1:?usage: active_rss.sh RESULTS_DIR [N]}
N=${2:-1000}
HAUL=${HAUL:-$REPO/target/release/haul}
BENCH_HOST=${BENCH_HOST:-127.0.0.1}
BENCH_PORT=${BENCH_PORT:-18090}
WORK=${ACTIVE_DIR:-/dev/shm/haul-bench-active}
BASE="http://$BENCH_HOST:$BENCH_PORT"

mkdir -p "$RESULTS"
rm -rf "$WORK"
mkdir -p "$WORK/dl" "$WORK/state"
printf 'max_concurrent = %s\nper_host_limit = %s\n' "$N" "$N" > "$WORK/haul.toml"
n_small=$(find "${BENCH_DATA:-/tmp/haul-bench-data}/small" -name 'f*.bin' | wc -l)
[ "$n_small" -ge 1 ] || { echo "active_rss.sh: no data set" >&2; exit 1; }
# N URLs of the small set (each a different file, so each task has its own name)
last=$(( n_small - 1 ))
width=${#last}              # serve.sh names them f000..f999: the digits of n - 1
for (( i = 0; i < N; i++ )); do
  printf '%s/crawl/small/f%0*d.bin\n' "$BASE" "$width" "$(( i % n_small ))"
done > "$WORK/list.txt"
if [ "$N" -gt "$n_small" ]; then echo "active_rss.sh: N ($N) > files in the small set ($n_small)" >&2; exit 1; fi
"$HAUL" --config "$WORK/haul.toml" --db "$WORK/state/haul.db" add --each --input "$WORK/list.txt" --dest "$WORK/dl" >/dev/null

SAMPLES="$RESULTS/active_rss-samples.tsv"
printf 't_s\trss_kib\tthreads\tfds\trunning\n' > "$SAMPLES"
/usr/bin/time -o "$WORK/time" -f '%e %U %S %M' "$HAUL" --config "$WORK/haul.toml" --db "$WORK/state/haul.db" \
  run --exit-when-idle 2> "$RESULTS/active_rss-haul.log" &
TPID=$!
t0=$(date +%s%N)
python3 - "$TPID" "$WORK/state/haul.db" "$t0" >> "$SAMPLES" <<'PY'
import os, sys, time, sqlite3
tpid, db, t0 = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def child(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None
pid = None
while os.path.exists(f"/proc/{tpid}"):
    pid = pid or child(tpid)
    if pid:
        try:
            st = open(f"/proc/{pid}/status").read()
            rss = int(next(l.split()[1] for l in st.splitlines() if l.startswith("VmRSS")))
            thr = int(next(l.split()[1] for l in st.splitlines() if l.startswith("Threads")))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            try:
                c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                running = c.execute("SELECT COUNT(*) FROM tasks WHERE status='running'").fetchone()[0]
                c.close()
            except sqlite3.Error:
                running = ""
            print(f"{(time.time_ns() - t0) / 1e9:.2f}\t{rss}\t{thr}\t{fds}\t{running}", flush=True)
        except (OSError, StopIteration):
            pass
    time.sleep(0.2)
PY
wait "$TPID" || true
read -r wall user sys maxrss < <(tail -1 "$WORK/time")
done_files=$(find "$WORK/dl" -maxdepth 1 -type f ! -name '*.part' | wc -l)
max_running=$(awk -F'\t' 'NR>1 && $5!="" && $5>m{m=$5} END{print m+0}' "$SAMPLES")
max_threads=$(awk -F'\t' 'NR>1 && $3>m{m=$3} END{print m+0}' "$SAMPLES")
max_fds=$(awk -F'\t' 'NR>1 && $4>m{m=$4} END{print m+0}' "$SAMPLES")
printf 'tasks\tok_files\tmax_running_seen\twall_s\tcpu_s\tpeak_rss_kib\tmax_threads\tmax_fds\n' > "$RESULTS/active_rss.tsv"
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$N" "$done_files" "$max_running" "$wall" \
  "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" "$maxrss" "$max_threads" "$max_fds" >> "$RESULTS/active_rss.tsv"
echo "active_rss: $N tasks, $done_files files done, up to $max_running running at once, peak RSS $(( maxrss / 1024 )) MiB, up to $max_threads threads, $max_fds fds, wall ${wall}s" >&2
rm -rf "$WORK"
