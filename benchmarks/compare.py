"""trio_live side by side with genai-processors 2.0.3: one command, every scenario.

Usage (from the repository root)::

    .venv/bin/python benchmarks/compare.py            # full run, ~5-10 minutes
    .venv/bin/python benchmarks/compare.py --quick    # smoke run, ~1 minute
    .venv/bin/python benchmarks/compare.py --quick --write  # ... and rewrite the tracked results

On first use it makes ``benchmarks/.venv-gp`` with ``genai-processors==2.0.3``,
matplotlib and py-spy (about 40 s). Then, round after round, it runs each scenario
for trio_live and for genai-processors in turn (A B A B), each in a fresh
process of its own venv's Python, with the same seed. It prints a line per
scenario and round, then the table, and writes:

* ``benchmarks/results.json``: one record per scenario and library (median,
  p95, p99, n, the ratio trio_live / genai-processors) and the targets;
* ``benchmarks/results.md``: the README table, rendered from that file;
* ``benchmarks/results.png``: the plot, rendered from that file.

A ``--quick`` run writes its results to a temporary directory unless
``--write`` is given: a smoke run never rewrites tracked files by itself.

It also refreshes the table between the ``<!-- benchmarks:start -->`` and
``<!-- benchmarks:end -->`` markers of ``docs/benchmarks.md`` and ``README.md``
when they have them.
"""

# The table speaks in micro, times, at-most signs and dashes on purpose.
# ruff: noqa: RUF001
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GP_VENV = HERE / ".venv-gp"
GP_PYTHON = GP_VENV / "bin" / "python"
# py-spy is there to profile either library: benchmarks/.venv-gp/bin/py-spy record -- ...
GP_REQUIREMENTS = ("genai-processors==2.0.3", "matplotlib", "py-spy")
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"
RESULTS_PNG = HERE / "results.png"
UPDATE_DOCS = True
MARKER_START = "<!-- benchmarks:start -->"
MARKER_END = "<!-- benchmarks:end -->"
COMMAND = ".venv/bin/python benchmarks/compare.py"

TRIO = "trio_live"
GENAI = "genai_processors"
FLOOR = "trio floor"
LIBRARIES = (TRIO, GENAI)


def say(message: str) -> None:
    print(message, flush=True)


# --- the comparison venv -------------------------------------------------------


def _gp_ready() -> bool:
    if not GP_PYTHON.exists() or not (GP_VENV / "bin" / "py-spy").exists():
        return False
    probe = "import importlib.metadata as m, matplotlib; print(m.version('genai-processors'))"
    result = subprocess.run([GP_PYTHON, "-c", probe], capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == "2.0.3"


def ensure_gp_venv() -> None:
    """Make ``benchmarks/.venv-gp`` with genai-processors 2.0.3 unless it is there."""
    if _gp_ready():
        say(f"==> {GP_VENV.relative_to(ROOT)}: genai-processors 2.0.3 is installed")
        return
    base = getattr(sys, "_base_executable", sys.executable)
    if not GP_PYTHON.exists():
        say(f"==> creating {GP_VENV.relative_to(ROOT)} with {platform.python_version()}")
        subprocess.run([base, "-m", "venv", GP_VENV], check=True)
    say(f"==> installing {' '.join(GP_REQUIREMENTS)} (takes about 40 s)")
    started = time.monotonic()
    command = [GP_PYTHON, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    with open(GP_VENV / "install.log", "w") as log:
        process = subprocess.Popen([*command, *GP_REQUIREMENTS], stdout=log, stderr=log)
        while True:
            try:
                process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                say(f"    ... still installing ({time.monotonic() - started:.0f} s)")
    if process.returncode != 0 or not _gp_ready():
        sys.exit(f"installing genai-processors failed; see {GP_VENV / 'install.log'}")
    say(f"    installed in {time.monotonic() - started:.0f} s")


def trio_python() -> Path:
    """The project's venv Python (trio_live installed), else this interpreter."""
    venv = ROOT / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


# --- running the workers ---------------------------------------------------------


@attrs.frozen
class Job:
    """One scenario worker run, for each library, each round up to ``rounds``."""

    scenario: str
    rounds: int
    params: tuple[str, ...] = ()
    libraries: tuple[str, ...] = LIBRARIES

    @property
    def title(self) -> str:
        return " ".join((self.scenario, *self.params))


def jobs(quick: bool, rounds: int) -> list[Job]:
    many = 1 if quick else rounds
    few = 1 if quick else 2
    return [
        Job("overhead", many),
        Job("barge", many),
        Job("cancel_floor", many, libraries=(TRIO,)),
        Job("throughput", many),
        Job("history", many),
        Job("memory", 1),
        Job("concurrent", few, params=("sessions=100",)),
        Job("concurrent", few, params=("sessions=1000",)),
        Job("concurrent", 1, params=("sessions=1000", "gc=off")),
        Job("concurrent", 1, params=("sessions=1000", "gc=freeze")),
        Job("concurrent", 1, params=("sessions=1000", "gc=tuned"), libraries=(TRIO,)),
    ]


#: A directory to import trio_live from instead of the installed one (``--trio-live-path``).
TRIO_LIVE_PATH: Path | None = None


def run_worker(library: str, job: Job, seed: int, quick: bool) -> dict[str, list[float]]:
    if library == TRIO:
        command = [str(trio_python()), str(HERE / "scenarios_trio_live.py")]
    else:
        command = [str(GP_PYTHON), str(HERE / "scenarios_genai.py")]
    command += [job.scenario, "--seed", str(seed)]
    command += [f"--param={param}" for param in job.params]
    if quick:
        command.append("--quick")
    path = [str(HERE)]
    if library == TRIO and TRIO_LIVE_PATH is not None:
        path.insert(0, str(TRIO_LIVE_PATH))
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(path)}
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"{library} {job.title} failed (exit {result.returncode})")
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            samples: dict[str, list[float]] = json.loads(line[len("RESULT ") :])["samples"]
            return samples
    raise RuntimeError(f"{library} {job.title} printed no result")


def _brief(samples: dict[str, list[float]]) -> str:
    shown = []
    for key, values in samples.items():
        spec = ROW_BY_KEY.get(key)
        if spec is None or not values:
            continue
        shown.append(f"{key} {spec.format(spec.scale * statistics.median(values))}")
    return ", ".join(shown[:4]) + (" ..." if len(shown) > 4 else "")


Samples = dict[str, dict[str, list[float]]]


def measure(quick: bool, rounds: int, only: set[str]) -> tuple[Samples, Samples, list[str]]:
    """Run every job, A B A B.

    Returns the samples pooled over rounds and each round's median, both as
    ``[library][metric]``, and the failures.
    """
    plan = [job for job in jobs(quick, rounds) if not only or job.scenario in only]
    pooled: Samples = {TRIO: {}, GENAI: {}}
    per_round: Samples = {TRIO: {}, GENAI: {}}
    failures: list[str] = []
    total_rounds = max(job.rounds for job in plan)
    for round_index in range(total_rounds):
        for job in plan:
            if round_index >= job.rounds:
                continue
            for library in job.libraries:
                label = f"[round {round_index + 1}/{job.rounds}] {job.title:<24} {library:<17}"
                say(f"{label} ...")
                started = time.monotonic()
                try:
                    samples = run_worker(library, job, seed=round_index, quick=quick)
                except RuntimeError as error:
                    failures.append(str(error))
                    say(f"{label} FAILED: {error}")
                    continue
                for key, values in samples.items():
                    pooled[library].setdefault(key, []).extend(values)
                    if values:
                        per_round[library].setdefault(key, []).append(statistics.median(values))
                say(f"{label} {time.monotonic() - started:5.1f} s  {_brief(samples)}")
    return pooled, per_round, failures


# --- what the table shows ------------------------------------------------------------


@attrs.frozen
class Row:
    """A table row: a metric of both libraries (or of trio's floor)."""

    key: str
    label: str
    unit: str
    better: str  # "lower", "higher" or "neither" (a fact, not a score)
    scale: float = 1.0
    digits: int = 0
    library: str | None = None  # set for rows of one library only (floors)
    ratio: bool = True  # False where a ratio means nothing (growth near zero)

    def format(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if self.unit == "parts/s":
            return f"{value / 1000:,.0f}k/s"
        return f"{value:,.{self.digits}f} {self.unit}"


US = 1e6
ROWS = (
    Row("overhead", "Per-turn overhead, 1,000 turns (history grows with them)", "µs", "lower", US),
    Row("history_100", "Per-turn overhead at 100 history parts", "µs", "lower", US),
    Row("history_1000", "Per-turn overhead at 1,000 history parts", "µs", "lower", US),
    Row("history_10000", "Per-turn overhead at 10,000 history parts", "µs", "lower", US),
    Row("barge_cancel", "Barge-in: start of speech → model cancelled", "µs", "lower", US),
    Row(
        "barge_last",
        "Barge-in: start of speech → last part of that turn received",
        "µs",
        "lower",
        US,
    ),
    Row(
        "floor_cancel",
        "Floor: part over a channel → task cancels a scope → caught",
        "µs",
        "lower",
        US,
        library=FLOOR,
    ),
    Row(
        "floor_cancel_reply",
        "Floor: as above, then a reply over a channel",
        "µs",
        "lower",
        US,
        library=FLOOR,
    ),
    Row(
        "tp_build_ready", "Throughput building the parts, source always ready", "parts/s", "higher"
    ),
    Row(
        "tp_build_yield",
        "Throughput building the parts, source yields per part",
        "parts/s",
        "higher",
    ),
    Row(
        "tp_prebuilt_ready",
        "Throughput of prebuilt parts, source always ready",
        "parts/s",
        "higher",
    ),
    Row(
        "tp_prebuilt_yield",
        "Throughput of prebuilt parts, source yields per part",
        "parts/s",
        "higher",
    ),
    Row(
        "floor_channel",
        "Floor: one trio memory channel (buffer 64)",
        "parts/s",
        "higher",
        library=FLOOR,
    ),
    Row("part_bytes", "Memory of one 640-byte audio part (payload included)", "B", "lower"),
    Row("part_build_us", "Time to build one audio part", "µs", "lower", digits=1),
    Row(
        "memory_peak_rss", "One-hour session: peak RSS of the process", "MB", "lower", 1 / 2**20, 1
    ),
    Row(
        "memory_growth",
        "One-hour session: RSS growth from minute 20 to the end",
        "MB",
        "lower",
        1 / 2**20,
        1,
        ratio=False,
    ),
    Row("memory_retained", "One-hour session: parts kept at the end", "parts", "neither"),
    Row(
        "concurrent_100", "100 sessions, a turn/s each: end of turn → first part", "µs", "lower", US
    ),
    Row("concurrent_100_p99", "100 sessions: p99 of the above", "µs", "lower", US),
    Row(
        "concurrent_1000",
        "1,000 sessions, a turn/s each: end of turn → first part",
        "µs",
        "lower",
        US,
    ),
    Row("concurrent_1000_p99", "1,000 sessions: p99 of the above", "µs", "lower", US),
    Row("concurrent_1000_gc_max", "1,000 sessions: longest GC pause", "µs", "lower", US),
    Row("concurrent_1000_gc_per_s", "1,000 sessions: time in GC per second", "ms", "lower", 1e3, 1),
    Row(
        "concurrent_1000_freeze_p99",
        "1,000 sessions after gc.freeze() at start-up: p99",
        "µs",
        "lower",
        US,
    ),
    Row(
        "concurrent_1000_tuned_p99",
        "1,000 sessions after trio_live.tune_gc() at start-up: p99",
        "µs",
        "lower",
        US,
        library=FLOOR,
    ),
    Row(
        "concurrent_1000_nogc_p99",
        "1,000 sessions with the GC off (gc.disable()): p99",
        "µs",
        "lower",
        US,
    ),
)
ROW_BY_KEY = {row.key: row for row in ROWS}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _derive(samples: dict[str, list[float]]) -> None:
    # Metrics computed from others: RSS growth and the p99 rows.
    # Checkpoints every 10 virtual minutes: the window is full at the first;
    # growth is counted from the second (one window later) to the end.
    rss = samples.get("memory_rss_checkpoints", [])
    if len(rss) > 2:
        samples["memory_growth"] = [rss[-1] - rss[1]]
    for name in (
        "concurrent_100",
        "concurrent_1000",
        "concurrent_1000_nogc",
        "concurrent_1000_freeze",
        "concurrent_1000_tuned",
    ):
        latencies = samples.get(name)
        if latencies:
            samples[f"{name}_p99"] = [percentile(latencies, 0.99)]
        pauses = samples.get(f"{name}_gc")
        if pauses:
            samples[f"{name}_gc_max"] = [max(pauses)]


def _stats(row: Row, values: list[float]) -> dict[str, Any]:
    values = [v * row.scale for v in values if not math.isnan(v)]
    if not values:
        return {"median": None, "p95": None, "p99": None, "n": 0}
    # p95/p99 are on the bad side: high times, low rates.
    worse = (lambda q: 1 - q) if row.better == "higher" else (lambda q: q)
    return {
        "median": statistics.median(values),
        "p95": percentile(values, worse(0.95)),
        "p99": percentile(values, worse(0.99)),
        "n": len(values),
    }


def build_records(pooled: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    trio, genai = pooled[TRIO], pooled[GENAI]
    _derive(trio)
    _derive(genai)
    records = []
    for row in ROWS:
        libraries = [(FLOOR, trio)] if row.library == FLOOR else [(TRIO, trio), (GENAI, genai)]
        stats = {name: _stats(row, source.get(row.key, [])) for name, source in libraries}
        ratio = None
        if row.library is None and row.ratio:
            a, b = stats[TRIO]["median"], stats[GENAI]["median"]
            if a is not None and b:
                ratio = a / b
        for name, _ in libraries:
            if stats[name]["n"] == 0:
                continue
            records.append(
                {
                    "scenario": row.key,
                    "label": row.label,
                    "library": name,
                    "unit": row.unit,
                    "better": row.better,
                    **stats[name],
                    "ratio": ratio,
                }
            )
    return records


# --- targets (issue 4) -------------------------------------------------------------------


def _value(
    records: list[dict[str, Any]], scenario: str, library: str, field: str = "median"
) -> Any:
    for record in records:
        if record["scenario"] == scenario and record["library"] == library:
            return record[field]
    return None


Check = Callable[[list[dict[str, Any]]], tuple[bool | None, str]]


def _ratio_check(scenario: str, op: str, bound: float) -> Check:
    def check(records: list[dict[str, Any]]) -> tuple[bool | None, str]:
        ratio = _value(records, scenario, TRIO, "ratio")
        if ratio is None:
            return None, "not measured"
        met = ratio <= bound if op == "≤" else ratio >= bound
        return met, f"{ratio:.3f}×"

    return check


def _floor_check(scenario: str, floor: str, factor: float, higher: bool = False) -> Check:
    def check(records: list[dict[str, Any]]) -> tuple[bool | None, str]:
        value = _value(records, scenario, TRIO)
        base = _value(records, floor, FLOOR)
        if value is None or base is None:
            return None, "not measured"
        if higher:  # rates: at least 1/factor of the floor's rate
            share = value / base
            return share >= 1 / factor, f"{share:.2f}× the floor's rate"
        times = value / base
        return times <= factor, f"{times:.2f}× the floor"

    return check


def _absolute_check(scenario: str, bound: float, unit: str) -> Check:
    def check(records: list[dict[str, Any]]) -> tuple[bool | None, str]:
        value = _value(records, scenario, TRIO)
        if value is None:
            return None, "not measured"
        return value <= bound, f"{value:,.0f} {unit}"

    return check


def _floor_value_check(scenario: str, bound: float, unit: str) -> Check:
    # A trio_live-only row (kept under the floor's name).
    def check(records: list[dict[str, Any]]) -> tuple[bool | None, str]:
        value = _value(records, scenario, FLOOR)
        if value is None:
            return None, "not measured"
        return value <= bound, f"{value:,.0f} {unit}"

    return check


def _flat_check(records: list[dict[str, Any]]) -> tuple[bool | None, str]:
    small = _value(records, "history_100", TRIO)
    large = _value(records, "history_10000", TRIO)
    if small is None or large is None:
        return None, "not measured"
    return large <= 1.3 * small, f"{large / small:.2f}× from 100 to 10,000 parts"


def _bounded_check(records: list[dict[str, Any]]) -> tuple[bool | None, str]:
    growth = _value(records, "memory_growth", TRIO)
    peak = _value(records, "memory_peak_rss", TRIO)
    if growth is None or peak is None:
        return None, "not measured (needs > 20 virtual minutes)"
    return growth <= 0.05 * peak, f"RSS +{growth:.1f} MB after the window filled"


TARGETS: tuple[tuple[str, str, Check], ...] = (
    (
        "history_100",
        "per-turn overhead ≤ 0.5× at 100 history parts",
        _ratio_check("history_100", "≤", 0.5),
    ),
    (
        "history_10000",
        "per-turn overhead ≤ 0.1× at 10,000 history parts",
        _ratio_check("history_10000", "≤", 0.1),
    ),
    ("history_10000", "per-turn overhead flat: 10,000 parts ≤ 1.3× 100 parts", _flat_check),
    ("barge_cancel", "barge-in → cancelled ≤ 1×", _ratio_check("barge_cancel", "≤", 1.0)),
    ("barge_last", "barge-in → last part ≤ 1×", _ratio_check("barge_last", "≤", 1.0)),
    (
        "barge_cancel",
        "barge-in → cancelled within 2× of trio's floor",
        _floor_check("barge_cancel", "floor_cancel", 2.0),
    ),
    (
        "barge_last",
        "barge-in → last part within 2× of trio's floor",
        _floor_check("barge_last", "floor_cancel_reply", 2.0),
    ),
    (
        "tp_build_ready",
        "throughput ≥ 3× counting part construction (ready source)",
        _ratio_check("tp_build_ready", "≥", 3.0),
    ),
    (
        "tp_build_yield",
        "throughput ≥ 3× counting part construction (yielding source)",
        _ratio_check("tp_build_yield", "≥", 3.0),
    ),
    (
        "tp_prebuilt_yield",
        "throughput ≥ 1× without construction, yielding source",
        _ratio_check("tp_prebuilt_yield", "≥", 1.0),
    ),
    (
        "tp_prebuilt_ready",
        "throughput within 3× of the channel floor",
        _floor_check("tp_prebuilt_ready", "floor_channel", 3.0, higher=True),
    ),
    (
        "part_bytes",
        "an audio part ≤ 1.5× its 640-byte payload",
        _absolute_check("part_bytes", 960, "B"),
    ),
    ("memory_growth", "a one-hour session is bounded", _bounded_check),
    (
        "concurrent_1000_p99",
        "1,000 sessions: p99 ≤ 5 ms (default GC settings)",
        _absolute_check("concurrent_1000_p99", 5000, "µs"),
    ),
    (
        "concurrent_1000_tuned_p99",
        "1,000 sessions: p99 ≤ 5 ms after trio_live.tune_gc()",
        _floor_value_check("concurrent_1000_tuned_p99", 5000, "µs"),
    ),
)


def evaluate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for scenario, text, check in TARGETS:
        met, value = check(records)
        results.append({"scenario": scenario, "target": text, "value": value, "met": met})
    return results


# --- rendering -------------------------------------------------------------------------


def _ratio(records: list[dict[str, Any]], row: Row) -> str:
    ratio = _value(records, row.key, TRIO, "ratio")
    return "" if ratio is None else f"{ratio:.2f}×"


def _mark(met: bool | None) -> str:
    return {True: "✅ met", False: "❌ missed", None: "– not measured"}[met]


def _patched_note(meta: dict[str, Any]) -> str:
    path = meta.get("trio_live_path", "installed")
    return "" if path == "installed" else f" (trio_live imported from {path})"


def render_markdown(data: dict[str, Any]) -> str:
    records = data["records"]
    meta = data["meta"]
    lines = [
        f"Measured {meta['date']} on {meta['cpus']} CPU cores ({meta['machine']}), "
        f"Python {meta['python']}, trio {meta['trio']}, "
        f"genai-processors {meta['genai_processors']}; "
        f"load average {meta['load_before'][0]:.1f} before, {meta['load_after'][0]:.1f} after"
        f"{' (quick run)' if meta['quick'] else ''}"
        f"{_patched_note(meta)}. "
        f"Medians with p95 in brackets (for rates, the slow side); "
        f"ratio = trio_live / genai-processors. Regenerate with `{COMMAND}`.",
        "",
        "| Scenario | trio_live | genai-processors | Ratio |",
        "|---|---:|---:|---:|",
    ]
    for row in ROWS:
        if row.library == FLOOR:
            value = _value(records, row.key, FLOOR)
            if value is None:
                continue
            p95 = _value(records, row.key, FLOOR, "p95")
            lines.append(f"| {row.label} | {row.format(value)} ({row.format(p95)}) | | |")
            continue
        cells = []
        for library in LIBRARIES:
            median = _value(records, row.key, library)
            p95 = _value(records, row.key, library, "p95")
            n = _value(records, row.key, library, "n")
            if median is None:
                cells.append("–")
            elif n and n > 1 and not row.key.endswith("_p99"):
                cells.append(f"{row.format(median)} ({row.format(p95)})")
            else:
                cells.append(row.format(median))
        if all(cell == "–" for cell in cells):
            continue
        lines.append(f"| {row.label} | {cells[0]} | {cells[1]} | {_ratio(records, row)} |")
    lines += ["", "| Target | Measured | Met? |", "|---|---:|:-:|"]
    for target in data["targets"]:
        lines.append(f"| {target['target']} | {target['value']} | {_mark(target['met'])} |")
    return "\n".join(lines) + "\n"


def update_markers(path: Path, table: str) -> bool:
    if not path.exists():
        return False
    text = path.read_text()
    start, end = text.find(MARKER_START), text.find(MARKER_END)
    if start < 0 or end < start:
        return False
    block = f"{MARKER_START}\n{table}{MARKER_END}"
    path.write_text(text[:start] + block + text[end + len(MARKER_END) :])
    return True


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def render(data: dict[str, Any]) -> None:
    table = render_markdown(data)
    RESULTS_MD.write_text(table)
    say(f"==> wrote {_shown(RESULTS_MD)}")
    docs = (ROOT / "docs" / "benchmarks.md", ROOT / "README.md") if UPDATE_DOCS else ()
    for path in docs:
        if update_markers(path, table):
            say(f"==> updated the table in {path.relative_to(ROOT)}")
    if GP_PYTHON.exists():
        plot = subprocess.run([GP_PYTHON, HERE / "plot.py", RESULTS_JSON, RESULTS_PNG])
        if plot.returncode == 0:
            say(f"==> wrote {_shown(RESULTS_PNG)}")


def print_table(data: dict[str, Any]) -> None:
    say("")
    say(f"{'scenario':<62} {'trio_live':>16} {'genai':>16} {'ratio':>7}")
    for row in ROWS:
        libraries = (FLOOR,) if row.library == FLOOR else LIBRARIES
        values = [row.format(_value(data["records"], row.key, library)) for library in libraries]
        if row.library == FLOOR:
            values.append("")
        ratio = _ratio(data["records"], row)
        say(f"{row.label[:62]:<62} {values[0]:>16} {values[1]:>16} {ratio:>7}")
    say("")
    for target in data["targets"]:
        say(f"  {_mark(target['met'])} {target['target']}: {target['value']}")


def _versions() -> dict[str, str]:
    probe = "import importlib.metadata as m; print(m.version('{}'))"
    versions = {}
    for key, python, dist in (
        ("trio", trio_python(), "trio"),
        ("genai_processors", GP_PYTHON, "genai-processors"),
    ):
        result = subprocess.run([python, "-c", probe.format(dist)], capture_output=True, text=True)
        versions[key] = result.stdout.strip() or "?"
    return versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run (one round, less work)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of the main scenarios (default 5)"
    )
    parser.add_argument("--only", nargs="*", default=[], help="run only these scenarios")
    parser.add_argument(
        "--trio-live-path",
        type=Path,
        help="import trio_live from this directory (a patched copy) instead of the installed one",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=HERE,
        help="where results.json/.md/.png go (default benchmarks/; elsewhere, no README update)",
    )
    parser.add_argument(
        "--render", action="store_true", help="only re-render the table and plot from results.json"
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="let a --quick run rewrite the tracked results and tables (a full run always does)",
    )
    args = parser.parse_args()
    if args.quick and not args.write and args.results_dir.resolve() == HERE:
        args.results_dir = Path(tempfile.gettempdir()) / "trio_live_compare_quick"
    global TRIO_LIVE_PATH, RESULTS_JSON, RESULTS_MD, RESULTS_PNG, UPDATE_DOCS
    TRIO_LIVE_PATH = args.trio_live_path.resolve() if args.trio_live_path else None
    results_dir = args.results_dir.resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON = results_dir / "results.json"
    RESULTS_MD = results_dir / "results.md"
    RESULTS_PNG = results_dir / "results.png"
    UPDATE_DOCS = results_dir == HERE
    if args.render:
        data = json.loads(RESULTS_JSON.read_text())
        data["targets"] = evaluate(data["records"])  # the current targets
        render(data)
        return
    ensure_gp_venv()
    started = time.monotonic()
    load_before = os.getloadavg()
    kind = "quick" if args.quick else "full"
    say(f"==> running the {kind} comparison (load average {load_before[0]:.1f})")
    pooled, per_round, failures = measure(args.quick, args.rounds, set(args.only))
    records = build_records(pooled)
    data = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "quick": args.quick,
            "rounds": 1 if args.quick else args.rounds,
            "cpus": os.cpu_count(),
            "machine": f"{platform.machine()} {platform.system()}",
            "python": platform.python_version(),
            **_versions(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "seconds": round(time.monotonic() - started, 1),
            "failures": failures,
            "trio_live_path": str(TRIO_LIVE_PATH) if TRIO_LIVE_PATH else "installed",
        },
        "records": records,
        "targets": evaluate(records),
        "round_medians": per_round,
        "history_prompt_parts": {
            library: {
                key: statistics.mean(values)
                for key, values in pooled[library].items()
                if key.endswith("_prompt_parts") and values
            }
            for library in LIBRARIES
        },
    }
    RESULTS_JSON.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    say(f"==> wrote {_shown(RESULTS_JSON)} after {data['meta']['seconds']:.0f} s")
    print_table(data)
    render(data)
    if failures:
        sys.exit(f"{len(failures)} worker(s) failed: " + "; ".join(failures))


if __name__ == "__main__":
    main()
