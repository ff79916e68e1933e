"""The rendering of ``make bench``: RESULTS.md (tables, budgets, floors and their prose)
as a pure function of the measurements bench.py records, so it can be rendered again
from benchmarks/RESULTS.json without measuring: ``python3 benchmarks/render.py``."""

from __future__ import annotations

import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MEASUREMENTS = os.path.join(HERE, "RESULTS.json")
RESULTS = os.path.join(HERE, "RESULTS.md")

# The budgets of the issue, from one run.
BUDGET_START_RATIO = 1.6  # start / python3 -I -S -c pass (a part of the drop-in's cost)
BUDGET_FINISH_RATIO = 1.15  # finish (no --unit) / the minimal urllib.request script, both as installed
BUDGET_FLOOR_RATIO = 1.25  # booted Debian 12: our drop-in's added time per run / the card floor's
BUDGET_RSS_MIB = 24.0
BUDGET_DEADLINE_SLACK = 0.3  # seconds past the deadline
BUDGET_FLUSH_RATE = 500.0  # heartbeats per second
BUDGET_LIST_S = 1.0
BOOTED_CASES = {"plain": "no hooks", "curl": "healthchecks-style curl lines",
                "floor": "the card's floor (`python3 -IS -c pass`, a urllib.request POST script)",
                "ours": "our drop-in"}
BOOTED_PARTS = {"true": "`/bin/true` (the nsenter floor)", "python": "`python3 -IS -c pass`",
                "urllib-import": "`python3 -IS -c 'import urllib.request'`",
                "finish-imports": "`python3 -IS -c` importing every module `finish --unit` imports",
                "systemctl-show": "`systemctl show -p ...` of the unit and its timer (finish's one call)",
                "systemctl-show-unit": "`systemctl show -p ...` of the unit alone",
                "journalctl": "`journalctl` of the invocation, last line",
                "floor-post": "the card floor's `ExecStopPost=` script (urllib.request POST, 202)",
                "start": "`seestack-hook start --unit`",
                "finish": "`seestack-hook finish --unit`, 202",
                "finish-none": "`seestack-hook finish --unit`, 202, `success_message = none` (no journal read)",
                "finish-nounit": "`seestack-hook finish` without `--unit`, 202"}


def quartiles(values: list[float]) -> tuple[float, float]:
    """p25 and p75 (the extremes when there are too few values for quartiles)."""
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def machine(facts: dict) -> list[str]:
    """The Machine section's lines, from bench.machine_facts()."""
    pkg = facts["package"]
    if pkg:
        installed = (f"seestack-systemd {pkg['version']} ({pkg['hook']}, modules in {pkg['modules']}: "
                     + ("the same code as the checkout)" if pkg["same"] else
                        "**not** the checkout's code: rebuild and reinstall it)"))
    else:
        installed = f"not installed ({facts['deb_hook']} missing): figures are the checkout's only"
    return [
        f"- host: `{facts['host']}`, {facts['system']}, virtualization: {facts['virt']}",
        f"- CPU: {facts['cpu']} x {facts['cpus']}; memory {facts['memory']}; load average at the end {facts['load']}",
        f"- Python: `{facts['python']}` {facts['python_version']}"
        f" (site .pth files: {', '.join(facts['pth']) or 'none'})",
        f"- curl: {facts['curl']}",
        f"- checkout: {facts['root']} at {facts['head']}"
        + (" with uncommitted changes in seestack_systemd/" if facts["dirty"] else ""),
        "- installed package: " + installed,
        f"- state directory on tmpfs ({facts['shm']}); data directory and spool on {facts['tmp_fs']} ({facts['tmp']})",
        f"- date: {facts['date']}",
    ]


def render(data: dict) -> str:
    """RESULTS.md from the measurements (bench.Bench.measurements, or their JSON)."""
    conf = data["settings"]
    s = {k: v for k, v in data["samples"].items() if v}
    m = {k: statistics.median(v) for k, v in s.items()}

    def ms(x: float) -> str:
        return f"{x * 1000:.1f} ms"

    floor = m["floor-S"]
    rows: list[tuple[str, str, str, str, str]] = []

    def row(label: str, key: str, rss_key: str = "") -> None:
        if key not in m:
            return
        q1, q3 = quartiles(s[key])
        rss = data["rss"].get(rss_key or key)
        rss_text = f"{max(rss) / 1024:.1f}" if rss else ""
        rows.append((label, ms(m[key]), f"{ms(q1)} – {ms(q3)}", f"{m[key] / floor:.2f}x", rss_text))

    row("floor: `python3 -I -S -c pass`", "floor-S")
    row("floor: `python3 -I -c pass`", "floor-I")
    for variant in data["hooks"]:
        tag = "checkout" if variant == "checkout" else "installed .deb"
        row(f"`seestack-hook start SLUG` ({tag})", f"start:{variant}")
        row(f"`seestack-hook finish SLUG`, 202 on loopback ({tag})", f"finish:{variant}")
        row(f"`seestack-hook finish SLUG`, https with a private CA on loopback ({tag})", f"finish:{variant}-https")
    row("`start`, settings from flags only (no config file)", "start:checkout-envonly")
    row("`finish`, settings from flags only (no config file)", "finish:checkout-envonly")
    row("`finish --unit bench.service` (stub systemctl/journalctl)", "finish:checkout-unit")
    row("baseline: `curl -fsS -m 10 --retry 3` POST", "curl")
    row("baseline: `python3 -I -c` urllib.request POST", "urllib")
    row("baseline: the urllib.request POST script as installed (`#!/usr/bin/python3 -IS`)", "urllib-installed")
    row("baseline: `python3 -I -c` urllib.request POST, https with the same CA", "urllib-https")
    row(f"`finish`, receiver refusing connections ({conf['deadline']:g} s deadline)", "finish-refused")
    row(f"`finish`, receiver blackholed ({conf['deadline']:g} s deadline)", "finish-blackholed")
    row(f"`seestack-hook flush`, {conf['spool_size']} spooled heartbeats", "flush")
    row(f"`seestack-hook list --all`, {conf['list_units']} monitored units", "list")
    for name, what in BOOTED_CASES.items():
        row(f"booted Debian 12: `systemctl start` of a oneshot unit, {what}", f"booted-{name}")
    for name, what in BOOTED_PARTS.items():
        row(f"booted Debian 12, one part alone (through nsenter): {what}", f"part:{name}",
            {"finish": "booted-finish-unit", "floor-post": "booted-floor-post"}.get(name, ""))

    out = ["# seestack-hook benchmark", "",
           "Written by `make bench` (`/usr/bin/python3 benchmarks/bench.py`); do not edit by hand.", "",
           "## Machine", ""] + machine(data["machine"]) + [""]
    out += ["## Processes", "",
            f"Median of {conf['runs']} runs (refused/blackholed, flush and list: {conf['slow_runs']}) after"
            " warm-up, all cases interleaved in a shuffled order each round so drift hits them alike; wall time from"
            " `time.perf_counter` around `subprocess.run`; ratio to `python3 -I -S -c pass` measured in the"
            f" same run; peak RSS is the largest of {conf['rss_runs']} runs (flush, list: 3) under"
            " `/usr/bin/time -f %M` (booted Debian 12: the child's `ru_maxrss` as a small `python3 -IS` wrapper"
            " reads it from `getrusage(RUSAGE_CHILDREN)`, the container having no `/usr/bin/time`).",
            "",
            "| case | median | p25 – p75 | ratio to -I -S floor | peak RSS MiB |",
            "|---|---:|---:|---:|---:|"]
    out += [f"| {' | '.join(r)} |" for r in rows]
    out.append("")
    if "flush" in m:
        out.append(f"Spool flush: {conf['spool_size'] / m['flush']:.0f} heartbeats/s for the whole `flush` process"
                   f" ({conf['spool_size']} in {ms(m['flush'])}, interpreter start-up included), one connection"
                   " per heartbeat.")
    if data["library"]:
        lib = data["library"]
        out.append(
            f"Library, warm process ({lib['runs']} heartbeats): `start_job` + `finish_job` {lib['lib_us']:.0f} µs"
            f" per heartbeat; a bare HTTP round trip to the same receiver on a raw socket (connect, POST,"
            f" read, close) {lib['raw_us']:.0f} µs; so our own code costs {lib['own_us']:.0f} µs per heartbeat,"
            f" of which re-reading the configuration (`config.load`, every `finish_job`) is"
            f" {lib['config_load_us']:.0f} µs.")
    if data["library"].get("durable"):
        d = data["library"]["durable"]
        where = data["machine"].get("tmp_fs", "?")

        def us(name: str) -> str:
            return f"{d[name]['median_us']:.0f} µs (p95 {d[name]['p95_us']:.0f})"
        out.append("")
        out.append(
            f"Durable writes, same warm process, in the data directory ({where}): `start`'s in-progress record"
            f" (`atomic_write`, fsync of file and directory) {us('record_fsync')}, the same without fsync"
            f" {us('record_nofsync')}; `finish`'s spool write-ahead and its removal once delivered (`spool.hold` +"
            f" `Held.done`, no fsync, as it is) {us('spool_asis')}, with an fsync of file and directory added"
            f" {us('spool_fsync')}. The record's fsync is"
            f" {(d['record_fsync']['median_us'] - d['record_nofsync']['median_us']) / 1000:.2f} ms of every"
            " `start`; the spool's fsync would add"
            f" {(d['spool_fsync']['median_us'] - d['spool_asis']['median_us']) / 1000:.2f} ms to every `finish`"
            " (it is fsynced only when kept for a replay).")
    out.append("")

    out += ["How each case runs:", "",
            "- hooks: an executable with the shebang `#!/usr/bin/python3 -IS`, as installed; the checkout's is a"
            " launcher that puts the checkout first on `sys.path`. Configuration as deployed: the package's"
            " conffile (`packaging/seestack.conf`, its comments intact) with `endpoint` and `api_key_file` set,"
            " named by `--config`, and `--state-dir` on tmpfs: flags, as a drop-in gives them, since a root hook"
            " reads no `SEESTACK_*` variable. Each round runs `start` then `finish`"
            " (`INVOCATION_ID` set, `SERVICE_RESULT=success`, no `--unit`: no systemctl or journal), timed"
            " separately; every `finish` is checked to have logged `delivered (HTTP 202)`.",
            "- \"settings from flags only\": `--config /dev/null`, `--endpoint` and `--api-key-file` (no config"
            " file to parse).",
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
            f" {conf['spool_size']} spool files written before each run in `spool.put`'s format.",
            f"- list: `seestack-hook list --root R --all` over {conf['list_units']} services and timers, each monitored"
            " (drop-ins written by the product's `units.enable`) and each with a last heartbeat on record.",
            "- baseline as installed: the same urllib.request script in a file whose first line is"
            " `#!/usr/bin/python3 -IS`, the hook's own shebang; the budget for `finish` compares the two.",
            "- booted Debian 12 (`booted.py`): four copies of a oneshot unit (`ExecStart=/bin/true`) in a"
            " booted container, each `systemctl start`ed 25 times, interleaved: no hooks; the healthchecks-style"
            " `ExecStartPre=-/usr/bin/curl ...` and `ExecStopPost=-/usr/bin/curl ...` lines; the card's floor,"
            " `ExecStartPre=/usr/bin/python3 -IS -c pass` and an `ExecStopPost=` script (`#!/usr/bin/python3"
            " -IS`) doing only `urllib.request.urlopen` of the same POST (our endpoint and headers, a body of"
            " our heartbeat's shape); and the drop-in `seestack-hook enable` writes (the .deb installed with"
            " `--no-install-recommends`). The added time is each case's median minus the no-hooks median."
            " Then each part alone through nsenter (after the units, so the last invocation is there to read),"
            " `$INVOCATION_ID` the unit's last one as the journal gives it (`systemctl show -p InvocationID` is"
            " empty once a oneshot unit is inactive, and a hook given an empty id asks neither systemctl nor the"
            " journal); before each `finish` part a `start` (untimed) leaves its record, as in a run.",
            "- library: `_library.py`, one warm process, interleaving `start_job` + `finish_job`, a bare"
            " raw-socket round trip and `config.load`; then the durable writes in blocks of 10 taking turns.",
            "- https rows: the same receiver behind TLS (its socket wrapped in `ssl`) for `localhost`, its"
            " certificate signed by a private CA made with openssl; the hook reads it from `ca_file`, the"
            " urllib script from `ssl.create_default_context(cafile=...)`. Every other row is plain http.", ""]

    budgets = judge(data, m)
    out += ["## Budgets", "", "| budget | measured | limit | holds |", "|---|---:|---:|:---:|"]
    out += [f"| {b[0]} | {b[1]} | {b[2]} | {'yes' if b[3] else '**NO**'} |" for b in budgets]
    out.append("")
    out += ["## Floors", ""] + floors(data, m, budgets) + [""]
    out += booted(data, m)
    out += steps(m)
    out += ["## Imports on the hot paths", "",
            f"`python3 -X importtime` ({conf['import_runs']} runs, median cumulative time; importtime adds its own"
            " overhead, so compare the wall times above): modules the hook imports beyond what"
            " `python3 -I -c pass` already imports, heaviest first (those above 200 µs), each with the"
            " module that imported it first.", ""]
    for hook in ("start", "finish"):
        if hook not in data["imports"]:
            continue
        out.append(f"- `{hook}`: {data['import_totals'][hook] / 1000:.1f} ms of imports in all")
        for name, cum, parent in data["imports"][hook]:
            if cum >= 200:
                if parent:
                    via = f" (imported by {parent})"
                elif not name.startswith("seestack_systemd"):
                    via = " (imported inside a function at run time" + (
                        ", by getaddrinfo(): see below)" if name == "encodings.idna" else ")")
                else:
                    via = ""
                out.append(f"  - {name}: {cum / 1000:.2f} ms{via}")
    if any(n == "encodings.idna" for hook in data["imports"].values() for n, _, _ in hook):
        out.append("")
        out.append("`encodings.idna` (with `stringprep`, `unicodedata` and `re`) is what `socket.getaddrinfo()`"
                   " loads to encode a host given as `str`; a `bytes` host (ASCII names, every address literal)"
                   " does not load it.")
    out.append("")
    if data["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    out.append(f"`make bench` took {data['elapsed']:.0f} s.")
    return "\n".join(out) + "\n"


def judge(data: dict, m: dict) -> list[tuple[str, str, str, bool]]:
    """The budgets table's rows: (budget, measured, limit, holds)."""
    conf = data["settings"]
    b = []
    floor = m["floor-S"]
    if all(f"booted-{n}" in m for n in BOOTED_CASES):
        ours, card = m["booted-ours"] - m["booted-plain"], m["booted-floor"] - m["booted-plain"]
        r = ours / card if card > 0 else float("inf")
        b.append((f"booted Debian 12, added time per run: our drop-in (+{ours * 1000:.1f} ms) / the card's floor"
                  f" (+{card * 1000:.1f} ms)", f"{r:.2f}x", f"≤ {BUDGET_FLOOR_RATIO}x", r <= BUDGET_FLOOR_RATIO))
        curl = m["booted-curl"] - m["booted-plain"]
        r = ours / curl if curl > 0 else float("inf")
        b.append((f"booted Debian 12, added time per run: our drop-in / curl lines (+{curl * 1000:.1f} ms)"
                  " (a C program's floor; recorded, no limit)", f"{r:.1f}x", "—", True))
    rss = data["rss"].get("booted-finish-unit")
    if rss:
        peak = max(rss) / 1024
        b.append(("peak RSS of `finish --unit` (booted Debian 12, .deb, real systemctl and journalctl)",
                  f"{peak:.1f} MiB", f"≤ {BUDGET_RSS_MIB:g} MiB", peak <= BUDGET_RSS_MIB))
    rss = data["rss"].get("finish:checkout-unit")
    if rss:
        peak = max(rss) / 1024
        b.append(("peak RSS of `finish --unit` (checkout, stub systemctl/journalctl)", f"{peak:.1f} MiB",
                  f"≤ {BUDGET_RSS_MIB:g} MiB", peak <= BUDGET_RSS_MIB))
    if "urllib-installed" in m and "finish:deb" in m:
        r = m["finish:deb"] / m["urllib-installed"]
        b.append(("`finish` (no `--unit`) / minimal `urllib.request` script, both as installed", f"{r:.2f}x",
                  f"≤ {BUDGET_FINISH_RATIO}x", r <= BUDGET_FINISH_RATIO))
    for variant in data["hooks"]:
        tag = "checkout" if variant == "checkout" else ".deb"
        if "urllib-installed" in m and variant != "deb":
            r = m[f"finish:{variant}"] / m["urllib-installed"]
            b.append((f"`finish` (no `--unit`) / minimal `urllib.request` script as installed ({tag};"
                      " recorded, no limit)", f"{r:.2f}x", "—", True))
        r = m[f"start:{variant}"] / floor
        b.append((f"part: `start` / `python3 -I -S -c pass` ({tag})", f"{r:.2f}x", f"≤ {BUDGET_START_RATIO}x",
                  r <= BUDGET_START_RATIO))
        if f"finish:{variant}-https" in m and "urllib-https" in m:
            r = m[f"finish:{variant}-https"] / m["urllib-https"]
            b.append((f"`finish` / `python3 -I -c` urllib.request script, https ({tag}; recorded, no limit)",
                      f"{r:.2f}x", "—", True))
        r = m[f"finish:{variant}"] / m["curl"]
        b.append((f"`finish` / `curl` ({tag}; recorded, no limit)", f"{r:.2f}x", "—", True))
        for hook in ("start", "finish"):
            rss = data["rss"].get(f"{hook}:{variant}")
            if rss:
                peak = max(rss) / 1024
                b.append((f"peak RSS of `{hook}` ({tag})", f"{peak:.1f} MiB", f"≤ {BUDGET_RSS_MIB:g} MiB",
                          peak <= BUDGET_RSS_MIB))
    for name in ("blackholed", "refused"):
        key = f"finish-{name}"
        if key in m:
            worst = max(data["samples"][key])
            b.append((f"`finish`, receiver {name}, {conf['deadline']:g} s deadline (median; worst {worst:.2f} s)",
                      f"{m[key]:.2f} s", f"≤ {conf['deadline'] + BUDGET_DEADLINE_SLACK:.1f} s",
                      m[key] <= conf['deadline'] + BUDGET_DEADLINE_SLACK))
    if "flush" in m:
        rate = conf['spool_size'] / m["flush"]
        b.append((f"spool flush, {conf['spool_size']} heartbeats", f"{rate:.0f}/s", f"≥ {BUDGET_FLUSH_RATE:g}/s",
                  rate >= BUDGET_FLUSH_RATE))
    if "list" in m:
        b.append((f"`list`, {conf['list_units']} units", f"{m['list']:.3f} s", f"< {BUDGET_LIST_S:g} s",
                  m["list"] < BUDGET_LIST_S))
    return b


def booted(data: dict, m: dict) -> list[str]:
    """The booted Debian 12 units side by side, and finish --unit taken apart from the parts."""
    if not all(f"booted-{n}" in m for n in BOOTED_CASES):
        return []
    plain = m["booted-plain"]
    card = m["booted-floor"] - plain

    def ms(x: float) -> str:
        return f"{x * 1000:.1f} ms"

    out = ["## Booted Debian 12: per run, against the card's floor", "",
           "`systemctl start` of a oneshot unit (medians, the four units interleaved in one run); added time is"
           " the median minus the no-hooks unit's.", "",
           "| unit | median | added per run | ratio to the card's floor |", "|---|---:|---:|---:|"]
    for name, what in BOOTED_CASES.items():
        added = m[f"booted-{name}"] - plain
        ratio = "—" if name == "plain" else f"{added / card:.2f}x" if card > 0 else "—"
        out.append(f"| {what} | {ms(m[f'booted-{name}'])} | {'—' if name == 'plain' else '+' + ms(added)} | {ratio} |")
    out.append("")
    over = m["booted-ours"] - plain - BUDGET_FLOOR_RATIO * card
    if card > 0:
        out += [f"{BUDGET_FLOOR_RATIO}x the floor is +{ms(BUDGET_FLOOR_RATIO * card)} per run: the drop-in is "
                + (f"{ms(over)} over it." if over > 0 else f"{ms(-over)} under it."), ""]
    need = ("true", "python", "finish-imports", "systemctl-show", "journalctl", "finish", "start")
    if all(f"part:{n}" in m for n in need):
        p = {n: m[f"part:{n}"] - m["part:true"] for n in BOOTED_PARTS if f"part:{n}" in m}
        interp = p["python"]
        imports = p["finish-imports"] - p["python"]
        show, journal = p["systemctl-show"], p["journalctl"]
        rest = p["finish"] - p["finish-imports"] - show - journal
        rows = [("the interpreter (`python3 -IS -c pass`)", interp),
                ("its imports (every module it imports, in one `python3 -IS -c`), beyond the interpreter", imports),
                ("`systemctl show` of the unit and its timer (one call)", show),
                ("`journalctl` of the invocation (its last line: `success_message = last-line`)", journal),
                ("the rest: settings, start record, stream wait, POST, spool write-ahead, records", rest)]
        out += ["`finish --unit`, taken apart: each part alone minus the nsenter floor (`/bin/true`,"
                f" {ms(m['part:true'])}); the rest is `finish --unit` minus the others, so it carries their"
                " noise. It can be negative: `finish` asks systemctl and journalctl before its imports and reads"
                " them after (systemd/ask.py), and skips the garbage collector and the interpreter's teardown"
                " (cli/main.py `entry`), which the imports row, a plain `python3 -IS -c`, still pays.", "",
                "| part of `finish --unit` | ms | share |", "|---|---:|---:|"]
        out += [f"| {label} | {x * 1000:.1f} | {x / p['finish']:.0%} |" for label, x in rows]
        out.append(f"| `finish --unit` in all | {p['finish'] * 1000:.1f} | 100% |")
        out.append("")
        words = [f"`start --unit` alone is {ms(p['start'])} beyond nsenter, {ms(p['start'] - interp)} more than"
                 f" the bare interpreter."]
        if "finish-none" in p:
            words.append(f"With `success_message = none` (no journal read on success) `finish --unit` is"
                         f" {ms(p['finish-none'])}, {ms(p['finish'] - p['finish-none'])} less.")
        if "finish-nounit" in p:
            words.append(f"Without `--unit` (no systemctl, no journal) it is {ms(p['finish-nounit'])}:"
                         f" `--unit` costs {ms(p['finish'] - p['finish-nounit'])}.")
        if "systemctl-show-unit" in p:
            words.append(f"Asking `systemctl show` for the unit alone takes {ms(p['systemctl-show-unit'])}: the"
                         f" timer in the same call adds {ms(show - p['systemctl-show-unit'])}.")
        if "floor-post" in p:
            words.append(f"The card floor's script alone is {ms(p['floor-post'])}.")
        out += [" ".join(words), ""]
    return out


def floors(data: dict, m: dict, budgets: list) -> list[str]:
    """What no implementation can beat on this machine, from this run's own baselines."""
    conf = data["settings"]
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
    rss = data["rss"]
    if rss.get("floor-I"):
        lines.append(f"- peak RSS: `python3 -I -c pass` alone peaks at {max(rss['floor-I']) / 1024:.1f} MiB"
                     f" (`-I -S`: {max(rss['floor-S']) / 1024:.1f} MiB).")
    if "finish-blackholed" in m:
        lines.append(f"- blackholed/refused: the deadline ({conf['deadline']:g} s) plus the interpreter start-up"
                     f" ({floor_i * 1000:.0f} ms) and the spool write.")
    failed = [b for b in budgets if not b[3]]
    if failed:
        lines.append("")
        lines.append("Budgets not met in this run: " + "; ".join(f"{b[0]} = {b[1]} (limit {b[2]})" for b in failed)
                     + ". The floors above say how much of each is the interpreter's and how much is ours;"
                       " see '`finish` against the script, step by step' and 'Imports on the hot paths' for"
                       " where our share goes.")
    return lines


def steps(m: dict) -> list[str]:
    """``finish`` against the urllib script, one import at a time (the quick group's step-* cases)."""
    if not all(k in m for k in ("step-urllib", "step-stdlib", "step-ours", "finish:checkout", "urllib")):
        return []
    floor, site = m["floor-S"], m["floor-I"] - m["floor-S"]
    urllib = m["step-urllib"] - floor
    stdlib, ours = m["step-stdlib"] - m["step-urllib"], m["step-ours"] - m["step-stdlib"]
    work, post = m["finish:checkout"] - m["step-ours"], m["urllib"] - m["floor-I"] - urllib

    def ms(x: float) -> str:
        return f"{x * 1000:+.1f} ms"

    rows = [("`python3 -I -S -c pass`", floor, "—"),
            ("`python3 -I -c pass`: the script's interpreter, with `site`", m["floor-I"], ms(site)),
            ("`python3 -I -S -c 'import urllib.request'`", m["step-urllib"], ms(urllib)),
            ("… and `json`, `configparser`", m["step-stdlib"], ms(stdlib)),
            ("… and the package's modules `finish` imports (checkout)", m["step-ours"], ms(ours)),
            ("`seestack-hook finish SLUG` (checkout): its work, from the config file to the last record",
             m["finish:checkout"], ms(work)),
            ("the urllib script: `site`, `import urllib.request`, its POST", m["urllib"], ms(post) + " (POST)")]
    net = stdlib + ours + work - site - post
    return ["## `finish` against the script, step by step", "",
            "Medians of the quick group (the same runs as above), each import step a `python3 -I -S -c` of its"
            " own; \"adds\" is the step's median minus the one it builds on.", "",
            "| step | median | adds |", "|---|---:|---:|"] + \
        [f"| {label} | {value * 1000:.1f} ms | {adds} |" for label, value, adds in rows] + [
            "", f"Both pay `import urllib.request` ({ms(urllib)}). The script adds `site` ({ms(site)}) and its POST"
            f" ({ms(post)}); `finish` skips `site` but adds `json` and `configparser` ({ms(stdlib)}), its own"
            f" modules ({ms(ours)}) and its work ({ms(work)}): {ms(net)} against the script,"
            f" {m['finish:checkout'] / m['urllib']:.2f}x.", ""]


def main() -> int:
    """Render RESULTS.md again from RESULTS.json (or the JSON file named in argv[1])."""
    path = sys.argv[1] if len(sys.argv) > 1 else MEASUREMENTS
    with open(path) as f:
        text = render(json.load(f))
    with open(RESULTS, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
