"""One call of the turn model, and the channel its output goes through.

A `Generation` holds what the session needs to know about one model call:
its cancel scope, whether its turn was triggered (``released``), whether it
has exited, and what it delivered. `GenerationOutput` is the channel handed
to the model: it holds output back until the turn is triggered, tags each
part with its turn, and records what was really delivered (a cancelled send
delivered nothing), which is what joins the history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from ._parts import (
    EMPTY_METADATA,
    INTERRUPTED_MIMETYPE,
    TURN_COMPLETE_MIMETYPE,
    Part,
    error_part,
    is_marker,
    is_text,
)
from ._prompt import Cursor


@attrs.define(eq=False)
class Generation:
    """One call of the turn model."""

    number: int
    cursor: Cursor
    first_index: int
    turn: int = 0
    tag: Mapping[str, Any] = EMPTY_METADATA
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    released: trio.Event = attrs.field(factory=trio.Event)
    exited: trio.Event = attrs.field(factory=trio.Event)
    delivered: list[Part] = attrs.field(factory=list)
    output_parts: int = 0
    prompt_parts: int = 0
    triggered_at: float = math.nan
    first_output_at: float | None = None
    barge_in_at: float | None = None
    error: Exception | None = None
    #: Characters of the answer the listener reported hearing.
    heard: int = 0

    def closing_markers(self) -> list[Part]:
        """The parts that end this generation's turn on the output, in order.

        An error report (if the model failed), ``interrupted`` (if it was
        cancelled), then ``turn_complete``; each tagged with the turn.
        """
        tag = self.tag
        markers = []
        if self.error is not None:
            markers.append(error_part(self.error).with_metadata(**tag))
        if self.scope.cancelled_caught:
            markers.append(Part(mimetype=INTERRUPTED_MIMETYPE, role="model", metadata=tag))
        markers.append(Part(mimetype=TURN_COMPLETE_MIMETYPE, role="model", metadata=tag))
        return markers


class GenerationOutput(trio.abc.SendChannel[Part]):
    """The channel a generation sends its output into."""

    def __init__(self, gen: Generation, outbox: trio.MemorySendChannel[Part]) -> None:
        self._gen = gen
        self._outbox = outbox
        self._closed = False

    async def send(self, value: Part) -> None:
        """Deliver ``value`` once the turn is triggered.

        If cancelled, the part was not delivered and is not in the history.
        """
        gen = self._gen
        if self._closed or gen.exited.is_set():
            raise trio.ClosedResourceError("this generation has ended")
        if not gen.released.is_set():
            await gen.released.wait()
        # Output is tagged with its turn (a player reports playback by turn).
        if value.role != "model" or value.metadata.get("turn") != gen.turn:
            metadata = value.metadata
            value = Part(
                content=value.content,
                mimetype=value.mimetype,
                role="model",
                substream=value.substream,
                # One read-only {"turn": n} shared by the turn's plain parts.
                metadata=gen.tag if not metadata else {**metadata, "turn": gen.turn},
            )
        await self._outbox.send(value)
        if gen.first_output_at is None:
            gen.first_output_at = trio.current_time()
        gen.output_parts += 1
        if not value.substream and not is_marker(value):
            gen.delivered.append(value)

    async def aclose(self) -> None:
        """Refuse further sends (the session still ends the turn itself)."""
        self._closed = True
        await trio.lowlevel.checkpoint()


def heard_prefix(parts: list[Part], chars: int) -> list[Part]:
    """The parts as far as the first ``chars`` characters of their text reach."""
    kept: list[Part] = []
    for part in parts:
        if is_text(part) and isinstance(part.content, str):
            if chars <= 0:
                break
            if len(part.content) > chars:
                kept.append(part.replace(content=part.content[:chars]))
                break
            chars -= len(part.content)
        kept.append(part)
    return kept
