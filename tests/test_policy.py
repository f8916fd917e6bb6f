from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_live import (
    EndOfInput,
    TriggerMode,
    TurnPolicy,
    audio_part,
    end_of_speech,
    end_of_turn,
    image_part,
    start_of_speech,
    status_part,
    text_part,
    transcription,
)
from trio_live._policy import (
    AWAIT,
    BARGE_IN,
    CANCEL,
    DROP_PENDING,
    TRIGGER,
    AddToPrompt,
    Emit,
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
    assert policy.receive(part, 0.0) == (Emit(part.replace(substream="")),)
    assert not policy.unanswered


def test_final_transcription_is_shown_added_and_triggers() -> None:
    policy = TurnPolicy(trigger=TriggerMode.FINAL_TRANSCRIPTION)
    part = transcription("hello", final=True)
    shown = part.replace(substream="")
    assert policy.receive(part, 0.0) == (AddToPrompt(shown), Emit(shown), TRIGGER)


def test_final_transcription_in_end_of_speech_mode_does_not_trigger() -> None:
    policy = TurnPolicy(trigger=TriggerMode.END_OF_SPEECH)
    part = transcription("hello", final=True)
    shown = part.replace(substream="")
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
    policy = TurnPolicy()
    with pytest.raises(PolicyError):
        policy.generation_ended(1)
    policy.input_ended()
    with pytest.raises(PolicyError):
        policy.receive(text_part("late"), 0.0)
    with pytest.raises(PolicyError):
        policy.input_ended()


def test_a_superseded_generation_ending_changes_nothing() -> None:
    policy = answering()
    assert policy.receive(end_of_turn(), 0.0) == (CANCEL, TRIGGER)
    assert policy.turn == 2
    policy.generation_ended(1)  # the cancelled first answer exits
    assert policy.state is State.ANSWERING
    assert policy.receive(text_part("x"), 0.0) == (Stash(text_part("x")),)
    policy.generation_ended(2)
    assert policy.state is State.LISTENING


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                text_part("t"),
                audio_part(bytes(2)),
                end_of_turn(),
                end_of_turn("x"),
                start_of_speech(),
                end_of_speech(),
                transcription("p", final=False),
                transcription("f", final=True),
                status_part({}),
                "ended",
            ]
        ),
        max_size=40,
    ),
    st.sampled_from(list(TriggerMode)),
)
def test_actions_are_well_ordered(script: list[object], trigger: TriggerMode) -> None:
    policy = TurnPolicy(trigger=trigger)
    for item in script:
        if item == "ended":
            if policy.state is State.ANSWERING:
                policy.generation_ended(policy.turn)
            continue
        was_answering = policy.state is State.ANSWERING
        actions = policy.receive(item, 0.0)  # type: ignore[arg-type]
        kinds = [type(a) for a in actions]
        # Prompt/stash actions come first, and match the state they were decided in.
        first_other = next(
            (i for i, k in enumerate(kinds) if k not in (AddToPrompt, Stash)), len(kinds)
        )
        assert all(k not in (AddToPrompt, Stash) for k in kinds[first_other:])
        for kind in kinds[:first_other]:
            assert kind is (Stash if was_answering else AddToPrompt)
        # Cancelling happens only when a generation runs; triggering leaves one running.
        if CANCEL in actions or BARGE_IN in actions:
            assert was_answering
        if TRIGGER in actions:
            assert policy.state is State.ANSWERING


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
