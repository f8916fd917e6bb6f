"""The turn-model interface: how a session talks to a model.

A turn model is any async callable ``model(prompt, output)``:

* ``prompt`` is a `PromptStream`: an async iterator over the prompt's parts.
  It returns parts that are already there without waiting (no checkpoint per
  part, so a long history costs no scheduler round trips) and suspends only
  when it must wait for parts that have not arrived yet. It ends when the
  user's turn is triggered. `PromptStream.collect` waits for the whole prompt,
  which is what an HTTP adapter needs before it can send a request. One task
  reads a prompt at a time: a second task that waits on it while the first
  waits gets `trio.BusyResourceError`.
* ``output`` is a `trio.abc.SendChannel` of parts: every part the model sends
  goes to the session's output, and into the history once the generation
  ends. The session starts the next generation early (as soon as the
  previous answer's first part is out), so the model can read the prompt as
  it grows; what it sends before its turn is triggered is held
  (up to the session's ``output_buffer`` parts, after which a send waits for
  the trigger), released at the trigger, and dropped if no turn comes. After
  the trigger a send waits only under backpressure.

The call runs as a task in the session's nursery inside its own cancel scope,
so a model may open nurseries, stream over httpx or wait on a worker thread
freely: barge-in cancels the scope. For simple models, `turn_model` lifts an
async generator function into this shape (the generator must not open a
nursery or cancel scope around its ``yield``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import TypeAlias

import trio

from ._parts import Part
from ._prompt import Cursor

__all__ = ["PromptStream", "TurnModel", "turn_model"]


class PromptStream:
    """An async iterator over one prompt, handed to a turn model."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    def __aiter__(self) -> PromptStream:
        return self

    async def __anext__(self) -> Part:
        """The next part; waits only when none is ready yet.

        Cancellation while waiting loses nothing: the part stays unread.
        """
        cursor = self._cursor
        # `Cursor.next` inlined (a model re-reading a long history calls
        # this once per part).
        prompt = cursor._prompt
        if prompt is not None:
            index = cursor._pos - prompt._base
            parts = prompt._parts
            if index < len(parts):
                cursor._pos += 1
                return parts[index]
        else:
            pos = cursor._pos
            if pos < cursor._end:  # type: ignore[operator]
                cursor._pos = pos + 1
                return cursor._parts[pos - cursor._base]
        part = cursor.next()
        while part is None:
            if cursor.exhausted:
                raise StopAsyncIteration
            await self._wait()
            part = cursor.next()
        return part

    def ready(self) -> list[Part]:
        """Every part that can be read now, without waiting (maybe none)."""
        return self._cursor.take()

    @property
    def finalized(self) -> bool:
        """True once the user's turn was triggered: no part will be added."""
        return self._cursor.finalized

    async def collect(self) -> list[Part]:
        """Wait for the turn to be triggered and return every unread part.

        Cancellation leaves the parts read so far consumed.
        """
        cursor = self._cursor
        parts = cursor.take()
        # Only the trigger wakes us, not every part added meanwhile.
        cursor.wake_on_add = False
        try:
            while not cursor.exhausted:
                await self._wait()
                parts.extend(cursor.take())
        finally:
            cursor.wake_on_add = True
        await trio.lowlevel.checkpoint_if_cancelled()
        return parts

    async def _wait(self) -> None:
        cursor = self._cursor
        if cursor.available() or cursor.exhausted:
            await trio.lowlevel.checkpoint()
            return
        if cursor.waker is not None:
            # One waker slot: a second waiting reader would never be woken.
            raise trio.BusyResourceError("another task is already waiting on this prompt")
        # Park this task until the cursor calls its waker (no Event per
        # wait: this runs once per wake for a model that streams).
        task = trio.lowlevel.current_task()

        def wake() -> None:
            trio.lowlevel.reschedule(task)

        def abort(raise_cancel: object) -> trio.lowlevel.Abort:
            if cursor.waker is wake:
                cursor.waker = None
                cursor.on_defer = None
            return trio.lowlevel.Abort.SUCCEEDED

        cursor.waker = wake
        if not cursor.coalescing:
            await trio.lowlevel.wait_task_rescheduled(abort)
            return
        # Audio the cursor does not wake us for (see
        # `RollingPrompt.audio_wake_interval`) sets a deadline on this
        # scope: past it we wake by ourselves.
        with trio.CancelScope() as scope:

            def defer(deadline: float) -> None:
                scope.deadline = deadline

            cursor.on_defer = defer
            await trio.lowlevel.wait_task_rescheduled(abort)
        if scope.cancelled_caught:
            # Woken by the deadline: the audio source has gone quiet.
            cursor.deferred = False
            cursor.quiet_until = -math.inf


TurnModel: TypeAlias = Callable[[PromptStream, trio.abc.SendChannel[Part]], Awaitable[None]]
"""``async def model(prompt: PromptStream, output: SendChannel[Part]) -> None``."""


def turn_model(
    fn: Callable[[PromptStream], AsyncGenerator[Part, None]],
) -> TurnModel:
    """Lift an async generator function ``fn(prompt)`` into a `TurnModel`.

    Each part the generator yields is sent to the output in order; the
    generator is closed when the generation ends or is cancelled.
    """

    @functools.wraps(fn)
    async def model(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        async with aclosing(fn(prompt)) as parts:
            async for part in parts:
                await output.send(part)

    return model
