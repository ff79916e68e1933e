#!/bin/sh
# make demo-local: the agent end to end without root or containers.
# A local receiver, one succeeding and one failing job through `run`, and a
# simulated systemd stop (start, then finish with SERVICE_RESULT=exit-code).
set -eu
exec 2>&1  # hook log lines in order with the jobs' output
PY=${PYTHON:-/usr/bin/python3}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "$receiver" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

$PY -m seestack_systemd receive --listen "127.0.0.1:$port" >"$work/receiver.log" 2>&1 &
receiver=$!
printf 'demo-key-0000\n' >"$work/key" && chmod 600 "$work/key"
export SEESTACK_ENDPOINT="http://127.0.0.1:$port" SEESTACK_API_KEY_FILE="$work/key" SEESTACK_CONFIG=/dev/null \
       SEESTACK_STATE_DIR="$work/state" SEESTACK_DATA_DIR="$work/data"
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q listening "$work/receiver.log" && break; sleep 0.1; done

echo "== a cron job that succeeds:  seestack-hook run nightly-report -- sh -c 'echo Processed 1842 records'"
$PY -m seestack_systemd run nightly-report -- sh -c 'echo Processed 1842 records'
echo "== a cron job that fails:     seestack-hook run db-backup -- sh -c '...; exit 2'"
$PY -m seestack_systemd run db-backup -- sh -c 'echo "pg_dump: connection refused" >&2; exit 2' || echo "(the job's exit code, 2, is passed on)"
echo "== a systemd stop, simulated: start, 1 s of work, finish with SERVICE_RESULT=exit-code"
export INVOCATION_ID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
$PY -m seestack_systemd start reconcile
sleep 1
SERVICE_RESULT=exit-code EXIT_CODE=exited EXIT_STATUS=1 $PY -m seestack_systemd finish reconcile

sleep 0.2
echo
echo "== what the receiver got:"
grep -v listening "$work/receiver.log"
