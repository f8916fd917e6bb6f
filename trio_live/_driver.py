"""The mechanism under `LiveSession`: the driver that carries out the policy's actions.

The policy (`trio_live._policy`) decides; this module carries its actions out.
Each mechanism is here once:

* a generation is a task in the session's nursery running the turn model
  inside its own `trio.CancelScope`; barge-in is ``scope.cancel()`` followed
  by waiting on the generation's ``exited`` event (`Driver._carry_out`), so
  the next turn never starts while the old one tears down;
* the next generation is started as soon as the previous turn's first
  output part is out (or that generation exited), so re-reading the history
  never delays the answer in flight (pre-streaming): it reads the open prompt
  as it grows, and its output is held back until its own turn is triggered;
* a start of speech that `LiveSession.send` takes cancels the running
  generation there and then (`Driver.cut_short`), and the `Fence` holds all
  output until the pump has decided that part;
* prompt and stash actions are carried out synchronously in one place
  (`Driver.store`), whether they come through the pump or `LiveSession.send`;
* what a generation delivered joins the history, and the stash is flushed,
  in the ``finally`` around the model call, as the policy's `TurnEnd`
  verdict says: whatever ends the generation (it finishes, fails, or is
  cancelled), the conversation stays whole; when the whole session ends, an
  answer still playing joins as far as it was heard, and the stash after it
  (its ``turn_complete`` goes out if the output has room);
* the closing markers the verdict lists are sent after the cancel scope has
  been left, so a barge-in cannot cut them off, and always after the last
  output part of their generation;
* tool calls (`trio_live._toolruns`) start as they are delivered, each in
  its own scope in the session's nursery; once the model's call ends, the
  generation waits for their outcomes, sends the results and calls the
  model again on the prompt, the answer so far and the results (up to
  ``max_tool_rounds`` times). When the answer ends first, interruptible
  calls are cancelled and the others orphaned; every call joins the
  history with its one outcome (an orphan's call and result join together
  when it ends, stashed while an answer runs).
"""

from __future__ import annotations

import collections
import contextlib
import math
from typing import Literal

import attrs
import trio

from ._actions import (
    AWAIT,
    BARGE_IN,
    CANCEL,
    CLOSE_INPUT,
    DROP_PENDING,
    FINISH_PLAYBACK,
    STOP_PLAYBACK,
    TRIGGER,
    AddToPrompt,
    Effect,
    Emit,
    Keep,
    Stash,
    TurnEnd,
)
from ._chain import Outbox
from ._generation import Fence, Generation, GenerationOutput, heard_prefix
from ._groups import raise_single
from ._model import PromptStream, TurnModel
from ._parts import (
    RESERVED_SUBSTREAMS,
    START_OF_SPEECH_MIMETYPE,
    TRANSCRIPTION_SUBSTREAM,
    TURN_STATS_MIMETYPE,
    Part,
    end_of_turn,
    error_part,
    is_tool_call,
    is_tool_result,
    read_tool_call,
    read_tool_result,
    status_part,
    turn_complete,
)
from ._policy import TurnPolicy
from ._prompt import Cursor, RollingPrompt
from ._record import Recorder
from ._stats import TurnStats
from ._toolruns import ToolPrompt, ToolRun, ToolRunner, settle
from ._tools import Tool

# How many ready input parts the pump takes before it yields to other tasks.
_BATCH = 64


def _with_outcomes(gen: Generation, parts: list[Part]) -> list[Part]:
    # Every call keeps exactly one outcome: a result not sent yet goes right
    # after its call; a call still running (orphaned) is left out for now.
    runs = {run.call.id: run for run in gen.tool_runs}
    results = {read_tool_result(p).id for p in parts if is_tool_result(p)}
    kept: list[Part] = []
    for part in parts:
        if is_tool_call(part):
            run = runs.get(read_tool_call(part).id)
            if run is None or run.outcome is None:
                continue
            kept.append(part)
            if run.call.id not in results:
                kept.append(run.result_part())
        elif is_tool_result(part):
            run = runs.get(read_tool_result(part).id)
            if run is not None and not run.orphaned:
                kept.append(part)
        else:
            kept.append(part)
    return kept


def is_barge_in(part: Part) -> bool:
    """True for a start of speech the policy reads as such (not on a reserved substream)."""
    return part.mimetype == START_OF_SPEECH_MIMETYPE and (
        not part.substream
        or (part.substream not in RESERVED_SUBSTREAMS and part.substream != TRANSCRIPTION_SUBSTREAM)
    )


@attrs.define(eq=False)
class Driver:
    """Runs one session's generations as its `TurnPolicy` decides."""

    model: TurnModel
    policy: TurnPolicy
    prompt: RollingPrompt
    model_errors: Literal["raise", "report"]
    emit_stats: bool
    recent_turns: int
    recorder: Recorder | None = None
    #: How many parts a pre-started generation may send before its trigger.
    held_output: int = 0
    #: The tools the model may call, and how many times one answer may call them.
    tools: tuple[Tool, ...] = ()
    max_tool_rounds: int = 4
    #: True while the pump waits on an empty inbox (see `LiveSession.send`).
    pump_waiting: bool = attrs.field(init=False, default=False)
    #: When `run` started.
    started_at: float | None = attrs.field(init=False, default=None)
    turns: int = attrs.field(init=False, default=0)
    interrupted: int = attrs.field(init=False, default=0)
    recent: collections.deque[TurnStats] = attrs.field(init=False)
    #: Set by `close_input`: the input ends once the inbox holds no more parts.
    input_closed: bool = attrs.field(init=False, default=False)
    _wait_scope: trio.CancelScope | None = attrs.field(init=False, default=None)
    #: Raised while a start of speech `cut_short` queued waits for the pump.
    fence: Fence = attrs.field(init=False, factory=Fence)
    _generations: int = attrs.field(init=False, default=0)
    _current: Generation | None = attrs.field(init=False, default=None)
    _pending: Generation | None = attrs.field(init=False, default=None)
    _playing: Generation | None = attrs.field(init=False, default=None)
    _outbox: Outbox | None = attrs.field(init=False, default=None)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None)
    _runner: ToolRunner | None = attrs.field(init=False, default=None)
    #: Late tool results that asked for an answer, not yet turned into one.
    _late_answers: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.recent = collections.deque(maxlen=self.recent_turns)

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: Outbox,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Carry out `LiveSession.run`."""
        self.started_at = trio.current_time()
        self._outbox = outbox
        with outbox, inbox:
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    if self.tools:
                        self._runner = ToolRunner(
                            tools={tool.name: tool for tool in self.tools},
                            max_rounds=self.max_tool_rounds,
                            nursery=nursery,
                            emit=lambda part: self._emit_now([part]),
                            on_late=self._late,
                        )
                    self._pending = self._spawn()
                    task_status.started()
                    await self._pump(inbox)
                    if self.recorder is not None:
                        self.recorder.input_ended()
                    for effect in self.policy.input_ended():
                        await self._carry_out(effect)
                    # The policy may already count the last turn as ended
                    # while its generation still sends the closing markers
                    # into a full output: rule 11 lets those out too.
                    current = self._current
                    if current is not None:
                        await current.exited.wait()
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                raise_single(group)
            finally:
                # However the session ends, nothing the user sent is lost.
                if self._playing is not None:
                    playing = self._take_playing()
                    self._commit(playing, playing.heard)
                    # Its turn is over: say so if the output still takes it.
                    with contextlib.suppress(
                        trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError
                    ):
                        outbox.send_nowait(turn_complete().with_metadata(**playing.tag))
                self.prompt.apply_stash(trio.current_time())
                self.policy.closed()

    async def _pump(self, inbox: trio.MemoryReceiveChannel[Part]) -> None:
        receive_nowait = inbox.receive_nowait
        policy = self.policy
        decide = policy.receive
        store = self.store
        carry_out = self._carry_out
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
            if part is None and self._late_answers and not self.input_closed:
                # A late tool result asked for an answer: as if the user ended a turn.
                self._late_answers -= 1
                part = end_of_turn()
            if part is None:
                if self.input_closed:
                    return
                taken = 0
                # Only the context-manager form's `send` reads this flag.
                self.pump_waiting = True
                try:
                    # Wait for input, or until the policy has something due
                    # (or `close_input` ends the wait).
                    deadline = policy.deadline
                    with trio.CancelScope(
                        deadline=math.inf if deadline is None else deadline
                    ) as scope:
                        self._wait_scope = scope
                        part = await inbox.receive()
                except trio.EndOfChannel:
                    return
                finally:
                    self.pump_waiting = False
                    self._wait_scope = None
                if part is None and self.input_closed:
                    return
                if part is None and self._late_answers:
                    self._late_answers -= 1
                    part = end_of_turn()
            else:
                taken += 1
                if taken >= _BATCH:
                    taken = 0
                    await trio.lowlevel.checkpoint()
            now = trio.current_time()
            if part is None:
                await self._tick(now)
            else:
                if self.recorder is not None:
                    self.recorder.input(part)
                for action in decide(part, now):
                    if isinstance(action, (AddToPrompt, Stash)):
                        store(action, now)
                    else:
                        await carry_out(action)
                if self.fence.count and is_barge_in(part):
                    self.fence.lower()
            deadline = policy.deadline
            if deadline is not None and trio.current_time() >= deadline:
                # Input that never lets the pump wait must not delay what is due.
                await self._tick(trio.current_time())

    async def _tick(self, now: float) -> None:
        # A timed rule may add to the prompt (the idle user's prompt).
        for action in self.policy.tick(now):
            if isinstance(action, (AddToPrompt, Stash)):
                self.store(action, now)
            else:
                await self._carry_out(action)

    def _timers_changed(self) -> None:
        # A timer the policy started outside the pump (the idle user's, once
        # an answer is over) shortens the pump's wait.
        scope, deadline = self._wait_scope, self.policy.deadline
        if scope is not None and deadline is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def close_input(self) -> None:
        """End the input after the parts already queued (either form of the session)."""
        self.input_closed = True
        self.pump_waiting = False
        scope = self._wait_scope
        if scope is not None:
            scope.cancel()

    def cut_short(self, now: float) -> None:
        """A start of speech is about to be queued: silence every generation now.

        The running generation is cancelled here, synchronously (the pump's
        `BARGE_IN` later finds it cancelled, and the policy's verdict on it
        is the same); the fence holds any other generation's output until
        the pump has decided the part (call `Fence.lower` if it is not queued
        after all).
        """
        self.fence.count += 1
        current = self._current
        if current is not None and not current.exited.is_set():
            current.cancel(barge_in_at=now)

    def store(self, action: AddToPrompt | Stash, now: float) -> None:
        """Carry out a prompt or stash action (the one place that does)."""
        if isinstance(action, AddToPrompt):
            self.prompt.add(action.part, now)
        else:
            self.prompt.stash(action.part)

    async def _carry_out(self, effect: Effect) -> None:
        if isinstance(effect, Emit):
            assert self._outbox is not None
            await self._outbox.send(effect.part)
            return
        current = self._current
        if effect is TRIGGER:
            if current is not None:
                await current.exited.wait()
            gen = self._pending
            assert gen is not None
            now = trio.current_time()
            closed = self.prompt.finalize(now)
            self._current = gen
            # The next call starts once this turn's first part is out: its
            # reading of the history does not delay this answer.
            self._pending = self._spawn(after=gen.spoke)
            gen.release(self.policy.turn, prompt_parts=closed.size, now=now)
            output = gen.output
            if output is not None and output.flushing():
                assert self._nursery is not None
                self._nursery.start_soon(self._flush, gen, output)
        elif effect is BARGE_IN or effect is CANCEL:
            if current is not None and not current.exited.is_set():
                current.cancel(barge_in_at=trio.current_time() if effect is BARGE_IN else None)
                await current.exited.wait()
        elif effect is AWAIT:
            if current is not None:
                await current.exited.wait()
        elif effect is DROP_PENDING:
            pending = self._pending
            assert pending is not None
            pending.cancel()
            await pending.exited.wait()
        elif effect is STOP_PLAYBACK or effect is FINISH_PLAYBACK:
            playing = self._take_playing()
            self._commit(playing, playing.heard if effect is STOP_PLAYBACK else None)
            # The markers the policy emits next (``interrupted``,
            # ``turn_complete``) follow the generation's own (its
            # ``answer_complete``), which it may still be sending.
            await playing.exited.wait()
        elif effect is CLOSE_INPUT:
            self.close_input()

    def _take_playing(self) -> Generation:
        playing, self._playing = self._playing, None
        assert playing is not None
        return playing

    def report_playback(self, turn: int, chars: int, *, finished: bool) -> None:
        """Carry out `LiveSession.report_playback`."""
        for gen in (self._current, self._playing):
            if gen is not None and gen.turn == turn:
                gen.heard = max(gen.heard, chars)
        if finished:
            after: trio.Event | None = None
            parts = []
            for effect in self.policy.playback_finished(turn):
                if effect is FINISH_PLAYBACK:
                    playing = self._take_playing()
                    self._commit(playing, None)
                    after = playing.exited
                elif isinstance(effect, Emit):
                    parts.append(effect.part)
            self._emit_now(parts, after)
            self._timers_changed()

    def _emit_now(self, parts: list[Part], after: trio.Event | None = None) -> None:
        # For a report from synchronous code: in order, at once if there is
        # room (and the generation ``after`` stands for has sent its markers).
        if not parts:
            return
        outbox = self._outbox
        assert outbox is not None
        assert self._nursery is not None
        if after is None or after.is_set():
            for n, part in enumerate(parts):
                try:
                    outbox.send_nowait(part)
                except trio.WouldBlock:
                    parts = parts[n:]
                    break
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return
            else:
                return
        self._nursery.start_soon(self._send_later, parts, after)

    async def _send_later(self, parts: list[Part], after: trio.Event | None) -> None:
        outbox = self._outbox
        assert outbox is not None
        if after is not None:
            await after.wait()
        try:
            for part in parts:
                await outbox.send(part)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    # -- generations ---------------------------------------------------------

    def _spawn(self, after: trio.Event | None = None) -> Generation:
        self._generations += 1
        gen = Generation(number=self._generations, cursor=self.prompt.pending(), after=after)
        assert self._nursery is not None
        self._nursery.start_soon(self._generate, gen, name=f"trio_live generation {gen.number}")
        return gen

    def _output_started(self, turn: int) -> list[Part]:
        return [e.part for e in self.policy.output_started(turn) if isinstance(e, Emit)]

    async def _flush(self, gen: Generation, output: GenerationOutput) -> None:
        # The held output goes out in its own scope, which a cancel of the
        # generation cancels too: what is not out by then is dropped.
        with trio.CancelScope() as scope:
            gen.flush_scope = scope
            if gen.scope.cancel_called:
                scope.cancel()
            await output.flush()

    async def _generate(self, gen: Generation) -> None:
        outbox = self._outbox
        assert outbox is not None
        output = GenerationOutput(
            gen,
            outbox,
            self._output_started,
            self.fence,
            hold=self.held_output,
            on_tool_call=None if self._runner is None else self._tool_call,
        )
        gen.output = output
        finished = False
        verdict = None
        try:
            try:
                with gen.scope:
                    if gen.after is not None and not gen.after.is_set():
                        await gen.after.wait()
                    prompt = (
                        ToolPrompt(gen.cursor, self.tools)
                        if self.tools
                        else PromptStream(gen.cursor)
                    )
                    while True:
                        try:
                            await self.model(prompt, output)
                        except Exception as error:
                            if self.model_errors == "raise":
                                raise
                            gen.error = error
                        # A model that ended before its turn came still answers
                        # it only once triggered (with nothing more to say).
                        if not gen.released.is_set():
                            await gen.released.wait()
                        if output.flush_due:
                            await output.wait_flushed()
                        if gen.error is not None or not await self._tool_results(gen, output):
                            break
                        gen.model_round += 1
                        prompt = self._tool_prompt(gen)
                    finished = True
            finally:
                gen.stopped_at = trio.current_time()
                if gen.released.is_set():
                    settle(gen.tool_runs)
                    verdict = self._end_turn(gen, finished=finished)
            if verdict is not None:
                await self._close_turn(gen, verdict, outbox)
        finally:
            gen.spoke.set()
            gen.exited.set()

    def _end_turn(self, gen: Generation, *, finished: bool) -> TurnEnd:
        # Synchronous on purpose: runs in `finally`, possibly cancelled.
        verdict = self.policy.generation_ended(
            gen.turn, cancelled=gen.scope.cancel_called, finished=finished
        )
        if verdict.keep is Keep.LATER:
            # Still being played: the answer joins once we know what was heard.
            self._playing = gen
        else:
            self._commit(gen, gen.heard if verdict.keep is Keep.HEARD else None)
        self._timers_changed()
        return verdict

    def _commit(self, gen: Generation, heard: int | None) -> None:
        # The answer (as far as it was heard), then the stash.
        now = trio.current_time()
        add = self.prompt.add
        parts = gen.delivered if heard is None else heard_prefix(gen.delivered, heard)
        if gen.tool_runs:
            parts = _with_outcomes(gen, parts)
        for part in parts:
            add(part, now)
        self.prompt.apply_stash(now)

    # -- tools -----------------------------------------------------------------

    def _tool_call(self, gen: Generation, part: Part) -> Part | None:
        assert self._runner is not None
        run = self._runner.start(part, turn=gen.turn, model_round=gen.model_round)
        if run is None:
            return None
        gen.tool_runs.append(run)
        return run.part

    async def _tool_results(self, gen: Generation, output: GenerationOutput) -> bool:
        """Wait for this round's calls and send their results; True if there were any."""
        sent = {read_tool_result(p).id for p in gen.delivered if is_tool_result(p)}
        waiting = [run for run in gen.tool_runs if run.call.id not in sent]
        if not waiting:
            return False
        for run in waiting:
            await run.done.wait()
        for run in waiting:
            await output.send(run.result_part())
        # Past the last round the calls were refused: the model is not asked again.
        return gen.model_round < self.max_tool_rounds

    def _tool_prompt(self, gen: Generation) -> PromptStream:
        # The turn's prompt again, then the answer so far (calls and results).
        closed = gen.cursor
        end = closed._end
        assert end is not None
        parts = closed._parts[closed._first - closed._base : end - closed._base]
        parts += gen.delivered
        return ToolPrompt(Cursor(None, 0, parts=parts, base=0, end=len(parts)), self.tools)

    def _late(self, run: ToolRun) -> None:
        # An orphaned call ended: it joins the history with its result, after
        # the answer that runs now, if one does (synchronous).
        now = trio.current_time()
        current = self._current
        busy = self._playing is not None or (
            current is not None and current.released.is_set() and not current.exited.is_set()
        )
        for part in (run.part, run.result_part()):
            if busy:
                self.prompt.stash(part)
            else:
                self.prompt.add(part, now)
        if run.answer_late and not self.input_closed:
            self._late_answers += 1
            scope = self._wait_scope
            if scope is not None:
                scope.cancel()

    async def _close_turn(self, gen: Generation, verdict: TurnEnd, outbox: Outbox) -> None:
        # Back to back, without a scheduler round trip unless the output is
        # full (a cancel of the whole session still lands here).
        await trio.lowlevel.checkpoint_if_cancelled()
        markers = verdict.markers
        if gen.error is not None:
            markers = (error_part(gen.error).with_metadata(**gen.tag), *markers)
        for marker in markers:
            try:
                outbox.send_nowait(marker)
            except trio.WouldBlock:
                await outbox.send(marker)
        stats = gen.stats(ended_at=trio.current_time(), cancelled=verdict.interrupted)
        self.turns += 1
        self.interrupted += verdict.interrupted
        self.recent.append(stats)
        if self.emit_stats:
            await outbox.send(status_part(stats.as_dict(), mimetype=TURN_STATS_MIMETYPE))
