#!/usr/bin/env bash
# serve.sh - run Debian's nginx on 127.0.0.1 with bench/nginx.conf.in, serving
# generated random files for haul's download benchmarks (adapted from ../shared/bench;
# own port, state and data directories so it never collides with the shared server).
#
#   bench/serve.sh start     install packages if missing, generate data once, start nginx
#   bench/serve.sh stop      stop the nginx started by this script (by its pid file)
#   bench/serve.sh restart
#   bench/serve.sh status
#   bench/serve.sh check     self-test: validators, Range, throttle, fault codes
#   bench/serve.sh gen       only generate the data set (idempotent)
#   bench/serve.sh install   only apt-get install nginx aria2 hyperfine (if missing)
#   bench/serve.sh url       print the base URL
#
# Environment (defaults in brackets):
#   BENCH_DATA     [/tmp/haul-bench-data]   generated files (never in git)
#   BENCH_STATE    [/tmp/haul-bench-nginx]  rendered config, pid file, logs, temp dirs
#   BENCH_HOST     [127.0.0.1]         must be a 127.x.x.x address
#   BENCH_PORT     [18090]
#   NGINX_WORKERS  [1]                 worker_processes (the client needs the other core)
#   SLOW_RATE      [10m]               limit_rate of /slow/ (nginx units: m = MiB/s)
#   CRAWL_RATE     [32k]               limit_rate of /crawl/ (keeps many downloads active)
#   ACCESS_LOG     [0]                 1 = log every request (with Range) to $BENCH_STATE/access.log
#   BIG_MIB [1024] MID_MIB [256] SMALL_N [1000] SMALL_KIB [100] TINY_N [10000] TINY_KIB [4]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DATA=${BENCH_DATA:-/tmp/haul-bench-data}
BENCH_STATE=${BENCH_STATE:-/tmp/haul-bench-nginx}
BENCH_HOST=${BENCH_HOST:-127.0.0.1}
BENCH_PORT=${BENCH_PORT:-18090}
NGINX_WORKERS=${NGINX_WORKERS:-1}
SLOW_RATE=${SLOW_RATE:-10m}
CRAWL_RATE=${CRAWL_RATE:-32k}
ACCESS_LOG=${ACCESS_LOG:-0}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
BIG_MIB=${BIG_MIB:-1024}
MID_MIB=${MID_MIB:-256}
SMALL_N=${SMALL_N:-1000}
SMALL_KIB=${SMALL_KIB:-100}
TINY_N=${TINY_N:-10000}
TINY_KIB=${TINY_KIB:-4}

BASE_URL="http://${BENCH_HOST}:${BENCH_PORT}"
PIDFILE="$BENCH_STATE/nginx.pid"
CONF="$BENCH_STATE/nginx.conf"

die() { echo "serve.sh: $*" >&2; exit 1; }
log() { echo "serve.sh: $*" >&2; }

case "$BENCH_HOST" in
  127.*) ;;
  *) die "BENCH_HOST must be a loopback 127.x.x.x address (got $BENCH_HOST)";;
esac

# ---------------------------------------------------------------- packages
cmd_install() {
  local need=()
  command -v "$NGINX_BIN" >/dev/null 2>&1 || need+=(nginx)
  command -v aria2c    >/dev/null 2>&1 || need+=(aria2)
  command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
  command -v curl      >/dev/null 2>&1 || need+=(curl)
  command -v wget      >/dev/null 2>&1 || need+=(wget)
  [ -x /usr/bin/time ] || need+=(time)
  if [ ${#need[@]} -eq 0 ]; then return 0; fi
  [ "$(id -u)" = 0 ] || die "missing packages (${need[*]}) and not root; install them first"
  log "installing: ${need[*]}"
  # policy-rc.d in containers stops the packaged service from starting; we never use it.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# ---------------------------------------------------------------- data
manifest_params() {
  echo "params=big_mib=$BIG_MIB mid_mib=$MID_MIB small=${SMALL_N}x${SMALL_KIB}KiB tiny=${TINY_N}x${TINY_KIB}KiB"
}

# md5 of all files of a set concatenated in name order (what peers.sh verifies against)
set_md5() { (cd "$1" && find . -maxdepth 1 -type f -name 'f*.bin' -print0 | sort -z | xargs -0 cat | md5sum | cut -d' ' -f1); }

gen_set() { # dir count kib
  local dir=$1 n=$2 kib=$3 digits=${#2}
  [ $(( n - 1 )) -lt $(( 10 ** (digits - 1) )) ] && digits=$(( digits - 1 ))
  [ "$digits" -lt 1 ] && digits=1
  mkdir -p "$dir"
  # one dd from /dev/urandom, cut into n files of kib KiB: f000.bin .. f999.bin (zero-padded to the digits of n-1)
  dd if=/dev/urandom bs=1024 count=$(( n * kib )) iflag=fullblock status=none \
    | split -b $(( kib * 1024 )) -d -a "$digits" --additional-suffix=.bin - "$dir/f"
  local got; got=$(find "$dir" -maxdepth 1 -type f -name 'f*.bin' | wc -l)
  [ "$got" -eq "$n" ] || die "gen_set $dir: $got files, wanted $n"
}

cmd_gen() {
  local want; want=$(manifest_params)
  if [ -f "$BENCH_DATA/MANIFEST" ] && grep -qxF "$want" "$BENCH_DATA/MANIFEST"; then
    return 0
  fi
  if [ -e "$BENCH_DATA" ]; then
    # Only ever remove a directory this script made (it has a MANIFEST or a .generating mark).
    [ -f "$BENCH_DATA/MANIFEST" ] || [ -f "$BENCH_DATA/.generating" ] \
      || die "$BENCH_DATA exists and was not made by serve.sh; move it or set BENCH_DATA"
    log "data parameters changed; regenerating $BENCH_DATA"
    rm -rf "$BENCH_DATA"
  fi
  log "generating data in $BENCH_DATA (once) ..."
  local t0=$SECONDS
  mkdir -p "$BENCH_DATA/big"
  touch "$BENCH_DATA/.generating"
  dd if=/dev/urandom of="$BENCH_DATA/big/1g.bin"   bs=1M count="$BIG_MIB" iflag=fullblock status=none
  dd if=/dev/urandom of="$BENCH_DATA/big/256m.bin" bs=1M count="$MID_MIB" iflag=fullblock status=none
  gen_set "$BENCH_DATA/small" "$SMALL_N" "$SMALL_KIB"
  gen_set "$BENCH_DATA/tiny"  "$TINY_N"  "$TINY_KIB"
  chmod -R a+rX "$BENCH_DATA"
  {
    manifest_params
    echo "big_bytes=$(( BIG_MIB * 1048576 ))"
    echo "mid_bytes=$(( MID_MIB * 1048576 ))"
    echo "small_n=$SMALL_N"
    echo "small_bytes=$(( SMALL_N * SMALL_KIB * 1024 ))"
    echo "tiny_n=$TINY_N"
    echo "tiny_bytes=$(( TINY_N * TINY_KIB * 1024 ))"
    echo "big_sha256=$(sha256sum "$BENCH_DATA/big/1g.bin" | cut -d' ' -f1)"
    echo "mid_sha256=$(sha256sum "$BENCH_DATA/big/256m.bin" | cut -d' ' -f1)"
    echo "small_md5cat=$(set_md5 "$BENCH_DATA/small")"
    echo "tiny_md5cat=$(set_md5 "$BENCH_DATA/tiny")"
  } > "$BENCH_DATA/MANIFEST.tmp"
  mv "$BENCH_DATA/MANIFEST.tmp" "$BENCH_DATA/MANIFEST"
  rm -f "$BENCH_DATA/.generating"
  log "data generated in $(( SECONDS - t0 )) s: $(du -sh "$BENCH_DATA" | cut -f1)"
}

# ---------------------------------------------------------------- nginx
running_pid() {
  # Print the master pid if the nginx we started is running, else nothing.
  [ -f "$PIDFILE" ] || return 0
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  # make sure the pid is our nginx (started with our config), not a recycled pid
  if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$CONF"; then echo "$pid"; fi
}

render_conf() {
  mkdir -p "$BENCH_STATE/tmp"
  local user_line="" access="off"
  [ "$(id -u)" = 0 ] && user_line="user nobody nogroup;"
  [ "$ACCESS_LOG" = 1 ] && access="$BENCH_STATE/access.log bench"
  sed -e "s|@USER_LINE@|$user_line|" \
      -e "s|@WORKERS@|$NGINX_WORKERS|" \
      -e "s|@STATE@|$BENCH_STATE|g" \
      -e "s|@DATA@|$BENCH_DATA|g" \
      -e "s|@HOST@|$BENCH_HOST|g" \
      -e "s|@PORT@|$BENCH_PORT|g" \
      -e "s|@SLOW_RATE@|$SLOW_RATE|g" \
      -e "s|@CRAWL_RATE@|$CRAWL_RATE|g" \
      -e "s|@ACCESS_LOG@|$access|g" \
      "$HERE/nginx.conf.in" > "$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
}

wait_health() {
  local i
  for i in $(seq 1 50); do
    if curl -fsS --max-time 1 "$BASE_URL/health" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

cmd_start() {
  cmd_install
  cmd_gen
  local pid; pid=$(running_pid)
  if [ -n "$pid" ]; then log "already running (pid $pid) at $BASE_URL"; return 0; fi
  # The data directory must be traversable by the worker user (nobody).
  chmod a+rx "$BENCH_DATA" "$(dirname "$BENCH_DATA")" 2>/dev/null || true
  render_conf
  "$NGINX_BIN" -p "$BENCH_STATE" -c "$CONF" -e "$BENCH_STATE/error.log" -t -q \
    || die "config test failed: $CONF"
  "$NGINX_BIN" -p "$BENCH_STATE" -c "$CONF" -e "$BENCH_STATE/error.log"
  wait_health || { tail -20 "$BENCH_STATE/error.log" >&2; die "nginx did not answer on $BASE_URL"; }
  log "nginx pid $(cat "$PIDFILE") serving $BENCH_DATA at $BASE_URL (workers=$NGINX_WORKERS, /slow/ at $SLOW_RATE/s)"
}

cmd_stop() {
  local pid; pid=$(running_pid)
  if [ -z "$pid" ]; then log "not running"; rm -f "$PIDFILE"; return 0; fi
  kill -QUIT "$pid"           # graceful shutdown of the master we started
  local i
  for i in $(seq 1 50); do
    [ -d "/proc/$pid" ] || { log "stopped (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  sleep 0.5
  [ -d "/proc/$pid" ] && die "pid $pid did not exit"
  log "stopped (pid $pid, TERM)"
}

cmd_status() {
  local pid; pid=$(running_pid)
  if [ -n "$pid" ]; then
    echo "running: pid $pid, $BASE_URL, data $BENCH_DATA, conf $CONF"
  else
    echo "stopped"; return 3
  fi
}

# ---------------------------------------------------------------- self-test
cmd_check() {
  [ -n "$(running_pid)" ] || die "not running; run: $0 start"
  local fails=0 h code
  ok()   { printf '  ok    %s\n' "$*"; }
  bad()  { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }
  expect_code() { # path want
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE_URL$1" || true)
    [ "$code" = "$2" ] && ok "$1 -> $code" || bad "$1 -> $code (want $2)"
  }
  echo "checking $BASE_URL"
  h=$(curl -sSI --max-time 5 "$BASE_URL/big/1g.bin" | tr -d '\r')
  grep -qi '^etag: "'          <<<"$h" && ok "ETag: $(grep -i '^etag' <<<"$h" | cut -d' ' -f2)" || bad "no ETag"
  grep -qi '^last-modified: '  <<<"$h" && ok "$(grep -i '^last-modified' <<<"$h")" || bad "no Last-Modified"
  grep -qi '^accept-ranges: bytes' <<<"$h" && ok "Accept-Ranges: bytes" || bad "no Accept-Ranges"
  grep -qi "^content-length: $(( BIG_MIB * 1048576 ))" <<<"$h" && ok "Content-Length $(( BIG_MIB * 1048576 ))" || bad "Content-Length"
  local etag; etag=$(grep -i '^etag' <<<"$h" | cut -d' ' -f2)
  h=$(curl -s -D - -o /dev/null -H 'Range: bytes=100-199' --max-time 5 "$BASE_URL/big/1g.bin" | tr -d '\r')
  grep -q '^HTTP/1.1 206' <<<"$h" && grep -qi '^content-range: bytes 100-199/' <<<"$h" \
    && ok "Range bytes=100-199 -> 206 $(grep -i '^content-range' <<<"$h")" || bad "Range -> $(head -1 <<<"$h")"
  local a b
  a=$(curl -s -H 'Range: bytes=100-199' "$BASE_URL/big/1g.bin" | md5sum | cut -d' ' -f1)
  b=$(dd if="$BENCH_DATA/big/1g.bin" bs=1 skip=100 count=100 status=none | md5sum | cut -d' ' -f1)
  [ "$a" = "$b" ] && ok "Range body matches file bytes 100..199" || bad "Range body differs"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=100-199' -H "If-Range: $etag" "$BASE_URL/big/1g.bin")
  [ "$code" = 206 ] && ok "If-Range with current ETag -> 206" || bad "If-Range current -> $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=100-199' -H 'If-Range: "stale"' "$BASE_URL/small/f000.bin" --max-time 5 || true)
  [ "$code" = 200 ] && ok "If-Range with stale ETag -> 200 (full body)" || bad "If-Range stale -> $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$BASE_URL/big/1g.bin")
  [ "$code" = 304 ] && ok "If-None-Match -> 304" || bad "If-None-Match -> $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=100-199' "$BASE_URL/norange/small/f000.bin" --max-time 5 || true)
  [ "$code" = 200 ] && ok "/norange/ ignores Range -> 200" || bad "/norange/ -> $code"
  h=$(curl -sSI "$BASE_URL/novalidators/small/f000.bin" | tr -d '\r')
  if grep -qiE '^(etag|last-modified):' <<<"$h"; then bad "/novalidators/ still sends a validator"; else ok "/novalidators/ sends no ETag/Last-Modified"; fi
  expect_code /fault/404 404
  expect_code /fault/404/x.bin 404
  expect_code /fault/410 410
  expect_code /fault/500 500
  expect_code /fault/503 503
  expect_code /fault/429 429
  expect_code /fault/redirect/small/f000.bin 302
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE_URL/fault/drop" || true)
  [ "$code" = 000 ] && ok "/fault/drop closes without a response" || bad "/fault/drop -> $code"
  # throttle: fetch 20 MiB from /slow/ and compute the rate
  local spd want
  spd=$(curl -s -o /dev/null -w '%{speed_download}' -r 0-20971519 --max-time 20 "$BASE_URL/slow/big/1g.bin")
  want=$(awk -v r="$SLOW_RATE" 'BEGIN{u=tolower(substr(r,length(r))); n=r+0; if(u=="m")n*=1048576; else if(u=="k")n*=1024; print n}')
  awk -v s="$spd" -v w="$want" 'BEGIN{exit !(s > 0.8*w && s < 1.25*w)}' \
    && ok "/slow/ throttled: $(awk -v s="$spd" 'BEGIN{printf "%.2f MiB/s", s/1048576}')" \
    || bad "/slow/ rate $(awk -v s="$spd" 'BEGIN{printf "%.2f MiB/s", s/1048576}') (want ~$SLOW_RATE/s)"
  [ "$fails" -eq 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; return 1; }
}

case "${1:-}" in
  start)   cmd_start ;;
  stop)    cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status)  cmd_status ;;
  check)   cmd_check ;;
  gen)     cmd_gen ;;
  install) cmd_install ;;
  url)     echo "$BASE_URL" ;;
  *) sed -n '2,28p' "$0"; exit 2 ;;
esac
