"""Wall time of a 10-minute voice conversation replayed on trio's mock clock.

Usage (from the repository root)::

    .venv/bin/python benchmarks/conversation_replay.py [--minutes 10]

The default window and cap, a 20 ms audio frame sent with
``await session.send(part)``, a turn every 10 s, and a model that reads its
prompt with ``async for part in prompt`` and answers three text parts. Prints
the wall seconds for the session alone and for a bare loop that only sleeps
to each frame's time (the difference is the session's cost). Target: the
session's cost <= 0.6 s for 10 minutes.
"""

from __future__ import annotations

import argparse
import time

import trio
import trio.testing

from trio_live import LiveSession, Part, PromptStream, audio_part, end_of_turn, text_part

FRAME = 0.020
TURN_EVERY = 10.0


async def model(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
    async for _ in prompt:
        pass
    for text in ("It is", " ten past", " four."):
        await output.send(text_part(text, role="model"))


async def conversation(minutes: float, with_session: bool) -> None:
    pcm = bytes(640)
    frames = round(minutes * 60 / FRAME)
    per_turn = round(TURN_EVERY / FRAME)
    start = trio.current_time()
    if not with_session:
        for index in range(frames):
            await trio.sleep_until(start + index * FRAME)
            audio_part(pcm)
        return
    async with LiveSession(model) as session, trio.open_nursery() as nursery:

        async def drain() -> None:
            async for _ in session:
                pass

        nursery.start_soon(drain)
        for index in range(frames):
            await trio.sleep_until(start + index * FRAME)
            await session.send(audio_part(pcm))
            if index % per_turn == per_turn - 1:
                await session.send(end_of_turn("what time is it"))
        session.close_input()


def wall(minutes: float, with_session: bool) -> float:
    clock = trio.testing.MockClock(autojump_threshold=0)
    started = time.perf_counter()
    trio.run(conversation, minutes, with_session, clock=clock)
    return time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.rounds):
        bare = wall(args.minutes, False)
        full = wall(args.minutes, True)
        print(
            f"{args.minutes:g} min: session {full:.2f} s, bare loop {bare:.2f} s, "
            f"session's cost {full - bare:.2f} s"
        )
