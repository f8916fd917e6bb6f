"""One call of the turn model, and the channel its output goes through.

A `Generation` holds what the session needs to know about one model call:
its cancel scope, whether its turn was triggered (``released``), whether it
has exited, and what it delivered. Each field has one writer: the session
releases and cancels it (`Generation.release`, `Generation.cancel`), its
`GenerationOutput` records what was delivered, and the player's reports set
``heard``.

`GenerationOutput` is the channel handed to the model: it holds output back
until the turn is triggered, tags each part with its turn, and records what
was really delivered (a cancelled send delivered nothing), which is what
joins the history.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._chain import Outbox
from ._parts import EMPTY_METADATA, Part, is_marker, is_text, is_tool_call, is_tool_result
from ._prompt import Cursor
from ._stats import TurnStats

if TYPE_CHECKING:
    from ._toolruns import ToolRun

#: Called with a tool-call part as it is delivered: the part to deliver, or None to drop it.
ToolCallHook = Callable[["Generation", Part], Part | None]


@attrs.define(eq=False)
class Generation:
    """One call of the turn model."""

    number: int
    cursor: Cursor
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    released: trio.Event = attrs.field(factory=trio.Event)
    exited: trio.Event = attrs.field(factory=trio.Event)
    #: Set once its first output part is out (its send has returned), or it exited.
    spoke: trio.Event = attrs.field(factory=trio.Event)
    #: The call waits for this before it starts (the previous turn's `spoke`).
    after: trio.Event | None = None
    # Set once, by `release`.
    turn: int = 0
    tag: Mapping[str, Any] = EMPTY_METADATA
    triggered_at: float = math.nan
    prompt_parts: int = 0
    # Written by the generation's `GenerationOutput`.
    delivered: list[Part] = attrs.field(factory=list)
    output_parts: int = 0
    first_output_at: float | None = None
    # Written by the session.
    barge_in_at: float | None = None
    #: When the model's call had ended (its scope exited).
    stopped_at: float | None = None
    error: Exception | None = None
    #: Characters of the answer the listener reported hearing.
    heard: int = 0
    #: Its output channel, once its task has made it.
    output: GenerationOutput | None = None
    #: The scope of the task releasing its held output, if one runs.
    flush_scope: trio.CancelScope | None = None
    #: The tool calls it delivered, in order.
    tool_runs: list[ToolRun] = attrs.field(factory=list)
    #: How many times the model was called again with tool results.
    model_round: int = 0

    def release(self, turn: int, *, prompt_parts: int, now: float) -> None:
        """Its turn ``turn`` was triggered at ``now``: let its output through."""
        self.turn = turn
        # One read-only {"turn": n} shared by the turn's plain parts.
        self.tag = types.MappingProxyType({"turn": turn})
        self.prompt_parts = prompt_parts
        self.triggered_at = now
        self.released.set()

    def cancel(self, *, barge_in_at: float | None = None) -> None:
        """Cancel its scope; ``barge_in_at`` is when the user's speech began, if that was why."""
        if barge_in_at is not None and not self.scope.cancel_called:
            self.barge_in_at = barge_in_at
        self.scope.cancel()
        if self.flush_scope is not None:
            self.flush_scope.cancel()

    def stats(self, *, ended_at: float, cancelled: bool) -> TurnStats:
        """Its turn's statistics, once its closing markers are out."""
        return TurnStats(
            turn=self.turn,
            triggered_at=self.triggered_at,
            first_output_at=self.first_output_at,
            ended_at=ended_at,
            cancelled=cancelled,
            barge_in_at=self.barge_in_at if cancelled else None,
            prompt_parts=self.prompt_parts,
            output_parts=self.output_parts,
            stopped_at=self.stopped_at,
            tools=tuple(run.timing() for run in self.tool_runs),
        )


@attrs.define(eq=False)
class Fence:
    """Holds every generation's output while a start of speech is on its way.

    `LiveSession.send` raises it before it queues a start of speech (having
    cancelled the running generation itself); the pump lowers it once the
    policy has decided that part. Meanwhile no generation delivers anything,
    so a turn that input queued ahead of the start of speech triggers cannot
    speak after the caller's barge-in began.
    """

    count: int = 0
    _lifted: trio.Event = attrs.field(factory=trio.Event)

    def lower(self) -> None:
        """One start of speech was decided."""
        self.count -= 1
        if not self.count:
            self._lifted.set()
            self._lifted = trio.Event()

    async def wait(self) -> None:
        """Wait until no start of speech is on its way (cancellation: nothing)."""
        while self.count:
            await self._lifted.wait()


class GenerationOutput(trio.abc.SendChannel[Part]):
    """The channel a generation sends its output into.

    ``started(turn)`` is called before the turn's first part goes out and
    returns parts to send ahead of it (the policy's activity report).

    Before its turn is triggered, up to ``hold`` parts are held here (a send
    returns at once), so a model can answer early and still read on; they
    are released, in order, by `flush` once the turn is triggered, and
    dropped if the generation is cancelled first. Past ``hold`` a send waits
    for the trigger.
    """

    def __init__(
        self,
        gen: Generation,
        outbox: Outbox,
        started: Callable[[int], Sequence[Part]],
        fence: Fence,
        hold: int = 0,
        on_tool_call: ToolCallHook | None = None,
    ) -> None:
        self._on_tool_call = on_tool_call
        self._gen = gen
        self._outbox = outbox
        self._started = started
        self._fence = fence
        self._hold = hold
        self._closed = False
        #: Parts sent before the trigger, not delivered yet.
        self.held: list[Part] = []
        self._flushed: trio.Event | None = None

    async def send(self, value: Part) -> None:
        """Deliver ``value`` once the turn is triggered (or hold it until then).

        If cancelled, the part was not delivered and is not in the history.
        """
        gen = self._gen
        if self._closed or gen.exited.is_set():
            raise trio.ClosedResourceError("this generation has ended")
        if not gen.released.is_set():
            if len(self.held) < self._hold:
                await trio.lowlevel.checkpoint_if_cancelled()
                self.held.append(value)
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await gen.released.wait()
        if self.held or self._flushed is not None:
            await self.wait_flushed()
        await self._deliver(value)

    def flushing(self) -> bool:
        """Start a `flush` if parts are held (the driver calls it once, at release)."""
        if not self.held:
            return False
        self._flushed = trio.Event()
        return True

    async def flush(self) -> None:
        """Deliver the held parts, in order (after `flushing` returned True).

        If cancelled, the parts not delivered yet are dropped.
        """
        try:
            while self.held:
                await self._deliver(self.held[0])
                del self.held[0]
        finally:
            self.held.clear()
            flushed, self._flushed = self._flushed, None
            if flushed is not None:
                flushed.set()

    @property
    def flush_due(self) -> bool:
        """True while held parts are still to be delivered."""
        return bool(self.held) or self._flushed is not None

    async def wait_flushed(self) -> None:
        """Wait until the held parts are out (a checkpoint; cancellation: nothing)."""
        flushed = self._flushed
        if flushed is None:
            await trio.lowlevel.checkpoint()
        else:
            await flushed.wait()

    async def _deliver(self, value: Part) -> None:
        gen = self._gen
        if self._fence.count:
            await self._fence.wait()
        # Output is tagged with its turn (a player reports playback by turn).
        if value.role != "model" or value.metadata.get("turn") != gen.turn:
            metadata = value.metadata
            value = Part(
                content=value.content,
                mimetype=value.mimetype,
                role="model",
                substream=value.substream,
                metadata=gen.tag if not metadata else {**metadata, "turn": gen.turn},
            )
        tool = is_tool_call(value) or is_tool_result(value)
        if tool:
            # A call is decided (and started) as it is delivered, and joins
            # the history whatever becomes of the send.
            if is_tool_call(value) and self._on_tool_call is not None:
                decided = self._on_tool_call(gen, value)
                if decided is None:
                    await trio.lowlevel.checkpoint()
                    return
                value = decided
            gen.delivered.append(value)
        if gen.first_output_at is None:
            for part in self._started(gen.turn):
                await self._outbox.send(part)
        await self._outbox.send(value)
        if gen.first_output_at is None:
            gen.first_output_at = trio.current_time()
            gen.spoke.set()
        gen.output_parts += 1
        if not tool and not value.substream and not is_marker(value):
            gen.delivered.append(value)

    async def aclose(self) -> None:
        """Refuse further sends (the session still ends the turn itself)."""
        self._closed = True
        await trio.lowlevel.checkpoint()


def heard_prefix(parts: list[Part], chars: int) -> list[Part]:
    """The parts as far as the first ``chars`` characters of their text reach.

    Tool calls and results are kept past the cut: each call keeps its outcome.
    """
    kept: list[Part] = []
    cut = False
    for part in parts:
        if is_tool_call(part) or is_tool_result(part):
            kept.append(part)
            continue
        if cut:
            continue
        if is_text(part) and isinstance(part.content, str):
            if chars <= 0:
                cut = True
                continue
            if len(part.content) > chars:
                kept.append(part.replace(content=part.content[:chars]))
                cut = True
                continue
            chars -= len(part.content)
        kept.append(part)
    return kept
