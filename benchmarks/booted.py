"""What monitoring costs per run where users feel it: a oneshot unit in booted Debian 12.

Four copies of one oneshot service (``ExecStart=/bin/true``), started with
``systemctl start`` (which returns once ExecStopPost= has run) 25 times each,
interleaved in a shuffled order, after warm-up:

- ``plain``: no hooks;
- ``curl``: the healthchecks-style lines, ``ExecStartPre=-/usr/bin/curl ... /start`` and
  ``ExecStopPost=-/usr/bin/curl ...``, to the same receiver (a C program's floor);
- ``floor``: the design card's floor, what any stdlib Python agent must pay:
  ``ExecStartPre=/usr/bin/python3 -IS -c pass`` and an ``ExecStopPost=`` script
  (``#!/usr/bin/python3 -IS``) that does only ``urllib.request.urlopen`` of the same POST
  (our endpoint, our headers, a body of our heartbeat's shape);
- ``ours``: the drop-in ``seestack-hook enable`` writes, the package installed with
  ``apt-get install --no-install-recommends``.

The receiver is the product's own on the host's loopback, which the container shares.
Then, to show where our time goes, the parts of a hook run one at a time in the same
container (each through nsenter, whose own cost is the ``part:true`` case), and the
peak RSS of ``finish --unit`` and of the floor's script. ``run()`` returns the samples
in seconds per case and the peak RSS in KiB per case; bench.py renders them.
"""

from __future__ import annotations

import json
import random
import socket
import time
from typing import Dict, List, Tuple

from seestack_systemd.systemd.ask import UNIT_PROPERTIES  # benchmarks/fixtures.py put the checkout on sys.path

RELEASE = "debian-12"
RUNS, WARMUP = 25, 3
RSS_RUNS = 10
API_KEY = "bench-booted-key-0123456789abcdef"
UNIT = "[Unit]\nDescription=bench {name}\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n{extra}"
CURL = ("/usr/bin/curl -fsS -m 10 --retry 3 -o /dev/null -X POST -H 'Authorization: Bearer {key}'"
        " --data-raw {what} {url}/ping/bench-curl/{what}")
FLOOR_SCRIPT_PATH = "/usr/local/bin/bench-floor-post"
# The card's floor for ExecStopPost=: one urllib.request POST of a heartbeat-shaped body to
# our endpoint with our headers (a fresh runId each run: the receiver refuses a repeated key).
FLOOR_SCRIPT = """#!/usr/bin/python3 -IS
import os, time, urllib.request
h = os.urandom(16).hex()
run_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"
t = time.time()
now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (t * 1000 % 1000)
body = ('{"slug":"bench-floor","status":"success","durationMs":1,"runId":"%s","finishedAt":"%s",'
        '"startedAt":"%s","host":"%s","source":{"systemd":{"unit":"bench-floor.service","invocationId":"%s"}},'
        '"sdk":{"name":"seestack-systemd","version":"0.1.0"}}'
        % (run_id, now, now, os.uname().nodename, os.environ.get("INVOCATION_ID", ""))).encode()
req = urllib.request.Request("{url}/v1/cron/heartbeats", data=body, method="POST", headers={
    "Authorization": "Bearer {key}", "Content-Type": "application/json",
    "User-Agent": "seestack-systemd/0.1.0 (card floor)", "Idempotency-Key": run_id})
with urllib.request.urlopen(req, timeout=10) as r:
    r.read()
"""
# The properties finish --unit asks systemctl for (systemd/ask.py), in one call.
SHOW_PROPS = ",".join(UNIT_PROPERTIES)
# Peak RSS of one child, from its rusage (the wrapper's own few MiB are below any hook's peak).
RSS_WRAPPER = ("import os, resource, sys\n"
               "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)\n"
               "os.waitpid(pid, 0)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def imported(container, argv: List[str], env: Dict[str, str]) -> List[str]:
    """The modules ``argv`` (a Python script run with -IS) imports itself, beyond what
    ``python3 -IS -c pass`` loads, in the order it imports them: the outermost ones in
    -X importtime's tree (each pulls in the rest as it did)."""
    def names(args: List[str], e: Dict[str, str], top: bool) -> List[str]:
        err = container.run(["/usr/bin/python3", "-IS", "-X", "importtime", *args], env=e, check=False).stderr
        rows = [line.split("|")[2] for line in err.splitlines()
                if line.startswith("import time:") and "self [us]" not in line]
        return [r.strip() for r in rows if not top or not r.startswith("   ")]
    base = set(names(["-c", "pass"], {}, False))
    seen: List[str] = []
    for name in names(argv, env, True):
        if name not in base and name not in seen:
            seen.append(name)
    return seen


def last_invocation(container) -> str:
    """bench-ours.service's last invocation id, from the journal: once a oneshot unit is
    inactive, ``systemctl show -p InvocationID`` is empty (systemd 252), and a hook given
    an empty $INVOCATION_ID asks neither systemctl nor the journal."""
    out = container.run(["journalctl", "-u", "bench-ours.service", "-n", "20", "-o", "export"]).stdout
    found = [line.split("=", 1)[1] for line in out.splitlines() if line.startswith("_SYSTEMD_INVOCATION_ID=")]
    if not found or len(found[-1]) != 32:
        raise RuntimeError(f"no invocation of bench-ours.service in the journal: {out[-300:]}")
    return found[-1]


def parts(container) -> Dict[str, List[float]]:
    """The pieces of our drop-in's cost, each run alone (after the units ran, so the last
    bench-ours invocation is there to read), interleaved."""
    invocation = last_invocation(container)
    env = {"INVOCATION_ID": invocation, "SERVICE_RESULT": "success"}
    hook = "/usr/bin/seestack-hook"
    finish = [hook, "finish", "--unit", "bench-ours.service", "--", "bench-parts"]
    modules = imported(container, finish, env)
    cases = {
        "true": ["/bin/true"],
        "python": ["/usr/bin/python3", "-IS", "-c", "pass"],
        "urllib-import": ["/usr/bin/python3", "-IS", "-c", "import urllib.request"],
        # the path as the installed hook appends it (packaging/debian/rules), then finish's imports
        "finish-imports": ["/usr/bin/python3", "-IS", "-c", "; ".join(
            ["import sys", "sys.path.append('/usr/lib/python3/dist-packages')"] + [f"import {m}" for m in modules])],
        "systemctl-show": ["systemctl", "show", "--no-pager", "-p", SHOW_PROPS, "--", "bench-ours.service",
                           "bench-ours.timer"],
        "systemctl-show-unit": ["systemctl", "show", "--no-pager", "-p", SHOW_PROPS, "--", "bench-ours.service"],
        "journalctl": ["journalctl", f"_SYSTEMD_INVOCATION_ID={invocation}", "-o", "cat", "--no-pager", "-q", "-n", "1"],
        "floor-post": [FLOOR_SCRIPT_PATH],
        "start": [hook, "start", "--unit", "bench-ours.service", "--", "bench-start"],
        "finish": finish,
        "finish-none": [hook, "finish", "--unit", "bench-ours.service", "--config", "/etc/seestack/none.conf", "--",
                        "bench-none"],
        "finish-nounit": [hook, "finish", "--", "bench-nounit"],
    }
    samples: Dict[str, List[float]] = {f"part:{name}": [] for name in cases}
    for i in range(WARMUP + RUNS):
        for name, argv in cases.items():
            if name.startswith("finish"):  # a run's start record, as finish finds it in a run
                container.run([hook, "start", "--unit", "bench-ours.service", "--", argv[-1]], env=env)
            started = time.perf_counter()
            container.run(argv, env=env)
            if i >= WARMUP:
                samples[f"part:{name}"].append(time.perf_counter() - started)
            if name == "start":  # ended, so the next start finds no run of this unit left over
                container.run(finish[:-1] + ["bench-start"], env=env)
    return samples


def peak_rss(container) -> Dict[str, List[int]]:
    """Peak RSS (KiB) of ``finish --unit`` and of the floor's script, each as a child of a
    small ``python3 -IS`` wrapper reading its own RUSAGE_CHILDREN (the container has no
    /usr/bin/time); the wrapper itself peaks below either."""
    env = {"INVOCATION_ID": last_invocation(container), "SERVICE_RESULT": "success"}
    hook = "/usr/bin/seestack-hook"
    cases = {
        "booted-finish-unit": [hook, "finish", "--unit", "bench-ours.service", "--", "bench-rss"],
        "booted-floor-post": [FLOOR_SCRIPT_PATH],
        "booted-wrapper": ["/bin/true"],
    }
    rss: Dict[str, List[int]] = {name: [] for name in cases}
    for _ in range(RSS_RUNS):
        for name, argv in cases.items():
            if name == "booted-finish-unit":
                container.run([hook, "start", "--unit", "bench-ours.service", "--", "bench-rss"], env=env)
            if name == "booted-wrapper":  # the wrapper alone: its own peak, as the floor of this column
                out = container.run(["/usr/bin/python3", "-IS", "-c",
                                     "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"])
            else:
                out = container.run(["/usr/bin/python3", "-IS", "-c", RSS_WRAPPER, *argv], env=env)
            rss[name].append(int(out.stdout.split()[-1]))
    return rss


def run(deb_dir: str, deb_name: str, log=print) -> Tuple[Dict[str, List[float]], Dict[str, List[int]]]:
    """Boot Debian 12, install the .deb, time the four units; samples per case, peak RSS per case."""
    from seestack_systemd.receiver.receive import Receiver
    from tests.e2e import harness

    receiver = Receiver(port=free_port(), api_key=API_KEY).start()
    container = harness.Container(RELEASE, binds=[(deb_dir, "/mnt/dist", True)], log=log)
    try:
        container.boot()
        container.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb_name}"],
                      timeout=300, env={"DEBIAN_FRONTEND": "noninteractive"})
        url = receiver.url
        container.write_file("/etc/seestack/api-key", API_KEY + "\n", 0o600)
        conf = f"[seestack]\nendpoint = {url}\napi_key_file = /etc/seestack/api-key\n"
        container.write_file("/etc/seestack/seestack.conf", conf, 0o600)
        container.write_file("/etc/seestack/none.conf", conf + "success_message = none\n", 0o600)
        container.write_file(FLOOR_SCRIPT_PATH, FLOOR_SCRIPT.replace("{url}", url).replace("{key}", API_KEY), 0o755)
        curl = (f"ExecStartPre=-{CURL.format(key=API_KEY, url=url, what='start')}\n"
                f"ExecStopPost=-{CURL.format(key=API_KEY, url=url, what='done')}\n")
        floor = f"ExecStartPre=/usr/bin/python3 -IS -c pass\nExecStopPost={FLOOR_SCRIPT_PATH}\n"
        units = {"plain": "", "curl": curl, "floor": floor, "ours": ""}
        for name, extra in units.items():
            container.write_file(f"/etc/systemd/system/bench-{name}.service", UNIT.format(name=name, extra=extra))
        container.run(["/usr/bin/seestack-hook", "enable", "--no-reload", "bench-ours.service"])
        container.run(["systemctl", "daemon-reload"])
        samples: Dict[str, List[float]] = {name: [] for name in units}
        order = random.Random(20261201)
        names = list(units)
        for i in range(WARMUP + RUNS):
            order.shuffle(names)
            for name in names:
                started = time.perf_counter()
                done = container.run(["systemctl", "start", f"bench-{name}.service"], check=False)
                took = time.perf_counter() - started
                if done.returncode:
                    raise RuntimeError(f"systemctl start bench-{name}.service exited {done.returncode}: {done.stderr}")
                if i >= WARMUP:
                    samples[name].append(took)
        samples.update(parts(container))
        rss = peak_rss(container)
        delivered = [r for r in receiver.requests if r.path == "/v1/cron/heartbeats" and r.status == 202]
        # bench-ours, bench-floor; the parts that POST (finish three ways, the floor's script, the finish
        # after each start part) and the one finish run under -X importtime; the RSS runs
        expected = 2 * (WARMUP + RUNS) + 5 * (WARMUP + RUNS) + 1 + 2 * RSS_RUNS
        if len(delivered) != expected:
            import collections
            seen = collections.Counter((d["slug"], d["status"], str(d.get("message"))[:60])
                                       for d in (json.loads(r.body) for r in delivered))
            raise RuntimeError(f"expected {expected} heartbeats, the receiver accepted {len(delivered)}: {dict(seen)}")
        said = [json.loads(r.body).get("message") for r in delivered if b'"slug":"bench-parts"' in r.body]
        if not any(said):  # finish --unit read the invocation's last line: systemctl and journalctl ran
            raise RuntimeError("finish --unit read no journal line for bench-ours.service's invocation")
        return samples, rss
    finally:
        container.poweroff()
        receiver.stop()
