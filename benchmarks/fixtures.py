"""The fixed inputs of ``make bench``: run counts, paths, the baseline scripts, the
stand-ins for systemctl and journalctl, and the heartbeat body the baselines POST."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
RESULTS = os.path.join(HERE, "RESULTS.md")
PY = "/usr/bin/python3"
DEB_HOOK = "/usr/bin/seestack-hook"
GNU_TIME = "/usr/bin/time"
DEVNULL = subprocess.DEVNULL

RUNS = int(os.environ.get("BENCH_RUNS", "41"))  # the quick process benchmarks
SLOW_RUNS = int(os.environ.get("BENCH_SLOW_RUNS", "30"))  # refused/blackholed, flush, list
WARMUP = 3
SLOW_WARMUP = 2
RSS_RUNS = 10
IMPORT_RUNS = 9
LIB_RUNS, LIB_WARMUP = 301, 30
DEADLINE = 2.0
SPOOL_SIZE = 1000
LIST_UNITS = 500
MIB = 1024 * 1024

API_KEY = "bench-key-0123456789abcdef"
# start/finish get their settings as a drop-in gives them (enable --deadline ...): a root hook
# reads no SEESTACK_* variable, so the environment's settings become these flags.
HOOK_FLAGS = {"SEESTACK_CONFIG": "--config", "SEESTACK_STATE_DIR": "--state-dir", "SEESTACK_DATA_DIR": "--data-dir",
              "SEESTACK_ENDPOINT": "--endpoint", "SEESTACK_API_KEY_FILE": "--api-key-file",
              "SEESTACK_DEADLINE": "--deadline"}
LAUNCH = "import sys; sys.path.insert(0, {root!r}); from seestack_systemd.cli.main import entry; entry()"
URLLIB_SCRIPT = (
    "import sys, urllib.request\n"
    "url, key, run_id, body = sys.argv[1:5]\n"
    "req = urllib.request.Request(url, data=body.encode(), method='POST', headers={"
    "'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json',"
    " 'User-Agent': 'seestack-systemd/0.1.0 (urllib baseline)', 'Idempotency-Key': run_id})\n"
    "with urllib.request.urlopen(req, timeout=10) as r:\n"
    "    r.read()\n"
)
# `finish` against the script, step by step: what each import adds (checkout modules: the
# ones `finish` imports, measured with -X importtime; `-IS`, as the hook runs).
IMPORT_STEPS = {
    "step-urllib": "import urllib.request",
    "step-stdlib": "import urllib.request, json, configparser",
    "step-ours": "import sys; sys.path.insert(0, {root!r}); import urllib.request, json, configparser; "
                 + "; ".join(f"import seestack_systemd.{name}" for name in (
                     "cli.main", "settings.config", "state", "systemd.hook", "heartbeat", "delivery.report",
                     "delivery.spool", "delivery.policy", "delivery.transport", "slug", "systemd.unitenv")),
}
# The same for an https endpoint whose certificate a private CA signed (its file in argv[5]).
URLLIB_HTTPS_SCRIPT = URLLIB_SCRIPT.replace("import sys,", "import ssl, sys,").replace(
    "urlopen(req, timeout=10)", "urlopen(req, timeout=10, context=ssl.create_default_context(cafile=sys.argv[5]))")
# A receiver behind TLS: the product's Receiver with its socket wrapped (argv: root, port, cert, key).
HTTPS_RECEIVER = (
    "import signal, ssl, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from seestack_systemd.receiver.receive import Receiver\n"
    "r = Receiver(port=int(sys.argv[2]))\n"
    "c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "c.load_cert_chain(sys.argv[3], sys.argv[4])\n"
    "r._server.socket = c.wrap_socket(r._server.socket, server_side=True)\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "r.serve_forever()\n"
)
MAKE_CA = """set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost\\n' > ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext 2>/dev/null
"""
# Stand-ins for systemctl and journalctl (this host's PID 1 is not systemd): what finish
# --unit costs of our own (subprocess, the journal settle loop), not systemd's answer time.
STUB_SYSTEMCTL = """#!/bin/sh
printf 'Id=bench.service\\nInvocationID=0\\nTriggeredBy=bench.timer\\n\\nId=bench.timer\\nTimersCalendar={ OnCalendar=*-*-* 02:00:00 ; next_elapse=n/a }\\n'
"""
STUB_JOURNALCTL = """#!/bin/sh
echo 'Processed 1842 records'
"""


class BenchError(Exception):
    """A benchmark step failed: the run stops, and no RESULTS.md is written."""


def heartbeat_body(slug: str, run_id: str, finished_at: float | None = None) -> bytes:
    """A heartbeat as the hook sends it (what the baselines POST)."""
    finished_at = time.time() if finished_at is None else finished_at
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(finished_at)) + f".{int(finished_at * 1000) % 1000:03d}Z"
    doc = {
        "slug": slug, "status": "success", "durationMs": 1234, "runId": run_id, "finishedAt": stamp,
        "startedAt": stamp, "host": platform.node(), "source": {"systemd": {"invocationId": "0" * 32}},
        "sdk": {"name": "seestack-systemd", "version": "0.1.0"},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(argv: list[str]) -> str:
    """A tool's stripped stdout; "" when it cannot run (a fact for the Machine section)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""

