"""Stages and chains of stages.

A stage is anything with ``async def run(inbox, outbox)``: it reads parts from
``inbox``, writes parts to ``outbox``, passes on the parts it does not handle,
and closes ``outbox`` when ``inbox`` ends. `LiveSession` is a stage; so are
the voice processors. `run_chain` connects stages with bounded memory
channels and runs them as sibling tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

import trio

from ._groups import raise_single
from ._parts import Part


class Outbox(Protocol):
    """What a session writes its output to: a `trio.MemorySendChannel`, or a wrapper.

    (`trio_live.Recorder.outbox` wraps one to log what the session output.)
    """

    async def send(self, value: Part) -> None:
        """Send ``value``, waiting while the channel is full."""

    def send_nowait(self, value: Part) -> None:
        """Send ``value`` at once, or raise `trio.WouldBlock`."""

    def close(self) -> None:
        """Close the channel."""

    def __enter__(self) -> Self:
        """Enter a block that closes the channel at its end."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the channel."""


class Stage(Protocol):
    """A processing step between two channels of parts."""

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        """Read ``inbox`` to its end, write to ``outbox``, then close both."""


async def run_chain(
    stages: Sequence[Stage],
    inbox: trio.MemoryReceiveChannel[Part],
    outbox: trio.MemorySendChannel[Part],
    *,
    buffer: int = 64,
) -> None:
    """Run ``stages`` in order from ``inbox`` to ``outbox``.

    Each link between two stages is a memory channel of capacity ``buffer``.
    Returns when every stage has returned. If one stage fails, the others are
    cancelled and the error is raised as itself.
    """
    if buffer < 0:
        raise ValueError(f"buffer must be >= 0, got {buffer!r}")
    if not stages:
        with inbox, outbox:
            async for part in inbox:
                await outbox.send(part)
        return
    try:
        async with trio.open_nursery() as nursery:
            receive = inbox
            for stage in stages[:-1]:
                send_next, receive_next = trio.open_memory_channel[Part](buffer)
                nursery.start_soon(stage.run, receive, send_next)
                receive = receive_next
            nursery.start_soon(stages[-1].run, receive, outbox)
    except BaseExceptionGroup as group:
        raise_single(group)
