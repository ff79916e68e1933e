"""What monitoring costs per run where users feel it: a oneshot unit in booted Debian 12.

Three copies of one oneshot service (``ExecStart=/bin/true``), started with
``systemctl start`` (which returns once ExecStopPost= has run) 25 times each,
interleaved in a shuffled order, after warm-up:

- ``plain``: no hooks;
- ``curl``: the healthchecks-style lines, ``ExecStartPre=-/usr/bin/curl ... /start`` and
  ``ExecStopPost=-/usr/bin/curl ...``, to the same receiver;
- ``ours``: the drop-in ``seestack-hook enable`` writes, the package installed with
  ``apt-get install --no-install-recommends``.

The receiver is the product's own on the host's loopback, which the container shares.
Then, to show where our time goes, the parts of a hook run one at a time in the same
container (each through nsenter, whose own cost is the ``part:true`` case).
``run()`` returns the samples in seconds per case; bench.py renders them.
"""

from __future__ import annotations

import random
import socket
import time
from typing import Dict, List

RELEASE = "debian-12"
RUNS, WARMUP = 25, 3
API_KEY = "bench-booted-key-0123456789abcdef"
UNIT = "[Unit]\nDescription=bench {name}\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n{extra}"
CURL = ("/usr/bin/curl -fsS -m 10 --retry 3 -o /dev/null -X POST -H 'Authorization: Bearer {key}'"
        " --data-raw {what} {url}/ping/bench-curl/{what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parts(container) -> Dict[str, List[float]]:
    """The pieces of our drop-in's cost, each run alone (after the units ran, so the last
    bench-ours invocation is there to read), interleaved."""
    invocation = container.run(["systemctl", "show", "-p", "InvocationID", "--value", "bench-ours.service"]).stdout.strip()
    env = {"INVOCATION_ID": invocation, "SERVICE_RESULT": "success"}
    cases = {
        "true": ["/bin/true"],
        "python": ["/usr/bin/python3", "-IS", "-c", "pass"],
        "urllib-import": ["/usr/bin/python3", "-IS", "-c", "import urllib.request"],
        "systemctl-show": ["systemctl", "show", "bench-ours.service", "bench-ours.timer"],
        "journalctl": ["journalctl", f"_SYSTEMD_INVOCATION_ID={invocation}", "-o", "cat", "--no-pager", "-q", "-n", "1"],
        "start": ["/usr/bin/seestack-hook", "start", "--unit", "bench-ours.service", "--", "bench-parts"],
        "finish": ["/usr/bin/seestack-hook", "finish", "--unit", "bench-ours.service", "--", "bench-parts"],
    }
    samples: Dict[str, List[float]] = {f"part:{name}": [] for name in cases}
    for i in range(WARMUP + RUNS):
        for name, argv in cases.items():
            started = time.perf_counter()
            container.run(argv, env=env)
            if i >= WARMUP:
                samples[f"part:{name}"].append(time.perf_counter() - started)
    return samples


def run(deb_dir: str, deb_name: str, log=print) -> Dict[str, List[float]]:
    """Boot Debian 12, install the .deb, time the three units; samples per case."""
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
        container.write_file("/etc/seestack/seestack.conf",
                             f"[seestack]\nendpoint = {url}\napi_key_file = /etc/seestack/api-key\n", 0o600)
        curl = (f"ExecStartPre=-{CURL.format(key=API_KEY, url=url, what='start')}\n"
                f"ExecStopPost=-{CURL.format(key=API_KEY, url=url, what='done')}\n")
        units = {"plain": "", "curl": curl, "ours": ""}
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
        delivered = [r for r in receiver.requests if r.path == "/v1/cron/heartbeats" and r.status == 202]
        if len(delivered) != 2 * (WARMUP + RUNS):  # bench-ours, then the finish part alone
            raise RuntimeError(f"expected {2 * (WARMUP + RUNS)} heartbeats, the receiver accepted {len(delivered)}")
        return samples
    finally:
        container.poweroff()
        receiver.stop()
