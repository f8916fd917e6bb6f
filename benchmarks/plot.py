"""Draw ``results.png`` from ``results.json`` (run by `compare.py` in the venv with matplotlib).

Usage: ``benchmarks/.venv-gp/bin/python benchmarks/plot.py results.json results.png``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TRIO, GENAI = "trio_live", "genai_processors"
COLORS = {TRIO: "#2a7ab0", GENAI: "#d9822b"}
HISTORY = (100, 1_000, 10_000)
# How many times better trio_live must be, per scenario (issue 4's targets).
TARGET_FACTOR = {
    "history_100": 2.0,
    "history_10000": 10.0,
    "barge_cancel": 1.0,
    "barge_last": 1.0,
    "tp_build_ready": 3.0,
    "tp_build_yield": 3.0,
    "tp_prebuilt_yield": 1.0,
}
SHORT = {
    "overhead": "per-turn overhead (1,000 turns)",
    "history_100": "per-turn overhead, 100 parts of history",
    "history_1000": "per-turn overhead, 1,000 parts",
    "history_10000": "per-turn overhead, 10,000 parts",
    "barge_cancel": "barge-in → model cancelled",
    "barge_last": "barge-in → last part received",
    "tp_build_ready": "throughput, building parts, ready source",
    "tp_build_yield": "throughput, building parts, yielding source",
    "tp_prebuilt_ready": "throughput, prebuilt, ready source",
    "tp_prebuilt_yield": "throughput, prebuilt, yielding source",
    "part_bytes": "memory per audio part",
    "part_build_us": "time to build an audio part",
    "memory_peak_rss": "one-hour session, peak RSS",
    "concurrent_100": "100 sessions, median latency",
    "concurrent_100_p99": "100 sessions, p99 latency",
    "concurrent_1000": "1,000 sessions, median latency",
    "concurrent_1000_p99": "1,000 sessions, p99 latency",
}


def _record(records: list[dict[str, Any]], scenario: str, library: str) -> dict[str, Any] | None:
    for record in records:
        if record["scenario"] == scenario and record["library"] == library:
            return record
    return None


def main(source: Path, target: Path) -> None:
    data = json.loads(source.read_text())
    records = data["records"]
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 1.6]}
    )

    # Left: per-turn overhead against the history's size.
    for library in (TRIO, GENAI):
        sizes, medians, p95s = [], [], []
        for size in HISTORY:
            record = _record(records, f"history_{size}", library)
            if record is not None:
                sizes.append(size)
                medians.append(record["median"])
                p95s.append(record["p95"])
        if sizes:
            left.plot(sizes, medians, "o-", color=COLORS[library], label=f"{library} (median)")
            left.plot(sizes, p95s, ":", color=COLORS[library], label=f"{library} (p95)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("parts of history")
    left.set_ylabel("end of turn → first reply part (µs)")
    left.set_title("Per-turn overhead as the history grows")
    left.grid(True, which="both", alpha=0.3)
    if left.get_legend_handles_labels()[0]:
        left.legend()

    # Right: how many times better trio_live is, scenario by scenario.
    labels, factors, goals = [], [], []
    for scenario, text in SHORT.items():
        trio = _record(records, scenario, TRIO)
        if (
            trio is None
            or trio["ratio"] is None
            or trio["ratio"] <= 0
            or trio["better"] == "neither"
        ):
            continue
        ratio = trio["ratio"]
        labels.append(text)
        factors.append(ratio if trio["better"] == "higher" else 1 / ratio)
        goals.append(TARGET_FACTOR.get(scenario))
    positions = range(len(labels))
    right.barh(
        list(positions),
        factors,
        color=[COLORS[TRIO] if f >= 1 else COLORS[GENAI] for f in factors],
    )
    for position, goal in zip(positions, goals, strict=True):
        if goal is not None:
            right.plot([goal, goal], [position - 0.4, position + 0.4], color="black", lw=2)
    right.axvline(1, color="grey", lw=1)
    right.set_xscale("log")
    right.set_yticks(list(positions), labels)
    right.invert_yaxis()
    right.set_xlabel("times better than genai-processors 2.0.3 (black tick: target)")
    right.set_title("trio_live vs genai-processors, same workload")
    right.grid(True, axis="x", which="both", alpha=0.3)

    meta = data["meta"]
    figure.suptitle(
        f"{meta['date']}, {meta['cpus']} cores, load {meta['load_before'][0]:.1f}"
        f"{' (quick run)' if meta['quick'] else ''}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
