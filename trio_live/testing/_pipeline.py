"""Replaying a recorded conversation through the voice pipeline, not only the session.

A log recorded with `trio_live.Recorder.microphone` at the head of the chain
(format version 3) holds the raw microphone input, before voice activity
detection and speech to text. `replay_pipeline` feeds it, at its recorded
times, through the voice stages it is given (this layer does not build them:
``[VadStage(), SpeechToText(...)]`` from `trio_live.voice`) into a
`LiveSession` with the recorded options, against the recorded answers, and
returns the replay's own log: what reached the session (the transcriptions)
and what it output, with times.

The listener's side is replayed as recorded, as `replay` does: the playback
reports at their times, and the echo guard (``model_speaking`` on each stage
that has it) turned on and off when it was. The stages do their real work;
on a `WorkClock` (as `replay_pipeline` runs) that work takes no virtual time,
as in ``trio-live demo --fast``.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from typing import Any

import trio
import trio.testing

from .._chain import Stage, run_chain
from .._model import TurnModel
from .._parts import Part
from .._record import Recorder
from .._replay_view import ReplayLog
from .._session import LiveSession
from ._clock import WorkClock
from ._replay import LogSource, ReplayModel, read_log


async def replay_pipeline_async(
    log: LogSource, stages: Sequence[Stage], model: TurnModel | None = None, **options: Any
) -> ReplayLog:
    """Replay ``log``'s microphone through ``stages`` and a session, in this trio run.

    Args:
        log: a log with microphone lines (`Recorder.microphone`).
        stages: fresh voice stages, in order (the voice activity stage
            first); a session with the recorded options (``options``
            overriding them) follows them.
        model: the turn model (default: a `ReplayModel` of the recorded answers).
        options: `LiveSession` options to change.

    Returns the replay's log (times after the replay's start): its
    ``inputs`` are what reached the session, its ``outputs`` what it output.

    Raises:
        ValueError: the log holds no microphone input.
        ReplayLogError: for a truncated, corrupt or newer-version log.
    """
    recorded = read_log(log)
    microphone = recorded.microphone
    if not microphone:
        raise ValueError(
            "the log holds no microphone input (recorded without Recorder.microphone):"
            " replay it at the session with replay()"
        )
    if model is None:
        model = ReplayModel(recorded.calls, session_end=recorded.end_at)
    if isinstance(model, ReplayModel) and model.origin is None:
        model.origin = trio.current_time()
    text = io.StringIO()
    recorder = Recorder(text, voice=recorded.header.voice)
    session = LiveSession(model, **{**recorded.options, **options}, recorder=recorder)
    guarded = [stage for stage in stages if hasattr(stage, "model_speaking")]
    # What the replay does, in the log's order: the microphone's parts, its
    # end, and the listener's side (playback reports, the echo guard).
    script = [e for e in recorded.events if e.kind in ("mic", "mic_end", "playback", "echo_guard")]
    start = trio.current_time()
    send_mic, receive_mic = trio.open_memory_channel[Part](16)
    send_out, receive_out = trio.open_memory_channel[Part](64)

    async def play() -> None:
        with send_mic:
            for event in script:
                await trio.sleep_until(start + event.at)
                if event.kind == "mic":
                    assert event.part is not None
                    await send_mic.send(event.part)
                    continue
                if event.kind == "mic_end":
                    send_mic.close()
                    continue
                # The listener acted on what the stages made of the audio
                # so far (a barge-in turns the echo guard off at its very
                # instant): they finish their work first.
                await _settled()
                if event.kind == "echo_guard":
                    for stage in guarded:
                        stage.model_speaking = bool(event.on)
                else:
                    assert event.turn is not None
                    assert event.chars is not None
                    session.report_playback(event.turn, event.chars, finished=bool(event.finished))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_chain, [*stages, session], receive_mic, send_out)
        nursery.start_soon(play)
        with receive_out:
            async for _ in receive_out:
                pass
        nursery.cancel_scope.cancel()
    return ReplayLog.parse(io.StringIO(text.getvalue()))


async def _settled() -> None:
    # Every other task waits (and, on a WorkClock, no work runs).
    clock = trio.lowlevel.current_clock()
    if isinstance(clock, WorkClock):
        await clock.settled()
    else:
        await trio.testing.wait_all_tasks_blocked()


def replay_pipeline(
    log: LogSource,
    stages: Sequence[Stage],
    model: TurnModel | None = None,
    *,
    clock: WorkClock | None = None,
    **options: Any,
) -> ReplayLog:
    """`replay_pipeline_async` in its own `trio.run`, on a `WorkClock`.

    The stages' real work (speech recognized in worker threads) takes no
    virtual time; the rest of the conversation takes no real time. Pass a
    ``clock`` to watch more thread limiters.
    """
    run = functools.partial(replay_pipeline_async, log, stages, model, **options)
    return trio.run(run, clock=clock or WorkClock())
