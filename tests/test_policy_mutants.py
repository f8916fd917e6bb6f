"""The turn policy: what a mutation run of `trio_live._policy` found untested.

Each test here failed on one or more mutants that the policy's other tests
let through (docs/testing.md lists the run). All are synchronous: parts and
times in, actions out.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from trio_live import (
    PolicyError,
    TriggerMode,
    TurnPolicy,
    audio_part,
    end_of_speech,
    end_of_turn,
    start_of_speech,
    text_part,
    transcription,
)
from trio_live.policy import (
    BARGE_IN,
    CANCEL,
    DROP_PENDING,
    FINISH_PLAYBACK,
    TRIGGER,
    AddToPrompt,
    Emit,
    Stash,
    State,
)


def answering(**options: Any) -> TurnPolicy:
    policy = TurnPolicy(**options)
    assert policy.receive(end_of_turn("q"), 0.0) == (AddToPrompt(text_part("q")), TRIGGER)
    return policy


def shown(text: str, *, final: bool) -> Any:
    part = transcription(text, final=final)
    return part.replace(substream="").with_metadata(transcription=True)


def marker_turns(actions: tuple[Any, ...]) -> list[tuple[str, Any]]:
    return [
        (action.part.mimetype.rsplit(".", 1)[-1], action.part.metadata.get("turn"))
        for action in actions
        if isinstance(action, Emit)
    ]


# --- plain input and flags ----------------------------------------------------


def test_input_with_metadata_is_input_not_an_end_of_turn() -> None:
    policy = TurnPolicy()
    tagged = text_part("hi", lang="en")
    assert policy.receive(tagged, 0.0) == (AddToPrompt(tagged),)
    assert policy.unanswered is True
    # Audio with metadata joins the prompt but leaves nothing unanswered.
    policy = TurnPolicy()
    chunk = audio_part(bytes(4)).with_metadata(seq=1)
    assert policy.receive(chunk, 0.0) == (AddToPrompt(chunk),)
    assert policy.unanswered is False


def test_the_flags_are_booleans() -> None:
    policy = TurnPolicy(trigger=TriggerMode.END_OF_SPEECH)
    policy.receive(start_of_speech(), 0.0)
    assert policy.user_speaking is True
    assert policy.receive(end_of_speech(), 1.0) == (TRIGGER,)
    assert policy.user_speaking is False
    assert policy.unanswered is False
    assert policy.trigger_deferred is False


def test_user_text_restarts_the_first_idle_wait() -> None:
    policy = answering(user_idle_timeout=5.0)
    policy.generation_ended(1)
    assert policy.tick(10.0) == ()
    assert policy.deadline == 15.0
    # Plain text before the first idle event: the wait starts again.
    assert policy.take_plain(text_part("still here")) == AddToPrompt(text_part("still here"))
    assert policy.deadline == -math.inf
    assert policy.tick(12.0) == ()
    assert policy.deadline == 17.0


def test_the_idle_prompt_is_a_system_part_with_its_count() -> None:
    policy = answering(user_idle_timeout=2.0, user_idle_prompt="Are you there?")
    policy.generation_ended(1)
    policy.tick(1.0)
    asked, _report, *rest = policy.tick(3.0)
    assert asked == AddToPrompt(text_part("Are you there?", role="system", user_idle=1))
    assert TRIGGER in rest


# --- interruptions that wait (rules 15-18) ----------------------------------


def test_duration_and_words_must_both_be_met() -> None:
    policy = answering(min_interruption_duration=0.5, min_interruption_words=2)
    assert policy.receive(start_of_speech(), 1.0) == ()
    # Enough words, not yet long enough: no interruption.
    assert policy.receive(transcription("stop it", final=False), 1.2) == (
        Emit(shown("stop it", final=False)),
    )
    actions = policy.tick(1.5)
    assert actions[0] is BARGE_IN


def test_a_final_transcription_confirms_and_triggers_after_the_speech() -> None:
    # Final-transcription mode: the words came after the end of speech, so the
    # interruption's held trigger fires at once.
    policy = answering(min_interruption_words=2)
    policy.receive(start_of_speech(), 1.0)
    assert policy.receive(end_of_speech(), 1.5) == ()
    actions = policy.receive(transcription("stop it now", final=True), 1.6)
    assert actions[0] == Stash(shown("stop it now", final=True))
    assert actions[1] is BARGE_IN
    assert CANCEL in actions
    assert TRIGGER in actions


def test_a_confirmed_trigger_waits_for_the_end_of_speech() -> None:
    policy = answering(min_interruption_words=2)
    policy.receive(start_of_speech(), 1.0)
    actions = policy.receive(transcription("stop it now", final=True), 1.4)
    assert BARGE_IN in actions
    assert TRIGGER not in actions
    assert policy.trigger_deferred is True
    policy.generation_ended(1, cancelled=True, finished=False)
    assert TRIGGER in policy.receive(end_of_speech(), 2.0)


def test_a_partial_after_the_end_of_speech_interrupts_but_waits_for_the_final() -> None:
    policy = answering(min_interruption_words=2)
    policy.receive(start_of_speech(), 1.0)
    policy.receive(end_of_speech(), 1.5)
    actions = policy.receive(transcription("stop it", final=False), 1.6)
    assert actions[0] is BARGE_IN
    assert TRIGGER not in actions  # the final transcription triggers


def test_end_of_speech_mode_holds_its_trigger_until_the_words() -> None:
    policy = answering(min_interruption_words=2, trigger=TriggerMode.END_OF_SPEECH)
    policy.receive(start_of_speech(), 1.0)
    assert policy.receive(end_of_speech(), 1.5) == ()
    actions = policy.receive(transcription("stop it", final=False), 1.6)
    assert actions[0] is BARGE_IN
    assert TRIGGER in actions


def test_an_end_of_speech_after_a_barge_in_triggers() -> None:
    # The barge-in's generation has not exited yet when the speech ends.
    policy = answering(trigger=TriggerMode.END_OF_SPEECH)
    assert policy.receive(start_of_speech(), 1.0)[0] is BARGE_IN
    assert policy.receive(end_of_speech(), 1.5) == (CANCEL, TRIGGER)


def test_a_final_transcription_after_a_confirmed_interruption_triggers() -> None:
    policy = answering(min_interruption_duration=0.5)
    policy.receive(start_of_speech(), 1.0)
    assert policy.tick(1.5)[0] is BARGE_IN
    policy.receive(end_of_speech(), 1.8)
    actions = policy.receive(transcription("tell me more", final=True), 1.9)
    assert actions[-2:] == (CANCEL, TRIGGER)


def test_a_later_transcription_after_too_few_words_is_a_new_turn() -> None:
    # "what" was too little to interrupt; the next final transcription (from
    # a transcription-only source, no start of speech) is judged afresh.
    policy = answering(min_interruption_words=2)
    policy.receive(start_of_speech(), 1.0)
    policy.receive(end_of_speech(), 1.3)
    what = shown("what", final=True)
    assert policy.receive(transcription("what", final=True), 1.4) == (Stash(what), Emit(what))
    actions = policy.receive(transcription("tell me more please", final=True), 2.0)
    assert actions[-2:] == (CANCEL, TRIGGER)


def test_words_without_letters_are_no_backchannel() -> None:
    policy = answering()
    actions = policy.receive(transcription("...", final=True), 1.0)
    assert actions[-2:] == (CANCEL, TRIGGER)


def test_timers_that_fire_after_the_answer_ended_leave_no_deadline() -> None:
    for options, due in [
        ({"min_interruption_duration": 0.5}, 1.5),
        ({"false_interruption_timeout": 1.0}, 2.0),
    ]:
        policy = answering(**options)
        policy.receive(start_of_speech(), 1.0)
        policy.generation_ended(1)
        assert policy.deadline == due
        assert policy.tick(due) == ()
        assert policy.deadline is None


# --- turns, markers, the end of the input -----------------------------------


def test_a_new_turn_over_a_playing_answer_closes_that_turn() -> None:
    policy = answering(track_playback=True)
    policy.generation_ended(1)
    assert policy.state is State.PLAYING
    actions = policy.receive(end_of_turn("next"), 2.0)
    assert actions[0] == Stash(text_part("next"))
    assert actions[1] is FINISH_PLAYBACK
    assert marker_turns(actions) == [("turn-complete", 1)]
    assert actions[-1] is TRIGGER


def test_the_input_ending_during_playback_closes_the_turn() -> None:
    policy = TurnPolicy(track_playback=True, emit_activity=True)
    policy.receive(end_of_turn("q"), 0.0)
    policy.generation_ended(1)
    policy.output_started(1)
    actions = policy.input_ended()
    assert actions[0] is FINISH_PLAYBACK
    assert actions[-1] is DROP_PENDING
    [(_, over), (_, activity)] = [
        (action.part.mimetype, action.part) for action in actions if isinstance(action, Emit)
    ]
    assert over.metadata["turn"] == 1
    assert json.loads(activity.text) == {"activity": "listening", "turn": 1}
    assert policy.deadline is None


def test_generation_ended_defaults_to_a_finished_call() -> None:
    policy = answering()
    end = policy.generation_ended(1, cancelled=True)
    kinds = [part.mimetype.rsplit(".", 1)[-1] for part in end.markers]
    assert kinds == ["answer-complete", "turn-complete"]
    assert all(part.role == "model" for part in end.markers)


def test_misuse_of_generation_ended_says_what_was_wrong() -> None:
    with pytest.raises(PolicyError, match=r"turn 2 was never triggered \(latest: 1\)"):
        answering().generation_ended(2)
    policy = answering()
    policy.generation_ended(1)
    with pytest.raises(PolicyError, match=r"no generation was running \(state listening\)"):
        policy.generation_ended(1)


# --- found by re-running the mutants that timed out on a loaded machine ------


def test_an_infinite_pause_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="incomplete_turn_timeout must be a number of seconds > 0"):
        TurnPolicy(incomplete_turn_timeout=math.inf)


def test_a_transcription_without_text_counts_no_words() -> None:
    # Bytes content (a recognizer's raw output) has no text: no words.
    policy = answering(min_interruption_words=1)
    policy.receive(start_of_speech(), 1.0)
    policy.receive(end_of_speech(), 1.3)
    raw = transcription("", final=True).replace(content=b"\x00")
    actions = policy.receive(raw, 1.4)
    assert BARGE_IN not in actions
    assert policy.state is State.ANSWERING


def test_too_few_words_over_an_answer_are_left_unanswered() -> None:
    policy = answering(min_interruption_words=3)
    policy.receive(start_of_speech(), 1.0)
    policy.receive(end_of_speech(), 1.3)
    policy.receive(transcription("what now", final=True), 1.4)
    assert policy.unanswered is True
    policy.generation_ended(1)
    assert TRIGGER in policy.input_ended()


def test_the_words_of_a_dismissed_speech_end_the_dismissal() -> None:
    policy = answering(false_interruption_timeout=1.0)
    policy.receive(start_of_speech(), 1.0)
    assert policy.tick(2.0) == ()  # no words in time: no interruption
    assert policy.receive(end_of_speech(), 2.5) == ()
    late = shown("hm what", final=True)
    assert policy.receive(transcription("hm what", final=True), 2.6) == (Stash(late), Emit(late))
    # A later final transcription (no start of speech) is judged afresh.
    actions = policy.receive(transcription("tell me more please", final=True), 3.0)
    assert actions[-2:] == (CANCEL, TRIGGER)


def test_speech_that_began_over_a_finished_answer_is_a_turn() -> None:
    policy = answering(min_interruption_duration=0.5, trigger=TriggerMode.END_OF_SPEECH)
    assert policy.receive(start_of_speech(), 1.0) == ()
    policy.generation_ended(1)  # the answer ends while the user speaks
    assert policy.receive(end_of_speech(), 1.2) == (TRIGGER,)


def test_no_idle_timer_before_the_first_answer() -> None:
    policy = TurnPolicy(user_idle_timeout=5.0)
    assert policy.deadline is None
    assert policy.tick(100.0) == ()


def test_the_last_idle_retry_is_armed_after_the_prompted_answer() -> None:
    policy = answering(user_idle_timeout=2.0, user_idle_prompt="Are you there?")
    policy.generation_ended(1)
    policy.tick(1.0)
    assert TRIGGER in policy.tick(3.0)  # the first idle event prompts turn 2
    policy.generation_ended(2)
    assert policy.deadline == -math.inf
    policy.tick(4.0)
    (report,) = policy.tick(6.0)
    assert isinstance(report, Emit)
    assert json.loads(report.part.text)["gave_up"] is True


def test_a_pause_that_ends_without_a_trigger_leaves_no_deadline() -> None:
    policy = TurnPolicy()  # final-transcription mode: the pause's end triggers nothing
    policy.receive(start_of_speech(), 0.0)
    assert policy.receive(end_of_speech().with_metadata(turn_complete=False), 1.0) == ()
    assert policy.deadline == 3.0
    assert policy.tick(3.0) == ()
    assert policy.deadline is None


def test_playback_finished_only_ends_a_playing_turn() -> None:
    policy = answering(track_playback=True)
    assert policy.playback_finished(1) == ()  # still generating
    assert policy.state.value == "answering"
    policy.generation_ended(1)
    actions = policy.playback_finished(1)
    assert actions[0] is FINISH_PLAYBACK
    assert marker_turns(actions) == [("turn-complete", 1)]
    assert policy.state is State.LISTENING
