"""The live session: the public face of a conversation.

`LiveSession` holds the options, builds the pure `TurnPolicy` and
`RollingPrompt`, and hands them to its `Driver` (``_driver.py``), which runs
the generations. Used as an async context manager, it owns a nursery and a
pair of memory channels; `LiveSession.send` takes plain input directly when
the driver's pump is idle (one task switch less per part), through the same
policy call and the same prompt action as the pump.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Final, Literal, Self

import attrs
import trio

from ._actions import EndOfInput, TriggerMode, end_of_input_mode, trigger_mode
from ._checks import finite_non_negative, non_negative, one_of
from ._driver import Driver, is_barge_in
from ._errors import SessionClosedError
from ._groups import raise_single
from ._model import TurnModel
from ._parts import Part, is_plain
from ._policy import DEFAULT_BACKCHANNELS, TurnPolicy, backchannel_tuple
from ._prompt import DEFAULT_MAX_PARTS, DEFAULT_WINDOW, RollingPrompt
from ._record import Recorder
from ._stats import SessionStatistics
from ._tools import Tool, ToolError, check_tools

# How many ready output parts `LiveSession.receive` hands out before it yields.
_OUTPUT_BATCH = 64

#: The options `LiveSession.update_policy` may change during a conversation.
POLICY_UPDATES: Final = frozenset(
    {
        "backchannels",
        "end_of_speech_timeout",
        "false_interruption_timeout",
        "incomplete_turn_timeout",
        "min_interruption_duration",
        "min_interruption_words",
    }
)


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
        audio_wake_interval: a model waiting on its prompt as it grows is
            woken for new audio at most once per this many seconds (0.1 by
            default): it then takes every audio part that came meanwhile.
            Any other part, and the trigger, wake it at once; no audio part
            waits longer than twice the interval. 0 wakes it for every part.
        trigger: what triggers a turn besides an explicit end-of-turn part.
        wait_for_end_of_speech: hold a final transcription that arrives while
            the user still speaks until the end of speech.
        end_of_input: whether to answer once more when the input ends.
        model_errors: ``"raise"`` (the default) ends the session with the
            model's exception; ``"report"`` sends it as an error part on the
            ``status`` substream, ends the turn and goes on.
        emit_stats: send each turn's `TurnStats` on the ``status`` substream.
        emit_activity: send an activity part (`trio_live.activity_part`) on
            the ``status`` substream whenever the visible activity changes
            (listening, thinking, speaking), as the policy decides it.
        end_of_speech_timeout: seconds a final transcription held for the end
            of speech (rule 10) waits before it triggers anyway; None (the
            default) waits as long as it takes.
        track_playback: the listener reports how far it heard each answer
            with `report_playback`; an answer then joins the history only as
            far as it was heard, and speech over an answer that is still
            playing stops it (``interrupted``, then ``turn_complete``, for
            that turn: a tracked turn's ``turn_complete`` waits for the end
            of its playback; ``answer_complete`` marks the end of its output).
        min_interruption_duration: seconds speech over an answer must last
            before it interrupts (0, the default: at once).
        min_interruption_words: words speech over an answer must yield
            (partial or final transcription, backchannels not counted)
            before it interrupts (0, the default: none).
        false_interruption_timeout: seconds speech over an answer has to
            yield words, else it is no interruption and the answer goes on
            (None, the default: no bound; setting it needs one word).
        backchannels: words and phrases that never interrupt an answer
            (default `trio_live.policy.DEFAULT_BACKCHANNELS`).
        incomplete_turn_timeout: seconds an end of speech marked incomplete
            by an end-of-turn detector waits for more speech.
        user_idle_timeout: seconds without user input after an answer
            before a ``user_idle`` status part (None, the default: never).
        user_idle_prompt: text (role ``system``) the model answers at each
            idle event (None: only the status part).
        user_idle_retries: idle events before the session gives up on the user.
        user_idle_end: on giving up, end the input (the session closes).
        recent_turns: how many recent turns `statistics` keeps.
        input_buffer: capacity of the input channel.
        output_buffer: capacity of the output channel, and how many parts a
            pre-started generation may send before its turn is triggered
            (they are held, then released at the trigger or dropped if the
            generation is cancelled first).
        recorder: a `Recorder` that logs the conversation for a replay.
        tools: the `Tool` values the model may call (see `trio_live.tool`);
            by default the model's own ``tools``, if it has any.
        max_tool_rounds: how many times one answer may call tools and be
            asked again with their results; calls past that get an error.
    """

    model: TurnModel
    window: float | None = DEFAULT_WINDOW
    max_parts: int | None = DEFAULT_MAX_PARTS
    audio_wake_interval: float = attrs.field(default=0.1, validator=finite_non_negative)
    trigger: TriggerMode = attrs.field(
        default=TriggerMode.FINAL_TRANSCRIPTION, converter=trigger_mode
    )
    wait_for_end_of_speech: bool = True
    end_of_input: EndOfInput = attrs.field(
        default=EndOfInput.IF_UNANSWERED, converter=end_of_input_mode
    )
    model_errors: Literal["raise", "report"] = attrs.field(
        default="raise", validator=one_of("raise", "report")
    )
    emit_stats: bool = False
    emit_activity: bool = False
    track_playback: bool = False
    end_of_speech_timeout: float | None = None
    min_interruption_duration: float = 0.0
    min_interruption_words: int = 0
    false_interruption_timeout: float | None = None
    backchannels: tuple[str, ...] = attrs.field(
        default=DEFAULT_BACKCHANNELS, converter=backchannel_tuple
    )
    incomplete_turn_timeout: float = 2.0
    user_idle_timeout: float | None = None
    user_idle_prompt: str | None = None
    user_idle_retries: int = 1
    user_idle_end: bool = False
    input_buffer: int = attrs.field(default=64, validator=non_negative)
    output_buffer: int = attrs.field(default=64, validator=non_negative)

    recent_turns: int = attrs.field(default=100, validator=non_negative)
    recorder: Recorder | None = None
    tools: tuple[Tool, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(check_tools)
    )
    max_tool_rounds: int = attrs.field(default=4, validator=non_negative)

    _driver: Driver = attrs.field(init=False)
    _started: bool = attrs.field(init=False, default=False)
    # The context-manager form's channels and nursery.
    _send_in: trio.MemorySendChannel[Part] | None = attrs.field(init=False, default=None)
    _receive_out: trio.MemoryReceiveChannel[Part] | None = attrs.field(init=False, default=None)
    _stack: contextlib.AsyncExitStack | None = attrs.field(init=False, default=None)
    #: Output parts taken in a row without a schedule point (see `receive`).
    _ready_streak: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        tools = self.tools
        if tools is None:
            tools = check_tools(getattr(self.model, "tools", None) or ())
        if tools and not getattr(self.model, "supports_tools", True):
            raise ToolError(
                f"{type(self.model).__name__} cannot call tools:"
                " use a model that can (OpenAIChatModel, GeminiModel)"
            )
        policy = TurnPolicy(
            trigger=self.trigger,
            wait_for_end_of_speech=self.wait_for_end_of_speech,
            end_of_input=self.end_of_input,
            track_playback=self.track_playback,
            end_of_speech_timeout=self.end_of_speech_timeout,
            emit_activity=self.emit_activity,
            min_interruption_duration=self.min_interruption_duration,
            min_interruption_words=self.min_interruption_words,
            false_interruption_timeout=self.false_interruption_timeout,
            backchannels=self.backchannels,
            incomplete_turn_timeout=self.incomplete_turn_timeout,
            user_idle_timeout=self.user_idle_timeout,
            user_idle_prompt=self.user_idle_prompt,
            user_idle_retries=self.user_idle_retries,
            user_idle_end=self.user_idle_end,
        )
        self._driver = Driver(
            model=self.model if self.recorder is None else self.recorder.wrap(self.model),
            policy=policy,
            prompt=RollingPrompt(
                window=self.window,
                max_parts=self.max_parts,
                audio_wake_interval=self.audio_wake_interval,
            ),
            model_errors=self.model_errors,
            emit_stats=self.emit_stats,
            recent_turns=self.recent_turns,
            recorder=self.recorder,
            held_output=self.output_buffer,
            tools=tools,
            max_tool_rounds=self.max_tool_rounds,
        )

    # -- observing -----------------------------------------------------------

    def history(self) -> list[Part]:
        """The conversation kept in the prompt, oldest first (a copy)."""
        return self._driver.prompt.history()

    def timed_history(self) -> list[tuple[float, Part]]:
        """The history with the `trio.current_time` at which each part joined it."""
        return self._driver.prompt.timed_history()

    def statistics(self) -> SessionStatistics:
        """A snapshot of the session's counters."""
        driver = self._driver
        return SessionStatistics(
            turns=driver.turns,
            interrupted_turns=driver.interrupted,
            history_parts=len(driver.prompt),
            stashed_parts=len(driver.prompt.stashed),
            state=driver.policy.state.value,
            activity=driver.policy.activity.value,
            recent_turns=tuple(driver.recent),
            started_at=driver.started_at,
        )

    @property
    def started_at(self) -> float | None:
        """When the session started (`trio.current_time`), None before it ran."""
        return self._driver.started_at

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
        keeps what was delivered (of an answer still playing, what was heard)
        and everything that was stashed.
        """
        if self._started:
            raise RuntimeError("a LiveSession runs only once")
        self._started = True
        recorder = self.recorder
        if recorder is None:
            await self._driver.run(inbox, outbox, task_status=task_status)
            return
        # The session logs what it outputs itself, as a stage and in
        # ``async with`` alike.
        with recorder.session(self):
            await self._driver.run(inbox, recorder.outbox(outbox), task_status=task_status)

    def update_policy(self, **options: object) -> None:
        """Change turn-taking options during the conversation.

        These can change: ``min_interruption_duration``,
        ``min_interruption_words``, ``false_interruption_timeout``,
        ``backchannels``, ``incomplete_turn_timeout`` and
        ``end_of_speech_timeout`` (as in the constructor). Each is checked
        as the constructor checks it, all before any is changed; they apply
        from the next decision (speech already held as a possible
        interruption keeps the timers it started with). The session's
        attributes of the same names show the new values.

        Raises:
            ValueError: an option that cannot change, or a bad value; the
                message names the option, and nothing was changed.
        """
        for name in options:
            if name not in POLICY_UPDATES:
                allowed = ", ".join(sorted(POLICY_UPDATES))
                raise ValueError(f"{name!r} cannot be updated; these can: {allowed}")
        # A policy of its own checks (and converts) the values first.
        checked = TurnPolicy(**options)  # type: ignore[arg-type]
        policy = self._driver.policy
        for name in options:
            value = getattr(checked, name)
            setattr(policy, name, value)
            setattr(self, name, tuple(sorted(value)) if name == "backchannels" else value)

    def report_playback(self, turn: int, chars: int, *, finished: bool = False) -> None:
        """Say how much of turn ``turn``'s answer the listener has heard.

        ``chars`` counts characters of the turn's text output (TTS audio parts
        carry it as ``metadata["spoken_chars"]``). With ``finished=True`` the
        whole answer was heard. Only matters with ``track_playback=True``;
        reports for other turns are ignored.
        """
        if chars < 0:
            raise ValueError(f"chars must be >= 0, got {chars!r}")
        if self.recorder is not None:
            self.recorder.playback(turn, chars, finished=finished)
        self._driver.report_playback(turn, chars, finished=finished)

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

    def _inbox(self) -> trio.MemorySendChannel[Part]:
        send_in = self._send_in
        if send_in is None:
            raise RuntimeError("use 'async with LiveSession(...)' before sending")
        if self._driver.input_closed:
            raise SessionClosedError("the session no longer takes input")
        return send_in

    def _take_directly(self, part: Part) -> bool:
        # Plain input (audio, text) while the pump waits on an empty inbox:
        # nothing is queued ahead of it, so it is taken here, saving a task
        # switch per part. Any other part goes to the pump, and what follows
        # queues behind it.
        driver = self._driver
        if not driver.pump_waiting:
            return False
        if is_plain(part):
            if self.recorder is not None:
                self.recorder.input(part)
            driver.store(driver.policy.take_plain(part), trio.current_time())
            return True
        driver.pump_waiting = False
        return False

    async def send(self, part: Part) -> None:
        """Send one input part (waits while the input buffer is full).

        A start of speech cuts the running answer short at once, before it
        is queued: no model part is delivered after this call began (the
        policy still decides the part in order with the input ahead of it).
        With a minimum interruption (duration, words or a false-interruption
        timeout) it is queued like any part, and the policy decides.

        If cancelled, the part was not sent (a start of speech has still cut
        the running answer short).

        Raises:
            SessionClosedError: after `close_input`, or once the session ended.
        """
        send_in = self._inbox()
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._take_directly(part):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        if is_barge_in(part) and self._driver.policy.barge_in_at_once:
            await self._send_barge_in(send_in, part)
            return
        try:
            await send_in.send(part)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise SessionClosedError("the session no longer takes input") from None

    def send_nowait(self, part: Part) -> None:
        """Send one input part without waiting, as `send` would.

        Raises:
            trio.WouldBlock: the input buffer is full; nothing was sent (and
                a start of speech has not cut anything short).
            SessionClosedError: after `close_input`, or once the session ended.
        """
        send_in = self._inbox()
        if self._take_directly(part):
            return
        # With a minimum interruption, the policy decides when to cut.
        barge_in = is_barge_in(part) and self._driver.policy.barge_in_at_once
        if barge_in:
            stats = send_in.statistics()
            if stats.current_buffer_used >= stats.max_buffer_size and not (
                stats.tasks_waiting_receive
            ):
                raise trio.WouldBlock
            self._driver.cut_short(trio.current_time())
        try:
            send_in.send_nowait(part)
        except trio.WouldBlock:
            if barge_in:
                self._driver.fence.lower()
            raise
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            if barge_in:
                self._driver.fence.lower()
            raise SessionClosedError("the session no longer takes input") from None

    async def send_all(self, parts: Iterable[Part]) -> None:
        """Send the parts in order, as `send` would, with one checkpoint for all.

        It waits only while the input buffer is full.

        If cancelled, the parts before the one it was waiting to send were
        sent, and the rest were not.

        Raises:
            SessionClosedError: after `close_input`, or once the session ended.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        for part in parts:
            try:
                self.send_nowait(part)
            except trio.WouldBlock:
                await self.send(part)
                waited = True
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _send_barge_in(self, send_in: trio.MemorySendChannel[Part], part: Part) -> None:
        # The running answer is cut short before the part is queued; the
        # fence holds any output until the pump has decided it.
        driver = self._driver
        driver.cut_short(trio.current_time())
        queued = False
        try:
            await send_in.send(part)
            queued = True
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise SessionClosedError("the session no longer takes input") from None
        finally:
            if not queued:
                driver.fence.lower()

    def close_input(self) -> None:
        """End the input: the session finishes its last answer, then ends its output.

        Parts already sent are taken first; `send`, `send_nowait` and
        `send_all` raise `SessionClosedError` from now on. In the task form
        (`run`), the input ends the same way once ``inbox`` holds no more
        parts, whether or not ``inbox`` was closed.
        """
        self._driver.close_input()
        if self._send_in is not None:
            self._send_in.close()

    async def receive(self) -> Part:
        """The next output part; raises `trio.EndOfChannel` once the session ended.

        A part that is already waiting is returned at once: this is always
        a cancel point, but a schedule point only once per 64 such parts in
        a row (a turn's closing markers reach the listener together).

        If cancelled, no part was taken.
        """
        receive_out = self._receive_out
        if receive_out is None:
            raise RuntimeError("use 'async with LiveSession(...)' before receiving")
        # A part that is already there is taken without a trip through the
        # scheduler (the closing markers of a turn come three at once), but
        # with a cancel point, and with a full checkpoint at least once per
        # batch, so a listener never starves the other tasks.
        await trio.lowlevel.checkpoint_if_cancelled()
        part: Part | None = None
        if self._ready_streak < _OUTPUT_BATCH:
            try:
                part = receive_out.receive_nowait()
            except trio.WouldBlock:
                part = None
        if part is None:
            self._ready_streak = 0
            part = await receive_out.receive()
        else:
            self._ready_streak += 1
        return part

    def __aiter__(self) -> LiveSession:
        return self

    async def __anext__(self) -> Part:
        """The next output part; the iteration ends when the session ended."""
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
