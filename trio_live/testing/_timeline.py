"""Play parts into a session at given times and collect what comes out."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import trio

from .._parts import Part
from .._session import LiveSession


async def play_timeline(
    session: LiveSession,
    events: Iterable[tuple[float, Part]],
    *,
    end_at: float | None = None,
) -> list[tuple[float, Part]]:
    """Run ``session`` over ``events`` and return its output with times.

    Each event is ``(seconds after the start, part)``, in time order. The
    input ends after the last event (or at ``end_at``, if later); the call
    returns when the session has ended. Output times are seconds after the
    start too. Under the ``autojump_clock`` this takes no real time.
    """
    start = trio.current_time()
    outputs: list[tuple[float, Part]] = []
    timed = list(events)
    for (earlier, _), (later, _) in itertools.pairwise(timed):
        if later < earlier:
            raise ValueError(f"events must be in time order, got {later!r} after {earlier!r}")

    async def feed() -> None:
        for at, part in timed:
            await trio.sleep_until(start + at)
            await session.send(part)
        if end_at is not None:
            await trio.sleep_until(start + end_at)
        session.close_input()

    async with session, trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        outputs.extend([(trio.current_time() - start, part) async for part in session])
    return outputs
