"""benchmarks/render.py renders RESULTS.md as a pure function of the measurements that
benchmarks/bench.py records in RESULTS.json: the committed pair agrees, byte for byte."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import unittest
from types import ModuleType

from ..support import ROOT

BENCH = os.path.join(ROOT, "benchmarks")


def load_render() -> ModuleType:
    """benchmarks/render.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_render", os.path.join(BENCH, "render.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RenderTests(unittest.TestCase):
    render: ModuleType
    data: dict

    @classmethod
    def setUpClass(cls) -> None:
        cls.render = load_render()
        with open(os.path.join(BENCH, "RESULTS.json")) as f:
            cls.data = json.load(f)

    def test_results_are_rendered_from_measurements(self):
        """benchmarks/RESULTS.md is render() of benchmarks/RESULTS.json: no hand edits, nothing read but the data"""
        with open(os.path.join(BENCH, "RESULTS.md")) as f:
            self.assertEqual(self.render.render(self.data), f.read())

    def test_unmeasured_group_leaves_out_its_rows_and_budget(self):
        """a group not measured (refused/blackholed skipped) has no table row and no budget line; the rest stays"""
        data = copy.deepcopy(self.data)
        for key in ("finish-refused", "finish-blackholed"):
            data["samples"].pop(key, None)
        data["notes"] = ["BENCH_SKIP_SLOW=1: the refused/blackholed runs were skipped"]
        text = self.render.render(data)
        self.assertNotIn("receiver refusing connections", text)
        self.assertNotIn("receiver blackholed", text)
        self.assertNotIn("receiver refused", text)
        self.assertIn("`seestack-hook flush`, 1000 spooled heartbeats", text)
        self.assertIn("## Notes\n\n- BENCH_SKIP_SLOW=1: the refused/blackholed runs were skipped\n", text)

    def test_issue_budgets_each_show_limit_and_verdict(self):
        """the drop-in against the card's floor (1.25x), finish against the urllib script as installed (1.15x) and
        the peak RSS of finish --unit (24 MiB) each have a budget row; curl is recorded, with no limit"""
        data = copy.deepcopy(self.data)
        s = data["samples"]
        plain = s["booted-plain"] = [0.010, 0.012, 0.014]
        s["booted-curl"] = [p + 0.005 for p in plain]
        s["booted-floor"] = [p + 0.040 for p in plain]
        s["booted-ours"] = [p + 0.049 for p in plain]  # 49 / 40 = 1.225x (1.22x as rounded): holds
        s["finish:deb"] = list(s.get("finish:deb") or s["finish:checkout"])
        s["urllib-installed"] = [x / 1.2 for x in s["finish:deb"]]  # 1.20x: does not hold
        data["hooks"] = ["checkout", "deb"]
        data["rss"]["booted-finish-unit"] = [20 * 1024]
        rows = {line.split(" | ")[0].lstrip("| "): line for line in self.render.render(data).splitlines()
                if line.startswith("| ") and line.endswith(" |")}
        floor = next(v for k, v in rows.items() if "the card's floor (+" in k)
        self.assertIn("| 1.22x | ≤ 1.25x | yes |", floor)
        finish = rows["`finish` (no `--unit`) / minimal `urllib.request` script, both as installed"]
        self.assertIn("| 1.20x | ≤ 1.15x | **NO** |", finish)
        rss = next(v for k, v in rows.items() if k.startswith("peak RSS of `finish --unit` (booted"))
        self.assertIn("| 20.0 MiB | ≤ 24 MiB | yes |", rss)
        curl = next(v for k, v in rows.items() if "our drop-in / curl lines" in k)
        self.assertIn("| — | yes |", curl)

    def test_without_booted_rows_no_booted_budget(self):
        """a run without root (no booted rows) has neither the floor budget nor the booted section"""
        data = copy.deepcopy(self.data)
        for key in [k for k in data["samples"] if k.startswith(("booted-", "part:"))]:
            del data["samples"][key]
        text = self.render.render(data)
        self.assertNotIn("the card's floor (+", text)
        self.assertNotIn("## Booted Debian 12", text)


if __name__ == "__main__":
    unittest.main()
