"""The live session: a thin trio driver around `TurnPolicy`.

The policy decides; this module carries its actions out. Each mechanism is
here once:

* a generation is a task in the session's nursery running the turn model
  inside its own `trio.CancelScope`; barge-in is ``scope.cancel()`` followed
  by waiting on the generation's ``exited`` event, so the next turn never
  starts while the old one tears down;
* the next generation is started as soon as the previous turn is triggered
  (pre-streaming): it reads the open prompt as it grows, and its output is
  held back until its own turn is triggered;
* what a generation delivered joins the history, and the stash is flushed,
  in the ``finally`` around the model call: whatever ends the generation
  (it finishes, fails, or is cancelled), the conversation stays whole;
* markers (interrupted, turn complete) are sent after the cancel scope has
  been left, so a barge-in cannot cut them off, and always after the last
  output part of their generation.
"""

from __future__ import annotations

import collections
import contextlib
import types
from types import TracebackType
from typing import Literal, Self

import attrs
import trio

from ._checks import non_negative
from ._errors import SessionClosedError
from ._generation import Generation, GenerationOutput, heard_prefix
from ._groups import raise_single
from ._model import PromptStream, TurnModel
from ._parts import (
    EMPTY_METADATA,
    MARKER_MIMETYPES,
    TURN_STATS_MIMETYPE,
    Part,
    interrupted,
    status_part,
)
from ._policy import (
    AWAIT,
    BARGE_IN,
    CANCEL,
    DROP_PENDING,
    FINISH_PLAYBACK,
    STOP_PLAYBACK,
    TRIGGER,
    AddToPrompt,
    Control,
    EndOfInput,
    Stash,
    TriggerMode,
    TurnPolicy,
)
from ._prompt import DEFAULT_MAX_PARTS, DEFAULT_WINDOW, RollingPrompt
from ._stats import SessionStatistics, TurnStats

# How many ready input parts the pump takes before it yields to other tasks.
_BATCH = 64
# How many recent turns `LiveSession.statistics` keeps.
_RECENT_TURNS = 100


@attrs.define(eq=False)
class LiveSession:
    """Turns a turn-based model into a live, interruptible conversation.

    Use it as an async context manager (it owns its nursery)::

        async with LiveSession(model) as session:
            await session.send(text_part("hello"))
            await session.send(end_of_turn())
            session.close_input()
            async for part in session:
                ...

    or run it as a task over a pair of memory channels with `run`.

    Args:
        model: the turn model (see `TurnModel`).
        window: seconds of conversation kept in the prompt (None: all).
        max_parts: the most parts kept in the prompt (None: no cap).
        trigger: what triggers a turn besides an explicit end-of-turn part.
        wait_for_end_of_speech: hold a final transcription that arrives while
            the user still speaks until the end of speech.
        end_of_input: whether to answer once more when the input ends.
        model_errors: ``"raise"`` (the default) ends the session with the
            model's exception; ``"report"`` sends it as an error part on the
            ``status`` substream, ends the turn and goes on.
        emit_stats: send each turn's `TurnStats` on the ``status`` substream.
        end_of_speech_timeout: seconds a final transcription held for the end
            of speech (rule 10) waits before it triggers anyway; None (the
            default) waits as long as it takes.
        track_playback: the listener reports how far it heard each answer
            with `report_playback`; an answer then joins the history only as
            far as it was heard, and speech over an answer that is still
            playing stops it (an ``interrupted`` marker for that turn, which
            may follow the turn's ``turn_complete``).
        input_buffer: capacity of the input channel.
        output_buffer: capacity of the output channel.
    """

    model: TurnModel
    window: float | None = DEFAULT_WINDOW
    max_parts: int | None = DEFAULT_MAX_PARTS
    trigger: TriggerMode = TriggerMode.FINAL_TRANSCRIPTION
    wait_for_end_of_speech: bool = True
    end_of_input: EndOfInput = EndOfInput.IF_UNANSWERED
    model_errors: Literal["raise", "report"] = attrs.field(
        default="raise", validator=attrs.validators.in_(("raise", "report"))
    )
    emit_stats: bool = False
    track_playback: bool = False
    end_of_speech_timeout: float | None = None
    input_buffer: int = attrs.field(default=64, validator=non_negative)
    output_buffer: int = attrs.field(default=64, validator=non_negative)

    _prompt: RollingPrompt = attrs.field(init=False)
    _policy: TurnPolicy = attrs.field(init=False)
    _started: bool = attrs.field(init=False, default=False)
    _generations: int = attrs.field(init=False, default=0)
    _current: Generation | None = attrs.field(init=False, default=None)
    _pending: Generation | None = attrs.field(init=False, default=None)
    _playing: Generation | None = attrs.field(init=False, default=None)
    _outbox: trio.MemorySendChannel[Part] | None = attrs.field(init=False, default=None)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None)
    _turns: int = attrs.field(init=False, default=0)
    _turns_started: int = attrs.field(init=False, default=0)
    _interrupted: int = attrs.field(init=False, default=0)
    _recent: collections.deque[TurnStats] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=_RECENT_TURNS)
    )
    # The context-manager form's channels and nursery.
    _send_in: trio.MemorySendChannel[Part] | None = attrs.field(init=False, default=None)
    _receive_out: trio.MemoryReceiveChannel[Part] | None = attrs.field(init=False, default=None)
    _stack: contextlib.AsyncExitStack | None = attrs.field(init=False, default=None)
    # True while the pump waits on an empty inbox (see `send`).
    _pump_waiting: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._prompt = RollingPrompt(window=self.window, max_parts=self.max_parts)
        self._policy = TurnPolicy(
            trigger=self.trigger,
            wait_for_end_of_speech=self.wait_for_end_of_speech,
            end_of_input=self.end_of_input,
            track_playback=self.track_playback,
            end_of_speech_timeout=self.end_of_speech_timeout,
        )

    # -- observing -----------------------------------------------------------

    def history(self) -> list[Part]:
        """The conversation kept in the prompt, oldest first (a copy)."""
        return self._prompt.history()

    def timed_history(self) -> list[tuple[float, Part]]:
        """The history with the `trio.current_time` at which each part joined it."""
        return self._prompt.timed_history()

    def statistics(self) -> SessionStatistics:
        """A snapshot of the session's counters."""
        return SessionStatistics(
            turns=self._turns,
            interrupted_turns=self._interrupted,
            history_parts=len(self._prompt),
            stashed_parts=len(self._prompt.stashed),
            state=self._policy.state.value,
            recent_turns=tuple(self._recent),
        )

    # -- the task form -------------------------------------------------------

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the conversation: parts from ``inbox``, output to ``outbox``.

        Returns once ``inbox`` has ended and the last answer is out; closes
        ``outbox`` whatever happens. A model error is raised as itself (in
        ``"raise"`` mode). Cancellation cancels every generation; the history
        keeps what was delivered and everything that was stashed.
        """
        if self._started:
            raise RuntimeError("a LiveSession runs only once")
        self._started = True
        self._outbox = outbox
        with outbox, inbox:
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._pending = self._spawn()
                    task_status.started()
                    await self._pump(inbox)
                    for action in self._policy.input_ended():
                        await self._control(action)  # type: ignore[arg-type]
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                raise_single(group)
            finally:
                self._policy.closed()

    async def _pump(self, inbox: trio.MemoryReceiveChannel[Part]) -> None:
        receive_nowait = inbox.receive_nowait
        policy = self._policy
        decide = policy.receive
        add = self._prompt.add
        stash = self._prompt.stash
        outbox = self._outbox
        assert outbox is not None
        taken = 0
        while True:
            # Ready parts are taken without a checkpoint each (trio's receive
            # checkpoints every time); we yield once per batch instead.
            # (No await inside an except clause: the WouldBlock would stay
            # alive, with its traceback, for the whole wait.)
            try:
                part = receive_nowait()
            except trio.WouldBlock:
                part = None
            except trio.EndOfChannel:
                return
            if part is None:
                taken = 0
                # Only the context-manager form's `send` reads this flag.
                self._pump_waiting = True
                try:
                    # Wait for input, or until the policy has something due.
                    deadline = policy.deadline
                    if deadline is None:
                        part = await inbox.receive()
                    else:
                        with trio.move_on_at(deadline):
                            part = await inbox.receive()
                except trio.EndOfChannel:
                    return
                finally:
                    self._pump_waiting = False
            else:
                taken += 1
                if taken >= _BATCH:
                    taken = 0
                    await trio.lowlevel.checkpoint()
            now = trio.current_time()
            actions = policy.tick(now) if part is None else decide(part, now)
            for action in actions:
                kind = type(action)
                if kind is AddToPrompt:
                    add(action.part, now)  # type: ignore[union-attr]
                elif kind is Stash:
                    stash(action.part)  # type: ignore[union-attr]
                elif kind is Control:
                    await self._control(action)  # type: ignore[arg-type]
                else:
                    await outbox.send(action.part)  # type: ignore[union-attr]
            deadline = policy.deadline
            if deadline is not None and trio.current_time() >= deadline:
                # Input that never lets the pump wait must not delay what is due.
                for action in policy.tick(trio.current_time()):
                    await self._control(action)  # type: ignore[arg-type]

    def _take_plain(self, part: Part) -> None:
        # The policy's fast path: plain input is added or stashed, nothing else.
        (action,) = self._policy.receive(part, trio.current_time())
        if type(action) is AddToPrompt:
            self._prompt.add(part, trio.current_time())
        else:
            self._prompt.stash(part)

    async def _control(self, action: Control) -> None:
        current = self._current
        if action is TRIGGER:
            if current is not None:
                await current.exited.wait()
            gen = self._pending
            assert gen is not None
            now = trio.current_time()
            closed = self._prompt.finalize(now)
            gen.prompt_parts = closed.size
            gen.triggered_at = now
            self._turns_started += 1
            gen.turn = self._turns_started
            gen.tag = types.MappingProxyType({"turn": gen.turn})
            self._current = gen
            self._pending = self._spawn()
            gen.released.set()
        elif action is BARGE_IN or action is CANCEL:
            if current is not None and not current.exited.is_set():
                if action is BARGE_IN and not current.scope.cancel_called:
                    current.barge_in_at = trio.current_time()
                current.scope.cancel()
                await current.exited.wait()
        elif action is AWAIT:
            if current is not None:
                await current.exited.wait()
        elif action is DROP_PENDING:
            pending = self._pending
            assert pending is not None
            pending.scope.cancel()
            await pending.exited.wait()
        elif action is STOP_PLAYBACK:
            playing = self._take_playing()
            self._commit(playing, playing.heard)
            assert self._outbox is not None
            await self._outbox.send(interrupted().replace(metadata={"turn": playing.turn}))
        elif action is FINISH_PLAYBACK:
            self._commit(self._take_playing(), None)

    def _take_playing(self) -> Generation:
        playing, self._playing = self._playing, None
        assert playing is not None
        return playing

    def report_playback(self, turn: int, chars: int, *, finished: bool = False) -> None:
        """Say how much of turn ``turn``'s answer the listener has heard.

        ``chars`` counts characters of the turn's text output (TTS audio parts
        carry it as ``metadata["spoken_chars"]``). With ``finished=True`` the
        whole answer was heard. Only matters with ``track_playback=True``;
        reports for other turns are ignored.
        """
        if chars < 0:
            raise ValueError(f"chars must be >= 0, got {chars!r}")
        for gen in (self._current, self._playing):
            if gen is not None and gen.turn == turn:
                gen.heard = max(gen.heard, chars)
        if finished:
            for action in self._policy.playback_finished(turn):
                assert action is FINISH_PLAYBACK
                self._commit(self._take_playing(), None)

    # -- generations ---------------------------------------------------------

    def _spawn(self) -> Generation:
        self._generations += 1
        cursor = self._prompt.pending()
        gen = Generation(number=self._generations, cursor=cursor, first_index=cursor.position)
        assert self._nursery is not None
        self._nursery.start_soon(self._generate, gen, name=f"trio_live generation {gen.number}")
        return gen

    async def _generate(self, gen: Generation) -> None:
        outbox = self._outbox
        assert outbox is not None
        output = GenerationOutput(gen, outbox)
        try:
            with gen.scope:
                try:
                    try:
                        await self.model(PromptStream(gen.cursor), output)
                    except Exception as error:
                        if self.model_errors == "raise":
                            raise
                        gen.error = error
                    # A model that ended before its turn came still answers it
                    # only once triggered (with nothing more to say).
                    if not gen.released.is_set():
                        await gen.released.wait()
                finally:
                    if gen.released.is_set():
                        self._end_turn(gen)
            if gen.released.is_set():
                await self._close_turn(gen, outbox)
        finally:
            gen.exited.set()

    def _end_turn(self, gen: Generation) -> None:
        # Synchronous on purpose: runs in `finally`, possibly cancelled.
        cancelled = gen.scope.cancel_called
        if self._policy.generation_ended(gen.turn, cancelled=cancelled):
            # Still being played: the answer joins once we know what was heard.
            self._playing = gen
            return
        self._commit(gen, gen.heard if cancelled and self.track_playback else None)

    def _commit(self, gen: Generation, heard: int | None) -> None:
        # The answer (as far as it was heard), then the stash.
        now = trio.current_time()
        add = self._prompt.add
        for part in gen.delivered if heard is None else heard_prefix(gen.delivered, heard):
            add(part, now)
        self._prompt.apply_stash(now)

    async def _close_turn(self, gen: Generation, outbox: trio.MemorySendChannel[Part]) -> None:
        cancelled = gen.scope.cancelled_caught
        # Back to back, without a scheduler round trip unless the output is
        # full (a cancel of the whole session still lands here).
        await trio.lowlevel.checkpoint_if_cancelled()
        for marker in gen.closing_markers():
            try:
                outbox.send_nowait(marker)
            except trio.WouldBlock:
                await outbox.send(marker)
        stats = TurnStats(
            turn=gen.turn,
            triggered_at=gen.triggered_at,
            first_output_at=gen.first_output_at,
            ended_at=trio.current_time(),
            cancelled=cancelled,
            barge_in_at=gen.barge_in_at if cancelled else None,
            prompt_parts=gen.prompt_parts,
            output_parts=gen.output_parts,
        )
        self._turns += 1
        self._interrupted += cancelled
        self._recent.append(stats)
        if self.emit_stats:
            await outbox.send(status_part(stats.as_dict(), mimetype=TURN_STATS_MIMETYPE))

    # -- the context-manager form -------------------------------------------

    async def __aenter__(self) -> Self:
        send_in, receive_in = trio.open_memory_channel[Part](self.input_buffer)
        send_out, receive_out = trio.open_memory_channel[Part](self.output_buffer)
        self._send_in, self._receive_out = send_in, receive_out
        async with contextlib.AsyncExitStack() as stack:
            nursery = await stack.enter_async_context(trio.open_nursery())
            await nursery.start(self.run, receive_in, send_out)
            stack.callback(nursery.cancel_scope.cancel)
            stack.callback(send_in.close)
            stack.callback(receive_out.close)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Cancel whatever still runs and wait for it: no task outlives the block."""
        stack, self._stack = self._stack, None
        assert stack is not None
        try:
            return await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            raise_single(group)

    async def send(self, part: Part) -> None:
        """Send one input part (waits while the input buffer is full).

        If cancelled, the part was not sent.

        Raises:
            SessionClosedError: after `close_input`, or once the session ended.
        """
        send_in = self._send_in
        if send_in is None:
            raise RuntimeError("use 'async with LiveSession(...)' before sending")
        if self._pump_waiting:
            if (
                not part.substream
                and part.metadata is EMPTY_METADATA
                and part.mimetype not in MARKER_MIMETYPES
            ):
                # Plain input (audio, text) while the pump waits on an empty
                # inbox: nothing is queued ahead of it, so it is taken here,
                # saving a task switch per part. Like a channel send, a
                # cancelled call took nothing.
                await trio.lowlevel.checkpoint_if_cancelled()
                self._take_plain(part)
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            # This part goes to the pump; what follows queues behind it.
            self._pump_waiting = False
        try:
            await send_in.send(part)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise SessionClosedError("the session no longer takes input") from None

    def close_input(self) -> None:
        """End the input: the session finishes its last answer, then ends its output."""
        self._pump_waiting = False
        if self._send_in is not None:
            self._send_in.close()

    async def receive(self) -> Part:
        """The next output part; raises `trio.EndOfChannel` once the session ended.

        If cancelled, no part was taken.
        """
        receive_out = self._receive_out
        if receive_out is None:
            raise RuntimeError("use 'async with LiveSession(...)' before receiving")
        return await receive_out.receive()

    def __aiter__(self) -> LiveSession:
        return self

    async def __anext__(self) -> Part:
        """The next output part; the iteration ends when the session ended."""
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
