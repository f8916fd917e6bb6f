"""Late parts after a barge-in, counted on the real clock with the CPU loaded.

Usage (from the repository root)::

    .venv/bin/python benchmarks/late_parts.py [--trials 10000] [--load 2]

A model streams a part every millisecond; the user starts speaking a random
0-3 ms after the answer's first part, with ``await session.send(start_of_speech())``.
A part counts as late if the model's ``send`` delivered it after that call
began (the part is delivered synchronously inside the model's send, so the
flag it reads just before tells). ``--load`` busy processes compete for the
CPU, so that timers of the source and of the model often fire in the same
scheduler pass. Prints one line; the target is 0.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time

import trio

from trio_live import (
    LiveSession,
    Part,
    PromptStream,
    end_of_speech,
    end_of_turn,
    is_turn_complete,
    start_of_speech,
    text_part,
)


class Race:
    def __init__(self) -> None:
        self.began = False
        self.late = 0
        self.first = trio.Event()


def _spin(stop: float) -> None:
    while time.monotonic() < stop:
        pass


async def main(trials: int, seed: int) -> tuple[int, int, float]:
    race = Race()
    rng = random.Random(seed)

    async def model(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        await prompt.collect()
        for index in range(10_000):
            late = race.began
            await output.send(text_part(f"w{index}", role="model"))
            race.late += late
            if index == 0:
                race.first.set()
            await trio.sleep(0.001)

    done = trio.Event()
    completes = 0

    async def drain(session: LiveSession) -> None:
        nonlocal done, completes
        async for part in session:
            if is_turn_complete(part):
                completes += 1
                done.set()

    started = time.perf_counter()
    async with LiveSession(model) as session, trio.open_nursery() as nursery:
        nursery.start_soon(drain, session)
        for _ in range(trials):
            race.began = False
            race.first = trio.Event()
            done = trio.Event()
            await session.send(end_of_turn("q"))
            await race.first.wait()
            await trio.sleep(rng.uniform(0.0, 0.003))
            race.began = True
            await session.send(start_of_speech())
            await done.wait()
            race.began = False
            await session.send(end_of_speech())
        session.close_input()
    return race.late, completes, time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--load", type=int, default=2, help="busy processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    stop = time.monotonic() + 3600
    hogs = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(args.load)]
    for hog in hogs:
        hog.start()
    try:
        late, completes, seconds = trio.run(main, args.trials, args.seed)
    finally:
        for hog in hogs:
            hog.terminate()
    print(
        f"late parts: {late} over {args.trials} barge-ins "
        f"({completes} turns completed, {seconds:.0f} s, {args.load} busy processes)"
    )
