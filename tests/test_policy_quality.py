"""Conversation quality rules (15-20): each on the policy, then through a session."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import trio

from trio_live import (
    LiveSession,
    Part,
    TriggerMode,
    TurnPolicy,
    audio_part,
    end_of_speech,
    end_of_turn,
    is_answer_complete,
    is_interrupted,
    is_turn_complete,
    start_of_speech,
    text_part,
    transcription,
)
from trio_live.policy import (
    BARGE_IN,
    CANCEL,
    CLOSE_INPUT,
    DEFAULT_BACKCHANNELS,
    TRIGGER,
    AddToPrompt,
    Emit,
    Stash,
    State,
)
from trio_live.testing import ScriptedModel, play_timeline

Timeline = list[tuple[float, Part]]


def answering(**options: Any) -> TurnPolicy:
    policy = TurnPolicy(**options)
    assert policy.receive(end_of_turn("q"), 0.0) == (AddToPrompt(text_part("q")), TRIGGER)
    return policy


def shown(part: Part) -> Part:
    """A transcription as the session shows it on its output."""
    return part.replace(substream="").with_metadata(transcription=True)


def labels(out: Timeline) -> list[tuple[float, str]]:
    result = []
    for at, part in out:
        if is_answer_complete(part):
            continue  # before every turn's last markers: see test_marker_order
        elif is_turn_complete(part):
            label = f"<done {part.metadata['turn']}>"
        elif is_interrupted(part):
            label = f"<interrupted {part.metadata['turn']}>"
        elif part.substream == "status":
            label = "<status>"
        else:
            label = part.text
        result.append((round(at, 3), label))
    return result


def user_and_model(session: LiveSession) -> list[tuple[str, str]]:
    return [(p.role, p.text) for p in session.history()]


def statuses(out: Timeline) -> list[tuple[float, dict[str, Any]]]:
    return [(round(at, 3), json.loads(p.text)) for at, p in out if p.substream == "status"]


# A long answer: one word a second, so the time an answer stops is visible.
LONG = [f"w{k} " for k in range(10)]


# --- options ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("min_interruption_duration", -0.1),
        ("min_interruption_duration", math.inf),
        ("min_interruption_duration", "1"),
        ("min_interruption_words", -1),
        ("min_interruption_words", 1.5),
        ("false_interruption_timeout", 0.0),
        ("backchannels", "yeah"),
        ("backchannels", ["yeah", 3]),
        ("backchannels", ["..."]),
        ("incomplete_turn_timeout", 0.0),
        ("incomplete_turn_timeout", None),
        ("user_idle_timeout", -5.0),
        ("user_idle_prompt", "  "),
        ("user_idle_retries", 0),
        ("user_idle_retries", True),
    ],
)
def test_bad_options_name_the_option(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        TurnPolicy(**{option: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=option):
        LiveSession(ScriptedModel(), **{option: value})  # type: ignore[arg-type]


def test_defaults_keep_the_barge_in_at_once() -> None:
    policy = TurnPolicy()
    assert policy.barge_in_at_once
    assert "mm-hm" in policy.backchannels
    assert policy.backchannels == DEFAULT_BACKCHANNELS
    assert TurnPolicy(backchannels=["Uh  huh!", "OK"]).backchannels == {"uh huh", "ok"}
    assert not TurnPolicy(min_interruption_duration=0.5).barge_in_at_once
    assert not TurnPolicy(min_interruption_words=2).barge_in_at_once
    assert not TurnPolicy(false_interruption_timeout=1.0).barge_in_at_once


# --- rule 15: minimum interruption duration ----------------------------------


def test_short_speech_over_an_answer_does_not_interrupt() -> None:
    policy = answering(min_interruption_duration=0.5, trigger=TriggerMode.END_OF_SPEECH)
    assert policy.receive(start_of_speech(), 1.0) == ()
    assert policy.deadline == 1.5
    assert policy.receive(end_of_speech(), 1.3) == ()  # no trigger either
    assert policy.deadline is None
    assert policy.state is State.ANSWERING
    assert policy.tick(2.0) == ()


def test_long_speech_interrupts_once_it_lasted() -> None:
    policy = answering(min_interruption_duration=0.5)
    assert policy.receive(start_of_speech(), 1.0) == ()
    assert policy.tick(1.49) == ()
    assert policy.tick(1.5)[0] is BARGE_IN
    assert policy.deadline is None


async def test_minimum_duration_through_a_session(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([LONG, "second"], part_delay=1.0)
    session = LiveSession(model, min_interruption_duration=0.5)
    timeline: Timeline = [
        (0.0, end_of_turn("q")),
        # A 0.3 s sound over the answer: not an interruption.
        (1.2, start_of_speech()),
        (1.5, end_of_speech()),
        (1.6, transcription("uh", final=True)),
        # 0.5 s of speech: the answer stops 0.5 s after it started.
        (3.2, start_of_speech()),
        (4.5, end_of_speech()),
        (4.6, transcription("wait a moment", final=True)),
    ]
    out = await play_timeline(session, timeline)
    assert labels(out) == [
        (0.0, "w0 "),
        (1.0, "w1 "),
        (1.6, "uh"),
        (2.0, "w2 "),
        (3.0, "w3 "),
        (3.7, "<interrupted 1>"),
        (3.7, "<done 1>"),
        (4.6, "wait a moment"),
        (4.6, "second"),
        (4.6, "<done 2>"),
    ]
    assert user_and_model(session) == [
        ("user", "q"),
        *[("model", w) for w in LONG[:4]],
        ("user", "uh"),
        ("user", "wait a moment"),
        ("model", "second"),
    ]


# --- rule 16: minimum interruption words -------------------------------------


def test_words_decide_the_interruption() -> None:
    policy = answering(min_interruption_words=2)
    assert policy.receive(start_of_speech(), 1.0) == ()
    one = transcription("stop", final=False)
    assert policy.receive(one, 1.2) == (
        Emit(one.replace(substream="").with_metadata(transcription=True)),
    )
    two = transcription("stop it", final=False)
    actions = policy.receive(two, 1.4)
    assert actions[0] is BARGE_IN
    assert actions[-1] == Emit(two.replace(substream="").with_metadata(transcription=True))


def test_too_few_words_in_the_final_transcription_are_kept_not_triggered() -> None:
    policy = answering(min_interruption_words=2)
    policy.receive(start_of_speech(), 1.0)
    policy.receive(end_of_speech(), 1.5)
    final = transcription("what", final=True)
    shown = final.replace(substream="").with_metadata(transcription=True)
    assert policy.receive(final, 1.6) == (Stash(shown), Emit(shown))
    assert policy.state is State.ANSWERING


async def test_minimum_words_through_a_session(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([LONG, "second"], part_delay=1.0)
    session = LiveSession(model, min_interruption_words=2)
    timeline: Timeline = [
        (0.0, end_of_turn("q")),
        (1.2, start_of_speech()),
        (1.4, transcription("no", final=False)),
        (1.6, end_of_speech()),
        (1.8, transcription("no", final=True)),
        (3.2, start_of_speech()),
        (3.4, transcription("no wait", final=False)),
        (3.6, end_of_speech()),
        (3.8, transcription("no wait", final=True)),
    ]
    out = await play_timeline(session, timeline)
    assert labels(out) == [
        (0.0, "w0 "),
        (1.0, "w1 "),
        (1.4, "no"),
        (1.8, "no"),
        (2.0, "w2 "),
        (3.0, "w3 "),
        (3.4, "<interrupted 1>"),
        (3.4, "<done 1>"),
        (3.4, "no wait"),
        (3.8, "no wait"),
        (3.8, "second"),
        (3.8, "<done 2>"),
    ]
    assert user_and_model(session)[-4:] == [
        ("model", "w3 "),
        ("user", "no"),
        ("user", "no wait"),
        ("model", "second"),
    ]


# --- rule 17: backchannels ----------------------------------------------------


def test_a_backchannel_over_an_answer_is_what_the_user_said() -> None:
    policy = answering()
    final = transcription("Mm-hm.", final=True)
    shown = final.replace(substream="").with_metadata(transcription=True)
    # No start of speech (a transcription-only source): no trigger, no cancel.
    assert policy.receive(final, 1.0) == (Stash(shown), Emit(shown))
    assert not policy.unanswered
    # Not a backchannel: the usual new turn.
    other = transcription("yeah but why", final=True)
    assert TRIGGER in policy.receive(other, 2.0)


async def test_backchannels_through_a_session(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([LONG], part_delay=1.0)
    session = LiveSession(model, min_interruption_words=1, backchannels=["yeah", "uh huh"])
    timeline: Timeline = [
        (0.0, end_of_turn("q")),
        (1.2, start_of_speech()),
        (1.3, transcription("uh", final=False)),
        (1.5, end_of_speech()),
        (1.6, transcription("uh huh", final=True)),
        (2.2, start_of_speech()),
        (2.5, end_of_speech()),
        (2.6, transcription("Yeah, yeah.", final=True)),
    ]
    out = await play_timeline(session, timeline)
    spoken = [label for _, label in labels(out)]
    # "uh" alone is not in this list: it interrupts.
    assert spoken[:4] == ["w0 ", "w1 ", "<interrupted 1>", "<done 1>"]
    model = ScriptedModel([LONG], part_delay=1.0)
    session = LiveSession(model, min_interruption_words=1, backchannels=["yeah", "uh huh", "uh"])
    out = await play_timeline(session, timeline)
    assert [label for _, label in labels(out)] == [
        "w0 ",
        "w1 ",
        "uh",
        "uh huh",
        "w2 ",
        "Yeah, yeah.",
        *LONG[3:],
        "<done 1>",
    ]
    assert user_and_model(session) == [
        ("user", "q"),
        *[("model", w) for w in LONG],
        ("user", "uh huh"),
        ("user", "Yeah, yeah."),
    ]
    # Backchannels leave nothing unanswered: no extra answer at the end.
    assert session.statistics().turns == 1


def test_a_backchannel_so_far_holds_the_interruption_that_its_length_would_make() -> None:
    # Rule 15 alone: long enough speech interrupts, unless its words so far
    # are only a backchannel; then its next words decide.
    policy = answering(min_interruption_duration=0.5)
    assert policy.receive(start_of_speech(), 1.0) == ()
    mmhm = transcription("mm-hm", final=False)
    assert policy.receive(mmhm, 1.2) == (Emit(shown(mmhm)),)
    assert policy.tick(1.5) == ()
    assert policy.state is State.ANSWERING
    more = transcription("mm-hm, wait, stop", final=False)
    assert policy.receive(more, 1.8) == (BARGE_IN, Emit(shown(more)))


def test_a_backchannel_so_far_is_no_noise_and_later_words_still_interrupt() -> None:
    # Rule 18 dismisses speech without words; a backchannel is words, and
    # the user may go on: the interruption stays pending for its next words.
    policy = answering(false_interruption_timeout=1.0)
    policy.receive(start_of_speech(), 1.0)
    assert policy.deadline == 2.0
    policy.receive(transcription("yeah", final=False), 1.3)
    assert policy.deadline is None
    assert policy.tick(2.0) == ()
    more = transcription("yeah but stop", final=False)
    assert policy.receive(more, 2.4) == (BARGE_IN, Emit(shown(more)))
    # A backchannel alone, to its final transcription: what the user said.
    policy = answering(false_interruption_timeout=1.0)
    policy.receive(start_of_speech(), 1.0)
    policy.receive(transcription("yeah", final=False), 1.3)
    policy.receive(end_of_speech(), 2.3)
    final = transcription("Yeah.", final=True)
    assert policy.receive(final, 2.4) == (Stash(shown(final)), Emit(shown(final)))
    assert policy.state is State.ANSWERING
    assert not policy.unanswered


async def test_a_long_backchannel_keeps_the_answer_through_a_session(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([LONG], part_delay=1.0)
    session = LiveSession(model, min_interruption_duration=0.5)
    timeline: Timeline = [
        (0.0, end_of_turn("q")),
        (1.2, start_of_speech()),
        (1.4, transcription("mm-hm", final=False)),
        (2.1, end_of_speech()),
        (2.2, transcription("Mm-hm.", final=True)),
    ]
    out = await play_timeline(session, timeline)
    assert labels(out) == [
        (0.0, "w0 "),
        (1.0, "w1 "),
        (1.4, "mm-hm"),
        (2.0, "w2 "),
        (2.2, "Mm-hm."),
        *[(float(k), word) for k, word in enumerate(LONG) if k >= 3],
        (9.0, "<done 1>"),
    ]
    assert user_and_model(session)[-1] == ("user", "Mm-hm.")
    assert session.statistics().turns == 1


def test_short_speech_whose_final_came_already_leaves_the_next_final_a_turn() -> None:
    # Rule 15 dismisses speech shorter than the minimum; its final
    # transcription, when it comes, triggers nothing. When it has come
    # already (before the end of speech), the next one is a new request.
    policy = answering(min_interruption_duration=0.5, min_interruption_words=1)
    policy.receive(start_of_speech(), 1.0)
    stop = transcription("stop now", final=True)
    assert policy.receive(stop, 1.2) == (Stash(shown(stop)), Emit(shown(stop)))
    assert policy.receive(end_of_speech(), 1.3) == ()
    assert policy.state is State.ANSWERING
    dogs = transcription("tell me about dogs", final=True)
    assert policy.receive(dogs, 3.0) == (Stash(shown(dogs)), Emit(shown(dogs)), CANCEL, TRIGGER)


async def test_short_speech_with_its_final_then_a_request_through_a_session(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([LONG, ["dogs"]], part_delay=1.0)
    session = LiveSession(model, min_interruption_duration=0.5, min_interruption_words=1)
    timeline: Timeline = [
        (0.0, end_of_turn("q")),
        (1.2, start_of_speech()),
        (1.4, transcription("stop now", final=True)),
        (1.5, end_of_speech()),
        # A transcription-only source (typed, or a missed start of speech).
        (3.5, transcription("tell me about dogs", final=True)),
    ]
    out = await play_timeline(session, timeline)
    assert labels(out) == [
        (0.0, "w0 "),
        (1.0, "w1 "),
        (1.4, "stop now"),
        (2.0, "w2 "),
        (3.0, "w3 "),
        (3.5, "tell me about dogs"),
        (3.5, "<interrupted 1>"),
        (3.5, "<done 1>"),
        (3.5, "dogs"),
        (3.5, "<done 2>"),
    ]
    assert user_and_model(session)[-3:] == [
        ("user", "stop now"),
        ("user", "tell me about dogs"),
        ("model", "dogs"),
    ]


# --- rule 18: false interruptions ---------------------------------------------


def test_speech_without_words_in_time_is_a_false_interruption() -> None:
    policy = answering(false_interruption_timeout=1.0)
    assert policy.receive(start_of_speech(), 1.0) == ()
    assert policy.deadline == 2.0
    assert policy.tick(2.0) == ()
    assert policy.deadline is None
    # Its end of speech and a late transcription trigger nothing.
    assert policy.receive(end_of_speech(), 2.5) == ()
    late = (
        transcription("hm what", final=True).replace(substream="").with_metadata(transcription=True)
    )
    assert policy.receive(transcription("hm what", final=True), 2.6) == (Stash(late), Emit(late))
    assert policy.state is State.ANSWERING


async def test_false_interruption_keeps_the_answer_whole(autojump_clock: trio.abc.Clock) -> None:
    # A cough over the answer's playback: the listener hears the rest, and
    # the whole answer joins the history once heard.
    model = ScriptedModel([["one two ", "three four"]] * 2)
    session = LiveSession(model, track_playback=True, false_interruption_timeout=0.8)
    async with session:
        await session.send(end_of_turn("q"))
        got = [await session.receive() for _ in range(3)]
        assert is_answer_complete(got[-1])
        session.report_playback(1, 4)
        await trio.sleep(1.0)
        await session.send(start_of_speech())
        await trio.sleep(0.3)
        await session.send(end_of_speech())
        await trio.sleep(1.0)
        assert session.statistics().state == "playing"
        assert user_and_model(session) == [("user", "q")]
        session.report_playback(1, 18, finished=True)
        assert user_and_model(session) == [
            ("user", "q"),
            ("model", "one two "),
            ("model", "three four"),
        ]
        # Speech with words in time does interrupt.
        assert is_turn_complete(await session.receive())  # turn 1 was heard: over
        await session.send(end_of_turn("again"))
        for _ in range(3):
            await session.receive()
        session.report_playback(2, 4)
        start = trio.current_time()
        await session.send(start_of_speech())
        await trio.sleep(0.5)
        await session.send(transcription("hold on", final=False))
        stop = await session.receive()
        assert is_interrupted(stop)
        assert trio.current_time() - start == pytest.approx(0.5)
        assert user_and_model(session)[-1] == ("model", "one ")


async def test_false_interruption_without_playback_tracking(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([LONG[:4]], part_delay=1.0)
    session = LiveSession(model, false_interruption_timeout=0.5)
    timeline: Timeline = [(0.0, end_of_turn("q")), (1.2, start_of_speech()), (2.4, end_of_speech())]
    out = await play_timeline(session, timeline)
    assert labels(out) == [
        (0.0, "w0 "),
        (1.0, "w1 "),
        (2.0, "w2 "),
        (3.0, "w3 "),
        (3.0, "<done 1>"),
    ]
    assert [text for role, text in user_and_model(session) if role == "model"] == LONG[:4]


# --- rule 19: an end of speech the end-of-turn detector marked incomplete ----


def test_an_incomplete_end_of_speech_is_a_pause() -> None:
    policy = TurnPolicy(trigger=TriggerMode.END_OF_SPEECH, incomplete_turn_timeout=1.5)
    policy.receive(start_of_speech(), 0.0)
    assert policy.receive(end_of_speech().with_metadata(turn_complete=False), 1.0) == ()
    assert policy.deadline == 2.5
    # More speech: the same turn goes on.
    policy.receive(start_of_speech(), 2.0)
    assert policy.deadline is None
    assert policy.receive(end_of_speech().with_metadata(turn_complete=False), 3.0) == ()
    assert policy.tick(4.49) == ()
    assert policy.tick(4.5) == (TRIGGER,)
    # A complete one ends the turn at once.
    policy = TurnPolicy(trigger=TriggerMode.END_OF_SPEECH)
    policy.receive(start_of_speech(), 0.0)
    assert policy.receive(end_of_speech().with_metadata(turn_complete=True), 1.0) == (TRIGGER,)


async def test_incomplete_turn_through_a_session(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["ok"])
    session = LiveSession(model, incomplete_turn_timeout=1.0)
    unfinished = end_of_speech().with_metadata(turn_complete=False)
    timeline: Timeline = [
        (0.0, start_of_speech()),
        (1.0, unfinished),
        (1.1, transcription("I would like", final=True)),
        (1.6, start_of_speech()),
        (2.5, unfinished),
        (2.6, transcription("a pizza", final=True)),
    ]
    out = await play_timeline(session, timeline, end_at=5.0)
    # The turn ends 1 s after the last pause (no more speech came).
    assert labels(out) == [
        (1.1, "I would like"),
        (2.6, "a pizza"),
        (3.5, "ok"),
        (3.5, "<done 1>"),
    ]
    assert user_and_model(session) == [
        ("user", "I would like"),
        ("user", "a pizza"),
        ("model", "ok"),
    ]


def test_speech_after_a_pause_triggers_with_its_own_final_transcription() -> None:
    # Rule 19 then rule 10: the final transcription of the speech before the
    # pause is held; the speech after it ends complete before its own final
    # comes. The turn waits for that final (one turn with both), or at most
    # incomplete_turn_timeout.
    policy = TurnPolicy(incomplete_turn_timeout=2.0)
    policy.receive(start_of_speech(), 0.0)
    first = transcription("I need a flight to", final=True)
    assert policy.receive(end_of_speech().with_metadata(turn_complete=False), 1.0) == ()
    assert policy.receive(first, 1.1) == (AddToPrompt(shown(first)), Emit(shown(first)))
    policy.receive(start_of_speech(), 2.0)
    assert policy.receive(end_of_speech().with_metadata(turn_complete=True), 3.0) == ()
    assert policy.deadline == 5.0
    second = transcription("Paris", final=True)
    assert policy.receive(second, 3.2) == (AddToPrompt(shown(second)), Emit(shown(second)), TRIGGER)
    assert policy.deadline is None
    # No final for the speech after the pause: the bound triggers.
    policy = TurnPolicy(incomplete_turn_timeout=2.0)
    policy.receive(start_of_speech(), 0.0)
    policy.receive(end_of_speech().with_metadata(turn_complete=False), 1.0)
    policy.receive(first, 1.1)
    policy.receive(start_of_speech(), 2.0)
    policy.receive(end_of_speech(), 3.0)
    assert policy.tick(4.99) == ()
    assert policy.tick(5.0) == (TRIGGER,)


async def test_a_paused_sentence_is_one_turn_through_a_session(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel(["booked"])
    session = LiveSession(model)
    timeline: Timeline = [
        (0.0, start_of_speech()),
        (1.0, end_of_speech().with_metadata(turn_complete=False)),
        (1.1, transcription("I need a flight to", final=True)),
        (2.0, start_of_speech()),
        (3.0, end_of_speech().with_metadata(turn_complete=True)),
        (3.3, transcription("Paris", final=True)),
    ]
    out = await play_timeline(session, timeline)
    assert labels(out) == [
        (1.1, "I need a flight to"),
        (3.3, "Paris"),
        (3.3, "booked"),
        (3.3, "<done 1>"),
    ]
    assert session.statistics().turns == 1
    assert [p.text for p in model.prompts[-1]] == ["I need a flight to", "Paris"]


# --- rule 20: the idle user ---------------------------------------------------


def test_idle_user_policy() -> None:
    policy = answering(user_idle_timeout=5.0, user_idle_prompt="Ask if they are there.")
    assert policy.deadline is None
    policy.generation_ended(1)
    assert policy.deadline == -math.inf  # the timer starts at the next tick
    assert policy.tick(10.0) == ()
    assert policy.deadline == 15.0
    actions = policy.tick(15.0)
    assert isinstance(actions[0], AddToPrompt)
    assert actions[0].part.role == "system"
    assert isinstance(actions[1], Emit)
    assert json.loads(actions[1].part.text)["user_idle"] == 1
    assert TRIGGER in actions
    policy.generation_ended(2)
    assert policy.tick(16.0) == ()
    # User input restarts the timer (and resets the count).
    policy.receive(text_part("here"), 17.0)
    assert policy.deadline == -math.inf
    assert policy.tick(17.0) == ()
    assert policy.deadline == 22.0


def test_idle_user_gives_up_and_may_end_the_input() -> None:
    policy = answering(user_idle_timeout=2.0, user_idle_end=True)
    policy.generation_ended(1)
    policy.tick(1.0)
    (first,) = policy.tick(3.0)
    assert isinstance(first, Emit)
    assert json.loads(first.part.text) == {
        "user_idle": 1,
        "idle_seconds": 2.0,
        "prompted": False,
        "gave_up": False,
    }
    last, close = policy.tick(5.0)
    assert isinstance(last, Emit)
    assert json.loads(last.part.text)["gave_up"] is True
    assert close is CLOSE_INPUT
    assert policy.deadline is None


async def test_idle_user_through_a_session(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["hello", "Are you still there?", "Still there?", "Bye."])
    session = LiveSession(
        model,
        user_idle_timeout=4.0,
        user_idle_prompt="The user is quiet: ask if they are still there.",
        user_idle_retries=2,
        user_idle_end=True,
    )
    async with session:
        await session.send(end_of_turn("hi"))
        out = [(trio.current_time(), part) async for part in session]
    assert [(at, label) for at, label in labels(out) if label != "<status>"] == [
        (0.0, "hello"),
        (0.0, "<done 1>"),
        (4.0, "Are you still there?"),
        (4.0, "<done 2>"),
        (8.0, "Still there?"),
        (8.0, "<done 3>"),
    ]
    reports = statuses(out)
    assert [(at, r["user_idle"], r["prompted"], r["gave_up"]) for at, r in reports] == [
        (4.0, 1, True, False),
        (8.0, 2, True, False),
        (12.0, 3, False, True),
    ]
    assert session.statistics().state == "closed"
    assert [p.role for p in session.history()] == ["user", "model", "system", "model"] * 1 + [
        "system",
        "model",
    ]


async def test_user_speech_restarts_the_idle_timer(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["a", "b"])
    session = LiveSession(model, user_idle_timeout=3.0)
    timeline: Timeline = [
        (0.0, end_of_turn("q")),
        (2.0, start_of_speech()),
        (2.5, end_of_speech()),
        (2.6, audio_part(bytes(320))),
    ]
    out = await play_timeline(session, timeline, end_at=9.0)
    # No prompt: a report after 3 s of quiet following the speech, then
    # the last one 3 s later; the session goes on (no user_idle_end).
    assert [(at, r["user_idle"], r["gave_up"]) for at, r in statuses(out)] == [
        (5.5, 1, False),
        (8.5, 2, True),
    ]


# --- the demo's switches ------------------------------------------------------


def test_the_demo_switches_the_rules_on() -> None:
    from trio_live._cli import UsageError, build_parser
    from trio_live._cli.demo import check, session_options

    parser = build_parser("demo")
    args = parser.parse_args(
        [
            "demo",
            "--min-interruption-duration",
            "0.4",
            "--min-interruption-words",
            "1",
            "--false-interruption-timeout",
            "1.0",
            "--user-idle-timeout",
            "8",
            "--user-idle-prompt",
            "Ask if they are still there.",
        ]
    )
    options = session_options(args)
    assert options["min_interruption_duration"] == 0.4
    assert options["user_idle_prompt"] == "Ask if they are still there."
    assert not LiveSession(ScriptedModel(), **options).history()
    bad = parser.parse_args(["demo", "--min-interruption-duration", "-1"])
    with pytest.raises(UsageError, match="min-interruption-duration"):
        check(bad)


def test_the_demo_runs_the_quality_rules_unless_told_not_to() -> None:
    from trio_live._cli import build_parser
    from trio_live._cli.demo import QUALITY, _rules_line, session_options, wants_turn_detector
    from trio_live.voice import smart_turn_available

    parser = build_parser("demo")
    on = parser.parse_args(["demo"])
    assert {k: session_options(on)[k] for k in QUALITY} == {
        "min_interruption_duration": 0.5,
        "min_interruption_words": 1,
        "false_interruption_timeout": 1.0,
    }
    assert wants_turn_detector(on) == smart_turn_available()
    assert _rules_line(session_options(on), True) == (
        "end of turn: Smart Turn v3.2 (a pause it hears unfinished waits); speech over an"
        " answer cuts it once it lasted 0.5 s, once it said 1 word(s), not if no words came"
        " in 1.0 s\n"
    )
    off = parser.parse_args(["demo", "--no-quality"])
    plain = session_options(off)
    assert (plain["min_interruption_duration"], plain["min_interruption_words"]) == (0.0, 0)
    assert plain["false_interruption_timeout"] is None
    assert not wants_turn_detector(off)
    assert TurnPolicy(**{k: plain[k] for k in QUALITY}).barge_in_at_once
    assert _rules_line(plain, False) == (
        "end of turn: VAD silence; speech over an answer cuts it at once\n"
    )
    # An option given wins over either default.
    mixed = parser.parse_args(["demo", "--no-quality", "--min-interruption-words", "2"])
    assert session_options(mixed)["min_interruption_words"] == 2
    assert wants_turn_detector(parser.parse_args(["demo", "--no-quality", "--turn-detect"]))


@pytest.mark.parametrize(
    "options",
    [
        {"min_interruption_duration": 0.5},
        {"min_interruption_words": 2},
        {"false_interruption_timeout": 1.0},
    ],
)
def test_an_explicit_interrupt_cuts_at_once_whatever_the_rules(options: dict[str, Any]) -> None:
    # An interrupt button, not a voice: ``metadata["interrupt"]`` skips rules 15, 16 and 18.
    policy = answering(**options)
    assert policy.receive(start_of_speech(), 1.0) == ()  # a voice waits
    policy.receive(end_of_speech(), 1.1)
    assert BARGE_IN in policy.receive(start_of_speech().with_metadata(interrupt=True), 2.0)
    assert policy.state is State.ANSWERING  # the driver ends the generation
