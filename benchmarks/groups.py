"""The measuring groups of ``make bench``, a mixin of bench.Bench: each group runs its
cases and records wall times in ``self.samples`` and peak RSS (KiB) in ``self.rss``."""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

from fixtures import (API_KEY, DEVNULL, GNU_TIME, HERE, IMPORT_RUNS, IMPORT_STEPS, LIB_RUNS, LIB_WARMUP, LIST_UNITS,
                      PY, ROOT, RSS_RUNS, RUNS, SLOW_RUNS, SLOW_WARMUP, SPOOL_SIZE, URLLIB_HTTPS_SCRIPT, URLLIB_SCRIPT, WARMUP,
                      DEADLINE, BenchError, heartbeat_body)
from seestack_systemd.state import new_run_id  # noqa: E402  (the id the hooks use; fixtures put ROOT on sys.path)


class Groups:
    """The groups; bench.Bench provides the set-up (``env``, ``url``, ``hooks``, ...) and
    the running primitives (``timed``, ``peak_rss``, ``progress``)."""

    def add(self, name: str, value: float, keep: bool) -> None:
        if keep:
            self.samples.setdefault(name, []).append(value)

    # One "unit" of the quick group: a function(keep) that runs once and records its samples.

    def unit_floor(self, flag: list[str], name: str):
        argv = [PY] + flag + ["-c", "pass"]
        return lambda keep: self.add(name, self.timed(argv, self.base_env), keep)

    def unit_step(self, name: str):
        argv = [PY, "-I", "-S", "-c", IMPORT_STEPS[name].format(root=ROOT)]
        return lambda keep: self.add(name, self.timed(argv, self.base_env), keep)

    def unit_hooks(self, variant: str, hook: str, env: dict, suffix: str = "", unit_flag: bool = False):
        slug = f"bench-{variant}{suffix}".lower()

        def run(keep: bool) -> None:
            invocation = os.urandom(16).hex()
            e = dict(env, INVOCATION_ID=invocation)
            self.add(f"start:{variant}{suffix}", self.timed(*self.hook_argv(hook, "start", e, slug)), keep)
            e["SERVICE_RESULT"] = "success"
            if unit_flag:
                e["PATH"] = self.stub_path
            argv, e = self.hook_argv(hook, "finish", e, *(["--unit", "bench.service"] if unit_flag else []), slug)
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

    def unit_urllib_installed(self, keep: bool) -> None:
        run_id = new_run_id()
        body = heartbeat_body("bench-urllib", run_id).decode()
        argv = [self.urllib_script, self.url + "/v1/cron/heartbeats", API_KEY, run_id, body]
        self.add("urllib-installed", self.timed(argv, self.base_env, refuse=""), keep)

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
            *(self.unit_step(name) for name in IMPORT_STEPS),
            self.unit_curl,
            self.unit_urllib,
            self.unit_urllib_installed,
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
                self.rss.setdefault(f"start:{variant}", []).append(
                    self.peak_rss(*self.hook_argv(hook, "start", e, "bench-rss")))
                e["SERVICE_RESULT"] = "success"
                self.rss.setdefault(f"finish:{variant}", []).append(
                    self.peak_rss(*self.hook_argv(hook, "finish", e, "bench-rss")))
            e = dict(self.env, INVOCATION_ID=os.urandom(16).hex())
            self.timed(*self.hook_argv(self.launcher, "start", e, "bench-rss"))
            argv, e = self.hook_argv(self.launcher, "finish", dict(e, SERVICE_RESULT="success", PATH=self.stub_path),
                                     "--unit", "bench.service", "bench-rss")
            self.rss.setdefault("finish:checkout-unit", []).append(self.peak_rss(argv, e))
            run_id = new_run_id()
            body = heartbeat_body("bench-urllib", run_id).decode()
            self.rss.setdefault("urllib", []).append(self.peak_rss(
                [PY, "-I", "-c", URLLIB_SCRIPT, self.url + "/v1/cron/heartbeats", API_KEY, run_id, body], self.base_env))
            run_id = new_run_id()
            body = heartbeat_body("bench-urllib", run_id).decode()
            self.rss.setdefault("urllib-installed", []).append(self.peak_rss(
                [self.urllib_script, self.url + "/v1/cron/heartbeats", API_KEY, run_id, body], self.base_env))
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
                self.timed(*self.hook_argv(self.launcher, "start", e, f"bench-{name}"))
                e["SERVICE_RESULT"] = "success"
                took = self.timed(*self.hook_argv(self.launcher, "finish", e, f"bench-{name}"), expect="not delivered",
                                  refuse="")
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
        samples, rss = booted.run(str(deb.parent), deb.name, log=lambda line: None)
        for name, values in samples.items():
            self.samples[name if name.startswith("part:") else f"booted-{name}"] = values
        self.rss.update(rss)
        self.progress(f"booted Debian 12: {booted.RUNS} runs of {len(samples)} units")

    def list_group(self) -> None:
        """``seestack-hook list --all`` over a staging root of 500 timers and services, each
        monitored (drop-ins written by the product's own units.enable) and each with a last
        heartbeat on record."""
        sys.path.insert(0, ROOT)
        from seestack_systemd.systemd import units  # noqa: E402 - the product's own drop-in writer

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
            # A slug of its own each time: a start that found other runs of its slug still going
            # would read their records (and import json), which no start of a timer's run does.
            argv, e = self.hook_argv(self.launcher, "start", dict(self.env, INVOCATION_ID=os.urandom(16).hex()),
                                     f"bench-imports-{os.urandom(4).hex()}")
            return [PY, "-I", "-S", "-X", "importtime", *argv], e

        def finish_case():
            e = dict(self.env, INVOCATION_ID=os.urandom(16).hex())
            self.timed(*self.hook_argv(self.launcher, "start", e, "bench-imports"))
            argv, e = self.hook_argv(self.launcher, "finish", dict(e, SERVICE_RESULT="success"), "bench-imports")
            return [PY, "-I", "-S", "-X", "importtime", *argv], e

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
                cum = statistics.median([s[0] for s in seen])
                parent, level = seen[0][1], seen[0][2]
                rows.append((name, cum, parent))
                if level == 0:
                    total += cum
            self.import_totals[hook] = total
            self.imports[hook] = sorted(rows, key=lambda r: -r[1])
        self.progress("imports: -X importtime of start and finish")
