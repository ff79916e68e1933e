"""``list --output=json`` for scripts, and the table for eyes: the same facts, as real
processes on a staging root (``--root``) with real last-heartbeat records and a spool."""

from __future__ import annotations

import json
import os
import time
import unittest

from seestack_systemd.receiver.receive import Receiver

from ..support import API_KEY, HookTestCase

SERVICE = "[Unit]\nDescription=job\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


class ListOutput(HookTestCase):
    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.dir, "root")
        self.lib = os.path.join(self.root, "lib/systemd/system")
        os.makedirs(self.lib)
        units = {"backup.service": SERVICE, "backup.timer": "[Timer]\nOnCalendar=daily\n",
                 "report.service": SERVICE, "report.timer": "[Timer]\nOnCalendar=daily\n",
                 "x@.service": SERVICE, "x@.timer": "[Timer]\nOnCalendar=daily\n",
                 "spare.service": SERVICE, "spare.timer": "[Timer]\nOnCalendar=daily\n"}
        for name, text in units.items():
            with open(os.path.join(self.lib, name), "w") as f:
                f.write(text)
        for unit in ("backup.timer", "report.timer"):
            done = self.hook("enable", unit, "--root", self.root)
            self.assertEqual(done.returncode, 0, done.stderr)
        receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        # backup's last heartbeat delivered, report's kept in the spool, a run job's delivered.
        self.assertEqual(self.hook("ping", "backup", "--status", "success", "--duration-ms", "1500",
                                   env={"SEESTACK_ENDPOINT": receiver.url}).returncode, 0)
        self.assertEqual(self.hook("run", "nightly", "--", "/bin/true",
                                   env={"SEESTACK_ENDPOINT": receiver.url}).returncode, 0)
        down = {"SEESTACK_ENDPOINT": "http://127.0.0.1:1", "SEESTACK_DEADLINE": "0.5"}  # last: a send replays the spool
        self.assertEqual(self.hook("ping", "report", "--status", "failed", env=down).returncode, 75)

    def listed(self, *flags: str):
        done = self.hook("list", "--all", "--root", self.root, *flags)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done

    def test_json_rows(self):
        """list --output=json: one JSON array; units, jobs, timers and the spool as objects with a kind"""
        rows = json.loads(self.listed("--output=json").stdout)
        self.assertIsInstance(rows, list)
        kinds = {row["kind"] for row in rows}
        self.assertEqual(kinds, {"unit", "job", "timer", "spool"})
        units = {row["unit"]: row for row in rows if row["kind"] == "unit"}
        backup = units["backup.service"]
        self.assertEqual((backup["slug"], backup["timer"], backup["notScheduled"], backup["template"]),
                         ("backup", "backup.timer", None, None))
        self.assertEqual((backup["last"]["status"], backup["last"]["durationMs"], backup["last"]["delivery"]),
                         ("success", 1500, "delivered"))
        self.assertRegex(backup["last"]["finishedAt"], RFC3339)
        finished = time.mktime(time.strptime(backup["last"]["finishedAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        self.assertLess(abs(finished - time.time()), 120)
        self.assertEqual((units["report.service"]["last"]["status"], units["report.service"]["last"]["delivery"]),
                         ("failed", "spooled"))
        [job] = [row for row in rows if row["kind"] == "job"]
        self.assertEqual((job["slug"], job["source"], job["last"]["delivery"]), ("nightly", "run", "delivered"))
        timers = {row["timer"]: row for row in rows if row["kind"] == "timer"}
        self.assertEqual(timers["spare.timer"]["command"], "seestack-hook enable spare.timer")
        self.assertEqual(timers["spare.timer"]["unit"], "spare.service")
        self.assertEqual(timers["x@.timer"]["command"], "seestack-hook enable 'x@.service' --slug 'x-%i'")
        self.assertNotIn("backup.timer", timers)
        [spool] = [row for row in rows if row["kind"] == "spool"]
        self.assertEqual(spool["waiting"], 1)
        self.assertEqual(spool["oldestAt"], units["report.service"]["last"]["finishedAt"])

    def test_json_spellings(self):
        """-o json and --output json are the same as --output=json; json-pretty is the same data, indented"""
        compact = json.loads(self.listed("--output=json").stdout)
        for flags in (("-o", "json"), ("--output", "json")):
            with self.subTest(flags):
                self.assertEqual(json.loads(self.listed(*flags).stdout), compact)
        pretty = self.listed("-o", "json-pretty").stdout
        self.assertEqual(json.loads(pretty), compact)
        self.assertGreater(len(pretty.splitlines()), 10)
        self.assertEqual(len(self.listed("-o", "json").stdout.splitlines()), 1)
        bad = self.hook("list", "-o", "yaml")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("invalid choice: 'yaml'", bad.stderr)

    def test_table_has_the_same_facts(self):
        """every unit and job object of the JSON is a table row with the same unit, slug, timer and delivery"""
        rows = json.loads(self.listed("-o", "json").stdout)
        table = self.listed().stdout.splitlines()
        for row in rows:
            if row["kind"] not in ("unit", "job"):
                continue
            name = row.get("unit") or row["slug"]
            [line] = [line for line in table if line.split() and line.split()[0] == name]
            self.assertIn(row["slug"], line.split())
            if row.get("timer"):
                self.assertIn(row["timer"], line.split())
            self.assertTrue(line.endswith(row["last"]["delivery"]), line)

    def test_template_instances_in_json(self):
        """a monitored template is one row per instance, each naming its template and its own slug"""
        self.hook("enable", "x@.service", "--slug", "x-%i", "--root", self.root)
        wants = os.path.join(self.root, "etc/systemd/system/timers.target.wants")
        os.makedirs(wants)
        os.symlink(os.path.join(self.lib, "x@.timer"), os.path.join(wants, "x@Main_DB.timer"))
        rows = json.loads(self.listed("-o", "json").stdout)
        units = {row["unit"]: row for row in rows if row["kind"] == "unit"}
        self.assertTrue(units["x@.service"]["perInstance"])
        instance = units["x@Main_DB.service"]
        self.assertEqual((instance["slug"], instance["template"], instance["last"]), ("x-main-db", "x@.service", None))
        self.assertEqual(instance["timer"], "x@Main_DB.timer")
        row = next(line for line in self.listed().stdout.splitlines() if line.startswith("  x@Main_DB.service"))
        self.assertEqual(row.split()[:3], ["x@Main_DB.service", "x-main-db", "x@Main_DB.timer"])


class ColumnWidths(HookTestCase):
    """The table's columns are as wide as their content: NOT SCHEDULED (masked) keeps the table in line."""

    def test_columns_line_up(self):
        root = os.path.join(self.dir, "root")
        lib = os.path.join(root, "lib/systemd/system")
        os.makedirs(lib)
        for name in ("a-rather-long-service-name-for-the-unit-column", "b"):
            for suffix, text in ((".service", SERVICE), (".timer", "[Timer]\nOnCalendar=daily\n")):
                with open(os.path.join(lib, name + suffix), "w") as f:
                    f.write(text)
            self.assertEqual(self.hook("enable", name + ".timer", "--root", root).returncode, 0)
        os.symlink(os.devnull, os.path.join(root, "etc/systemd/system/b.timer"))  # masked
        done = self.hook("list", "--root", root)
        lines = done.stdout.splitlines()
        header = next(line for line in lines if line.startswith("UNIT"))
        rows = [line for line in lines if line.endswith("none yet")]
        self.assertEqual(len(rows), 2, done.stdout)
        self.assertTrue(any("NOT SCHEDULED (masked)" in row for row in rows), done.stdout)
        for title in ("SLUG", "TIMER", "NEXT RUN", "LAST HEARTBEAT"):
            at = header.index(title)
            for row in rows:
                self.assertEqual(row[at - 1], " ", f"{title} column:\n{header}\n{row}")
                self.assertNotEqual(row[at], " ", f"{title} column:\n{header}\n{row}")


if __name__ == "__main__":
    unittest.main()
