#!/bin/sh
# make demo-local: the agent end to end without root or containers.
# A local receiver, one succeeding and one failing job through `run`, and a
# simulated systemd stop (start, then finish with SERVICE_RESULT=exit-code).
set -eu
exec 2>&1  # hook log lines in order with the jobs' output
PY=${PYTHON:-/usr/bin/python3}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "$receiver" 2>/dev/null || true; rm -rf "$work" ${scratch:+"$scratch"}' EXIT INT TERM
# The try-it path of the README: a receiver with a scratch setup of its own (receive --try),
# whose export lines point every command at it; nothing touches /etc, /run or /var/lib.
$PY -m seestack_systemd receive --try --listen 127.0.0.1:0 >"$work/receiver.log" 2>&1 &
receiver=$!
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do grep -qs listening "$work/receiver.log" && break; sleep 0.1; done
eval "$(grep '^export SEESTACK_' "$work/receiver.log")"
[ -n "${SEESTACK_CONFIG:-}" ] || { echo "the receiver did not start:"; cat "$work/receiver.log"; exit 1; }
scratch=$(dirname "$SEESTACK_CONFIG")

echo "== a cron job that succeeds:  seestack-hook run nightly-report -- sh -c 'echo Processed 1842 records'"
$PY -m seestack_systemd run nightly-report -- sh -c 'echo Processed 1842 records'
echo "== a cron job that fails:     seestack-hook run db-backup -- sh -c '...; exit 2'"
$PY -m seestack_systemd run db-backup -- sh -c 'echo "pg_dump: connection refused" >&2; exit 2' || echo "(the job's exit code, 2, is passed on)"
echo "== a systemd stop, simulated: start, 1 s of work, finish with SERVICE_RESULT=exit-code"
export INVOCATION_ID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# As root the hooks read the config file and their flags, never SEESTACK_* (a unit's user may set those):
# they get --config, and the variables are unset for them, as a real unit would have none.
config=$SEESTACK_CONFIG
hook() { (unset SEESTACK_CONFIG SEESTACK_ENDPOINT SEESTACK_API_KEY_FILE SEESTACK_STATE_DIR SEESTACK_DATA_DIR
          exec "$@"); }
hook $PY -m seestack_systemd start --config "$config" reconcile
sleep 1
hook env SERVICE_RESULT=exit-code EXIT_CODE=exited EXIT_STATUS=1 $PY -m seestack_systemd finish --config "$config" reconcile

sleep 0.2
echo
echo "== what the receiver got:"
grep -v -e listening -e '^#' -e '^export ' "$work/receiver.log"
