from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from trio_live import (
    EndOfInput,
    LiveSession,
    Part,
    PromptStream,
    SessionClosedError,
    TriggerMode,
    audio_part,
    end_of_speech,
    end_of_turn,
    is_activity,
    is_answer,
    is_answer_complete,
    is_error,
    is_final_transcription,
    is_interrupted,
    is_transcription,
    is_turn_complete,
    start_of_speech,
    status_part,
    text_part,
    transcription,
    turn_model,
)
from trio_live.testing import ScriptedModel, play_timeline

Timeline = list[tuple[float, Part]]


def kinds(outputs: Timeline) -> list[tuple[float, str]]:
    """Output as (time, label) pairs, rounded to the millisecond."""
    labels = []
    for at, part in outputs:
        if is_answer_complete(part):
            continue  # before every turn's last markers: see test_marker_order
        elif is_turn_complete(part):
            label = "<done>"
        elif is_interrupted(part):
            label = "<interrupted>"
        elif is_error(part):
            label = "<error>"
        else:
            label = part.text
        labels.append((round(at, 3), label))
    return labels


def texts(parts: list[Part]) -> list[str]:
    return [p.text for p in parts]


async def test_reserved_parts_go_straight_to_output(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["hi"])
    session = LiveSession(model)
    status = status_part({"level": 3})
    out = await play_timeline(session, [(1.0, status)])
    assert out == [(1.0, status)]
    assert session.history() == []


async def test_transcriptions(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["answer"], first_part_delay=0.5)
    session = LiveSession(model, trigger=TriggerMode.FINAL_TRANSCRIPTION)
    partial = transcription("hel", final=False)
    final = transcription("hello", final=True)
    unflagged = Part(content="maybe", substream="transcription")
    out = await play_timeline(session, [(0.0, partial), (0.1, unflagged), (0.2, final)])
    # Shown on the main stream, in order; the final one triggers the turn.
    assert [p.substream for _, p in out[:3]] == ["", "", ""]
    assert kinds(out) == [
        (0.0, "hel"),
        (0.1, "maybe"),
        (0.2, "hello"),
        (0.7, "answer"),
        (0.7, "<done>"),
    ]
    # Only the final one joined the prompt, as user input.
    assert model.prompts[0] == [final.replace(substream="").with_metadata(transcription=True)]
    assert texts(session.history()) == ["hello", "answer"]


async def test_barge_in_cancels_at_once(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["one", "two", "three"]], first_part_delay=0.1, part_delay=1.0)
    session = LiveSession(model)
    out = await play_timeline(
        session, [(0.0, end_of_turn("q")), (1.5, start_of_speech()), (1.6, end_of_speech())]
    )
    assert kinds(out)[:4] == [(0.1, "one"), (1.1, "two"), (1.5, "<interrupted>"), (1.5, "<done>")]
    # Only what was delivered is in the history.
    assert texts(session.history())[:3] == ["q", "one", "two"]
    stats = session.statistics().recent_turns[0]
    assert stats.cancelled
    assert stats.barge_in_latency == 0.0
    assert model.calls[0].sent == ["one", "two"]


async def test_end_of_speech_triggers_in_that_mode(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["ok"], first_part_delay=0.2)
    session = LiveSession(model, trigger=TriggerMode.END_OF_SPEECH)
    audio = audio_part(bytes(640))
    out = await play_timeline(
        session, [(0.0, start_of_speech()), (0.02, audio), (0.5, end_of_speech())]
    )
    assert kinds(out) == [(0.7, "ok"), (0.7, "<done>")]
    assert model.prompts[0] == [audio]


async def test_end_of_turn_cancels_running_answer_and_strips_marker(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["a", "b", "c"], "second"], first_part_delay=0.1, part_delay=1.0)
    session = LiveSession(model)
    out = await play_timeline(session, [(0.0, end_of_turn("q1")), (1.5, end_of_turn())])
    assert kinds(out) == [
        (0.1, "a"),
        (1.1, "b"),
        (1.5, "<interrupted>"),
        (1.5, "<done>"),
        (1.6, "second"),
        (1.6, "<done>"),
    ]
    # The bare end-of-turn added no empty text; the marker was stripped from q1.
    assert texts(model.prompts[1]) == ["q1", "a", "b"]
    assert all(not p.metadata.get("end_of_turn") for p in model.prompts[1])


async def test_input_during_answer_is_stashed_after_the_answer(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["a", "b"], "next"], first_part_delay=0.1, part_delay=1.0)
    session = LiveSession(model)
    await play_timeline(
        session,
        [
            (0.0, end_of_turn("q1")),
            (0.5, text_part("s1")),
            (0.6, text_part("s2")),
            (3.0, end_of_turn("q2")),
        ],
    )
    # The stash joined after the generation's own output, in arrival order.
    assert texts(model.prompts[1]) == ["q1", "a", "b", "s1", "s2", "q2"]
    assert texts(session.history()) == ["q1", "a", "b", "s1", "s2", "q2", "next"]


async def test_stash_is_flushed_when_the_answer_is_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["a", "b"], "next"], first_part_delay=0.1, part_delay=1.0)
    session = LiveSession(model)
    await play_timeline(
        session,
        [(0.0, end_of_turn("q1")), (0.5, text_part("s1")), (0.6, end_of_turn("q2"))],
    )
    assert texts(model.prompts[1]) == ["q1", "a", "s1", "q2"]


async def test_output_streams_as_it_comes(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["x", "y", "z"]], first_part_delay=1.0, part_delay=0.25)
    session = LiveSession(model)
    out = await play_timeline(session, [(0.0, end_of_turn("q"))])
    assert kinds(out) == [(1.0, "x"), (1.25, "y"), (1.5, "z"), (1.5, "<done>")]
    assert all(p.metadata["turn"] == 1 for _, p in out)
    assert all(p.role == "model" for _, p in out)


async def test_prestreaming_model_sees_parts_as_they_arrive(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel(["r1", "r2"])
    session = LiveSession(model)
    await play_timeline(
        session,
        [
            (1.0, text_part("u1")),
            (2.0, end_of_turn()),
            (3.0, text_part("u2")),
            (4.0, end_of_turn()),
        ],
    )
    first, second = (call for call in model.calls if call.turn is not None)
    # The first generation started with the session, before any input.
    assert first.started_at == 0.0
    assert [(t, p.text) for t, p in first.arrivals] == [(1.0, "u1")]
    assert first.finalized_at == 2.0
    # The second was started at the first trigger and read the history then.
    assert second.started_at == 2.0
    assert [(t, p.text) for t, p in second.arrivals] == [
        (2.0, "u1"),
        (2.0, "r1"),
        (3.0, "u2"),
    ]


async def test_prestreamed_output_is_held_until_the_trigger(
    autojump_clock: trio.abc.Clock,
) -> None:
    @turn_model
    async def eager(prompt: PromptStream):  # type: ignore[no-untyped-def]
        # Answers before reading the prompt to its end.
        yield text_part("early", role="model")
        async for _ in prompt:
            pass

    session = LiveSession(eager)
    out = await play_timeline(session, [(5.0, end_of_turn("q"))])
    assert kinds(out) == [(5.0, "early"), (5.0, "<done>")]


async def test_final_transcription_waits_for_end_of_speech(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel(["ok"])
    session = LiveSession(model)
    out = await play_timeline(
        session,
        [
            (0.0, start_of_speech()),
            (1.0, transcription("hi there", final=True)),
            (3.0, end_of_speech()),
        ],
    )
    assert kinds(out) == [(1.0, "hi there"), (3.0, "ok"), (3.0, "<done>")]


async def test_waiting_for_end_of_speech_can_be_turned_off(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel(["ok"])
    session = LiveSession(model, wait_for_end_of_speech=False)
    out = await play_timeline(
        session,
        [
            (0.0, start_of_speech()),
            (1.0, transcription("hi", final=True)),
            (3.0, end_of_speech()),
        ],
    )
    assert kinds(out) == [(1.0, "hi"), (1.0, "ok"), (1.0, "<done>")]


async def test_end_of_input_lets_the_answer_finish(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["a", "b"]], first_part_delay=1.0, part_delay=1.0)
    session = LiveSession(model)
    out = await play_timeline(session, [(0.0, end_of_turn("q"))])
    assert kinds(out) == [(1.0, "a"), (2.0, "b"), (2.0, "<done>")]
    # No extra model call for the end of input: one answered turn only.
    assert len(model.prompts) == 1


@pytest.mark.parametrize(
    ("mode", "timeline", "answers"),
    [
        (EndOfInput.IF_UNANSWERED, [(0.0, text_part("q"))], 1),
        (EndOfInput.IF_UNANSWERED, [(0.0, audio_part(bytes(640)))], 0),
        (EndOfInput.IF_UNANSWERED, [(0.0, end_of_turn("q"))], 1),
        (EndOfInput.NEVER, [(0.0, text_part("q"))], 0),
        (EndOfInput.ALWAYS, [(0.0, end_of_turn("q"))], 2),
    ],
)
async def test_end_of_input_modes(
    autojump_clock: trio.abc.Clock, mode: EndOfInput, timeline: Timeline, answers: int
) -> None:
    model = ScriptedModel(["x"])
    session = LiveSession(model, end_of_input=mode)
    out = await play_timeline(session, timeline)
    assert sum(is_turn_complete(p) for _, p in out) == answers
    assert len(model.prompts) == answers


async def test_no_task_outlives_the_session(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["slow"], first_part_delay=100.0)
    async with LiveSession(model) as session:
        await session.send(end_of_turn("q"))
        await trio.sleep(1)
    # Leaving the block cancelled the running generation and the pending one.
    assert trio.current_time() == 1.0
    root = trio.lowlevel.current_root_task()
    live = [
        task.name
        for nursery in root.child_nurseries
        for task in nursery.child_tasks
        if "trio_live" in task.name
    ]
    assert live == []
    with pytest.raises(SessionClosedError):
        await session.send(text_part("late"))


async def test_model_error_reaches_the_caller_as_itself(
    autojump_clock: trio.abc.Clock,
) -> None:
    class Boom(Exception):
        pass

    model = ScriptedModel(["ok"], errors={0: Boom("model failed")})
    session = LiveSession(model)
    with pytest.raises(Boom, match="model failed"):
        await play_timeline(session, [(0.0, text_part("s")), (0.0, end_of_turn("q"))])
    # Nothing the user sent was lost.
    assert texts(session.history()) == ["s", "q"]


async def test_model_error_can_be_reported_and_the_session_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel(["never", "ok"], errors={0: RuntimeError("flaky")})
    session = LiveSession(model, model_errors="report")
    out = await play_timeline(session, [(0.0, end_of_turn("q1")), (1.0, end_of_turn("q2"))])
    assert kinds(out) == [(0.0, "<error>"), (0.0, "<done>"), (1.0, "ok"), (1.0, "<done>")]
    assert '"RuntimeError"' in out[0][1].text


async def test_cancelled_generation_is_not_an_error(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["long"], first_part_delay=10.0)
    session = LiveSession(model)
    out = await play_timeline(
        session, [(0.0, end_of_turn("q")), (1.0, start_of_speech()), (1.1, end_of_speech())]
    )
    assert not any(is_error(p) for _, p in out)


async def test_turn_statistics(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["a", "b"], "c"], first_part_delay=0.3, part_delay=1.0)
    session = LiveSession(model, emit_stats=True)
    out = await play_timeline(
        session,
        [(0.0, text_part("x")), (1.0, end_of_turn("q")), (2.0, start_of_speech())],
    )
    stats = session.statistics()
    assert stats.turns == 2
    assert stats.interrupted_turns == 1
    first, second = stats.recent_turns
    assert first.triggered_at == 1.0
    assert first.time_to_first_output == pytest.approx(0.3)
    assert first.barge_in_latency == 0.0
    assert first.prompt_parts == 2
    assert first.output_parts == 1
    # The speech left unanswered at the end of input got its answer.
    assert second.triggered_at == 2.0
    assert not second.cancelled
    assert sum(p.substream == "status" for _, p in out) == 2


async def test_barge_in_waits_for_the_generation_to_exit(
    autojump_clock: trio.abc.Clock,
) -> None:
    exited_at: list[float] = []

    async def stubborn(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        await prompt.collect()
        try:
            await output.send(text_part("hi", role="model"))
            await trio.sleep_forever()
        finally:
            # Tear-down takes time; the next turn must not start before it ends.
            with trio.CancelScope(shield=True):
                await trio.sleep(2.0)
            exited_at.append(trio.current_time())

    session = LiveSession(stubborn, end_of_input=EndOfInput.NEVER)
    started: list[float] = []
    async with session:
        await session.send(end_of_turn("q1"))
        assert (await session.receive()).text == "hi"
        await trio.sleep(1.0)
        await session.send(end_of_turn("q2"))
        assert is_answer_complete(await session.receive())
        assert is_interrupted(await session.receive())
        assert is_turn_complete(await session.receive())
        assert (await session.receive()).text == "hi"
        started.append(trio.current_time())
    assert exited_at[0] == 3.0
    assert started == [3.0]


async def test_bounded_output_applies_backpressure(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([[str(i) for i in range(10)]])
    async with LiveSession(model, output_buffer=2) as session:
        await session.send(end_of_turn("q"))
        await trio.testing.wait_all_tasks_blocked()
        assert model.calls[0].sent == ["0", "1"]
        got = [(await session.receive()).text for _ in range(10)]
    assert got == [str(i) for i in range(10)]


async def test_run_as_a_task_over_channels(autojump_clock: trio.abc.Clock) -> None:
    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, receive_out = trio.open_memory_channel[Part](10)
    session = LiveSession(ScriptedModel(["pong"]))
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run, receive_in, send_out)
        async with send_in:
            await send_in.send(end_of_turn("ping"))
        got = [part async for part in receive_out]
    assert [p.text for p in got if is_answer(p)] == ["pong"]
    with pytest.raises(RuntimeError, match="only once"):
        await session.run(receive_in, send_out)


@pytest.mark.parametrize(
    ("field", "value"), [("input_buffer", -1), ("output_buffer", -2), ("model_errors", "x")]
)
def test_bad_options_are_rejected(field: str, value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        LiveSession(ScriptedModel(), **{field: value})  # type: ignore[arg-type]


async def test_barge_in_keeps_only_what_was_heard(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["Hello there. ", "How are you?"]], part_delay=1.0)
    async with LiveSession(model, track_playback=True) as session:
        await session.send(end_of_turn("q"))
        assert (await session.receive()).text == "Hello there. "
        session.report_playback(1, 5)
        await session.send(start_of_speech())
        assert is_answer_complete(await session.receive())
        assert is_interrupted(await session.receive())
        assert is_turn_complete(await session.receive())
        assert texts(session.history()) == ["q", "Hello"]


async def test_speech_over_playback_stops_it_and_cuts_the_answer(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["one two ", "three four"]])
    async with LiveSession(model, track_playback=True) as session:
        await session.send(end_of_turn("q"))
        got = [await session.receive() for _ in range(3)]
        assert is_answer_complete(got[-1])  # its turn_complete waits for the playback
        # Generated, but not heard yet: not in the history; input is stashed.
        await session.send(text_part("while playing"))
        await trio.testing.wait_all_tasks_blocked()
        assert texts(session.history()) == ["q"]
        assert session.statistics().state == "playing"
        session.report_playback(1, 8)
        await session.send(start_of_speech())
        stop = await session.receive()
        assert is_interrupted(stop)
        assert stop.metadata["turn"] == 1
        assert texts(session.history()) == ["q", "one two ", "while playing"]
        assert session.statistics().state == "listening"


async def test_finished_playback_keeps_the_whole_answer(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["a", "b"], "c"])
    async with LiveSession(model, track_playback=True) as session:
        await session.send(end_of_turn("q"))
        for _ in range(3):
            await session.receive()
        await session.send(text_part("s"))
        await trio.testing.wait_all_tasks_blocked()
        session.report_playback(2, 99, finished=True)  # another turn: ignored
        assert texts(session.history()) == ["q"]
        session.report_playback(1, 2, finished=True)
        assert texts(session.history()) == ["q", "a", "b", "s"]
        # A new turn while an answer still plays keeps that answer whole.
        await session.send(end_of_turn("q2"))
        for _ in range(2):
            await session.receive()
        await session.send(end_of_turn("q3"))
        await session.receive()
        await trio.testing.wait_all_tasks_blocked()
        assert texts(session.history())[4:] == ["q2", "c", "q3"]
    with pytest.raises(ValueError, match="chars"):
        session.report_playback(1, -1)


async def test_input_keeps_its_order_whichever_way_it_enters(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Plain parts sent while the session idles are taken at once; markers go
    # through the input channel. Sent back to back, they keep their order.
    model = ScriptedModel(["r1", "r2"])
    async with LiveSession(model, end_of_input=EndOfInput.NEVER) as session:
        await trio.testing.wait_all_tasks_blocked()
        for part in (
            text_part("a"),
            end_of_turn("b"),
            text_part("c"),
            text_part("d"),
            end_of_turn(),
            text_part("e"),
        ):
            await session.send(part)
        session.close_input()
        outputs = [p async for p in session]
    assert [p.text for p in outputs if is_answer(p)] == ["r1", "r2"]
    assert texts(session.history()) == ["a", "b", "r1", "c", "d", "r2", "e"]


@pytest.mark.parametrize("audio_every", [None, 0.02])
async def test_a_missed_end_of_speech_does_not_stall_the_turn(
    autojump_clock: trio.abc.Clock, audio_every: float | None
) -> None:
    # The final transcription comes while the VAD still hears speech, and the
    # VAD never reports the end: the turn triggers once the timeout passed,
    # whether the input goes quiet or audio keeps streaming in.
    model = ScriptedModel(["ok"])
    session = LiveSession(model, end_of_speech_timeout=2.0)
    timeline: Timeline = [(0.0, start_of_speech()), (1.0, transcription("hi", final=True))]
    if audio_every is not None:
        timeline += [(1.0 + k * audio_every, audio_part(bytes(640))) for k in range(1, 200)]
    out = await play_timeline(session, timeline, end_at=6.0)
    answered = [at for at, part in out if part.role == "model" and part.content]
    assert answered
    assert answered[0] == pytest.approx(3.0, abs=audio_every or 0.0)


async def test_activity_parts_follow_the_conversation(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["a", "b", "c"], "never"], part_delay=1.0)
    session = LiveSession(model, emit_activity=True)
    out = await play_timeline(session, [(0.0, end_of_turn("q")), (1.5, start_of_speech())])
    labels = [
        (at, json.loads(part.text)["activity"] if is_activity(part) else part.text or part.mimetype)
        for at, part in out
    ]
    assert labels[:4] == [(0.0, "thinking"), (0.0, "speaking"), (0.0, "a"), (1.0, "b")]
    # Barge-in: the cancel comes first (nothing may wait before it), then
    # the cut turn's markers, then listening, all at once.
    assert labels[4:8] == [
        (1.5, "application/x.trio-live.answer-complete"),
        (1.5, "application/x.trio-live.interrupted"),
        (1.5, "application/x.trio-live.turn-complete"),
        (1.5, "listening"),
    ]
    assert session.statistics().activity == "listening"


async def test_a_trigger_racing_the_answers_end_keeps_what_was_heard(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The model has sent its whole answer and tidies up (shielded, as an HTTP
    # adapter closing its stream does) when the next turn cancels it: the
    # history and the markers must agree (the listener stops at interrupted).
    async def tidy(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        await prompt.collect()
        await output.send(text_part("all of it", role="model"))
        with trio.CancelScope(shield=True):
            await trio.sleep(1.0)

    async with LiveSession(tidy, track_playback=True) as session:
        await session.send(end_of_turn("q"))
        assert (await session.receive()).text == "all of it"
        session.report_playback(1, 3)
        await trio.sleep(0.5)
        await session.send(end_of_turn("next"))
        assert is_answer_complete(await session.receive())
        assert is_interrupted(await session.receive())
        assert is_turn_complete(await session.receive())
        await trio.testing.wait_all_tasks_blocked()
        assert texts(session.history()[:2]) == ["q", "all"]


async def test_cancelling_the_session_while_an_answer_plays_keeps_the_stash(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel(["one two three"])
    session = LiveSession(model, track_playback=True)
    with trio.CancelScope() as scope:
        async with session:
            await session.send(end_of_turn("q"))
            await session.receive()
            assert is_answer_complete(await session.receive())
            await session.send(text_part("said while it played"))
            await trio.testing.wait_all_tasks_blocked()
            session.report_playback(1, 3)
            scope.cancel()
            await trio.sleep_forever()
    assert texts(session.history()) == ["q", "one", "said while it played"]


async def _slow_listener(session: LiveSession, inputs: list[Part]) -> list[Part]:
    out: list[Part] = []

    async def feed() -> None:
        for part in inputs:
            await session.send(part)
        session.close_input()

    async with session, trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        async for part in session:
            out.append(part)
            await trio.sleep(0.02)  # a listener slower than the session
    return out


async def test_the_last_turns_markers_reach_a_slow_listener(autojump_clock: trio.abc.Clock) -> None:
    # The input ends while the last turn's closing markers wait on a full
    # output: they used to be cancelled with the session's end.
    session = LiveSession(
        ScriptedModel([[]]), trigger="end_of_speech", input_buffer=0, output_buffer=0
    )
    out = await _slow_listener(session, [end_of_turn(), end_of_turn(), audio_part(b"xx")])
    assert [p.metadata["turn"] for p in out if is_turn_complete(p)] == [1, 2]
    assert session.statistics().turns == 2


def marker_times(outputs: Timeline) -> list[tuple[float, str, int]]:
    """The markers of ``outputs`` as (time, name, turn), to the millisecond."""
    names = {
        "application/x.trio-live.answer-complete": "answer_complete",
        "application/x.trio-live.interrupted": "interrupted",
        "application/x.trio-live.turn-complete": "turn_complete",
    }
    return [
        (round(at, 3), names[part.mimetype], part.metadata["turn"])
        for at, part in outputs
        if part.mimetype in names
    ]


async def collect(session: LiveSession, into: Timeline) -> None:
    async for part in session:
        into.append((trio.current_time(), part))


@pytest.mark.parametrize("track", [False, True])
async def test_marker_order_over_a_barge_in_on_the_running_answer(
    autojump_clock: trio.abc.Clock, track: bool
) -> None:
    # Cut while it runs: the answer's end, interrupted, the turn's end, at once.
    model = ScriptedModel([["a ", "b ", "c"]], first_part_delay=0.1, part_delay=1.0)
    timeline = [(0.0, end_of_turn("q")), (1.5, start_of_speech())]
    out = await play_timeline(
        LiveSession(model, track_playback=track, end_of_input="never"), timeline
    )
    assert marker_times(out) == [
        (1.5, "answer_complete", 1),
        (1.5, "interrupted", 1),
        (1.5, "turn_complete", 1),
    ]


async def test_with_playback_tracking_the_turn_ends_when_the_playback_is_reported(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["a ", "b"]], first_part_delay=0.1, part_delay=0.1)
    out: Timeline = []
    async with LiveSession(model, track_playback=True) as session, trio.open_nursery() as n:
        n.start_soon(collect, session, out)
        await session.send(end_of_turn("q"))
        await trio.sleep(3.0)
        # A player reports the playback finished after answer_complete and
        # the audio before it; turn_complete waits for that report.
        assert marker_times(out) == [(0.2, "answer_complete", 1)]
        session.report_playback(1, 3, finished=True)
        await trio.sleep(1.0)
        session.close_input()
    assert marker_times(out) == [(0.2, "answer_complete", 1), (3.0, "turn_complete", 1)]


async def test_with_playback_tracking_speech_over_the_playback_ends_the_turn(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Issue 13: turn_complete used to go at the answer's end, before the
    # interrupted marker of a barge-in on its playback.
    model = ScriptedModel([["a ", "b"]], first_part_delay=0.1, part_delay=0.1)
    timeline = [(0.0, end_of_turn("q")), (2.0, start_of_speech())]
    out = await play_timeline(
        LiveSession(model, track_playback=True, end_of_input="never"), timeline
    )
    assert marker_times(out) == [
        (0.2, "answer_complete", 1),
        (2.0, "interrupted", 1),
        (2.0, "turn_complete", 1),
    ]


async def test_with_playback_tracking_a_new_turn_or_the_input_end_ends_the_playing_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["a"], ["b"]], first_part_delay=0.1)
    timeline = [(0.0, end_of_turn("q")), (1.0, end_of_turn("q2")), (2.0, text_part("x"))]
    out = await play_timeline(
        LiveSession(model, track_playback=True, end_of_input="never"), timeline
    )
    assert marker_times(out) == [
        (0.1, "answer_complete", 1),
        (1.0, "turn_complete", 1),
        (1.1, "answer_complete", 2),
        (2.0, "turn_complete", 2),
    ]


async def test_markers_are_no_answer_and_shown_transcriptions_are_recognisable(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["hi"]])
    timeline = [(0.0, transcription("hel", final=False)), (0.5, transcription("hello", final=True))]
    out = [part for _, part in await play_timeline(LiveSession(model), timeline)]
    # Markers carry role "model" and the turn, as the answer does.
    assert [p.mimetype for p in out if p.role == "model"] == [
        "text/plain",
        "application/x.trio-live.answer-complete",
        "application/x.trio-live.turn-complete",
    ]
    assert [p.text for p in out if is_answer(p)] == ["hi"]
    # Shown on the main stream, transcriptions are still transcriptions.
    shown = [p for p in out if is_transcription(p)]
    assert [(p.text, p.substream) for p in shown] == [("hel", ""), ("hello", "")]
    assert [p.text for p in out if is_final_transcription(p)] == ["hello"]


# --- changing the policy mid-conversation --------------------------------------


async def test_update_policy_changes_the_interruption_rules_mid_session(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["one", *[" two"] * 40], ["three", *[" four"] * 40]], part_delay=0.1)
    async with LiveSession(model) as session:
        await session.send(end_of_turn("first"))
        await session.receive()
        session.update_policy(min_interruption_duration=0.5, backchannels=["Mm-hm", "yeah"])
        assert session.min_interruption_duration == 0.5
        assert session.backchannels == ("mm-hm", "yeah")
        # Speech over the answer now has to last 0.5 s: a short one is no interruption.
        await session.send(start_of_speech())
        await trio.sleep(0.2)
        await session.send(end_of_speech())
        await trio.sleep(1.0)
        assert session.statistics().interrupted_turns == 0
        # Back to the default: the next start of speech interrupts at once.
        session.update_policy(min_interruption_duration=0.0)
        await session.send(start_of_speech())
        while not is_interrupted(await session.receive()):
            pass
        assert session.statistics().interrupted_turns == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_interruption_duration": -1}, "min_interruption_duration must be"),
        ({"min_interruption_words": 1.5}, "min_interruption_words must be"),
        ({"false_interruption_timeout": 0}, "false_interruption_timeout must be"),
        ({"backchannels": "yeah"}, "backchannels must be"),
        ({"trigger": "end_of_speech"}, "'trigger' cannot be updated"),
        ({"min_interruption_words": 2, "window": 5.0}, "'window' cannot be updated"),
    ],
)
async def test_update_policy_checks_like_the_constructor_and_changes_nothing_on_error(
    options: dict[str, object], message: str
) -> None:
    session = LiveSession(ScriptedModel())
    with pytest.raises(ValueError, match=message):
        session.update_policy(**{"min_interruption_words": 3, **options})
    assert session.min_interruption_words == 0
    assert session.statistics().state == "listening"
