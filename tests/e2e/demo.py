#!/usr/bin/python3
"""make demo: the product's main job, for real.

Boots a Debian 12 container with systemd, installs the .deb, enables monitoring on
the example timer with `seestack-hook enable`, lets the timer fire one succeeding
and one failing run, and prints what a local receiver on the host got.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from seestack_systemd.receiver.receive import Receiver  # noqa: E402
from tests.e2e import harness  # noqa: E402
from tests.e2e.package import ROOT, built_deb  # noqa: E402

DEMO_KEY = "sk-demo-0000-not-a-real-key"
# For the demo only: fire every 2 s instead of daily, and fail on the second run.
TIMER_OVERRIDE = "[Timer]\nOnCalendar=\nOnActiveSec=1s\nOnUnitInactiveSec=2s\nAccuracySec=100ms\n"
JOB_OVERRIDE = ("[Service]\nExecStart=\nExecStart=/bin/sh -c 'if [ -e /run/demo-ran ]; then echo \"pg_dump: could not "
                "connect to server: Connection refused\" >&2; exit 2; fi; touch /run/demo-ran; echo Processed 1842 records'\n")


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    if os.geteuid() != 0:
        print("make demo boots a Debian container with systemd-nspawn and needs root;"
              " 'make demo-local' shows the agent without root.", file=sys.stderr)
        return 1
    step("building the package (make deb)")
    deb = built_deb(check=False)  # the quick path: the unit tests are not its job
    print(deb.name)
    receiver = Receiver(api_key=DEMO_KEY, out=sys.stdout).start()
    try:
        step(f"booting Debian 12 with systemd; receiver on the host at {receiver.url}")
        with harness.Container("debian-12", binds=[(str(deb.parent), "/mnt/dist", True),
                                                  (str(ROOT / "units"), "/mnt/units", True)]) as c:
            c.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb.name}"],
                  timeout=180, env={"DEBIAN_FRONTEND": "noninteractive"})
            c.write_file("/etc/seestack/api-key", DEMO_KEY + "\n", 0o600)
            conf = c.read_file("/etc/seestack/seestack.conf")
            c.write_file("/etc/seestack/seestack.conf",
                         conf + f"\nendpoint = {receiver.url}\napi_key_file = /etc/seestack/api-key\n", 0o600)
            c.sh("cp /mnt/units/example-report.service /mnt/units/example-report.timer /etc/systemd/system/")
            c.write_file("/etc/systemd/system/example-report.timer.d/demo.conf", TIMER_OVERRIDE)
            c.write_file("/etc/systemd/system/example-report.service.d/demo.conf", JOB_OVERRIDE)
            step("seestack-hook check")
            print(c.run(["seestack-hook", "check"]).stdout, end="")
            step("seestack-hook enable example-report.timer")
            print(c.run(["seestack-hook", "enable", "example-report.timer"]).stdout, end="")
            step("starting the timer: one run succeeds, the next fails; heartbeats as the receiver prints them")
            c.systemctl("start", "example-report.timer")
            deadline = time.monotonic() + 30
            while len(receiver.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            c.systemctl("stop", "example-report.timer")
            time.sleep(0.5)
            step("the failed run's heartbeat, as sent")
            failed = [r.json() for r in receiver.requests if r.json().get("status") == "failed"]
            if failed:
                import json

                print(json.dumps(failed[0], indent=2, ensure_ascii=False))
            step("seestack-hook list")
            print(c.run(["seestack-hook", "list"]).stdout, end="")
    finally:
        receiver.stop()
    return 0 if len(receiver.requests) >= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
