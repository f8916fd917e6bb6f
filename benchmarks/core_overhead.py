"""What trio_live's engine adds to a turn and to a barge-in (issue 3's small benchmark).

Wall clock (`time.perf_counter`) around the real trio run loop, on the
built-in `ScriptedModel`:

* per-turn overhead: a zero-latency model; the time from sending a text part
  flagged end of turn to receiving the reply's first part, over many turns
  (history capped at 100 parts);
* barge-in: a model that streams a part every 5 ms; the time from sending a
  start of speech to receiving the turn's interrupted marker and its closing
  turn-complete marker, and the session's own measure (`TurnStats`).

Usage: ``.venv/bin/python benchmarks/core_overhead.py [--turns N] [--barge-ins N]``
"""

from __future__ import annotations

import argparse
import statistics
from time import perf_counter

import trio

from trio_live import (
    EndOfInput,
    LiveSession,
    end_of_speech,
    end_of_turn,
    is_interrupted,
    is_marker,
    is_turn_complete,
    start_of_speech,
)
from trio_live.testing import ScriptedModel

HISTORY = 100


def _summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{name:<48} median {statistics.median(ordered) * 1e6:7.1f} µs   "
        f"p95 {p95 * 1e6:7.1f} µs   (n={len(ordered)})"
    )


class _Output:
    """Reads the session's output; notes when the first reply part and the markers arrive."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.first_at: float | None = None
        self.interrupted_at: float | None = None
        self.first = trio.Event()
        self.done = trio.Event()
        self.done_at = 0.0

    async def read(self, session: LiveSession) -> None:
        async for part in session:
            now = perf_counter()
            if is_turn_complete(part):
                self.done_at = now
                self.done.set()
            elif is_interrupted(part):
                self.interrupted_at = now
            elif self.first_at is None and not part.substream and not is_marker(part):
                self.first_at = now
                self.first.set()


async def per_turn(turns: int) -> list[float]:
    output = _Output()
    samples = []
    # A short history (the scripted model records every prompt it reads).
    session = LiveSession(ScriptedModel(["Sure."]), max_parts=HISTORY)
    async with session, trio.open_nursery() as nursery:
        nursery.start_soon(output.read, session)
        for _ in range(turns):
            output.reset()
            part = end_of_turn("hello")
            started = perf_counter()
            await session.send(part)
            await output.done.wait()
            assert output.first_at is not None
            samples.append(output.first_at - started)
        session.close_input()
    return samples[len(samples) // 20 :]  # drop the warm-up


async def barge_in(count: int) -> dict[str, list[float]]:
    model = ScriptedModel([["word"] * 1_000], part_delay=0.005)
    output = _Output()
    to_interrupted, to_closed = [], []
    async with (
        LiveSession(model, end_of_input=EndOfInput.NEVER) as session,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(output.read, session)
        for index in range(count):
            output.reset()
            await session.send(end_of_turn("tell me a long story"))
            await output.first.wait()
            await trio.sleep(0.002 + 0.001 * (index % 7))
            started = perf_counter()
            await session.send(start_of_speech())
            await output.done.wait()
            assert output.interrupted_at is not None
            to_interrupted.append(output.interrupted_at - started)
            to_closed.append(output.done_at - started)
            await session.send(end_of_speech())
        session.close_input()
        stats = session.statistics().recent_turns
    engine = [t.barge_in_latency for t in stats if t.barge_in_latency is not None]
    return {"interrupted": to_interrupted, "closed": to_closed, "engine": engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=2_000)
    parser.add_argument("--barge-ins", type=int, default=300)
    args = parser.parse_args()
    overhead = trio.run(per_turn, args.turns)
    print(_summary(f"per-turn overhead ({HISTORY} parts of history)", overhead))
    barge = trio.run(barge_in, args.barge_ins)
    print(_summary("barge-in: start of speech → interrupted marker", barge["interrupted"]))
    print(_summary("barge-in: start of speech → turn complete", barge["closed"]))
    print(_summary("barge-in: the session's TurnStats (last 100)", barge["engine"]))


if __name__ == "__main__":
    main()
