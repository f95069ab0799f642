#!/usr/bin/env bash
# Starts the server in the background, with one published channel "log"
# whose publish token is $XHRSSE_PUBLISH_TOKEN (default "demo-token"), and the
# TUI against it; stops the server when the TUI exits.
# Usage: scripts/run.sh [ADDR]
set -euo pipefail
addr=${1:-127.0.0.1:8080}
here=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp -t xhrsse-server.XXXXXX.log)
export XHRSSE_PUBLISH_TOKEN=${XHRSSE_PUBLISH_TOKEN:-demo-token}
"$here/bin/xhrsse-server" -addr "$addr" -channel log=Log 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -fsS "http://$addr/healthz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
echo "xhrsse server on http://$addr/  — open it in a browser too (log: $log)"
echo "feed channel log from another shell:"
echo "  echo hello | curl -sT - -H 'Authorization: Bearer $XHRSSE_PUBLISH_TOKEN' -H 'Content-Type: text/plain' http://$addr/channels/log/events"
"$here/bin/xhrsse-tui" -server "http://$addr"
echo "xhrsse: the browser page was at http://$addr/ (server log: $log)"
