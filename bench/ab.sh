#!/usr/bin/env bash
# ab.sh - side-by-side A/B of haul binaries on one many-file workload: the binaries take
# turns round after round (so a slow spell of the machine hits them alike), each on a fresh
# database and download directory on tmpfs, the tasks added untimed and `haul run
# --exit-when-idle` timed alone. Prints every run and, per binary, the median wall and CPU
# time and the fastest run, with their ratios to the first binary. With CALLGRIND=1, one more
# run of each under `valgrind --tool=callgrind` prints its instruction count: within 1–2 %
# from run to run of one binary, where this machine's wall times stray by 30 % (see
# BENCHMARKS.md "Noise"). The name `curl` stands for `curl --parallel --parallel-max $PAR` of
# the same list (nothing to add; its run is timed the same way), so haul's ratio to curl comes
# from the same rounds: `bench/ab.sh curl BIN`.
#
# Usage: bench/ab.sh BIN_A BIN_B [BIN...]   (any of them may be `curl`)
#   ROUNDS   [8]       rounds (each binary once per round; 0: CALLGRIND counts only)
#   SET      [tiny]    tiny (10,000 x 4 KiB) or small (1,000 x 100 KiB), the first N files
#   N        [all]     how many files of the set
#   MODE     [ntasks]  ntasks (add --each: one task per file) or 1task (one task of all files)
#   PAR      [16]      max_concurrent = per_host_limit = files_in_parallel, as bench/run.sh
#   CALLGRIND [0]      1 = also count instructions (valgrind, installed when missing)
# The server must be running (bench/serve.sh start).
set -euo pipefail

ROUNDS=${ROUNDS:-8}
SET=${SET:-tiny}
MODE=${MODE:-ntasks}
PAR=${PAR:-16}
CALLGRIND=${CALLGRIND:-0}
BENCH_DATA=${BENCH_DATA:-/tmp/haul-bench-data}
BASE_URL="http://${BENCH_HOST:-127.0.0.1}:${BENCH_PORT:-18090}"
WORK=${AB_DIR:-/dev/shm/haul-bench-ab}

die() { echo "ab.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: bench/ab.sh BIN_A BIN_B [BIN...] (see the header for the knobs)"
for bin in "$@"; do [ "$bin" = curl ] || [ -x "$bin" ] || die "not an executable: $bin"; done
case "$SET" in tiny|small) ;; *) die "SET must be tiny or small" ;; esac
case "$MODE" in ntasks|1task) ;; *) die "MODE must be ntasks or 1task" ;; esac
curl -sf -o /dev/null "$BASE_URL/$SET/f$( [ "$SET" = tiny ] && echo 0000 || echo 000 ).bin" \
  || die "no server at $BASE_URL (bench/serve.sh start)"

mkdir -p "$WORK"
LIST="$WORK/list.txt"
( cd "$BENCH_DATA/$SET" && find . -maxdepth 1 -type f -name 'f*.bin' -printf '%f\n' | sort ) \
  | awk -v base="$BASE_URL/$SET/" -v n="${N:-0}" 'n == 0 || NR <= n { print base $0 }' > "$LIST"
FILES=$(wc -l < "$LIST")
[ "$FILES" -gt 0 ] || die "no files in $BENCH_DATA/$SET (bench/serve.sh gen)"
printf 'max_concurrent = %s\nper_host_limit = %s\nfiles_in_parallel = %s\n' "$PAR" "$PAR" "$PAR" \
  > "$WORK/haul.toml"
EACH=(); [ "$MODE" = ntasks ] && EACH=(--each)
awk '{ name = $0; sub(".*/", "", name); print "url = \"" $0 "\"\noutput = \"" name "\"" }' \
  "$LIST" > "$WORK/list.curl"

# Fresh state with the list added by `bin` (untimed; curl has nothing to add).
prepare() {
  rm -rf "$WORK/state" "$WORK/dl" && mkdir -p "$WORK/state" "$WORK/dl"
  [ "$1" = curl ] && return
  "$1" --config "$WORK/haul.toml" --db "$WORK/state/haul.db" add "${EACH[@]}" \
    --input "$LIST" --dest "$WORK/dl" > /dev/null
}

# Sets CMD to what `bin` is timed running: `haul run`, or curl fetching the whole list.
timed_command() {
  if [ "$1" = curl ]; then
    CMD=(curl -sS --fail --no-progress-meter --parallel --parallel-max "$PAR"
      --output-dir "$WORK/dl" -K "$WORK/list.curl")
  else
    CMD=("$1" --config "$WORK/haul.toml" --db "$WORK/state/haul.db" run --exit-when-idle)
  fi
}

# One timed run of `bin`: prints "wall_s cpu_s maxrss_kib files".
run_once() {
  local t0 t1
  timed_command "$1"
  t0=$(date +%s%N)
  /usr/bin/time -f '%U %S %M' -o "$WORK/time" "${CMD[@]}" > /dev/null 2>&1
  t1=$(date +%s%N)
  read -r user sys rss < "$WORK/time"
  echo "$(( (t1 - t0) / 1000000 ))" "$user" "$sys" "$rss" "$(find "$WORK/dl" -type f | wc -l)" \
    | awk '{printf "%.3f %.2f %d %d\n", $1 / 1000, $2 + $3, $4, $5}'
}

echo "ab.sh: $SET set, $FILES files, $MODE, $PAR at once, $ROUNDS rounds, in $WORK"
RESULTS="$WORK/runs.tsv"
: > "$RESULTS"
for (( r = 1; r <= ROUNDS; r++ )); do
  i=0
  for bin in "$@"; do
    prepare "$bin"
    read -r wall cpu rss files < <(run_once "$bin")
    [ "$files" -eq "$FILES" ] || die "$bin placed $files of $FILES files"
    printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$r" "$wall" "$cpu" "$rss" >> "$RESULTS"
    printf '  r%-2d %-40s wall %6.3f s  cpu %5.2f s  rss %6d KiB\n' "$r" "$bin" "$wall" "$cpu" "$rss"
    i=$(( i + 1 ))
  done
done

if [ "$ROUNDS" -gt 0 ]; then
  echo "medians of $ROUNDS rounds, and the fastest run (ratios to the first binary):"
python3 - "$RESULTS" "$@" <<'EOF'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
bins = sys.argv[2:]
med = {}
for i, b in enumerate(bins):
    mine = [r for r in rows if int(r[0]) == i]
    walls = [float(r[2]) for r in mine]
    med[i] = (statistics.median(walls), statistics.median(float(r[3]) for r in mine), min(walls))
for i, b in enumerate(bins):
    w, c, m = med[i]
    print(f"  {b:<40} wall {w:6.3f} s ({w / med[0][0]:.3f})  cpu {c:5.2f} s ({c / med[0][1]:.3f})"
          f"  fastest {m:6.3f} s ({m / med[0][2]:.3f})")
EOF
fi

if [ "$CALLGRIND" = 1 ]; then
  if ! command -v valgrind > /dev/null; then
    [ "$(id -u)" = 0 ] || die "CALLGRIND=1 needs valgrind, and this is not root: install it first"
    echo "ab.sh: installing valgrind"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind > /dev/null
  fi
  echo "instructions (callgrind, one run each, user space only):"
  for bin in "$@"; do
    prepare "$bin"
    timed_command "$bin"
    refs=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "${CMD[@]}" 2>&1 > /dev/null \
      | awk '/I *refs:/ {gsub(",", "", $NF); print $NF}')
    printf '  %-40s %s instructions (%s per file)\n' "$bin" "$refs" "$(( refs / FILES ))"
  done
fi
rm -rf "$WORK/state" "$WORK/dl"
