#!/usr/bin/env bash
# Chat latency behind a bulk transfer on a slow link (docs/PERFORMANCE.md
# "Live events behind a transfer").
#
#   scripts/bench-hol.sh            through the suite's loopback proxy
#   SHAPED=1 scripts/bench-hol.sh   over a kernel-shaped link (root, Linux)
#
# proxy:  BenchmarkChatBehindBulk (pkg/server): the proxy passes the stream
#         at 250 kB/s, 1 MB/s and 10 MB/s, reading the server through a
#         64 KiB receive buffer; over HTTP/1.1 and HTTP/2; COUNT runs each.
# shaped: the server (bin/xhrsse-server) in a network namespace, a veth pair
#         to it, tc tbf on the server's side at each of RATES (tbf burst
#         32kbit, latency 50ms: a bottleneck with a 50 ms queue); the same
#         benchmark against it over HTTP/1.1 (XHRSSE_HOL_URL). Namespaced
#         addresses only (10.213.13.0/30); everything is removed at the end.
#         SERVER=path runs that server binary instead of building
#         bin/xhrsse-server (e.g. an older build, for a before/after).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
COUNT=${COUNT:-1}
RATES=${RATES:-2mbit 8mbit 80mbit}

if [[ -z ${SHAPED:-} ]]; then
  exec go test -run '^$' -bench 'ChatBehindBulk' -benchtime 1x -count "$COUNT" -timeout 30m ./pkg/server
fi

ns=xhrsse-hol
port=${PORT:-18480}
if [[ -z ${SERVER:-} ]]; then
  go build -o bin/xhrsse-server ./cmd/server
  SERVER=bin/xhrsse-server
fi
go test -c -o bin/server.test ./pkg/server
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip link add hol-c type veth peer name hol-s
ip link set hol-s netns "$ns"
ip addr add 10.213.13.1/30 dev hol-c
ip link set hol-c up
ip netns exec "$ns" ip addr add 10.213.13.2/30 dev hol-s
ip netns exec "$ns" ip link set hol-s up
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" "$SERVER" -addr "10.213.13.2:$port" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do
  curl -fs "http://10.213.13.2:$port/healthz" >/dev/null && break
  sleep 0.1
done
for rate in $RATES; do
  ip netns exec "$ns" tc qdisc replace dev hol-s root tbf rate "$rate" burst 32kbit latency 50ms
  echo "shaped link: tbf rate $rate burst 32kbit latency 50ms"
  XHRSSE_HOL_URL="http://10.213.13.2:$port" bin/server.test -test.run '^$' \
    -test.bench 'ChatBehindBulk' -test.benchtime 1x -test.count "$COUNT" -test.timeout 10m | grep -E '^Benchmark'
done
