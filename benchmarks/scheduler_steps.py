"""Scheduler work per input part, counted: a measure that machine load cannot skew.

Usage (from the repository root)::

    .venv/bin/python benchmarks/scheduler_steps.py [--parts 20000]

Wall-clock figures on a shared machine swing with its load; the number of
trio task steps and scheduler passes a path takes does not. This counts both
with a `trio.abc.Instrument`, for the natural user path (a source that
``await session.send(part)`` per part, a model that reads
``async for part in prompt``):

* ``burst``: prebuilt audio parts sent back to back (the throughput rows);
* ``stream``: 20 ms audio frames on trio's mock clock, a turn every 10 s (the
  10-minute conversation of ``conversation_replay.py``, shortened);

each with the session's default ``audio_wake_interval`` and with ``0`` (a
wake-up per part), beside a bare loop that only does the source's own work
and checkpoints once per part (the floor any awaited ``send`` has).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Awaitable, Callable

import trio
import trio.testing

from trio_live import LiveSession, Part, PromptStream, audio_part, end_of_turn, text_part

FRAME = 0.020
TURN_EVERY = 10.0


class Count(trio.abc.Instrument):
    """Counts task steps and scheduler passes."""

    def __init__(self) -> None:
        self.steps = 0
        self.passes = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1

    def before_io_wait(self, timeout: float) -> None:
        self.passes += 1


async def reader(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
    async for _ in prompt:
        pass
    await output.send(text_part("ok", role="model"))


async def drain(session: LiveSession) -> None:
    async for _ in session:
        pass


async def burst(parts: int, interval: float | None) -> None:
    pcm = bytes(640)
    items = [audio_part(pcm) for _ in range(parts)]
    if interval is None:
        for _ in items:
            await trio.lowlevel.checkpoint()
        return
    session = LiveSession(reader, audio_wake_interval=interval)
    async with session, trio.open_nursery() as nursery:
        nursery.start_soon(drain, session)
        for part in items:
            await session.send(part)
        session.close_input()


async def stream(parts: int, interval: float | None) -> None:
    pcm = bytes(640)
    per_turn = round(TURN_EVERY / FRAME)
    start = trio.current_time()
    if interval is None:
        for index in range(parts):
            await trio.sleep_until(start + index * FRAME)
            audio_part(pcm)
            await trio.lowlevel.checkpoint()
        return
    session = LiveSession(reader, audio_wake_interval=interval)
    async with session, trio.open_nursery() as nursery:
        nursery.start_soon(drain, session)
        for index in range(parts):
            await trio.sleep_until(start + index * FRAME)
            await session.send(audio_part(pcm))
            if index % per_turn == per_turn - 1:
                await session.send(end_of_turn("what time is it"))
        session.close_input()


def count(run: Callable[[], Awaitable[None]], *, mock_clock: bool) -> Count:
    counter = Count()
    clock = trio.testing.MockClock(autojump_threshold=0) if mock_clock else None
    trio.run(run, instruments=[counter], clock=clock)
    return counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=20_000)
    args = parser.parse_args()
    default = LiveSession(reader).audio_wake_interval
    print(f"{'path':<8} {'variant':<28} {'steps/part':>10} {'passes/part':>11}")
    for name, scenario, mock in (("burst", burst, False), ("stream", stream, True)):
        for label, interval in (
            ("bare loop (floor)", None),
            (f"session, interval {default:g} s", default),
            ("session, interval 0", 0.0),
        ):
            print(f"  ... {name}: {label}", file=sys.stderr, flush=True)
            counter = count(functools.partial(scenario, args.parts, interval), mock_clock=mock)
            print(
                f"{name:<8} {label:<28} {counter.steps / args.parts:>10.2f}"
                f" {counter.passes / args.parts:>11.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
