#!/usr/bin/env bash
# Starts the server in the background and the TUI against it; stops the
# server when the TUI exits. Usage: scripts/run.sh [ADDR]
set -euo pipefail
addr=${1:-127.0.0.1:8080}
here=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp -t xhrsse-server.XXXXXX.log)
"$here/bin/xhrsse-server" -addr "$addr" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -fsS "http://$addr/healthz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
echo "xhrsse server on http://$addr/  — open it in a browser too (log: $log)"
"$here/bin/xhrsse-tui" -server "http://$addr"
echo "xhrsse: the browser page was at http://$addr/ (server log: $log)"
