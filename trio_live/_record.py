"""Recording a live session: the thin trio writer over `trio_live._replay_log`.

A `Recorder` handed to `LiveSession(recorder=...)` logs what the session
saw: each input part where the session takes it, the listener's playback
reports, the end of the input, each model call (through `Recorder.wrap`:
when it started, the prompt parts it read, the end of its prompt, each part
it sent, how it ended) and each output part handed to the listener. Every
line is flushed as it is written (the prompt parts a call reads at one
instant are one line, written with the next event), so a crash leaves a
readable prefix. All times come from `trio.current_time`, relative to the
session's start.

The recorder only ever sees parts and the session's options: never a model's
API key or an HTTP header. What it records is the user's input, voice
included: recording is opt-in.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import attrs
import trio

from ._model import PromptStream, TurnModel
from ._parts import Part
from ._replay_log import EventKind, LogEncoder

# Session fields that are not options of the conversation.
_NOT_OPTIONS = frozenset({"model", "recorder"})


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def session_options(session: Any) -> dict[str, Any]:
    """The options a session runs with, as plain values (enums by their value)."""
    return {
        field.name: _plain(getattr(session, field.name))
        for field in attrs.fields(type(session))
        if field.init and not field.name.startswith("_") and field.name not in _NOT_OPTIONS
    }


class Recorder:
    """Writes a session's record-and-replay log (see `trio_live.testing.replay`).

    Args:
        target: a path (the file is created, and closed when the session
            ends) or a text file object (left open; flushed per line).

    A recorder records one session. The log holds the user's input, their
    voice too (as base64 PCM): keep it as you would the audio itself.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str]) -> None:
        self._target = target
        self._file: IO[str] | None = None
        self._owned = False
        self._encoder = LogEncoder()
        self._start = 0.0
        self._calls = 0
        self._started = False
        # A prompt line not written yet: (call, time, parts).
        self._pending: tuple[int, float, list[Part]] | None = None

    # -- the session's hooks ---------------------------------------------------

    @contextlib.contextmanager
    def session(self, session: Any) -> Iterator[None]:
        """Record around one run of ``session``: the header first, an end line last."""
        if self._started:
            raise RuntimeError("a Recorder records one session")
        self._started = True
        # The package's version, looked up rather than imported: the package
        # imports this module (an import would be a cycle).
        library = str(getattr(sys.modules.get("trio_live"), "__version__", "unknown"))
        target = self._target
        if isinstance(target, (str, os.PathLike)):
            self._file = open(target, "w", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self._file = target
        self._start = trio.current_time()
        self._write(self._encoder.header(library=library, options=session_options(session)))
        try:
            yield
        finally:
            self._event("end")
            if self._owned:
                self._file.close()

    def input(self, part: Part) -> None:
        """Log one input part, now."""
        self._event("input", part=part)

    def input_ended(self) -> None:
        """Log the end of the input."""
        self._event("input_end")

    def playback(self, turn: int, chars: int, *, finished: bool) -> None:
        """Log a playback report."""
        self._event("playback", turn=turn, chars=chars, finished=finished)

    def output(self, part: Part) -> None:
        """Log one output part handed to the listener."""
        self._event("output", part=part)

    def stage(self, session: Any) -> RecordedStage:
        """``session`` as a pipeline stage that logs each part it outputs.

        `LiveSession.receive` logs the parts it hands out; a session run as
        a stage (``session.run(inbox, outbox)``, as `run_chain` does) sends
        them to its outbox instead: put this in the chain in its place.
        """
        return RecordedStage(session=session, recorder=self)

    def wrap(self, model: TurnModel) -> TurnModel:
        """``model``, logging each call: its start, its prompt, its output, its end."""

        async def recorded(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
            call = self._calls
            self._calls += 1
            self._event("call", call=call)
            outcome: dict[str, Any] = {"outcome": "cancelled"}
            try:
                await model(
                    _RecordingPrompt(prompt, self, call), _RecordingOutput(output, self, call)
                )
                outcome = {"outcome": "finished"}
            except Exception as error:
                outcome = {"outcome": "error", "error": type(error).__name__, "message": str(error)}
                raise
            finally:
                self._event("call_end", call=call, **outcome)

        return recorded

    # -- writing -------------------------------------------------------------

    def _event(self, kind: EventKind, **fields: Any) -> None:
        if self._file is None or self._file.closed:
            return
        self._flush_prompt()
        self._write(self._encoder.event(kind, trio.current_time() - self._start, **fields))

    def _prompt(self, call: int, parts: list[Part]) -> None:
        # The parts a call reads at one instant are one line: held until the
        # call reads at another time, another call reads, or anything else
        # is logged.
        if self._file is None or self._file.closed:
            return
        now = trio.current_time()
        pending = self._pending
        if pending is not None and (pending[0] != call or pending[1] != now):
            self._flush_prompt()
            pending = None
        if pending is None:
            self._pending = (call, now, list(parts))
        else:
            pending[2].extend(parts)

    def _flush_prompt(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            call, now, parts = pending
            self._write(self._encoder.prompt(now - self._start, call, parts))

    def _write(self, line: str) -> None:
        assert self._file is not None
        self._file.write(line)
        self._file.flush()


class _RecordingPrompt(PromptStream):
    """A prompt stream that logs each part its model reads, and its end."""

    __slots__ = ("_call", "_ended", "_recorder")

    def __init__(self, prompt: PromptStream, recorder: Recorder, call: int) -> None:
        super().__init__(prompt._cursor)
        self._recorder = recorder
        self._call = call
        self._ended = False

    def _log(self, parts: list[Part]) -> None:
        if parts:
            self._recorder._prompt(self._call, parts)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._recorder._event("prompt_end", call=self._call)

    async def __anext__(self) -> Part:
        try:
            part = await super().__anext__()
        except StopAsyncIteration:
            self._end()
            raise
        self._log([part])
        return part

    def ready(self) -> list[Part]:
        parts = super().ready()
        self._log(parts)
        return parts

    async def collect(self) -> list[Part]:
        parts = await super().collect()
        self._log(parts)
        self._end()
        return parts


@attrs.define(eq=False)
class _RecordingOutput(trio.abc.SendChannel[Part]):
    """The model's output channel, logging each part it sends (at the send's start)."""

    inner: trio.abc.SendChannel[Part]
    recorder: Recorder
    call: int

    async def send(self, value: Part) -> None:
        """Send ``value``; log it, with the time it was offered, once delivered."""
        at = trio.current_time()
        await self.inner.send(value)
        recorder = self.recorder
        if recorder._file is not None and not recorder._file.closed:
            recorder._flush_prompt()
            recorder._write(
                recorder._encoder.event("model", at - recorder._start, call=self.call, part=value)
            )

    async def aclose(self) -> None:
        """Close the model's output."""
        await self.inner.aclose()


@attrs.define(eq=False)
class RecordedStage:
    """A session as a stage, logging each part it outputs (`Recorder.stage`)."""

    session: Any
    recorder: Recorder

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the session; each part it sends is logged, then passed to ``outbox``."""
        # Unbuffered: a part is logged when the session hands it over, before
        # the session (and its log) can end.
        send, receive = trio.open_memory_channel[Part](0)
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(self.session.run, inbox, send))
            task_status.started()
            with outbox, receive:
                async for part in receive:
                    self.recorder.output(part)
                    await outbox.send(part)
