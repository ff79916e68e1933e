#!/usr/bin/python3
"""``make bench``: the performance benchmark of seestack-hook. Standard library only.

Every figure is the median of at least 30 runs after warm-up, measured in one
run beside its baselines, everything under Debian's /usr/bin/python3. Whole
processes are timed from outside (``time.perf_counter`` around
``subprocess.run``); peak RSS comes from ``/usr/bin/time -f %M`` (a small C
parent, so the child's ru_maxrss is not inflated by this script's own memory,
which a fork from a Python parent would report as the child's).

The hooks run as users run them: an executable file with the shebang
``#!/usr/bin/python3 -IS`` (the checkout's, through a launcher that puts the
checkout first on sys.path; and the installed package's /usr/bin/seestack-hook
when it is installed). The receiver is the product's own (``seestack-hook
receive``) in a separate process, so its work never shares this process's GIL.

Prints a table and writes benchmarks/RESULTS.md. Environment knobs (for
development only; fewer than 30 runs is not a valid result): BENCH_RUNS,
BENCH_SLOW_RUNS, BENCH_SKIP_SLOW=1 (skips the refused/blackholed runs).
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from seestack_systemd.state import new_run_id  # noqa: E402  (the id the hooks use)
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

# The budgets of the issue, from one run.
BUDGET_START_RATIO = 1.6  # start / python3 -I -S -c pass
BUDGET_FINISH_RATIO = 1.0  # finish / minimal urllib.request script (http and https)
BUDGET_RSS_MIB = 24.0
BUDGET_DEADLINE_SLACK = 0.3  # seconds past the deadline
BUDGET_FLUSH_RATE = 500.0  # heartbeats per second
BUDGET_LIST_S = 1.0
BUDGET_BOOTED_RATIO = 6.0  # booted Debian 12: our drop-in's added time per run / the curl lines'
BOOTED_CASES = {"plain": "no hooks", "curl": "healthchecks-style curl lines", "ours": "our drop-in"}
BOOTED_PARTS = {"true": "`/bin/true` (the nsenter floor)", "python": "`python3 -IS -c pass`",
                "urllib-import": "`python3 -IS -c 'import urllib.request'`", "systemctl-show": "`systemctl show` of"
                " the unit and its timer", "journalctl": "`journalctl` of the invocation, last line",
                "start": "`seestack-hook start --unit`", "finish": "`seestack-hook finish --unit`, 202"}

API_KEY = "bench-key-0123456789abcdef"
LAUNCH = "import sys; sys.path.insert(0, {root!r}); from seestack_systemd.cli import main; sys.exit(main())"
URLLIB_SCRIPT = (
    "import sys, urllib.request\n"
    "url, key, run_id, body = sys.argv[1:5]\n"
    "req = urllib.request.Request(url, data=body.encode(), method='POST', headers={"
    "'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json',"
    " 'User-Agent': 'seestack-systemd/0.1.0 (urllib baseline)', 'Idempotency-Key': run_id})\n"
    "with urllib.request.urlopen(req, timeout=10) as r:\n"
    "    r.read()\n"
)
# The same for an https endpoint whose certificate a private CA signed (its file in argv[5]).
URLLIB_HTTPS_SCRIPT = URLLIB_SCRIPT.replace("import sys,", "import ssl, sys,").replace(
    "urlopen(req, timeout=10)", "urlopen(req, timeout=10, context=ssl.create_default_context(cafile=sys.argv[5]))")
# A receiver behind TLS: the product's Receiver with its socket wrapped (argv: root, port, cert, key).
HTTPS_RECEIVER = (
    "import signal, ssl, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from seestack_systemd.receiver import Receiver\n"
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
    pass


def median(values: list[float]) -> float:
    return statistics.median(values)


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class Bench:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix="seestack-bench.")  # disk, like /var/lib/seestack
        self.shm = tempfile.mkdtemp(prefix="seestack-bench.", dir="/dev/shm")  # tmpfs, like /run
        self.procs: list[subprocess.Popen] = []
        self.samples: dict[str, list[float]] = {}
        self.rss: dict[str, list[int]] = {}
        self.notes: list[str] = []
        self.library: dict = {}
        self.imports: dict[str, list[tuple[str, float, str]]] = {}
        self.import_totals: dict[str, float] = {}
        self.deb = os.access(DEB_HOOK, os.X_OK)
        self.refused_sock: socket.socket | None = None

    # --- set-up ---------------------------------------------------------------------------

    def setup(self) -> None:
        self.key_file = self._private(os.path.join(self.tmp, "api-key"), API_KEY + "\n")
        self.launcher = os.path.join(self.tmp, "seestack-hook")
        with open(self.launcher, "w") as f:
            # The installed script's own form (packaging/debian/rules): -IS, the package's path added.
            f.write("#!/usr/bin/python3 -IS\n" + LAUNCH.format(root=ROOT).replace("; ", "\n") + "\n")
        os.chmod(self.launcher, 0o755)
        stubs = os.path.join(self.tmp, "stubs")
        os.mkdir(stubs)
        for name, text in (("systemctl", STUB_SYSTEMCTL), ("journalctl", STUB_JOURNALCTL)):
            with open(os.path.join(stubs, name), "w") as f:
                f.write(text)
            os.chmod(os.path.join(stubs, name), 0o755)
        self.stub_path = stubs + ":/usr/sbin:/usr/bin:/sbin:/bin"

        self.base_env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": self.tmp,
            "SEESTACK_STATE_DIR": os.path.join(self.shm, "state"),
        }
        self.url = self._receiver("ok", "")
        self.hang_url = self._receiver("hang", ",".join(["hang"] * (4 * (SLOW_RUNS + SLOW_WARMUP) + 20)))
        self.refused_sock = socket.socket()
        self.refused_sock.bind(("127.0.0.1", 0))  # bound, never listening: connect() is refused
        self.refused_url = "http://127.0.0.1:%d" % self.refused_sock.getsockname()[1]

        # The configuration as deployed: the package's conffile with endpoint and api_key_file set.
        with open(os.path.join(ROOT, "packaging", "seestack.conf")) as f:
            conf = f.read()
        conf = conf.replace("# endpoint = https://seestack.example.com", f"endpoint = {self.url}", 1)
        conf = conf.replace("# api_key_file = /etc/seestack/api-key", f"api_key_file = {self.key_file}", 1)
        if f"endpoint = {self.url}" not in conf:
            conf += f"\nendpoint = {self.url}\napi_key_file = {self.key_file}\n"
        self.conf = self._private(os.path.join(self.tmp, "seestack.conf"), conf)
        self.env = dict(self.base_env, SEESTACK_CONFIG=self.conf, SEESTACK_DATA_DIR=os.path.join(self.tmp, "data"))
        # The same settings from the environment alone (no config file to read).
        self.env_only = dict(self.base_env, SEESTACK_CONFIG="/dev/null", SEESTACK_ENDPOINT=self.url,
                             SEESTACK_API_KEY_FILE=self.key_file, SEESTACK_DATA_DIR=os.path.join(self.tmp, "data"))

        self.https_url = self.https_env = None
        if shutil.which("openssl"):
            self._https_setup(conf)

        self.body_file = os.path.join(self.shm, "body.json")
        self.hooks = {"checkout": self.launcher}
        if self.deb:
            where = sh([PY, "-I", "-c", "import seestack_systemd; print(seestack_systemd.__file__)"])
            self.hooks["deb"] = DEB_HOOK
            self.deb_where = where
            version = sh(["dpkg-query", "-W", "-f=${Version}", "seestack-systemd"])
            self.deb_version = version or "?"
            self.deb_same = self._same_code(os.path.dirname(where)) if where else False

    def _https_setup(self, conf: str) -> None:
        """A private CA (openssl), a TLS receiver for localhost, and a config naming its ca_file."""
        pki = os.path.join(self.tmp, "pki")
        os.mkdir(pki)
        subprocess.run(["sh", "-c", MAKE_CA], cwd=pki, check=True)
        self.ca_file = os.path.join(pki, "ca.pem")
        port = free_port()
        argv = [PY, "-I", "-c", HTTPS_RECEIVER, ROOT, str(port), os.path.join(pki, "server.pem"),
                os.path.join(pki, "server.key")]
        self.https_url = self._serve("https", argv, port).replace("http://127.0.0.1", "https://localhost")
        https_conf = conf.replace(f"endpoint = {self.url}", f"endpoint = {self.https_url}", 1)
        https_conf += f"\n# bench: a private CA\nca_file = {self.ca_file}\n"
        path = self._private(os.path.join(self.tmp, "seestack-https.conf"), https_conf)
        self.https_env = dict(self.env, SEESTACK_CONFIG=path)

    @staticmethod
    def _same_code(installed: str) -> bool:
        """Whether the installed modules are the checkout's, byte for byte."""
        import filecmp

        ours = os.path.join(ROOT, "seestack_systemd")
        names = sorted(n for n in os.listdir(ours) if n.endswith(".py"))
        theirs = sorted(n for n in os.listdir(installed) if n.endswith(".py"))
        return names == theirs and all(filecmp.cmp(os.path.join(ours, n), os.path.join(installed, n), shallow=False)
                                       for n in names)

    def _private(self, path: str, text: str) -> str:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def _receiver(self, name: str, replies: str) -> str:
        port = free_port()
        argv = [PY, "-I", "-c", LAUNCH.format(root=ROOT), "receive", "--listen", f"127.0.0.1:{port}"]
        if replies:
            argv += ["--reply", replies]
        return self._serve(name, argv, port)

    def _serve(self, name: str, argv: list[str], port: int) -> str:
        """Start a receiver process listening on ``port``; its URL once it accepts connections."""
        log = open(os.path.join(self.tmp, f"receiver-{name}.log"), "wb")
        proc = subprocess.Popen(argv, stdin=DEVNULL, stdout=DEVNULL, stderr=log, env=self.base_env)
        log.close()
        self.procs.append(proc)
        give_up = time.monotonic() + 15
        while time.monotonic() < give_up:
            if proc.poll() is not None:
                raise BenchError(f"the {name} receiver exited: see {log.name}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.02)
        raise BenchError(f"the {name} receiver did not start listening")

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.refused_sock is not None:
            self.refused_sock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.shm, ignore_errors=True)

    # --- running --------------------------------------------------------------------------

    def timed(self, argv: list[str], env: dict, expect: str | None = None, refuse: str = "error") -> float:
        """Run ``argv`` once; return its wall time. Its stderr is checked afterwards, outside
        the timing: ``expect`` must appear in it and ``refuse`` must not."""
        log_path = os.path.join(self.shm, "stderr.log")
        with open(log_path, "wb") as log:
            t0 = time.perf_counter()
            done = subprocess.run(argv, env=env, stdin=DEVNULL, stdout=DEVNULL, stderr=log)
            took = time.perf_counter() - t0
        with open(log_path, "rb") as log:
            text = log.read().decode("utf-8", "replace")
        if done.returncode != 0 or (expect and expect not in text) or (refuse and refuse in text):
            raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {text.strip()[:500]}")
        return took

    def peak_rss(self, argv: list[str], env: dict) -> int:
        """Peak RSS in KiB of one run, from GNU time."""
        out = os.path.join(self.shm, "rss")
        done = subprocess.run([GNU_TIME, "-f", "%M", "-o", out] + argv, env=env, stdin=DEVNULL, stdout=DEVNULL,
                              stderr=DEVNULL)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {done.returncode} under {GNU_TIME}")
        with open(out) as f:
            return int(f.read().split()[-1])

    def add(self, name: str, value: float, keep: bool) -> None:
        if keep:
            self.samples.setdefault(name, []).append(value)

    # One "unit" of the quick group: a function(keep) that runs once and records its samples.

    def unit_floor(self, flag: list[str], name: str):
        argv = [PY] + flag + ["-c", "pass"]
        return lambda keep: self.add(name, self.timed(argv, self.base_env), keep)

    def unit_hooks(self, variant: str, hook: str, env: dict, suffix: str = "", unit_flag: bool = False):
        slug = f"bench-{variant}{suffix}".lower()

        def run(keep: bool) -> None:
            invocation = os.urandom(16).hex()
            e = dict(env, INVOCATION_ID=invocation)
            self.add(f"start:{variant}{suffix}", self.timed([hook, "start", slug], e), keep)
            e["SERVICE_RESULT"] = "success"
            argv = [hook, "finish", slug]
            if unit_flag:
                e["PATH"] = self.stub_path
                argv = [hook, "finish", "--unit", "bench.service", slug]
            self.add(f"finish:{variant}{suffix}", self.timed(argv, e, expect="delivered (HTTP 202)"), keep)
        return run

    def unit_curl(self, keep: bool) -> None:
        run_id = new_run_id()
        with open(self.body_file, "wb") as f:
            f.write(heartbeat_body("bench-curl", run_id))
        argv = ["curl", "-fsS", "-m", "10", "--retry", "3", "-o", "/dev/null", "-X", "POST",
                "-H", f"Authorization: Bearer {API_KEY}", "-H", "Content-Type: application/json",
                "-H", "User-Agent: seestack-systemd/0.1.0 (curl baseline)", "-H", f"Idempotency-Key: {run_id}",
                "--data-binary", f"@{self.body_file}", self.url + "/v1/cron/heartbeats"]
        self.add("curl", self.timed(argv, self.base_env, refuse=""), keep)

    def unit_urllib(self, keep: bool) -> None:
        run_id = new_run_id()
        body = heartbeat_body("bench-urllib", run_id).decode()
        argv = [PY, "-I", "-c", URLLIB_SCRIPT, self.url + "/v1/cron/heartbeats", API_KEY, run_id, body]
        self.add("urllib", self.timed(argv, self.base_env, refuse=""), keep)

    def unit_urllib_https(self, keep: bool) -> None:
        run_id = new_run_id()
        body = heartbeat_body("bench-urllib", run_id).decode()
        argv = [PY, "-I", "-c", URLLIB_HTTPS_SCRIPT, self.https_url + "/v1/cron/heartbeats", API_KEY, run_id, body,
                self.ca_file]
        self.add("urllib-https", self.timed(argv, self.base_env, refuse=""), keep)

    def quick_group(self) -> None:
        units = [
            self.unit_floor(["-I", "-S"], "floor-S"),
            self.unit_floor(["-I"], "floor-I"),
            self.unit_curl,
            self.unit_urllib,
        ]
        for variant, hook in self.hooks.items():
            units.append(self.unit_hooks(variant, hook, self.env))
            if self.https_env:
                units.append(self.unit_hooks(variant, hook, self.https_env, suffix="-https"))
        if self.https_env:
            units.append(self.unit_urllib_https)
        units.append(self.unit_hooks("checkout", self.launcher, self.env_only, suffix="-envonly"))
        units.append(self.unit_hooks("checkout", self.launcher, self.env, suffix="-unit", unit_flag=True))
        order = random.Random(20261124)
        for i in range(WARMUP + RUNS):
            order.shuffle(units)
            for unit in units:
                unit(i >= WARMUP)
        self.progress(f"quick group: {RUNS} runs of {len(units)} cases")

    def rss_group(self) -> None:
        if not os.access(GNU_TIME, os.X_OK):
            self.notes.append(f"peak RSS not measured: {GNU_TIME} is missing (apt-get install time)")
            return
        cases = {
            "floor-S": ([PY, "-I", "-S", "-c", "pass"], self.base_env),
            "floor-I": ([PY, "-I", "-c", "pass"], self.base_env),
        }
        for _ in range(RSS_RUNS):
            for name, case in cases.items():
                self.rss.setdefault(name, []).append(self.peak_rss(*case))
            for variant, hook in self.hooks.items():
                e = dict(self.env, INVOCATION_ID=os.urandom(16).hex())
                self.rss.setdefault(f"start:{variant}", []).append(self.peak_rss([hook, "start", "bench-rss"], e))
                e["SERVICE_RESULT"] = "success"
                self.rss.setdefault(f"finish:{variant}", []).append(self.peak_rss([hook, "finish", "bench-rss"], e))
            run_id = new_run_id()
            body = heartbeat_body("bench-urllib", run_id).decode()
            self.rss.setdefault("urllib", []).append(self.peak_rss(
                [PY, "-I", "-c", URLLIB_SCRIPT, self.url + "/v1/cron/heartbeats", API_KEY, run_id, body], self.base_env))
            run_id = new_run_id()
            self.rss.setdefault("curl", []).append(self.peak_rss(
                ["curl", "-fsS", "-m", "10", "-o", "/dev/null", "-H", f"Authorization: Bearer {API_KEY}",
                 "-H", "Content-Type: application/json", "-H", "User-Agent: seestack-systemd/0.1.0 (curl)",
                 "-H", f"Idempotency-Key: {run_id}", "--data-binary", heartbeat_body("bench-curl", run_id).decode(),
                 self.url + "/v1/cron/heartbeats"], self.base_env))
        self.progress(f"peak RSS: {RSS_RUNS} runs each")

    def outage_group(self) -> None:
        """finish under a 2 s deadline, the endpoint refusing connections or blackholed.
        Each scenario has its own data directory, so its spool grows as in a real outage
        (the next finish first replays what waits, within 30% of the deadline)."""
        if os.environ.get("BENCH_SKIP_SLOW") == "1":
            self.notes.append("BENCH_SKIP_SLOW=1: the refused/blackholed runs were skipped")
            return
        scenarios = {}
        for name, url in (("refused", self.refused_url), ("blackholed", self.hang_url)):
            scenarios[name] = dict(self.env, SEESTACK_ENDPOINT=url, SEESTACK_DEADLINE=str(DEADLINE),
                                   SEESTACK_DATA_DIR=os.path.join(self.tmp, f"data-{name}"))
        for i in range(SLOW_WARMUP + SLOW_RUNS):
            for name, env in scenarios.items():
                e = dict(env, INVOCATION_ID=os.urandom(16).hex())
                self.timed([self.launcher, "start", f"bench-{name}"], e)
                e["SERVICE_RESULT"] = "success"
                took = self.timed([self.launcher, "finish", f"bench-{name}"], e, expect="not delivered", refuse="")
                self.add(f"finish-{name}", took, i >= SLOW_WARMUP)
        self.progress(f"refused/blackholed: {SLOW_RUNS} runs each")

    def flush_group(self) -> None:
        """``seestack-hook flush`` as a process (what seestack-flush.timer runs) over a spool
        of 1,000 heartbeats, written in spool.put's format (name, mode, Idempotency-Key
        line, body) before each run; one connection per heartbeat, as urllib makes them."""
        data = os.path.join(self.tmp, "data-flush")
        spool = os.path.join(data, "spool")
        os.makedirs(spool, 0o700)
        os.chmod(data, 0o700)
        env = dict(self.env, SEESTACK_DATA_DIR=data)
        base = time.time() - 3600

        def fill() -> None:
            for n in range(SPOOL_SIZE):
                run_id = new_run_id()
                finished = base + n
                name = f"{int(finished * 1000):013d}-{run_id}.heartbeat"
                fd = os.open(os.path.join(spool, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, run_id.encode() + b"\n" + heartbeat_body(f"bench-spool-{n % 20}", run_id, finished))
                os.close(fd)

        for i in range(SLOW_WARMUP + SLOW_RUNS):
            fill()
            took = self.timed([self.launcher, "flush"], env)
            left = len(os.listdir(spool))
            if left:
                raise BenchError(f"flush left {left} heartbeat(s) in the spool")
            self.add("flush", took, i >= SLOW_WARMUP)
        if os.access(GNU_TIME, os.X_OK):
            for _ in range(3):
                fill()
                self.rss.setdefault("flush", []).append(self.peak_rss([self.launcher, "flush"], env))
        self.progress(f"spool flush: {SLOW_RUNS} runs of {SPOOL_SIZE} heartbeats")

    def booted_group(self) -> None:
        """benchmarks/booted.py: per-run cost of a oneshot unit in booted Debian 12 (root only)."""
        if os.geteuid() != 0 or not shutil.which("systemd-nspawn"):
            self.notes.append("booted Debian 12 rows not measured: they need root and systemd-nspawn")
            return
        import booted
        from tests.e2e.package import built_deb

        deb = built_deb()
        samples = booted.run(str(deb.parent), deb.name, log=lambda line: None)
        for name, values in samples.items():
            self.samples[name if name.startswith("part:") else f"booted-{name}"] = values
        self.progress(f"booted Debian 12: {booted.RUNS} runs of {len(samples)} units")

    def list_group(self) -> None:
        """``seestack-hook list --all`` over a staging root of 500 timers and services, each
        monitored (drop-ins written by the product's own units.enable) and each with a last
        heartbeat on record."""
        sys.path.insert(0, ROOT)
        from seestack_systemd import units  # noqa: E402 - the product's own drop-in writer

        root = os.path.join(self.tmp, "root")
        system = os.path.join(root, "etc/systemd/system")
        os.makedirs(system)
        data = os.path.join(self.tmp, "data-list")
        last = os.path.join(data, "last")
        os.makedirs(last, 0o700)
        os.chmod(data, 0o700)
        now = time.time()
        for n in range(LIST_UNITS):
            with open(os.path.join(system, f"job-{n:03d}.service"), "w") as f:
                f.write(f"[Service]\nType=oneshot\nExecStart=/bin/true job {n}\n")
            with open(os.path.join(system, f"job-{n:03d}.timer"), "w") as f:
                f.write(f"[Timer]\nOnCalendar=*-*-* 02:{n % 60:02d}:00\nUnit=job-{n:03d}.service\n")
            units.enable(f"job-{n:03d}.timer", None, root=root)
            doc = {"status": "success", "durationMs": 1000 + n, "finishedAt": now - n, "outcome": "delivered",
                   "detail": "delivered (HTTP 202)"}
            self._private(os.path.join(last, f"job-{n:03d}.json"), json.dumps(doc))
        env = dict(self.env, SEESTACK_DATA_DIR=data)
        argv = [self.launcher, "list", "--root", root, "--all"]
        shown = subprocess.run(argv, env=env, capture_output=True, text=True)
        monitored = [line for line in shown.stdout.splitlines() if line.startswith("job-") and "delivered" in line]
        if shown.returncode or len(monitored) != LIST_UNITS:
            raise BenchError(f"list showed {len(monitored)} monitored units, not {LIST_UNITS}: {shown.stderr[:300]}")
        for i in range(SLOW_WARMUP + SLOW_RUNS):
            self.add("list", self.timed(argv, env), i >= SLOW_WARMUP)
        if os.access(GNU_TIME, os.X_OK):
            for _ in range(3):
                self.rss.setdefault("list", []).append(self.peak_rss(argv, env))
        self.progress(f"list: {SLOW_RUNS} runs over {LIST_UNITS} monitored units")

    def library_group(self) -> None:
        env = dict(self.env, SEESTACK_DATA_DIR=os.path.join(self.tmp, "data-library"))
        done = subprocess.run([PY, "-I", os.path.join(HERE, "_library.py"), ROOT, str(LIB_RUNS), str(LIB_WARMUP),
                               "bench-library"], env=env, capture_output=True, text=True)
        if done.returncode:
            raise BenchError(f"the library benchmark failed: {done.stderr.strip()[-800:]}")
        self.library = json.loads(done.stdout.strip().splitlines()[-1])
        self.progress(f"library: {LIB_RUNS} heartbeats in one warm process")

    def imports_group(self) -> None:
        """``python3 -X importtime``: what each hook imports beyond the interpreter's own start-up."""
        def parse(stderr: str) -> list[tuple[str, int, int, str]]:
            rows = []
            for line in stderr.splitlines():
                if not line.startswith("import time:") or "self [us]" in line:
                    continue
                self_us, cum_us, name = line[len("import time:"):].split("|", 2)
                rows.append((name, int(self_us), int(cum_us)))
            # importtime prints children before their parent, two spaces deeper.
            out, stack = [], []
            for name, self_us, cum_us in reversed(rows):
                level = (len(name) - len(name.lstrip(" "))) // 2
                while stack and stack[-1][0] >= level:
                    stack.pop()
                parent = stack[-1][1] if stack else ""
                stack.append((level, name.strip()))
                out.append((name.strip(), self_us, cum_us, parent, level))
            return out

        def runs(argv_env) -> list[list]:
            got = []
            for _ in range(IMPORT_RUNS):
                argv, env = argv_env()
                done = subprocess.run(argv, env=env, stdin=DEVNULL, stdout=DEVNULL, stderr=subprocess.PIPE, text=True)
                got.append(parse(done.stderr))
            return got

        baseline = runs(lambda: ([PY, "-I", "-S", "-X", "importtime", "-c", "pass"], self.base_env))
        startup = {row[0] for run in baseline for row in run}

        def start_case():
            e = dict(self.env, INVOCATION_ID=os.urandom(16).hex())
            return [PY, "-I", "-S", "-X", "importtime", self.launcher, "start", "bench-imports"], e

        def finish_case():
            e = dict(self.env, INVOCATION_ID=os.urandom(16).hex())
            self.timed([self.launcher, "start", "bench-imports"], e)
            e["SERVICE_RESULT"] = "success"
            return [PY, "-I", "-S", "-X", "importtime", self.launcher, "finish", "bench-imports"], e

        for hook, case in (("start", start_case), ("finish", finish_case)):
            got = runs(case)
            by_name: dict[str, list] = {}
            for run in got:
                for name, self_us, cum_us, parent, level in run:
                    if name not in startup:
                        by_name.setdefault(name, []).append((cum_us, parent, level))
            rows = []
            total = 0.0
            for name, seen in by_name.items():
                cum = median([s[0] for s in seen])
                parent, level = seen[0][1], seen[0][2]
                rows.append((name, cum, parent))
                if level == 0:
                    total += cum
            self.import_totals[hook] = total
            self.imports[hook] = sorted(rows, key=lambda r: -r[1])
        self.progress("imports: -X importtime of start and finish")

    def progress(self, text: str) -> None:
        print(f"bench: {time.monotonic() - self.started:6.1f}s  {text}", flush=True)

    # --- the report -----------------------------------------------------------------------

    def machine(self) -> list[str]:
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
        except OSError:
            pass
        mem = "?"
        try:
            with open("/proc/meminfo") as f:
                mem = f"{int(f.readline().split()[1]) / MIB:.1f} GiB"
        except (OSError, ValueError, IndexError):
            pass
        virt = sh(["systemd-detect-virt"]) or "?"
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        head = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "?"
        dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--", "seestack_systemd"])
        pth = sorted(os.path.join(d, n) for d in ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3.11/dist-packages")
                     if os.path.isdir(d) for n in os.listdir(d) if n.endswith(".pth"))
        uname = os.uname()
        lines = [
            f"- host: `{uname.nodename}`, {uname.sysname} {uname.release} {uname.machine}, virtualization: {virt}",
            f"- CPU: {cpu} x {os.cpu_count()}; memory {mem}; load average at the end {load}",
            f"- Python: `{PY}` {sh([PY, '-c', 'import sys; print(sys.version.split()[0])'])}"
            f" (site .pth files: {', '.join(pth) or 'none'})",
            f"- curl: {sh(['curl', '--version']).splitlines()[0] if sh(['curl', '--version']) else 'missing'}",
            f"- checkout: {ROOT} at {head}" + (" with uncommitted changes in seestack_systemd/" if dirty else ""),
            "- installed package: " + (f"seestack-systemd {self.deb_version} ({DEB_HOOK}, modules in"
                                       f" {os.path.dirname(self.deb_where)}: "
                                       + ("the same code as the checkout)" if self.deb_same else
                                          "**not** the checkout's code: rebuild and reinstall it)")
                                       if self.deb else
                                       f"not installed ({DEB_HOOK} missing): figures are the checkout's only"),
            f"- state directory on tmpfs ({self.shm}); data directory and spool on {self._fstype(self.tmp)} ({self.tmp})",
            f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        ]
        return lines

    @staticmethod
    def _fstype(path: str) -> str:
        out = sh(["df", "--output=fstype", path]).splitlines()
        return out[-1].strip() if len(out) > 1 else "?"

    def report(self) -> str:
        s = {k: v for k, v in self.samples.items() if v}
        m = {k: median(v) for k, v in s.items()}
        ms = lambda x: f"{x * 1000:.1f} ms"  # noqa: E731
        floor = m["floor-S"]
        rows: list[tuple[str, str, str, str, str]] = []

        def row(label: str, key: str, what: str = "") -> None:
            if key not in m:
                return
            q1, q3 = quartiles(s[key])
            rss = self.rss.get(key)
            rss_text = f"{max(rss) / 1024:.1f}" if rss else ""
            rows.append((label, ms(m[key]), f"{ms(q1)} – {ms(q3)}", f"{m[key] / floor:.2f}x", rss_text))

        row("floor: `python3 -I -S -c pass`", "floor-S")
        row("floor: `python3 -I -c pass`", "floor-I")
        for variant in self.hooks:
            tag = "checkout" if variant == "checkout" else "installed .deb"
            row(f"`seestack-hook start SLUG` ({tag})", f"start:{variant}")
            row(f"`seestack-hook finish SLUG`, 202 on loopback ({tag})", f"finish:{variant}")
            row(f"`seestack-hook finish SLUG`, https with a private CA on loopback ({tag})", f"finish:{variant}-https")
        row("`start`, settings from the environment only (no config file)", "start:checkout-envonly")
        row("`finish`, settings from the environment only (no config file)", "finish:checkout-envonly")
        row("`finish --unit bench.service` (stub systemctl/journalctl)", "finish:checkout-unit")
        row("baseline: `curl -fsS -m 10 --retry 3` POST", "curl")
        row("baseline: `python3 -I -c` urllib.request POST", "urllib")
        row("baseline: `python3 -I -c` urllib.request POST, https with the same CA", "urllib-https")
        row(f"`finish`, receiver refusing connections ({DEADLINE:g} s deadline)", "finish-refused")
        row(f"`finish`, receiver blackholed ({DEADLINE:g} s deadline)", "finish-blackholed")
        row(f"`seestack-hook flush`, {SPOOL_SIZE} spooled heartbeats", "flush")
        row(f"`seestack-hook list --all`, {LIST_UNITS} monitored units", "list")
        for name, what in BOOTED_CASES.items():
            row(f"booted Debian 12: `systemctl start` of a oneshot unit, {what}", f"booted-{name}")
        for name, what in BOOTED_PARTS.items():
            row(f"booted Debian 12, one part alone (through nsenter): {what}", f"part:{name}")

        out = ["# seestack-hook benchmark", "",
               "Written by `make bench` (`/usr/bin/python3 benchmarks/bench.py`); do not edit by hand.", "",
               "## Machine", ""] + self.machine() + [""]
        out += ["## Processes", "",
                f"Median of {RUNS} runs (refused/blackholed, flush and list: {SLOW_RUNS}) after warm-up, all"
                " cases interleaved in a shuffled order each round so drift hits them alike; wall time from"
                " `time.perf_counter` around `subprocess.run`; ratio to `python3 -I -S -c pass` measured in the"
                f" same run; peak RSS is the largest of {RSS_RUNS} runs (flush, list: 3) under `/usr/bin/time -f %M`.",
                "",
                "| case | median | p25 – p75 | ratio to -I -S floor | peak RSS MiB |",
                "|---|---:|---:|---:|---:|"]
        out += [f"| {' | '.join(r)} |" for r in rows]
        out.append("")
        if "flush" in m:
            out.append(f"Spool flush: {SPOOL_SIZE / m['flush']:.0f} heartbeats/s for the whole `flush` process"
                       f" ({SPOOL_SIZE} in {ms(m['flush'])}, interpreter start-up included), one connection"
                       " per heartbeat.")
        if self.library:
            lib = self.library
            out.append(
                f"Library, warm process ({lib['runs']} heartbeats): `start_job` + `finish_job` {lib['lib_us']:.0f} µs"
                f" per heartbeat; a bare HTTP round trip to the same receiver on a raw socket (connect, POST,"
                f" read, close) {lib['raw_us']:.0f} µs; so our own code costs {lib['own_us']:.0f} µs per heartbeat,"
                f" of which re-reading the configuration (`config.load`, every `finish_job`) is"
                f" {lib['config_load_us']:.0f} µs.")
        out.append("")

        out += ["How each case runs:", "",
                "- hooks: an executable with the shebang `#!/usr/bin/python3 -IS`, as installed; the checkout's is a"
                " launcher that puts the checkout first on `sys.path`. Configuration as deployed: the package's"
                " conffile (`packaging/seestack.conf`, its comments intact) with `endpoint` and `api_key_file` set,"
                " named by `SEESTACK_CONFIG`; `SEESTACK_STATE_DIR` on tmpfs. Each round runs `start` then `finish`"
                " (`INVOCATION_ID` set, `SERVICE_RESULT=success`, no `--unit`: no systemctl or journal), timed"
                " separately; every `finish` is checked to have logged `delivered (HTTP 202)`.",
                "- \"settings from the environment only\": `SEESTACK_CONFIG=/dev/null`, endpoint and key file from"
                " `SEESTACK_ENDPOINT`/`SEESTACK_API_KEY_FILE` (no config file to parse).",
                "- `finish --unit`: as a drop-in runs it, with stand-ins for `systemctl` and `journalctl` (shell"
                " scripts printing canned answers: this host's PID 1 is not systemd), so the row is our own cost"
                " (subprocess, the journal settle loop), not systemd's answer time.",
                "- receiver: the product's `seestack-hook receive` in its own process, answering 202 at once;"
                " blackholed: the same with `--reply hang,...` (accepts, reads, never answers); refused: a port"
                " bound but not listening. The outage cases have their own data directory, so their spool"
                " grows as in a real outage and each `finish` first replays it (within 30% of the deadline).",
                "- baselines POST the same kind of body with the same headers; `curl -fsS -m 10 --retry 3`, and"
                " `/usr/bin/python3 -I -c` with `urllib.request.urlopen`.",
                "- spool flush: `seestack-hook flush` as a whole process (what `seestack-flush.timer` runs) over"
                f" {SPOOL_SIZE} spool files written before each run in `spool.put`'s format.",
                f"- list: `seestack-hook list --root R --all` over {LIST_UNITS} services and timers, each monitored"
                " (drop-ins written by the product's `units.enable`) and each with a last heartbeat on record.",
                "- booted Debian 12 (`booted.py`): three copies of a oneshot unit (`ExecStart=/bin/true`) in a"
                " booted container, each `systemctl start`ed 25 times, interleaved: no hooks; the healthchecks-style"
                " `ExecStartPre=-/usr/bin/curl ...` and `ExecStopPost=-/usr/bin/curl ...` lines; and the drop-in"
                " `seestack-hook enable` writes (the .deb installed with `--no-install-recommends`). The added"
                " time is each case's median minus the no-hooks median.",
                "- library: `_library.py`, one warm process, interleaving `start_job` + `finish_job`, a bare"
                " raw-socket round trip and `config.load`.",
                "- https rows: the same receiver behind TLS (its socket wrapped in `ssl`) for `localhost`, its"
                " certificate signed by a private CA made with openssl; the hook reads it from `ca_file`, the"
                " urllib script from `ssl.create_default_context(cafile=...)`. Every other row is plain http.", ""]

        budgets = self.budgets(m)
        out += ["## Budgets", "", "| budget | measured | limit | holds |", "|---|---:|---:|:---:|"]
        out += [f"| {b[0]} | {b[1]} | {b[2]} | {'yes' if b[3] else '**NO**'} |" for b in budgets]
        out.append("")
        out += ["## Floors", ""] + self.floors(m, budgets) + [""]
        out += ["## Imports on the hot paths", "",
                f"`python3 -X importtime` ({IMPORT_RUNS} runs, median cumulative time; importtime adds its own"
                " overhead, so compare the wall times above): modules the hook imports beyond what"
                " `python3 -I -c pass` already imports, heaviest first (those above 200 µs), each with the"
                " module that imported it first.", ""]
        for hook in ("start", "finish"):
            if hook not in self.imports:
                continue
            out.append(f"- `{hook}`: {self.import_totals[hook] / 1000:.1f} ms of imports in all")
            for name, cum, parent in self.imports[hook]:
                if cum >= 200:
                    if parent:
                        via = f" (imported by {parent})"
                    elif not name.startswith("seestack_systemd"):
                        via = " (imported inside a function at run time" + (
                            ", by getaddrinfo(): see below)" if name == "encodings.idna" else ")")
                    else:
                        via = ""
                    out.append(f"  - {name}: {cum / 1000:.2f} ms{via}")
        if any(n == "encodings.idna" for hook in self.imports.values() for n, _, _ in hook):
            out.append("")
            out.append("`encodings.idna` (with `stringprep`, `unicodedata` and `re`) is what `socket.getaddrinfo()`"
                       " loads to encode a host given as `str`; a `bytes` host (ASCII names, every address literal)"
                       " does not load it.")
        out.append("")
        if self.notes:
            out += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        out.append(f"`make bench` took {time.monotonic() - self.started:.0f} s.")
        return "\n".join(out) + "\n"

    def budgets(self, m: dict) -> list[tuple[str, str, str, bool]]:
        b = []
        floor = m["floor-S"]
        for variant in self.hooks:
            tag = "checkout" if variant == "checkout" else ".deb"
            r = m[f"start:{variant}"] / floor
            b.append((f"`start` / `python3 -I -S -c pass` ({tag})", f"{r:.2f}x", f"≤ {BUDGET_START_RATIO}x",
                      r <= BUDGET_START_RATIO))
            r = m[f"finish:{variant}"] / m["urllib"]
            b.append((f"`finish` / minimal `urllib.request` script ({tag})", f"{r:.2f}x", f"≤ {BUDGET_FINISH_RATIO}x",
                      r <= BUDGET_FINISH_RATIO))
            if f"finish:{variant}-https" in m and "urllib-https" in m:
                r = m[f"finish:{variant}-https"] / m["urllib-https"]
                b.append((f"`finish` / minimal `urllib.request` script, https ({tag})", f"{r:.2f}x",
                          f"≤ {BUDGET_FINISH_RATIO}x", r <= BUDGET_FINISH_RATIO))
            r = m[f"finish:{variant}"] / m["curl"]
            b.append((f"`finish` / `curl` ({tag}; recorded, no limit)", f"{r:.2f}x", "—", True))
            for hook in ("start", "finish"):
                rss = self.rss.get(f"{hook}:{variant}")
                if rss:
                    peak = max(rss) / 1024
                    b.append((f"peak RSS of `{hook}` ({tag})", f"{peak:.1f} MiB", f"≤ {BUDGET_RSS_MIB:g} MiB",
                              peak <= BUDGET_RSS_MIB))
        for name in ("blackholed", "refused"):
            key = f"finish-{name}"
            if key in m:
                worst = max(self.samples[key])
                b.append((f"`finish`, receiver {name}, {DEADLINE:g} s deadline (median; worst {worst:.2f} s)",
                          f"{m[key]:.2f} s", f"≤ {DEADLINE + BUDGET_DEADLINE_SLACK:.1f} s",
                          m[key] <= DEADLINE + BUDGET_DEADLINE_SLACK))
        if "flush" in m:
            rate = SPOOL_SIZE / m["flush"]
            b.append((f"spool flush, {SPOOL_SIZE} heartbeats", f"{rate:.0f}/s", f"≥ {BUDGET_FLUSH_RATE:g}/s",
                      rate >= BUDGET_FLUSH_RATE))
        if all(f"booted-{n}" in m for n in BOOTED_CASES):
            ours, curl = m["booted-ours"] - m["booted-plain"], m["booted-curl"] - m["booted-plain"]
            r = ours / curl if curl > 0 else float("inf")
            b.append((f"booted Debian 12, added time per run: our drop-in (+{ours * 1000:.1f} ms) / curl lines"
                      f" (+{curl * 1000:.1f} ms)", f"{r:.1f}x", f"≤ {BUDGET_BOOTED_RATIO:g}x", r <= BUDGET_BOOTED_RATIO))
        if "list" in m:
            b.append((f"`list`, {LIST_UNITS} units", f"{m['list']:.3f} s", f"< {BUDGET_LIST_S:g} s",
                      m["list"] < BUDGET_LIST_S))
        return b

    def floors(self, m: dict, budgets: list) -> list[str]:
        """What no implementation can beat on this machine, from this run's own baselines."""
        floor_s, floor_i = m["floor-S"], m["floor-I"]
        lines = [
            f"- `start`: the hook runs under `#!/usr/bin/python3 -IS` (no `site`), so `python3 -I -S -c pass`"
            f" is the least it can take; the {BUDGET_START_RATIO}x budget leaves"
            f" {(BUDGET_START_RATIO - 1) * floor_s * 1000:.1f} ms for our imports and work"
            f" (`site` alone, as `python3 -I -c pass`, would cost {(floor_i - floor_s) * 1000:.1f} ms).",
        ]
        if "finish:checkout" in m:
            own = (m["finish:checkout"] - m["urllib"]) * 1000
            lines.append(
                f"- `finish` sends with `urllib.request`, as the script does, so both pay its imports (http.client,"
                f" email, ssl: see below); `finish` skips `site` (`-IS`, {(floor_i - floor_s) * 1000:.1f} ms) and adds"
                f" its own work, the config file, the state record, the spool and the last-heartbeat record:"
                f" {own:+.1f} ms against the script here (checkout). curl, a C program, takes"
                f" {m['curl'] * 1000:.1f} ms: below the Python floor ({floor_i / m['curl']:.2f}x), so no Python"
                f" hook can match it.")
        if self.rss.get("floor-I"):
            lines.append(f"- peak RSS: `python3 -I -c pass` alone peaks at {max(self.rss['floor-I']) / 1024:.1f} MiB"
                         f" (`-I -S`: {max(self.rss['floor-S']) / 1024:.1f} MiB).")
        if "finish-blackholed" in m:
            lines.append(f"- blackholed/refused: the deadline ({DEADLINE:g} s) plus the interpreter start-up"
                         f" ({floor_i * 1000:.0f} ms) and the spool write.")
        failed = [b for b in budgets if not b[3]]
        if failed:
            lines.append("")
            lines.append("Budgets not met in this run: " + "; ".join(f"{b[0]} = {b[1]} (limit {b[2]})" for b in failed)
                         + ". The floors above say how much of each is the interpreter's and how much is ours;"
                           " see 'Imports on the hot paths' for where our share goes.")
        return lines


def install_package() -> bool:
    """As root, build the .deb and install it for the run (purged afterwards), so the
    figures cover what users run; True when this run installed it."""
    if os.access(DEB_HOOK, os.X_OK) or os.geteuid() != 0:
        return False
    from tests.e2e.package import built_deb

    deb = built_deb(check=False)
    done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", str(deb)],
                          capture_output=True, text=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if done.returncode:
        print(f"bench: warning: could not install {deb.name}: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return False
    return True


def main() -> int:
    if not os.access(PY, os.X_OK):
        print(f"bench: {PY} is missing: the benchmark runs with Debian's python3", file=sys.stderr)
        return 1
    if not shutil.which("curl"):
        print("bench: curl is missing (apt-get install curl)", file=sys.stderr)
        return 1
    if RUNS < 30 or SLOW_RUNS < 30:
        print("bench: warning: fewer than 30 runs; not a valid result", file=sys.stderr)
    installed_here = install_package()
    bench = Bench()
    try:
        bench.setup()
        bench.progress(f"set up; hooks: {', '.join(bench.hooks.values())}")
        bench.quick_group()
        bench.rss_group()
        bench.library_group()
        bench.imports_group()
        bench.list_group()
        bench.flush_group()
        bench.outage_group()
        bench.booted_group()
        text = bench.report()
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
        if installed_here:
            subprocess.run(["apt-get", "purge", "-y", "-q", "seestack-systemd"], capture_output=True)
    with open(RESULTS, "w") as f:
        f.write(text)
    print(text)
    print(f"bench: wrote {os.path.relpath(RESULTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
