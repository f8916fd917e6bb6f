"""What both libraries' benchmark workers share: the workload and the plumbing.

Only the standard library is used here: this module is imported by the
trio_live worker (in the project's venv) and by the genai-processors worker
(in its own venv), so that both run exactly the same schedules, replies and
delays.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

# --- the workload (identical for both libraries) -----------------------------

#: The user's words in every turn (sent as one text part flagged end of turn).
QUESTION = "what time is it"
#: The fake model's reply: three text parts.
REPLY = ("It is", " ten past", " four.")
#: Parts each turn adds to the history: the question and the three reply parts.
PARTS_PER_TURN = 1 + len(REPLY)

#: Bytes in one 20 ms chunk of 16 kHz mono PCM16 audio.
CHUNK_BYTES = 640
CHUNK_SECONDS = 0.020
AUDIO_RATE = 16000
AUDIO_MIMETYPE = "audio/l16;rate=16000"

#: Barge-in: the model streams a part every 10 ms, long enough never to end
#: by itself; the user starts speaking a random time after its first part.
BARGE_PART_DELAY = 0.010
BARGE_REPLY_PARTS = 500
BARGE_WAIT = (0.005, 0.045)

#: History growth: the history sizes measured; a session is pre-filled so that
#: the measured turns straddle the size (each turn adds PARTS_PER_TURN parts).
HISTORY_SIZES = (100, 1_000, 10_000)

#: Memory: a long conversation in virtual time.
MEMORY_TURN_EVERY = 10.0
MEMORY_WINDOW = 600.0

#: Concurrent sessions: each takes a turn every second.
CONCURRENT_TURN_EVERY = 1.0


def settings(quick: bool) -> dict[str, Any]:
    """How much work each scenario does (``quick`` is a smoke run)."""
    if quick:
        return {
            "turns": 200,
            "barge_trials": 15,
            "throughput_parts": 20_000,
            "history_sessions": 2,
            "history_turns": 5,
            "memory_seconds": 1_860.0,
            "concurrent_seconds": 3.0,
        }
    return {
        "turns": 1_000,
        "barge_trials": 40,
        "throughput_parts": 100_000,
        "history_sessions": 3,
        "history_turns": 10,
        "memory_seconds": 3_600.0,
        "concurrent_seconds": 8.0,
    }


def payloads(count: int = 64) -> list[bytes]:
    """Distinct 20 ms PCM chunks (the microphone's data: not part of a part's cost)."""
    rng = random.Random(1234)
    return [rng.randbytes(CHUNK_BYTES) for _ in range(count)]


def history_prefill(size: int, turns: int) -> int:
    """Parts to pre-fill so that ``turns`` measured turns straddle ``size``."""
    # One unmeasured warm-up turn comes first.
    return max(0, size - PARTS_PER_TURN * (1 + turns // 2))


# --- measuring ---------------------------------------------------------------


def rss_bytes() -> int:
    """The process's resident set size now."""
    with open("/proc/self/statm") as file:
        pages = int(file.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class GcPauses:
    """Records how long each garbage collection takes (`gc.callbacks`)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)


def log(message: str) -> None:
    """A progress line on stderr (stdout carries the result)."""
    print(f"    {message}", file=sys.stderr, flush=True)


# --- the worker command line -------------------------------------------------

Scenario = Callable[[dict[str, Any], random.Random, dict[str, str]], dict[str, list[float]]]


def worker_main(library: str, scenarios: dict[str, Scenario], argv: Sequence[str]) -> None:
    """Run one scenario and print its samples as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=f"{library} benchmark worker")
    parser.add_argument("scenario", choices=sorted(scenarios))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", action="append", default=[], help="key=value")
    args = parser.parse_args(argv)
    params = dict(item.split("=", 1) for item in args.param)
    samples = scenarios[args.scenario](settings(args.quick), random.Random(args.seed), params)
    print("RESULT " + json.dumps({"library": library, "samples": samples}), flush=True)
