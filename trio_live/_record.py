"""Recording a live session: the thin trio writer over `trio_live._replay_log`.

A `Recorder` handed to `LiveSession(recorder=...)` logs what the session
saw: each input part where the session takes it, the listener's playback
reports, the end of the input, each model call (through `Recorder.wrap`:
when it started, the prompt parts it read, the end of its prompt, each part
it sent, how it ended) and each part it output (through `Recorder.outbox`,
as its output channel took it, in both of the session's forms). In front of
the voice stages, `Recorder.microphone` logs the raw microphone input, and a
`PlaybackTracker` the echo guard's changes: what a replay of the whole
voice pipeline needs. Every line is flushed as it is written (the prompt
parts a call reads at one instant are one line, written with the next
event), so a crash leaves a readable prefix. All times come from
`trio.current_time`, relative to the recording's start (the session's, or
the first microphone chunk's if that came first).

The recorder only ever sees parts and the session's options: never a model's
API key or an HTTP header. What it records is the user's input, voice
included: recording is opt-in.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import IO, Any, Self

import attrs
import trio

from ._model import PromptStream, TurnModel
from ._parts import TURN_STATS_MIMETYPE, Part
from ._replay_log import EventKind, LogEncoder
from ._replay_view import since_start

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
        voice: what a replay needs to rebuild the voice stages (the speech
            to text back end, the VAD's settings...), written to the header
            as is: plain JSON values.

    A recorder records one session, and with `microphone` the voice
    pipeline in front of it. The log holds the user's input, their voice too
    (as base64 PCM): keep it as you would the audio itself.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[str],
        *,
        voice: Mapping[str, Any] | None = None,
    ) -> None:
        self._target = target
        self._voice = dict(voice or {})
        self._file: IO[str] | None = None
        self._owned = False
        self._encoder = LogEncoder()
        self._start: float | None = None
        self._calls = 0
        self._started = False
        # A prompt line not written yet: (call, time, parts).
        self._pending: tuple[int, float, list[Part]] | None = None
        # Microphone events before the session started: (kind, clock time, fields).
        self._early: list[tuple[EventKind, float, dict[str, Any]]] = []

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
        if self._start is None:
            self._start = trio.current_time()
        header = self._encoder.header(
            library=library, options=session_options(session), voice=self._voice
        )
        self._write(header)
        early, self._early = self._early, []
        for kind, at, fields in early:
            self._write(self._encoder.event(kind, at - self._start, **fields))
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
        """Log one part the session output (a statistics part's times since the start)."""
        if self._start is not None and part.mimetype == TURN_STATS_MIMETYPE:
            part = since_start(part, self._start)
        self._event("output", part=part)

    def echo_guard(self, on: bool) -> None:
        """Log a change of the echo guard (`PlaybackTracker` calls it)."""
        self._event("echo_guard", on=on)

    def microphone(self) -> MicrophoneRecorder:
        """A stage for the head of the voice pipeline: it logs each part going in.

        Put it before the voice activity stage (``run_chain([recorder.microphone(),
        vad, stt, session, ...])``): the raw microphone audio is logged with
        its times, so `trio_live.testing.replay_pipeline` can replay it
        through the voice stages again. The audio then reaching the session
        is logged as a reference to these lines, not a second time.
        """
        return MicrophoneRecorder(recorder=self)

    def outbox(self, outbox: trio.MemorySendChannel[Part]) -> RecordingOutbox:
        """``outbox``, logging each part once it took it (`LiveSession.run` uses it)."""
        return RecordingOutbox(outbox, self)

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

    def _microphone(self, kind: EventKind, **fields: Any) -> None:
        # Before the session starts (the stages of a chain start together),
        # microphone events wait for the header; the log's times then count
        # from the first of them.
        if not self._started:
            now = trio.current_time()
            if self._start is None:
                self._start = now
            self._early.append((kind, now, fields))
            return
        self._event(kind, **fields)

    # -- writing -------------------------------------------------------------

    def _now(self) -> float:
        assert self._start is not None
        return trio.current_time() - self._start

    def _event(self, kind: EventKind, **fields: Any) -> None:
        if self._file is None or self._file.closed:
            return
        self._flush_prompt()
        self._write(self._encoder.event(kind, self._now(), **fields))

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
            assert self._start is not None
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
            assert recorder._start is not None
            recorder._flush_prompt()
            recorder._write(
                recorder._encoder.event("model", at - recorder._start, call=self.call, part=value)
            )

    async def aclose(self) -> None:
        """Close the model's output."""
        await self.inner.aclose()


class RecordingOutbox:
    """A session's output channel that logs each part it took (`Recorder.outbox`).

    A part is logged once the channel took it (`send` returned, `send_nowait`
    did not raise): the order and the times are those in which the listener
    can have it, whether the session runs as a stage or in ``async with``.
    """

    __slots__ = ("_inner", "_recorder")

    def __init__(self, inner: trio.MemorySendChannel[Part], recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    async def send(self, value: Part) -> None:
        """Send ``value`` as the channel does; log it once it was taken.

        If cancelled, it was not sent and is not logged.
        """
        await self._inner.send(value)
        self._recorder.output(value)

    def send_nowait(self, value: Part) -> None:
        """Send ``value`` without waiting, as the channel does; log it if it was taken."""
        self._inner.send_nowait(value)
        self._recorder.output(value)

    def close(self) -> None:
        """Close the channel."""
        self._inner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.close()


@attrs.define(eq=False)
class MicrophoneRecorder:
    """The head of a voice pipeline, logging each part that goes in (`Recorder.microphone`).

    Each part (the microphone's audio, and anything else sent down the
    pipeline, typed text too) is logged as it is passed on, and the end of
    the input once ``inbox`` ends.
    """

    recorder: Recorder

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        """Pass ``inbox`` on to ``outbox``, logging each part; close both."""
        with inbox, outbox:
            async for part in inbox:
                self.recorder._microphone("mic", part=part)
                await outbox.send(part)
            self.recorder._microphone("mic_end")
