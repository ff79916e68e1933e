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

Prints a table and writes benchmarks/RESULTS.md (render.py) from the measurements, which it
keeps in benchmarks/RESULTS.json (`python3 benchmarks/render.py` renders them again). Environment knobs (for
development only; fewer than 30 runs is not a valid result): BENCH_RUNS,
BENCH_SLOW_RUNS, BENCH_SKIP_SLOW=1 (skips the refused/blackholed runs).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from fixtures import (API_KEY, DEB_HOOK, HOOK_FLAGS, DEVNULL, GNU_TIME, HTTPS_RECEIVER, IMPORT_RUNS, LAUNCH, LIST_UNITS, MAKE_CA,
                      MIB, PY, RESULTS, ROOT, RSS_RUNS, RUNS, SLOW_RUNS, SLOW_WARMUP, SPOOL_SIZE, STUB_JOURNALCTL,
                      STUB_SYSTEMCTL, URLLIB_SCRIPT, DEADLINE, BenchError, free_port, sh)
from groups import Groups
from render import MEASUREMENTS, render


class Bench(Groups):
    """One run: its set-up (receivers, configurations, hooks), the running primitives, and
    what it measured."""

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
        # The minimal urllib.request script as installed: a file with the hook's own shebang.
        self.urllib_script = os.path.join(self.tmp, "urllib-post")
        with open(self.urllib_script, "w") as f:
            f.write("#!/usr/bin/python3 -IS\n" + URLLIB_SCRIPT)
        os.chmod(self.urllib_script, 0o755)
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

    @staticmethod
    def hook_argv(hook: str, command: str, env: dict, *args: str) -> tuple[list[str], dict]:
        """``hook command ARGS`` as a drop-in runs it: the environment's settings as flags."""
        flags = [word for var, flag in HOOK_FLAGS.items() if var in env for word in (flag, env[var])]
        return [hook, command, *flags, *args], {k: v for k, v in env.items() if k not in HOOK_FLAGS}

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

    def progress(self, text: str) -> None:
        print(f"bench: {time.monotonic() - self.started:6.1f}s  {text}", flush=True)

    # --- what was measured ----------------------------------------------------------------

    def measurements(self) -> dict:
        """Everything render.render needs, JSON-serialisable (written to RESULTS.json)."""
        return {
            "settings": {"runs": RUNS, "slow_runs": SLOW_RUNS, "rss_runs": RSS_RUNS, "import_runs": IMPORT_RUNS,
                         "deadline": DEADLINE, "spool_size": SPOOL_SIZE, "list_units": LIST_UNITS},
            "hooks": list(self.hooks), "samples": self.samples, "rss": self.rss, "library": self.library,
            "imports": self.imports, "import_totals": self.import_totals, "notes": self.notes,
            "machine": self.machine_facts(), "elapsed": time.monotonic() - self.started,
        }

    def machine_facts(self) -> dict:
        """The machine the run measured, at its end."""
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
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        site_dirs = ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3.11/dist-packages")
        pth = sorted(os.path.join(d, n) for d in site_dirs
                     if os.path.isdir(d) for n in os.listdir(d) if n.endswith(".pth"))
        uname = os.uname()
        curl = sh(["curl", "--version"])
        df = sh(["df", "--output=fstype", self.tmp]).splitlines()
        return {
            "host": uname.nodename, "system": f"{uname.sysname} {uname.release} {uname.machine}",
            "virt": sh(["systemd-detect-virt"]) or "?", "cpu": cpu, "cpus": os.cpu_count(), "memory": mem,
            "load": load, "python": PY, "python_version": sh([PY, "-c", "import sys; print(sys.version.split()[0])"]),
            "pth": pth, "curl": curl.splitlines()[0] if curl else "missing", "root": ROOT,
            "head": sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "?",
            "dirty": bool(sh(["git", "-C", ROOT, "status", "--porcelain", "--", "seestack_systemd"])),
            "deb_hook": DEB_HOOK,
            "package": {"version": self.deb_version, "hook": DEB_HOOK, "modules": os.path.dirname(self.deb_where),
                        "same": self.deb_same} if self.deb else None,
            "shm": self.shm, "tmp": self.tmp, "tmp_fs": df[-1].strip() if len(df) > 1 else "?",
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }


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
        data = bench.measurements()
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
        if installed_here:
            subprocess.run(["apt-get", "purge", "-y", "-q", "seestack-systemd"], capture_output=True)
    with open(MEASUREMENTS, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    text = render(data)
    with open(RESULTS, "w") as f:
        f.write(text)
    print(text)
    print(f"bench: wrote {os.path.relpath(RESULTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
