"""Replaying a recorded conversation on the mock clock."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import IO, Any

import attrs
import trio
import trio.testing

from .._errors import LiveError
from .._model import PromptStream, TurnModel
from .._parts import Part
from .._replay_view import RecordedCall, ReplayLog, describe, since_start
from .._session import LiveSession

Timeline = list[tuple[float, Part]]
LogSource = ReplayLog | str | os.PathLike[str] | IO[str]


def read_log(source: LogSource, *, partial: bool = False) -> ReplayLog:
    """Read a log from a path or a text file object (a `ReplayLog` is returned as is).

    Raises:
        ReplayLogError: for a truncated, corrupt or newer-version log.
    """
    if isinstance(source, ReplayLog):
        return source
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as file:
            return ReplayLog.parse(file, partial=partial)
    return ReplayLog.parse(source, partial=partial)


def _replayed_error(name: str, message: str) -> Exception:
    # The same type name and message as the recorded error, so its error part
    # (`error_part` keeps only these two) is the same.
    kind: type[Exception] = type(name, (LiveError,), {"__module__": "trio_live.testing"})
    return kind(message)


@attrs.define(eq=False)
class ReplayModel:
    """A turn model that gives back a log's recorded answers, with their timings.

    Call N reads its whole prompt, as a real model would, then sends call N's
    recorded parts at their recorded delays after the end of its prompt (the
    trigger: so an answer that comes sooner or later moves with its turn).
    A call that never saw its prompt end keeps its delays from the call's
    start. It then ends when the recorded call ended (raising the recorded
    error, if any). A call that was cancelled waits to be cancelled again
    after its last part, until the recorded session's end at the latest
    (``session_end`` seconds after ``origin``, which `replay` sets to the
    replay's start). Calls past the recorded ones read their prompt and send
    nothing.
    """

    calls: Sequence[RecordedCall]
    session_end: float | None = None
    origin: float | None = None
    prompts: list[list[Part]] = attrs.field(init=False, factory=list)

    async def __call__(self, prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        """Replay the next recorded call."""
        number = len(self.prompts)
        started = trio.current_time()
        parts: list[Part] = []
        self.prompts.append(parts)
        parts.extend([part async for part in prompt])
        if number >= len(self.calls):
            return
        call = self.calls[number]
        if call.prompt_end_at is not None:
            base = trio.current_time() - call.prompt_end_at
        else:
            base = started - call.started_at
        for at, part in call.outputs:
            await trio.sleep_until(base + at)
            await output.send(part)
        if call.ended_at is not None:
            await trio.sleep_until(base + call.ended_at)
        end, origin = self.session_end, self.origin
        if call.outcome == "cancelled" and end is not None and origin is not None:
            await trio.sleep_until(origin + end)
        if call.outcome == "error" and call.error is not None:
            raise _replayed_error(*call.error)


async def replay_async(log: LogSource, model: TurnModel | None = None, **options: Any) -> Timeline:
    """Replay ``log`` in this trio run (on its clock): what the session output, with times.

    The recorded inputs (and playback reports) are sent at their recorded
    times, into a `LiveSession` with the recorded options (``options``
    overrides them, e.g. ``trigger="end_of_speech"``), against the recorded
    answers (a `ReplayModel`) or ``model``. The input ends when it ended in
    the recording. Times are seconds after the replay's start, rounded to the
    microsecond as in the log; so are those in statistics parts (`emit_stats`),
    as the log holds them.
    """
    recorded = read_log(log)
    settings = {**recorded.options, **options}
    if model is None:
        model = ReplayModel(recorded.calls, session_end=recorded.end_at)
    if isinstance(model, ReplayModel) and model.origin is None:
        model.origin = trio.current_time()
    session = LiveSession(model, **settings)
    events: list[tuple[float, int, Any]] = [
        (event.at, index, event)
        for index, event in enumerate(recorded.events)
        if event.kind in ("input", "playback")
    ]
    input_end = recorded.input_end_at
    start = trio.current_time()
    outputs: Timeline = []

    async def feed() -> None:
        for at, _, event in events:
            await trio.sleep_until(start + at)
            if event.kind == "input":
                await session.send(event.part)
            else:
                session.report_playback(event.turn, event.chars, finished=event.finished)
        if input_end is not None:
            await trio.sleep_until(start + input_end)
        session.close_input()

    async with session, trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        # At the log's resolution, so that a faithful replay equals the log.
        outputs.extend(
            [
                (round(trio.current_time() - start, 6), since_start(part, start))
                async for part in session
            ]
        )
    return outputs


def replay(log: LogSource, model: TurnModel | None = None, **options: Any) -> Timeline:
    """`replay_async` in its own `trio.run`, on a `trio.testing.MockClock` that jumps.

    For a plain synchronous test; the conversation takes no real time.
    """
    clock = trio.testing.MockClock(autojump_threshold=0)
    run = functools.partial(replay_async, log, model, **options)
    return trio.run(run, clock=clock)


def recorded_outputs(log: LogSource) -> Timeline:
    """What the listener got in the recording, with times."""
    return read_log(log).outputs


def _row(at: float, part: Part) -> str:
    return f"{at:9.3f} s  {describe(part)}"


def _same(a: tuple[float, Part], b: tuple[float, Part], tolerance: float) -> bool:
    return abs(a[0] - b[0]) <= tolerance and a[1] == b[1]


def conversation_diff(
    expected: Timeline,
    got: Timeline,
    *,
    tolerance: float = 1e-6,
    context: int = 3,
    label: str = "output",
) -> str | None:
    """Where two timelines first differ, readably; None if they are the same.

    Times match within ``tolerance`` seconds; parts must be equal. ``label``
    names what the timelines hold (``"output"``, ``"input"``).
    """
    for index in range(max(len(expected), len(got))):
        want = expected[index] if index < len(expected) else None
        have = got[index] if index < len(got) else None
        if want is not None and have is not None and _same(want, have, tolerance):
            continue
        at = min(x[0] for x in (want, have) if x is not None)
        lines = [f"the conversations diverge at {label} {index}, t={at:.3f} s:"]
        lines.extend(
            f"  same     {_row(*row)}" for row in expected[max(0, index - context) : index]
        )
        lines.append(f"  expected {_row(*want) if want else '(nothing more)'}")
        lines.append(f"  got      {_row(*have) if have else '(nothing more)'}")
        if want is not None and have is not None and want[1] == have[1]:
            lines.append(f"  (the same part, {have[0] - want[0]:+.6f} s off)")
        lines.append(f"  ({len(expected)} {label}s expected, {len(got)} got)")
        return "\n".join(lines)
    return None


def assert_same_conversation(
    expected: Timeline | LogSource,
    got: Timeline | LogSource,
    *,
    tolerance: float = 1e-6,
    inputs: bool = False,
) -> None:
    """Fail, with the first divergence, if two conversations' outputs differ.

    Either side is an output timeline (from `replay`, `play_timeline`) or a
    log (its recorded output; `replay_pipeline` returns one). With
    ``inputs``, both sides are logs and what reached the session (the audio,
    the speech markers and the transcriptions of a voice pipeline) is
    compared first.
    """
    if inputs:
        if isinstance(expected, list) or isinstance(got, list):
            raise TypeError("inputs=True compares two logs, not output timelines")
        diff = conversation_diff(
            read_log(expected).inputs, read_log(got).inputs, tolerance=tolerance, label="input"
        )
        if diff is not None:
            raise AssertionError(diff)
    diff = conversation_diff(_timeline(expected), _timeline(got), tolerance=tolerance)
    if diff is not None:
        raise AssertionError(diff)


def _timeline(value: Timeline | LogSource) -> Timeline:
    if isinstance(value, list):
        return value
    return read_log(value).outputs
