from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_live import (
    Activity,
    EndOfInput,
    Part,
    TriggerMode,
    TurnPolicy,
    activity_part,
    audio_part,
    end_of_speech,
    end_of_turn,
    image_part,
    interrupted,
    is_activity,
    is_final_transcription,
    is_transcription,
    start_of_speech,
    status_part,
    text_part,
    transcription,
    turn_complete,
)
from trio_live.policy import (
    AWAIT,
    BARGE_IN,
    CANCEL,
    DROP_PENDING,
    FINISH_PLAYBACK,
    STOP_PLAYBACK,
    TRIGGER,
    AddToPrompt,
    Emit,
    Keep,
    PolicyError,
    Stash,
    State,
)


def answering(**options: object) -> TurnPolicy:
    policy = TurnPolicy(**options)  # type: ignore[arg-type]
    assert policy.receive(end_of_turn("q"), 0.0) == (AddToPrompt(text_part("q")), TRIGGER)
    assert policy.state is State.ANSWERING
    return policy


def test_reserved_substreams_pass_through() -> None:
    part = status_part({"x": 1})
    assert TurnPolicy().receive(part, 0.0) == (Emit(part),)
    assert answering().receive(part, 0.0) == (Emit(part),)


def test_partial_transcription_is_shown_not_prompted() -> None:
    policy = TurnPolicy()
    part = transcription("hel", final=False)
    shown = part.replace(substream="").with_metadata(transcription=True)
    assert policy.receive(part, 0.0) == (Emit(shown),)
    assert is_transcription(shown)
    assert not is_final_transcription(shown)
    assert not policy.unanswered


def test_final_transcription_is_shown_added_and_triggers() -> None:
    policy = TurnPolicy(trigger=TriggerMode.FINAL_TRANSCRIPTION)
    part = transcription("hello", final=True)
    shown = part.replace(substream="").with_metadata(transcription=True)
    assert policy.receive(part, 0.0) == (AddToPrompt(shown), Emit(shown), TRIGGER)
    assert is_final_transcription(shown)


def test_final_transcription_in_end_of_speech_mode_does_not_trigger() -> None:
    policy = TurnPolicy(trigger=TriggerMode.END_OF_SPEECH)
    part = transcription("hello", final=True)
    shown = part.replace(substream="").with_metadata(transcription=True)
    assert policy.receive(part, 0.0) == (AddToPrompt(shown), Emit(shown))


def test_start_of_speech_barges_in_only_while_answering() -> None:
    assert TurnPolicy().receive(start_of_speech(), 0.0) == ()
    assert answering().receive(start_of_speech(), 0.0) == (BARGE_IN,)


def test_end_of_speech_triggers_in_end_of_speech_mode() -> None:
    policy = TurnPolicy(trigger=TriggerMode.END_OF_SPEECH)
    assert policy.receive(start_of_speech(), 0.0) == ()
    assert policy.receive(end_of_speech(), 0.0) == (TRIGGER,)
    assert TurnPolicy().receive(end_of_speech(), 0.0) == ()


def test_end_of_turn_cancels_a_running_answer_first() -> None:
    policy = answering()
    assert policy.receive(end_of_turn(), 0.0) == (CANCEL, TRIGGER)


def test_end_of_turn_content_is_stashed_before_cancel_while_answering() -> None:
    policy = answering()
    assert policy.receive(end_of_turn("more"), 0.0) == (Stash(text_part("more")), CANCEL, TRIGGER)


def test_empty_end_of_turn_adds_nothing() -> None:
    assert TurnPolicy().receive(end_of_turn(), 0.0) == (TRIGGER,)


def test_user_input_is_added_or_stashed() -> None:
    part = text_part("x")
    assert TurnPolicy().receive(part, 0.0) == (AddToPrompt(part),)
    policy = answering()
    assert policy.receive(part, 0.0) == (Stash(part),)
    policy.generation_ended(1)
    assert policy.receive(part, 0.0) == (AddToPrompt(part),)


def test_final_transcription_waits_for_end_of_speech() -> None:
    policy = TurnPolicy()
    policy.receive(start_of_speech(), 0.0)
    part = transcription("hi", final=True)
    actions = policy.receive(part, 0.0)
    assert TRIGGER not in actions
    assert policy.trigger_deferred
    assert policy.receive(end_of_speech(), 0.0) == (TRIGGER,)


def test_waiting_for_end_of_speech_can_be_turned_off() -> None:
    policy = TurnPolicy(wait_for_end_of_speech=False)
    policy.receive(start_of_speech(), 0.0)
    assert policy.receive(transcription("hi", final=True), 0.0)[-1] is TRIGGER


@pytest.mark.parametrize(
    ("parts", "mode", "expected"),
    [
        ([], EndOfInput.IF_UNANSWERED, (DROP_PENDING,)),
        ([audio_part(bytes(640))], EndOfInput.IF_UNANSWERED, (DROP_PENDING,)),
        ([text_part("x")], EndOfInput.IF_UNANSWERED, (TRIGGER, AWAIT)),
        ([image_part(b"")], EndOfInput.IF_UNANSWERED, (TRIGGER, AWAIT)),
        ([start_of_speech()], EndOfInput.IF_UNANSWERED, (TRIGGER, AWAIT)),
        ([transcription("x", final=True)], EndOfInput.IF_UNANSWERED, (DROP_PENDING,)),
        ([text_part("x")], EndOfInput.NEVER, (DROP_PENDING,)),
        ([], EndOfInput.ALWAYS, (TRIGGER, AWAIT)),
    ],
)
def test_end_of_input(parts: list[object], mode: EndOfInput, expected: tuple[object, ...]) -> None:
    policy = TurnPolicy(end_of_input=mode)
    for part in parts:
        policy.receive(part, 0.0)  # type: ignore[arg-type]
        if policy.state is State.ANSWERING:
            policy.generation_ended(policy.turn)
    assert policy.input_ended() == expected
    assert policy.state is State.CLOSING


def test_end_of_input_lets_the_running_answer_finish() -> None:
    policy = answering()
    policy.receive(text_part("more"), 0.0)
    assert policy.input_ended() == (AWAIT, TRIGGER, AWAIT)


def test_misuse_raises_policy_error() -> None:
    with pytest.raises(PolicyError):
        TurnPolicy().generation_ended(1)
    policy = TurnPolicy()
    policy.input_ended()
    with pytest.raises(PolicyError):
        policy.receive(text_part("late"), 0.0)
    policy = TurnPolicy()
    policy.input_ended()
    with pytest.raises(PolicyError):
        policy.input_ended()


@pytest.mark.parametrize(
    "misuse",
    [
        lambda p: p.generation_ended(1),
        lambda p: p.generation_ended(0),
        lambda p: (p.input_ended(), p.receive(text_part("late"), 0.0)),
        lambda p: (p.input_ended(), p.tick(0.0)),
    ],
)
def test_misuse_leaves_the_policy_in_its_error_state(misuse: Any) -> None:
    policy = TurnPolicy()
    with pytest.raises(PolicyError):
        misuse(policy)
    assert policy.state is State.ERROR
    # Like h11: once misused, every further call is refused too.
    for call in (
        lambda: policy.receive(text_part("x"), 0.0),
        lambda: policy.take_plain(text_part("x")),
        lambda: policy.tick(0.0),
        policy.input_ended,
    ):
        with pytest.raises(PolicyError, match="state error"):
            call()
    policy.closed()
    assert policy.state is State.ERROR


def test_a_superseded_generation_ending_changes_nothing() -> None:
    policy = answering()
    assert policy.receive(end_of_turn(), 0.0) == (CANCEL, TRIGGER)
    assert policy.turn == 2
    policy.generation_ended(1)  # the cancelled first answer exits
    assert policy.state is State.ANSWERING
    assert policy.receive(text_part("x"), 0.0) == (Stash(text_part("x")),)
    policy.generation_ended(2)
    assert policy.state is State.LISTENING


INPUTS = [
    text_part("t"),
    audio_part(bytes(2)),
    end_of_turn(),
    end_of_turn("x"),
    start_of_speech(),
    end_of_speech(),
    transcription("p", final=False),
    transcription("f", final=True),
    status_part({}),
]
steps = st.lists(
    st.tuples(
        st.sampled_from([*INPUTS, "ended", "cancelled", "started", "played", "tick"]),
        st.sampled_from([0.0, 0.5, 1.0, 2.5]),
    ),
    max_size=40,
)


@settings(max_examples=1000, deadline=None)
@given(
    steps,
    st.sampled_from(list(TriggerMode)),
    st.booleans(),
    st.sampled_from([None, 1.0, 2.5]),
    st.booleans(),
    st.booleans(),
)
def test_actions_are_well_ordered(
    script: list[tuple[object, float]],
    trigger: TriggerMode,
    track_playback: bool,
    timeout: float | None,
    emit_activity: bool,
    wait: bool,
) -> None:
    policy = TurnPolicy(
        trigger=trigger,
        track_playback=track_playback,
        end_of_speech_timeout=timeout,
        emit_activity=emit_activity,
        wait_for_end_of_speech=wait,
    )
    now = 0.0
    for item, dt in script:
        now += dt
        state, turn, deadline = policy.state, policy.turn, policy.deadline
        activity = policy.activity
        effects: tuple[object, ...]
        if item == "tick":
            effects = policy.tick(now)
            # The held trigger fires once its deadline has passed, not before.
            if deadline is not None and now >= deadline:
                assert TRIGGER in effects
            else:
                assert effects == ()
        elif item in ("ended", "cancelled"):
            if state is not State.ANSWERING:
                continue
            cancelled = item == "cancelled"
            end = policy.generation_ended(turn, cancelled=cancelled, finished=not cancelled)
            effects = tuple(Emit(p) for p in end.markers)
            if not track_playback:
                assert end.keep is Keep.ALL
            else:
                assert end.keep is (Keep.LATER if item == "ended" else Keep.HEARD)
            assert end.interrupted == (item == "cancelled")
            assert policy.state is (State.PLAYING if end.keep is Keep.LATER else State.LISTENING)
        elif item == "started":
            effects = policy.output_started(turn)
        elif item == "played":
            effects = policy.playback_finished(turn)
            assert (FINISH_PLAYBACK in effects) == (state is State.PLAYING)
        else:
            assert isinstance(item, Part)
            effects = policy.receive(item, now)
            kinds = [type(a) for a in effects]
            # Prompt/stash actions come first, and match the state they were decided in.
            first_other = next(
                (i for i, k in enumerate(kinds) if k not in (AddToPrompt, Stash)), len(kinds)
            )
            assert all(k not in (AddToPrompt, Stash) for k in kinds[first_other:])
            for kind in kinds[:first_other]:
                assert kind is (Stash if state in (State.ANSWERING, State.PLAYING) else AddToPrompt)
            # Cancelling happens only when a generation runs; stopping the
            # playback only while one plays.
            if CANCEL in effects or BARGE_IN in effects:
                assert state is State.ANSWERING
            if STOP_PLAYBACK in effects:
                assert state is State.PLAYING
        # Each trigger opens exactly one new turn, and leaves it answering.
        assert policy.turn == turn + (TRIGGER in effects)
        if TRIGGER in effects:
            assert policy.state is State.ANSWERING
            assert policy.deadline is None
        # Playing only when the listener reports its playback.
        assert track_playback or policy.state is not State.PLAYING
        # A held trigger's deadline is set once, timeout seconds after the
        # final transcription that was held, and then does not move.
        if policy.deadline is not None:
            assert timeout is not None
            if deadline is None:
                assert policy.deadline == now + timeout
            else:
                assert policy.deadline == deadline
        # Activity reports: only when asked for, and exactly on each change.
        shown = activities(effects)
        if emit_activity and policy.activity is not activity:
            assert shown == [policy.activity.value]
        else:
            assert shown == []


def test_a_held_final_transcription_triggers_at_the_timeout() -> None:
    policy = TurnPolicy(end_of_speech_timeout=2.0)
    policy.receive(start_of_speech(), 0.0)
    actions = policy.receive(transcription("hi", final=True), 1.0)
    assert TRIGGER not in actions
    assert policy.deadline == 3.0
    # A second final does not move the deadline.
    policy.receive(transcription("hi again", final=True), 2.0)
    assert policy.deadline == 3.0
    assert policy.tick(2.99) == ()
    assert policy.tick(3.0) == (TRIGGER,)
    assert policy.deadline is None
    assert policy.tick(10.0) == ()


def test_end_of_speech_in_time_clears_the_deadline() -> None:
    policy = TurnPolicy(end_of_speech_timeout=2.0)
    policy.receive(start_of_speech(), 0.0)
    policy.receive(transcription("hi", final=True), 1.0)
    assert policy.receive(end_of_speech(), 1.5) == (TRIGGER,)
    assert policy.deadline is None
    assert policy.tick(5.0) == ()


def test_without_a_timeout_there_is_no_deadline() -> None:
    policy = TurnPolicy()
    policy.receive(start_of_speech(), 0.0)
    policy.receive(transcription("hi", final=True), 1.0)
    assert policy.deadline is None
    assert policy.tick(1e9) == ()
    with pytest.raises(ValueError, match="end_of_speech_timeout"):
        TurnPolicy(end_of_speech_timeout=0.0)


# --- the verdict on an ended generation (rule 8) and the visible activity ----


@pytest.mark.parametrize(
    ("track", "cancelled", "finished", "keep", "interrupted"),
    [
        (False, False, True, Keep.ALL, False),
        (False, True, False, Keep.ALL, True),
        # Cancelled just after the model had finished: all of it was output.
        (False, True, True, Keep.ALL, False),
        (True, False, True, Keep.LATER, False),
        (True, True, False, Keep.HEARD, True),
        # With playback tracking the listener stops at `interrupted`, so the
        # answer is cut where it was heard even though the model had finished.
        (True, True, True, Keep.HEARD, True),
    ],
)
def test_the_verdict_decides_history_and_markers_together(
    track: bool, cancelled: bool, finished: bool, keep: Keep, interrupted: bool
) -> None:
    policy = TurnPolicy(track_playback=track)
    policy.receive(end_of_turn("q"), 0.0)
    verdict = policy.generation_ended(1, cancelled=cancelled, finished=finished)
    assert verdict.keep is keep
    assert verdict.interrupted is interrupted
    # The answer's end, then (unless it still plays) the turn's end.
    assert [m.mimetype for m in verdict.markers] == [
        "application/x.trio-live.answer-complete",
        *(["application/x.trio-live.interrupted"] if interrupted else []),
        *([] if keep is Keep.LATER else ["application/x.trio-live.turn-complete"]),
    ]
    assert all(m.metadata["turn"] == 1 for m in verdict.markers)
    assert policy.state is (State.PLAYING if keep is Keep.LATER else State.LISTENING)


def activities(actions: tuple[object, ...]) -> list[str]:
    return [
        json.loads(a.part.text)["activity"]
        for a in actions
        if isinstance(a, Emit) and is_activity(a.part)
    ]


def test_activity_follows_the_turn() -> None:
    policy = TurnPolicy(emit_activity=True)
    assert policy.activity is Activity.LISTENING
    assert activities(policy.receive(end_of_turn("q"), 0.0)) == ["thinking"]
    assert activities(policy.output_started(1)) == ["speaking"]
    assert policy.output_started(1) == ()  # no change, nothing to say
    verdict = policy.generation_ended(1)
    assert [json.loads(m.text)["activity"] for m in verdict.markers if is_activity(m)] == [
        "listening"
    ]
    assert policy.activity is Activity.LISTENING


def test_barge_in_shows_listening_at_once() -> None:
    policy = TurnPolicy(emit_activity=True)
    policy.receive(end_of_turn("q"), 0.0)
    policy.output_started(1)
    actions = policy.receive(start_of_speech(), 1.0)
    assert actions[0] is BARGE_IN
    assert activities(actions) == ["listening"]
    # The cancelled generation's end then changes nothing visible.
    verdict = policy.generation_ended(1, cancelled=True, finished=False)
    assert not any(is_activity(m) for m in verdict.markers)


def test_a_superseded_turn_does_not_reset_the_activity() -> None:
    policy = TurnPolicy(emit_activity=True)
    policy.receive(end_of_turn("q"), 0.0)
    policy.output_started(1)
    assert activities(policy.receive(end_of_turn("again"), 0.0)) == ["thinking"]
    policy.generation_ended(1, cancelled=True, finished=False)
    assert policy.activity is Activity.THINKING


def test_playing_answer_stays_speaking_until_heard() -> None:
    policy = TurnPolicy(track_playback=True, emit_activity=True)
    policy.receive(end_of_turn("q"), 0.0)
    policy.output_started(1)
    policy.generation_ended(1)
    assert policy.activity is Activity.SPEAKING
    assert policy.playback_finished(1) == (
        FINISH_PLAYBACK,
        Emit(turn_complete().with_metadata(turn=1)),
        Emit(activity_part("listening", turn=1)),
    )


def test_speech_over_playback_is_stopped_by_the_policy() -> None:
    policy = TurnPolicy(track_playback=True)
    policy.receive(end_of_turn("q"), 0.0)
    policy.generation_ended(1)
    # The turn's end waited for its playback: interrupted, then turn complete.
    assert policy.receive(start_of_speech(), 2.0) == (
        STOP_PLAYBACK,
        Emit(interrupted().with_metadata(turn=1)),
        Emit(turn_complete().with_metadata(turn=1)),
    )


def test_no_activity_parts_unless_asked() -> None:
    policy = TurnPolicy()
    assert policy.receive(end_of_turn(), 0.0) == (TRIGGER,)
    assert policy.output_started(1) == ()
    assert policy.activity is Activity.SPEAKING


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("trigger", "end_of_speech", TriggerMode.END_OF_SPEECH),
        ("trigger", TriggerMode.END_OF_SPEECH, TriggerMode.END_OF_SPEECH),
        ("end_of_input", "never", EndOfInput.NEVER),
    ],
)
def test_enum_options_take_their_values(option: str, value: object, expected: object) -> None:
    policy = TurnPolicy(**{option: value})  # type: ignore[arg-type]
    assert getattr(policy, option) is expected


@pytest.mark.parametrize("option", ["trigger", "end_of_input"])
def test_bad_enum_options_name_the_allowed_values(option: str) -> None:
    with pytest.raises(ValueError, match=rf"^{option} must be one of '.+', got 'bogus'$"):
        TurnPolicy(**{option: "bogus"})  # type: ignore[arg-type]
