#!/usr/bin/env bash
# Load benchmark: xhrsse against its two baselines (internal/baseline), each
# run in turn on a loopback port with the same channel rates, each loaded by
# cmd/loadgen with the same N, duration and chat rate; one table at the end
# with every figure and its ratio to the raw baseline and to r3labs.
#
#   scripts/bench-load.sh [load]      N=1000 DUR=20s CHAT=1 REPEAT=1
#   scripts/bench-load.sh saturate    N=1000 DUR=10s MULTS="1 2 3 4 6 8 12 16 24 32"
#   scripts/bench-load.sh bulk        BULK=33554432 DUR=10s REPEAT=1
#   scripts/bench-load.sh capacity    FROM=1000 TO=12000 STEP=1000 DUR=10s
#
# Each run prints a line as it ends (-summary); the table at the end has the
# load generator's own CPU beside the servers' figures.
#
# load:     N streams tuned to every channel at the default rates (5+3+2
#           ticks/s), CHAT chats/s, for DUR, REPEAT times (servers
#           interleaved, so noise hits them alike).
# saturate: at N streams, the channel rates times each of MULTS in turn until
#           a server no longer keeps up (under 95 % of the expected ticks, or
#           any gap, drop or connect error); reports the highest it sustained.
# bulk:     back-to-back transfers of BULK bytes for DUR, over SSE from
#           xhrsse (POST /sessions/ID/bulk) and as a plain HTTP GET from the
#           raw baseline (GET /debug/blob), one stream open.
# capacity: capacity per core. Each server pinned to CPU 0 and the load
#           generator to CPU 1 (taskset); N from FROM to TO by STEP, CHAT
#           chats/s, window DUR, each server until the first N it does not
#           hold: every stream held, >= 99.9 % of ticks (by their ids) and
#           of chats delivered, chat p99 <= 200 ms (loadgen.Held). Reports
#           the largest N held.
#           Bounded: at most (TO-FROM)/STEP+1 runs a server, each about
#           ramp + DUR + 10 s.
#
# Other settings: SERVERS="xhrsse raw r3labs", BIN=bin, OUT=<dir for the
# JSON reports> (default: a new directory under /tmp), PORT=18080 (first of
# three), RAMP=180s (longest time to open the streams), SERVER_FLAGS (extra
# flags for cmd/server), XHRSSE_LABEL=xhrsse (its name in the table, e.g.
# to tell runs with different SERVER_FLAGS apart), NOBUILD=1 (use the
# binaries already in BIN), PIN=1 (pin the server to CPU 0 and the load
# generator to CPU 1 in any mode; capacity always pins).
#
# Variants: any other name in SERVERS is an xhrsse server run from
# BIN_<name> (default: the one just built) with FLAGS_<name> added, so two
# builds or two settings are measured side by side in one run, e.g.
#   BIN_before=/tmp/old/xhrsse-server FLAGS_fi50="-flush-interval 50ms" \
#   SERVERS="xhrsse before fi50 raw" N=5000 scripts/bench-load.sh
set -euo pipefail

mode=${1:-load}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
N=${N:-1000}
CHAT=${CHAT:-1}
REPEAT=${REPEAT:-1}
SERVERS=${SERVERS:-xhrsse raw r3labs}
BIN=${BIN:-bin}
PORT=${PORT:-18080}
SERVER_FLAGS=${SERVER_FLAGS:-}
RAMP=${RAMP:-180s}
XHRSSE_LABEL=${XHRSSE_LABEL:-xhrsse}
OUT=${OUT:-$(mktemp -d /tmp/xhrsse-bench.XXXXXX)}
mkdir -p "$OUT"
case $mode in
  load) DUR=${DUR:-20s} ;;
  saturate) DUR=${DUR:-10s}; MULTS=${MULTS:-1 2 3 4 6 8 12 16 24 32} ;;
  bulk) DUR=${DUR:-10s}; BULK=${BULK:-33554432} ;;
  capacity) DUR=${DUR:-10s}; FROM=${FROM:-1000}; TO=${TO:-12000}; STEP=${STEP:-1000}; PIN=1 ;;
  *) echo "usage: $0 [load|saturate|bulk|capacity]" >&2; exit 2 ;;
esac

# PIN: the server on CPU 0, the load generator on CPU 1, so that each has
# one core of its own (other processes on the machine may still share them).
server_pin=()
load_pin=()
if [[ -n ${PIN:-} ]]; then
  command -v taskset >/dev/null || { echo "PIN needs taskset (util-linux)" >&2; exit 2; }
  (($(nproc) >= 2)) || { echo "PIN needs two CPUs" >&2; exit 2; }
  server_pin=(taskset -c 0)
  load_pin=(taskset -c 1)
fi

# Every process gets the hard file limit: N streams are N descriptors on
# each side.
ulimit -n "$(ulimit -Hn)"

if [[ -z ${NOBUILD:-} ]]; then
  echo "building into $BIN/ …" >&2
  go build -o "$BIN/xhrsse-server" ./cmd/server
  go build -o "$BIN/xhrsse-baseline" ./cmd/baseline
  go build -o "$BIN/xhrsse-loadgen" ./cmd/loadgen
fi

pid=
stop_server() {
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap stop_server EXIT

# start_server KIND PORT MULT: runs one server with the default channel
# rates times MULT and waits until it answers.
start_server() {
  local kind=$1 port=$2 mult=$3
  local rates=(-rate-one "$(awk "BEGIN{print 5*$mult}")" -rate-two "$(awk "BEGIN{print 3*$mult}")" -rate-three "$(awk "BEGIN{print 2*$mult}")")
  local log="$OUT/$kind-$port.log"
  # Another server on the port would answer for this one and be measured.
  if curl -fsS "http://127.0.0.1:$port/channels" >/dev/null 2>&1; then
    echo "port $port already serves something (another run? set PORT=…)" >&2
    exit 1
  fi
  case $kind in
    # shellcheck disable=SC2086 # SERVER_FLAGS is a list of flags
    xhrsse) "${server_pin[@]}" "$BIN/xhrsse-server" -addr "127.0.0.1:$port" -log-level warn -max-streams 20000 "${rates[@]}" $SERVER_FLAGS 2>>"$log" & ;;
    raw|raw-naive|r3labs) "${server_pin[@]}" "$BIN/xhrsse-baseline" -kind "$kind" -addr "127.0.0.1:$port" "${rates[@]}" 2>>"$log" & ;;
    *)
      [[ $kind =~ ^[A-Za-z0-9_]+$ ]] || { echo "bad server name $kind" >&2; exit 2; }
      local vbin="BIN_$kind" vflags="FLAGS_$kind"
      # shellcheck disable=SC2086 # FLAGS_<name> is a list of flags
      "${server_pin[@]}" "${!vbin:-$BIN/xhrsse-server}" -addr "127.0.0.1:$port" -log-level warn -max-streams 20000 "${rates[@]}" ${!vflags:-} 2>>"$log" &
      ;;
  esac
  pid=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/channels" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$kind did not come up on port $port" >&2
  exit 1
}

port_of() {
  case $1 in raw) echo $((PORT + 1)) ;; r3labs) echo $((PORT + 2)) ;; raw-naive) echo $((PORT + 3)) ;; *) echo "$PORT" ;; esac
}

# run_one KIND MULT FILE LOADGEN-FLAGS…: a fresh server, one loadgen run.
run_one() {
  local kind=$1 mult=$2 file=$3
  shift 3
  local port label=$kind
  [[ $kind == xhrsse ]] && label=$XHRSSE_LABEL
  port=$(port_of "$kind")
  start_server "$kind" "$port" "$mult"
  echo "$(date +%T) $label ×$mult: loadgen $*  (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "${load_pin[@]}" "$BIN/xhrsse-loadgen" -url "http://127.0.0.1:$port" -label "$label" -pid "$pid" -duration "$DUR" -ramp-timeout "$RAMP" -json "$@" >"$file"
  stop_server
  # One line a run, the load generator's own CPU in it: near a full core,
  # it rather than the server may be what limits the run.
  "$BIN/xhrsse-loadgen" -summary "$file" >&2
  sleep 2 # let the closed connections go before the next server starts
}

echo "machine: $(nproc) cores, $(free -m | awk '/^Mem:/{print $2}') MiB, $(go version | cut -d' ' -f3), file limit $(ulimit -n)" >&2
case $mode in
load)
  files=()
  for r in $(seq "$REPEAT"); do
    for kind in $SERVERS; do
      label=$kind
      [[ $kind == xhrsse ]] && label=$XHRSSE_LABEL
      f="$OUT/load-n$N-$label-$r.json"
      run_one "$kind" 1 "$f" -n "$N" -chat-rate "$CHAT"
      files+=("$f")
    done
  done
  echo
  echo "N=$N, all channels at the default rates, $CHAT chat/s, window $DUR, $REPEAT run(s) each; medians (failures: worst run); reports in $OUT"
  "$BIN/xhrsse-loadgen" -compare "${files[@]}"
  ;;
saturate)
  files=()
  for kind in $SERVERS; do
    for m in $MULTS; do
      label=$kind
      [[ $kind == xhrsse ]] && label=$XHRSSE_LABEL
      f="$OUT/sat-n$N-$label-x$m.json"
      run_one "$kind" "$m" "$f" -n "$N" -chat-rate "$CHAT"
      files+=("$f")
      grep -q '"kept_up": true' "$f" || { echo "$kind stopped keeping up at ×$m" >&2; break; }
    done
  done
  echo
  echo "saturation at N=$N, rates ×(${MULTS}) of 5+3+2 ticks/s per stream, $CHAT chat/s, window $DUR each; reports in $OUT"
  "$BIN/xhrsse-loadgen" -saturation "${files[@]}"
  ;;
bulk)
  files=()
  # Every xhrsse (and variant) in SERVERS sends over SSE; raw is the plain
  # GET; r3labs has no bulk.
  for r in $(seq "$REPEAT"); do
    for kind in $SERVERS; do
      [[ $kind == r3labs ]] && continue
      label=$kind
      [[ $kind == xhrsse ]] && label=$XHRSSE_LABEL
      via=sse
      [[ $kind == raw ]] && via=get
      f="$OUT/bulk-$label-$r.json"
      run_one "$kind" 1 "$f" -n 1 -chat-rate 0 -bulk-bytes "$BULK" -bulk-via "$via"
      files+=("$f")
    done
  done
  echo
  echo "bulk: $BULK-byte transfers back to back for $DUR; xhrsse over SSE, raw as a plain GET; reports in $OUT"
  "$BIN/xhrsse-loadgen" -compare -ref raw "${files[@]}"
  ;;
capacity)
  files=()
  for kind in $SERVERS; do
    label=$kind
    [[ $kind == xhrsse ]] && label=$XHRSSE_LABEL
    for ((n = FROM; n <= TO; n += STEP)); do
      # REPEAT windows a step: the step is held when most of them are.
      step=()
      for ((i = 1; i <= REPEAT; i++)); do
        f="$OUT/cap-$label-n$n-w$i.json"
        run_one "$kind" 1 "$f" -n "$n" -chat-rate "$CHAT"
        step+=("$f")
      done
      files+=("${step[@]}")
      "$BIN/xhrsse-loadgen" -held "${step[@]}" >&2 || break
    done
  done
  echo
  echo "capacity per core: server on CPU 0, load generator on CPU 1; N=$FROM…$TO by $STEP, all channels at the default rates, $CHAT chat/s, $REPEAT windows of $DUR a step (held by most); reports in $OUT"
  "$BIN/xhrsse-loadgen" -capacity "${files[@]}"
  ;;
esac
