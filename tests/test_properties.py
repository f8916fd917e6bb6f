"""Guarantees of the live session over random interleavings (hypothesis)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_live import (
    EndOfInput,
    LiveSession,
    Part,
    TriggerMode,
    audio_part,
    end_of_speech,
    end_of_turn,
    is_interrupted,
    is_turn_complete,
    start_of_speech,
    status_part,
    text_part,
    transcription,
)
from trio_live.testing import ScriptedModel, play_timeline

KINDS = ["text", "audio", "eot", "eot_text", "sos", "eos", "partial", "final", "status"]


def make_part(kind: str, n: int) -> Part:
    tag = f"u{n}"
    if kind == "text":
        return text_part(tag)
    if kind == "audio":
        return audio_part(n.to_bytes(4, "little"))
    if kind == "eot":
        return end_of_turn()
    if kind == "eot_text":
        return end_of_turn(tag)
    if kind == "sos":
        return start_of_speech()
    if kind == "eos":
        return end_of_speech()
    if kind == "partial":
        return transcription(tag, final=False)
    if kind == "final":
        return transcription(tag, final=True)
    return status_part({"n": n})


def expected_user_parts(timeline: list[tuple[float, Part]]) -> list[Any]:
    """What must end up in the history from the user, in order."""
    expected: list[Any] = []
    for _, part in timeline:
        if part.substream == "status" or part.mimetype.startswith("application/"):
            continue
        if part.substream == "transcription":
            if part.metadata.get("final") is True:
                expected.append(part.content)
            continue
        if part.metadata.get("end_of_turn"):
            if part.content:
                expected.append(part.content)
            continue
        expected.append(part.content)
    return expected


events = st.lists(
    st.tuples(st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.2, 1.0]), st.sampled_from(KINDS)),
    max_size=25,
)
replies = st.lists(st.lists(st.sampled_from(["a", "b", "c"]), max_size=4), min_size=1, max_size=4)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    events=events,
    replies=replies,
    first_delay=st.sampled_from([0.0, 0.01, 0.1, 0.5]),
    part_delay=st.sampled_from([0.0, 0.02, 0.3]),
    failing=st.sets(st.integers(0, 5), max_size=2),
    trigger=st.sampled_from(list(TriggerMode)),
    end_mode=st.sampled_from(list(EndOfInput)),
    buffer=st.sampled_from([0, 1, 64]),
    track=st.booleans(),
    timeout=st.sampled_from([None, 0.1, 1.0]),
    min_duration=st.sampled_from([0.0, 0.0, 0.1, 0.5]),
    min_words=st.sampled_from([0, 0, 1, 2]),
    false_timeout=st.sampled_from([None, None, 0.3]),
    idle=st.sampled_from([None, None, 0.5, 2.0]),
    idle_prompt=st.sampled_from([None, "still there?"]),
    idle_retries=st.sampled_from([1, 2]),
)
def test_conversation_guarantees(
    events: list[tuple[float, str]],
    replies: list[list[str]],
    first_delay: float,
    part_delay: float,
    failing: set[int],
    trigger: TriggerMode,
    end_mode: EndOfInput,
    buffer: int,
    track: bool,
    timeout: float | None,
    min_duration: float,
    min_words: int,
    false_timeout: float | None,
    idle: float | None,
    idle_prompt: str | None,
    idle_retries: int,
) -> None:
    timeline: list[tuple[float, Part]] = []
    now = 0.0
    for n, (dt, kind) in enumerate(events):
        now += dt
        timeline.append((now, make_part(kind, n)))
    model = ScriptedModel(
        replies,
        first_part_delay=first_delay,
        part_delay=part_delay,
        errors={turn: RuntimeError(f"fail {turn}") for turn in failing},
    )
    session = LiveSession(
        model,
        window=None,
        max_parts=None,
        trigger=trigger,
        end_of_input=end_mode,
        model_errors="report",
        input_buffer=buffer,
        output_buffer=buffer,
        track_playback=track,
        end_of_speech_timeout=timeout,
        min_interruption_duration=min_duration,
        min_interruption_words=min_words,
        false_interruption_timeout=false_timeout,
        user_idle_timeout=idle,
        user_idle_prompt=idle_prompt,
        user_idle_retries=idle_retries,
    )
    tasks: list[int] = []

    async def main() -> list[tuple[float, Part]]:
        tasks.append(trio.lowlevel.current_statistics().tasks_living)
        with trio.fail_after(10_000):
            out = await play_timeline(session, timeline)
        tasks.append(trio.lowlevel.current_statistics().tasks_living)
        return out

    out = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    # 1. No user part lost, duplicated or reordered in the history.
    history = session.history()
    user_parts = [p.content for p in history if p.role == "user"]
    assert user_parts == expected_user_parts(timeline)
    # 2. The model's output in the history is exactly what was delivered
    #    (with playback tracking, what was heard: nothing is reported here).
    delivered = [p for _, p in out if p.role == "model" and not p.mimetype.startswith("app")]
    kept = [p.content for p in history if p.role == "model"]
    if track:
        assert len(kept) <= len(delivered)
    else:
        assert kept == [p.content for p in delivered]
    # 3. Nothing of a cancelled generation arrives after its interrupted marker,
    #    and every turn ends with exactly one turn-complete, last.
    closed_turns: set[int] = set()
    interrupted_turns: set[int] = set()
    for _, part in out:
        turn = part.metadata.get("turn")
        if turn is None:
            continue
        if is_interrupted(part) and track:
            # A barge-in on playback stops a turn that is already complete.
            interrupted_turns.add(turn)
            continue
        assert turn not in closed_turns
        if is_turn_complete(part):
            closed_turns.add(turn)
        elif is_interrupted(part):
            interrupted_turns.add(turn)
        else:
            assert turn not in interrupted_turns
    stats = session.statistics()
    assert stats.turns == len(closed_turns)
    if not track:
        assert stats.interrupted_turns == len(interrupted_turns)
    # 4. After the session closed, no task is left.
    assert tasks[1] == tasks[0]
    assert stats.state == "closed"
