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

The bridge is given what it needs (a `BridgeConfig`, the server's
`ServerCounters`, the websocket and the pipeline factory) and returns the
close code: the server accepts and closes the websocket. The client's
playback reports and the speech sent go to a `PlaybackTracker`, which tells
the session what was heard and drives the echo guard (and the quicker
barge-in while an answer plays) of the voice activity stages among
``before``. A client of protocol version 2 reports the end of each turn's
playback, which ends it; for an older one the tracker takes the audio's
guessed end (plus ``echo_tail``) for it and reports it itself, so that a
turn's ``turn_complete`` never waits for a report that will not come.

An ``options`` message may change the session's interruption rules
(`LiveSession.update_policy`), within the bounds the codec checks; a value
the session refuses gets a ``bad_option`` error and the session goes on.

The ``state`` events are the session's own activity reports (`is_activity`
parts, which a session sends with ``emit_activity=True``; README rule 14),
shown when they change and never forwarded as they are. A session without
``emit_activity`` gives no ``state`` events at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Final, Protocol, TypeAlias

import attrs
import trio
import trio_websocket

from .._chain import Stage, run_chain
from .._checks import non_negative, positive
from .._errors import LiveError
from .._parts import (
    Part,
    is_activity,
    is_answer_complete,
    is_audio,
    is_interrupted,
)
from .._playback import PlaybackTracker
from .._session import LiveSession
from ._budget import Budgets, InputMeter
from ._protocol import (
    BadOption,
    Config,
    Limits,
    Options,
    Outgoing,
    OverBudget,
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


class WebSocket(Protocol):
    """What the bridge needs of a websocket (a `trio_websocket.WebSocketConnection`).

    Both methods raise `trio_websocket.ConnectionClosed` once the connection
    is closed.
    """

    async def send_message(self, message: str | bytes) -> None: ...

    async def get_message(self) -> str | bytes: ...


@attrs.frozen(kw_only=True)
class BridgeConfig:
    """The limits of one connection (the server's `ServerConfig` has the same names).

    Attributes:
        limits: the message limits (`Limits`).
        audio_in_frames: input audio frames queued before the oldest is dropped.
        audio_out_chunks: TTS chunks queued before the oldest is dropped.
        control_queue: control messages queued each way.
        echo_tail: seconds after the speech sent has had time to play before
            the echo guard turns off by itself (for a client that does not
            report the end of its playback: protocol version 1).
        report_timeout: for a client that reports (version 2), seconds after
            the speech sent has had time to play before the echo guard turns
            off without its report.
        budgets: how much input the client may send over time (`Budgets`).
        close_grace: seconds the last events (such as the error saying why
            the server closes) have to reach the client.
        idle_timeout: seconds without any client message before the server
            closes the connection with 4000 (``math.inf``: never).
    """

    limits: Limits = attrs.field(factory=Limits)
    audio_in_frames: int = attrs.field(default=250, validator=positive)
    audio_out_chunks: int = attrs.field(default=200, validator=positive)
    control_queue: int = attrs.field(default=64, validator=positive)
    echo_tail: float = attrs.field(default=0.5, validator=non_negative)
    report_timeout: float = attrs.field(default=5.0, validator=non_negative)
    budgets: Budgets = attrs.field(factory=Budgets)
    close_grace: float = attrs.field(default=2.0, validator=positive)
    idle_timeout: float = attrs.field(default=300.0, validator=positive)


@attrs.define(eq=False)
class ServerCounters:
    """The server's counters; each bridge adds to those of its connection.

    Attributes:
        active: connections with a live session now.
        total: sessions accepted since the start.
        refused: websocket handshakes refused.
        protocol_errors: malformed client messages answered with an error.
        dropped_audio_in: input audio frames dropped (pipeline too slow),
            added when a connection ends.
        dropped_audio_out: TTS chunks dropped (client too slow), added when a
            connection ends.
    """

    active: int = 0
    total: int = 0
    refused: int = 0
    protocol_errors: int = 0
    dropped_audio_in: int = 0
    dropped_audio_out: int = 0


# -- the connection -------------------------------------------------------------


@attrs.define(eq=False, kw_only=True)
class Bridge:
    """One connection: the reader, the pipeline and the writer.

    Args:
        ws: the accepted websocket.
        name: the session's name (in the ``ready`` event).
        config: the connection's limits.
        counters: the server's counters, added to.
        pipeline: builds the connection's `Pipeline` from the client's `Config`.
    """

    ws: WebSocket
    name: str
    config: BridgeConfig
    counters: ServerCounters
    pipeline: PipelineFactory
    audio_in: DropOldQueue[Part] = attrs.field(init=False)
    audio_out: DropOldQueue[Outgoing] = attrs.field(init=False)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None)
    _playback: PlaybackTracker | None = attrs.field(init=False, default=None)
    _session: LiveSession | None = attrs.field(init=False, default=None)
    _shown: str | None = attrs.field(init=False, default=None)
    _tts: bool = attrs.field(init=False, default=True)
    _close: tuple[int, str | None] = attrs.field(init=False, default=(1000, None))
    _meter: InputMeter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        config = self.config
        self._meter = InputMeter(config.budgets)
        self.audio_in = DropOldQueue(
            max_audio=config.audio_in_frames, max_control=config.control_queue
        )
        self.audio_out = DropOldQueue(
            max_audio=config.audio_out_chunks, max_control=config.control_queue
        )

    async def run(self) -> tuple[int, str | None]:
        """Serve the connection until the client or the pipeline ends it.

        Returns the close code and reason to close the websocket with.
        """
        try:
            ready = ready_event(session=self.name, limits=self.config.limits)
            try:
                await self._send(ready)
            except trio_websocket.ConnectionClosed:
                return self._close
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write)
                await self._read()
                if self.audio_out.closed:
                    # Ending: the writer sends what is left, then cancels.
                    grace = trio.current_time() + self.config.close_grace
                    nursery.cancel_scope.deadline = min(nursery.cancel_scope.deadline, grace)
                else:
                    nursery.cancel_scope.cancel()
            return self._close
        finally:
            self.counters.dropped_audio_in += self.audio_in.dropped
            self.counters.dropped_audio_out += self.audio_out.dropped

    async def _send(self, item: Outgoing) -> None:
        await self.ws.send_message(item.text)
        if item.binary is not None:
            await self.ws.send_message(item.binary)

    async def _read(self) -> None:
        limits = self.config.limits
        while True:
            message: str | bytes | None = None
            try:
                with trio.move_on_after(self.config.idle_timeout):
                    message = await self.ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            if message is None:
                # Silent for too long: the slot goes to someone else.
                self._end(4000, "idle timeout")
                return
            try:
                decoded = decode_client_message(message, limits)
                self._meter.take(decoded, trio.current_time())
            except OverBudget as error:
                self.counters.protocol_errors += 1
                self._end(1008, "input budget exceeded", error_event(error))
                return
            except WireError as error:
                self.counters.protocol_errors += 1
                await self._emit(error_event(error))
                continue
            if isinstance(decoded, Config):
                if self._playback is not None:
                    self.counters.protocol_errors += 1
                    problem = "config is only accepted as the first message"
                    await self._emit(error_event("bad_message", problem))
                else:
                    self._start(decoded)
                continue
            if self._playback is None:
                self._start(Config())
            assert self._playback is not None
            if isinstance(decoded, Playback):
                self._playback.report(decoded.turn, decoded.chars, finished=decoded.finished)
                continue
            if isinstance(decoded, Options):
                await self._options(decoded)
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
                    self._end(1013, "too many control messages waiting")
                    return

    async def _options(self, options: Options) -> None:
        assert self._playback is not None
        assert self._session is not None
        if options.policy:
            try:
                self._session.update_policy(**options.policy)
            except ValueError as error:
                # Within the codec's bounds, yet refused: say why, change nothing.
                self.counters.protocol_errors += 1
                await self._emit(error_event(BadOption(str(error))))
                return
        if options.tts is not None:
            self._tts = options.tts
        if options.echo_guard is not None:
            self._playback.echo_guard = options.echo_guard

    def _end(self, code: int, reason: str, last: Outgoing | None = None) -> None:
        """End the connection: the writer sends what is queued and ``last``, then stops."""
        if self.audio_out.closed:
            return  # already ending: the first reason stands
        self._close = (code, reason)
        self.audio_out.close(last)

    async def _emit(self, item: Outgoing) -> None:
        """Queue a control event (dropped once the connection is ending)."""
        with contextlib.suppress(trio.ClosedResourceError):
            await self.audio_out.put(item)

    def _start(self, config: Config) -> None:
        self._tts = config.tts
        pipeline = self.pipeline(config)
        self._session = pipeline.session
        self._playback = PlaybackTracker(
            pipeline.session,
            stages=pipeline.before,
            tail=self.config.echo_tail,
            # From version 2 the client reports the end of each playback.
            reports=config.version >= 2,
            report_timeout=self.config.report_timeout,
        )
        assert self._nursery is not None
        self._nursery.start_soon(self._playback.run)
        self._nursery.start_soon(self._run_pipeline, pipeline)

    async def _run_pipeline(self, pipeline: Pipeline) -> None:
        send_in, receive_in = trio.open_memory_channel[Part](0)
        send_out, receive_out = trio.open_memory_channel[Part](0)
        stages = [*pipeline.before, pipeline.session, *pipeline.after]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._feed, send_in)
            nursery.start_soon(self._drain, receive_out)
            try:
                await run_chain(stages, receive_in, send_out)
            except LiveError as error:
                # The pipeline cannot go on: say why, then close the connection.
                message = f"{type(error).__name__}: {error}"
                self._end(1011, "pipeline failed", error_event("pipeline_failed", message))

    async def _feed(self, send_in: trio.MemorySendChannel[Part]) -> None:
        with send_in:
            while True:
                try:
                    part = await self.audio_in.get()
                except trio.EndOfChannel:
                    return
                await send_in.send(part)

    async def _drain(self, receive_out: trio.MemoryReceiveChannel[Part]) -> None:
        assert self._playback is not None
        counters = {"dropped_audio_in": 0, "dropped_audio_out": 0}
        with receive_out:
            async for part in receive_out:
                turn = part.metadata.get("turn")
                if is_interrupted(part):
                    self._playback.interrupted(turn if isinstance(turn, int) else None)
                if is_activity(part):
                    await self._show(part)
                    continue
                counters["dropped_audio_in"] = self.audio_in.dropped
                counters["dropped_audio_out"] = self.audio_out.dropped
                for item in output_events(part, counters=counters):
                    if not item.droppable:
                        await self._emit(item)
                        if is_answer_complete(part) and isinstance(turn, int):
                            # Once sent: a client that does not report is
                            # taken to have heard it when its audio has played.
                            self._playback.answer_complete(turn)
                    elif not self._tts:
                        # Not spoken: the answer's text, shown, counts as heard.
                        self._heard_unspoken(part)
                    elif not self.audio_out.closed:
                        self.audio_out.put_audio(item)
                        self._playback.part_sent(part)

    def _heard_unspoken(self, part: Part) -> None:
        assert self._playback is not None
        turn, chars = part.metadata.get("turn"), part.metadata.get("spoken_chars")
        if isinstance(turn, int) and isinstance(chars, int) and chars >= 0:
            self._playback.report(turn, chars)

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

    async def _show(self, part: Part) -> None:
        """A ``state`` event for the session's activity report, if it changed."""
        try:
            activity = json.loads(part.text).get("activity")
        except (AttributeError, TypeError, ValueError):
            return
        if activity in _ACTIVITIES and activity != self._shown:
            self._shown = activity
            await self._emit(state_event(activity))


_ACTIVITIES: Final = frozenset({"listening", "thinking", "speaking"})
