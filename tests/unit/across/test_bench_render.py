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


if __name__ == "__main__":
    unittest.main()
