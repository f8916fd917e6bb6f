"""One connection of the bridge: the reader, the pipeline and the writer.

* The reader decodes client messages; audio goes into the input queue (the
  oldest dropped when the pipeline falls behind), everything else waits for
  room (never dropped); a malformed message gets an ``error`` event and the
  session goes on.
* The pipeline (``before`` stages → `LiveSession` → ``after`` stages, built by
  the factory when the first message arrives) runs between the queues.
* The writer sends the output queue's events; TTS audio is dropped oldest
  first when the client does not read fast enough, control events never.

The reader only ever waits on the socket, so the client going away is
noticed at once, even when the pipeline is stuck: the reader returns and
cancels the connection's nursery, and the session stops at its next
checkpoint. A client whose control messages fill the input queue (the
pipeline does not take them) is closed with 1013 rather than left unread.

While the client plays speech, the voice activity stages among ``before``
hear it through their echo guard (see ``_echo.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

import attrs
import trio
import trio_websocket

from .._chain import Stage, run_chain
from .._errors import LiveError
from .._parts import (
    Part,
    audio_rate,
    is_audio,
    is_end_of_turn,
    is_final_transcription,
    is_interrupted,
    is_start_of_speech,
    is_turn_complete,
)
from .._session import LiveSession
from ._echo import EchoGuard
from ._protocol import (
    Config,
    Outgoing,
    Playback,
    WireError,
    decode_client_message,
    error_event,
    input_parts,
    output_events,
    ready_event,
    state_event,
)
from ._queue import DropOldQueue

if TYPE_CHECKING:
    from ._server import WebServer


@attrs.frozen(kw_only=True)
class Pipeline:
    """What one connection runs: ``before`` → ``session`` → ``after``.

    Attributes:
        session: the connection's live session (one per connection).
        before: stages between the client's input and the session (voice
            activity detection, speech to text).
        after: stages between the session and the client (text to speech).
    """

    session: LiveSession
    before: Sequence[Stage] = ()
    after: Sequence[Stage] = ()


PipelineFactory: TypeAlias = Callable[[Config], Pipeline]
"""Builds a fresh `Pipeline` for each connection, from the client's `Config`."""


@attrs.define(eq=False)
class Bridge:
    """One connection: the reader, the pipeline and the writer."""

    server: WebServer
    ws: trio_websocket.WebSocketConnection
    name: str
    audio_in: DropOldQueue[Part] = attrs.field(init=False)
    audio_out: DropOldQueue[Outgoing] = attrs.field(init=False)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None)
    _session: LiveSession | None = attrs.field(init=False, default=None)
    _echo: EchoGuard | None = attrs.field(init=False, default=None)
    _tts: bool = attrs.field(init=False, default=True)
    _close: tuple[int, str | None] = attrs.field(init=False, default=(1000, None))
    _state: str = attrs.field(init=False, default="listening")
    _requested: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        config = self.server.config
        self.audio_in = DropOldQueue(
            max_audio=config.audio_in_frames, max_control=config.control_queue
        )
        self.audio_out = DropOldQueue(
            max_audio=config.audio_out_chunks, max_control=config.control_queue
        )

    async def run(self) -> tuple[int, str | None]:
        """Serve the connection until the client or the pipeline ends it."""
        ready = ready_event(session=self.name, limits=self.server.config.limits)
        try:
            await self._send(ready)
        except trio_websocket.ConnectionClosed:
            return self._close
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._write)
            await self._read()
            nursery.cancel_scope.cancel()
        return self._close

    async def _send(self, item: Outgoing) -> None:
        await self.ws.send_message(item.text)
        if item.binary is not None:
            await self.ws.send_message(item.binary)

    async def _read(self) -> None:
        limits = self.server.config.limits
        while True:
            try:
                message = await self.ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            try:
                decoded = decode_client_message(message, limits)
            except WireError as error:
                self.server._errors += 1
                await self.audio_out.put(error_event(error))
                continue
            if isinstance(decoded, Config):
                if self._session is not None:
                    self.server._errors += 1
                    problem = "config is only accepted as the first message"
                    await self.audio_out.put(error_event("bad_message", problem))
                else:
                    self._start(decoded)
                continue
            if self._session is None:
                self._start(Config())
            if isinstance(decoded, Playback):
                await self._report_playback(decoded)
                continue
            for part in input_parts(decoded):
                if is_audio(part):
                    self.audio_in.put_audio(part)
                    continue
                try:
                    self.audio_in.put_nowait(part)
                except trio.WouldBlock:
                    # Waiting for room would stop reading the socket, and with it
                    # noticing that the client went away: close instead.
                    self._close = (1013, "too many control messages waiting")
                    return

    async def _report_playback(self, playback: Playback) -> None:
        if playback.finished and self._echo is not None:
            self._echo.playback_finished(playback.turn)
        report = getattr(self._session, "report_playback", None)
        if report is None:
            return
        if playback.finished:
            result = report(playback.turn, playback.chars, finished=True)
        else:
            result = report(playback.turn, playback.chars)
        if inspect.isawaitable(result):
            await result

    def _start(self, config: Config) -> None:
        self._tts = config.tts
        pipeline = self.server.pipeline(config)
        self._session = pipeline.session
        self._echo = EchoGuard(stages=pipeline.before, tail=self.server.config.echo_tail)
        assert self._nursery is not None
        self._nursery.start_soon(self._echo.run)
        self._nursery.start_soon(self._run_pipeline, pipeline)

    async def _run_pipeline(self, pipeline: Pipeline) -> None:
        send_in, receive_in = trio.open_memory_channel[Part](0)
        send_out, receive_out = trio.open_memory_channel[Part](0)
        stages = [*pipeline.before, _Tap(self), pipeline.session, *pipeline.after]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._feed, send_in)
            nursery.start_soon(self._drain, receive_out)
            try:
                await run_chain(stages, receive_in, send_out)
            except LiveError as error:
                # The pipeline cannot go on: say why, then close the connection.
                message = f"{type(error).__name__}: {error}"
                await self.audio_out.put(error_event("pipeline_failed", message))
                self._close = (1011, "pipeline failed")
                self.audio_out.close()

    async def _feed(self, send_in: trio.MemorySendChannel[Part]) -> None:
        with send_in:
            while True:
                try:
                    part = await self.audio_in.get()
                except trio.EndOfChannel:
                    return
                await send_in.send(part)

    async def _drain(self, receive_out: trio.MemoryReceiveChannel[Part]) -> None:
        counters = {"dropped_audio_in": 0, "dropped_audio_out": 0}
        with receive_out:
            async for part in receive_out:
                await self._observe_output(part)
                counters["dropped_audio_in"] = self.audio_in.dropped
                counters["dropped_audio_out"] = self.audio_out.dropped
                for item in output_events(part, counters=counters):
                    if not item.droppable:
                        await self.audio_out.put(item)
                    elif self._tts:
                        self.audio_out.put_audio(item)
                        self._audio_sent(part)

    def _audio_sent(self, part: Part) -> None:
        turn = part.metadata.get("turn")
        if self._echo is not None and isinstance(turn, int):
            self._echo.audio_sent(turn, len(part.data) / 2 / audio_rate(part))

    async def _write(self) -> None:
        while True:
            try:
                item = await self.audio_out.get()
            except trio.EndOfChannel:
                break
            try:
                await self._send(item)
            except trio_websocket.ConnectionClosed:
                break
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    # -- the conversation's visible state -----------------------------------
    # listening → (a turn is asked for) thinking → (model output) speaking →
    # (the last asked-for turn completes) listening. The page adds its own
    # playback on top: it stays "speaking" while audio is still playing.

    async def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            await self.audio_out.put(state_event(state))

    async def observe_input(self, part: Part) -> None:
        """Update the state for an input part on its way to the session."""
        if is_start_of_speech(part):
            await self._set_state("listening")
        elif is_end_of_turn(part) or is_final_transcription(part):
            self._requested += 1
            await self._set_state("thinking")

    async def _observe_output(self, part: Part) -> None:
        turn = part.metadata.get("turn")
        if is_interrupted(part) and self._echo is not None:
            self._echo.interrupted(turn if isinstance(turn, int) else None)
        if part.role != "model" or not isinstance(turn, int):
            return
        if part.mimetype.startswith(("text/", "audio/")) and part.content and not part.substream:
            if turn >= self._requested:
                await self._set_state("speaking")
        elif is_turn_complete(part) and turn >= self._requested:
            await self._set_state("listening")


@attrs.define(eq=False)
class _Tap:
    """A stage that only watches the input, for the visible state."""

    bridge: Bridge

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for part in inbox:
                await self.bridge.observe_input(part)
                await outbox.send(part)
