"""The hostile unit, in booted Debian 11, 12 and 13 with the installed .deb: a service run as
nobody whose EnvironmentFile= (nobody's) puts its own systemctl/journalctl first on PATH,
names another endpoint and another state directory.

- enable without --force refuses it: non-zero, nothing written, its environment file named;
- after enable --force, no program from its PATH runs (as root or at all), nothing goes to
  its endpoint, its state directory is never made, and the configured endpoint gets exactly
  one `failed` heartbeat; list and check flag the unit.

Each release boots its own container in setUpClass, so one class runs alone:
  /usr/bin/python3 -m unittest tests.e2e.test_trust.Debian12
"""

from __future__ import annotations

import time
from typing import List

from seestack_systemd.receiver.receive import Receiver
from tests.e2e import harness
from tests.e2e.package import built_deb

API_KEY = "sk-e2e-trust-7f3a9c1d2b4e-SECRET"
UNIT = "e2e-hostile.service"
DROPIN = f"/etc/systemd/system/{UNIT}.d/seestack.conf"
EVIL = "/var/lib/evil"
# A planted tool leaves a marker with the uid it ran as, then does what the real one would.
EVIL_TOOL = "#!/bin/sh\necho \"$(id -u) $0 $*\" >> /var/lib/evil/ran-$(basename \"$0\")\nexec /bin/$(basename \"$0\") \"$@\"\n"
SERVICE = ("[Unit]\nDescription=e2e hostile unit\n[Service]\nType=oneshot\nUser=nobody\n"
           f"EnvironmentFile={EVIL}/env\nExecStart=/bin/sh -c 'echo working on it; echo \"cannot finish\" >&2; exit 3'\n")


def wait_for(receiver: Receiver, count: int, timeout: float = 20) -> List[dict]:
    """The requests ``receiver`` got once ``count`` arrived (and nothing more came in 0.5 s)."""
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    return [r.json() for r in list(receiver.requests)]


class Hostile(harness.ReleaseTest):
    c: harness.Container
    good: Receiver
    evil: Receiver

    @classmethod
    def setUpClass(cls) -> None:
        harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
        deb = built_deb()
        cls.good = Receiver(api_key=API_KEY).start()
        cls.addClassCleanup(cls.good.stop)
        cls.evil = Receiver().start()
        cls.addClassCleanup(cls.evil.stop)
        cls.c = harness.Container(cls.release, binds=[(str(deb.parent), "/mnt/dist", True)])
        cls.addClassCleanup(cls.c.poweroff)
        cls.c.boot()
        c = cls.c
        c.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb.name}"], timeout=180,
              env={"DEBIAN_FRONTEND": "noninteractive"})
        c.write_file("/etc/seestack/api-key", API_KEY + "\n", 0o600)
        conf = c.read_file("/etc/seestack/seestack.conf")
        c.write_file("/etc/seestack/seestack.conf",
                     conf + f"\nendpoint = {cls.good.url}\napi_key_file = /etc/seestack/api-key\ndeadline = 3\n", 0o600)
        for tool in ("systemctl", "journalctl"):
            c.write_file(f"{EVIL}/bin/{tool}", EVIL_TOOL, 0o755)
        # Python's own hooks into a process, for good measure: the hook runs as python3 -IS.
        for module in ("sitecustomize", "seestack_systemd/__init__"):
            c.write_file(f"{EVIL}/py/{module}.py", f"open('{EVIL}/ran-{module.split('/')[0]}', 'w').close()\n")
        c.write_file(f"{EVIL}/env", f"PATH={EVIL}/bin:/usr/bin:/bin\nPYTHONPATH={EVIL}/py\n"
                                    f"SEESTACK_ENDPOINT={cls.evil.url}\n"
                                    f"SEESTACK_STATE_DIR={EVIL}/state\nSEESTACK_DATA_DIR={EVIL}/data\n"
                                    "SEESTACK_DEADLINE=1\n", 0o644)
        c.sh(f"chown -R nobody:nogroup {EVIL}")
        c.write_file(f"/etc/systemd/system/{UNIT}", SERVICE)
        c.systemctl("daemon-reload")
        cls.refused = c.run(["seestack-hook", "enable", UNIT], check=False)
        cls.dropin_after_refusal = c.sh(f"test -e {DROPIN} && echo exists || echo absent").stdout.strip()
        cls.forced = c.run(["seestack-hook", "enable", UNIT, "--force", "--slug", "hostile"], check=False)
        c.systemctl("start", UNIT, check=False)  # exits 3: the unit fails, as its job does

    def test_enable_refuses_without_force(self):
        """enable without --force exits non-zero, writes nothing, and names the environment file"""
        self.assertEqual(self.refused.returncode, 2, self.refused.stderr)
        self.assertIn(f"{EVIL}/env", self.refused.stderr)
        self.assertIn("nobody", self.refused.stderr)
        self.assertEqual(self.dropin_after_refusal, "absent")

    def test_force_writes_with_warning(self):
        """enable --force writes the drop-in and warns about the risk"""
        self.assertEqual(self.forced.returncode, 0, self.forced.stderr)
        self.assertIn("warning", self.forced.stderr)
        self.assertIn(f"{EVIL}/env", self.forced.stderr)
        self.assertIn("seestack-hook finish", self.c.read_file(DROPIN))

    def test_configured_endpoint_gets_one_failed_heartbeat(self):
        """the configured endpoint gets exactly one failed heartbeat; the unit's endpoint nothing"""
        bodies = wait_for(self.good, 1)
        self.assertEqual(len(bodies), 1, bodies)
        self.assertEqual(bodies[0]["slug"], "hostile")
        self.assertEqual(bodies[0]["status"], "failed")
        self.assertIn("exited with status 3", bodies[0]["message"])
        self.assertIsInstance(bodies[0]["durationMs"], int)  # the start record in root's /run/seestack
        self.assertEqual(self.good.requests[0].status, 202)
        self.assertEqual(self.evil.requests, [])

    def test_no_program_from_its_path_runs(self):
        """no systemctl or journalctl from the unit's PATH ran, nor Python code from its PYTHONPATH; its state directory was never used"""
        wait_for(self.good, 1)
        left = self.c.sh(f"ls -A {EVIL}").stdout.split()
        self.assertEqual(sorted(left), ["bin", "env", "py"], left)

    def test_hook_says_what_it_ignored(self):
        """the hooks' journal line names each SEESTACK_* variable they ignored"""
        text = self.c.journal(UNIT, contains="ignoring SEESTACK_")
        line = next(line for line in text.splitlines() if "ignoring SEESTACK_" in line)
        for name in ("SEESTACK_ENDPOINT", "SEESTACK_STATE_DIR", "SEESTACK_DATA_DIR", "SEESTACK_DEADLINE"):
            self.assertIn(name, line)

    def test_list_and_check_flag_the_unit(self):
        """list and check flag the monitored unit whose environment file is not root's"""
        listing = self.c.run(["seestack-hook", "list"]).stdout
        self.assertIn(f"UNSAFE {UNIT}", listing)
        self.assertIn(f"{EVIL}/env", listing)
        checked = self.c.run(["seestack-hook", "check"], check=False)
        self.assertIn(f"{UNIT}: its root hooks run with an environment others can change", checked.stderr)


harness.per_release(Hostile, globals())
