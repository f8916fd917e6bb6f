"""The core on the user's path: barge-in in `send`, held output, flat turns, sends."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from trio_live import (
    EndOfInput,
    LiveSession,
    Part,
    PromptStream,
    SessionClosedError,
    end_of_speech,
    end_of_turn,
    is_answer_complete,
    is_interrupted,
    is_turn_complete,
    start_of_speech,
    text_part,
)
from trio_live.testing import ScriptedModel


@attrs.define(eq=False)
class Race:
    """Counts model parts delivered after the caller's barge-in `send` began."""

    began: bool = False
    late: int = 0
    delivered: int = 0


def racing_model(race: Race, parts: int = 6) -> object:
    async def model(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        await prompt.collect()
        start = trio.current_time()
        for index in range(parts):
            # The part is delivered synchronously inside `send` (or not at
            # all, if it raises): note whether the barge-in had begun.
            late = race.began
            await output.send(text_part(f"w{index}", role="model"))
            race.delivered += 1
            race.late += late
            await trio.sleep_until(start + index + 1.0)

    return model


async def test_no_part_after_start_of_speech_in_the_same_pass(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The source's timer and the model's next timer fire in the same
    # scheduler pass (both at base + 3.0); trio runs them in either order.
    race = Race()
    trials = 40
    interrupted = 0
    async with LiveSession(racing_model(race)) as session:  # type: ignore[arg-type]

        async def drain() -> None:
            nonlocal interrupted
            async for part in session:
                interrupted += is_interrupted(part)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            for trial in range(trials):
                base = 10.0 * trial
                await trio.sleep_until(base)
                race.began = False
                await session.send(end_of_turn("q"))
                await trio.sleep_until(base + 3.0)
                race.began = True
                await session.send(start_of_speech())
                await trio.sleep_until(base + 3.5)
                race.began = False
                await session.send(end_of_speech())
            session.close_input()
    assert race.late == 0
    assert interrupted == trials


async def test_no_part_after_start_of_speech_behind_a_queued_trigger(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The pump is busy (turn 1's closing markers wait on the full output)
    # and input is queued: a trigger, more than a pump batch of text, then the
    # start of speech. The turn the queued trigger starts runs while the pump
    # is still taking that text; it delivers nothing after the caller's
    # barge-in began, and the policy still ends it as interrupted.
    race = Race()
    model = racing_model(race)
    session = LiveSession(model, input_buffer=2048, output_buffer=1)  # type: ignore[arg-type]
    async with session:
        await session.send(end_of_turn("q1"))
        await trio.testing.wait_all_tasks_blocked()
        await session.send(end_of_turn("q2"))
        for index in range(1000):
            await session.send(text_part(f"t{index}"))
        race.began = True
        await session.send(start_of_speech())
        got = []
        while True:
            part = await session.receive()
            got.append(part)
            if is_turn_complete(part) and part.metadata["turn"] == 2:
                break
        session.close_input()
    assert race.late == 0
    turn_two = [p for p in got if p.metadata.get("turn") == 2]
    assert [p.mimetype for p in turn_two] == [
        "application/x.trio-live.answer-complete",
        "application/x.trio-live.interrupted",
        "application/x.trio-live.turn-complete",
    ]
    # The text sent during turn 2 joined the history after it.
    history = [p.text for p in session.history()]
    assert history[history.index("q2") + 1 :][:1000] == [f"t{i}" for i in range(1000)]


async def test_a_pre_started_model_reads_ahead_after_speaking_early(
    autojump_clock: trio.abc.Clock,
) -> None:
    calls: list[list[tuple[float, str]]] = []

    async def early(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        arrivals: list[tuple[float, str]] = []
        calls.append(arrivals)
        first = await prompt.__anext__()
        # Held until the trigger: the send returns, the model reads on.
        await output.send(text_part(f"heard {first.text}", role="model"))
        arrivals.extend([(trio.current_time(), part.text) async for part in prompt])
        await output.send(text_part("done", role="model"))

    out: list[tuple[float, Part]] = []
    session = LiveSession(early, end_of_input=EndOfInput.NEVER)
    async with session:
        await session.send(text_part("a"))
        await trio.sleep(1.0)
        await session.send(text_part("b"))
        await trio.sleep(1.0)
        await session.send(end_of_turn("q"))
        session.close_input()
        out.extend([(trio.current_time(), part) async for part in session])
    assert calls[0] == [(1.0, "b"), (2.0, "q")]
    assert [(at, p.text, p.metadata.get("turn")) for at, p in out if p.text] == [
        (2.0, "heard a", 1),
        (2.0, "done", 1),
    ]
    assert is_turn_complete(out[-1][1])
    assert [p.text for p in session.history()] == ["a", "b", "q", "heard a", "done"]


async def test_held_output_is_dropped_when_no_turn_releases_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def eager(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        await output.send(text_part("too soon", role="model"))
        await prompt.collect()

    session = LiveSession(eager, end_of_input=EndOfInput.NEVER)
    async with session:
        await trio.sleep(1.0)
        session.close_input()
        out = [part async for part in session]
    assert out == []
    assert session.history() == []


async def test_held_output_past_the_bound_waits_and_a_barge_in_drops_the_rest(
    autojump_clock: trio.abc.Clock,
) -> None:
    sent: list[int] = []

    async def chatty(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        for index in range(6):
            await output.send(text_part(str(index), role="model"))
            sent.append(index)
        await prompt.collect()

    session = LiveSession(chatty, output_buffer=2, end_of_input=EndOfInput.NEVER)
    async with session:
        await trio.sleep(1.0)
        # Two held; the third send waits for the trigger.
        assert sent == [0, 1]
        await session.send(end_of_turn("q"))
        await trio.testing.wait_all_tasks_blocked()
        # The output (2) is full with the held parts; the rest waits.
        await session.send(start_of_speech())
        got = [(await session.receive()) for _ in range(5)]
        session.close_input()
    assert [p.text for p in got[:2]] == ["0", "1"]
    assert is_answer_complete(got[2])
    assert is_interrupted(got[3])
    assert is_turn_complete(got[4])
    assert [p.text for p in session.history()] == ["q", "0", "1"]


async def test_the_answer_reaches_the_consumer_before_the_next_call_reads_the_history(
    autojump_clock: trio.abc.Clock,
) -> None:
    log: list[str] = []
    calls = 0

    async def reader(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        nonlocal calls
        calls += 1
        number = calls
        async for _ in prompt:
            if f"read {number}" not in log:
                log.append(f"read {number}")
        await output.send(text_part(f"a{number}", role="model"))
        log.append(f"sent {number}")

    async def consume(session: LiveSession, done: trio.MemorySendChannel[None]) -> None:
        async for part in session:
            if is_turn_complete(part):
                done.send_nowait(None)
            else:
                log.append(f"got {part.text}")

    send_done, receive_done = trio.open_memory_channel[None](10)
    async with LiveSession(reader) as session, trio.open_nursery() as nursery:
        nursery.start_soon(consume, session, send_done)
        for index in range(50):
            await session.send(text_part(f"note {index}"))
        for _ in range(3):
            await session.send(end_of_turn("q"))
            await receive_done.receive()
        session.close_input()
    # Call 1 was pre-started at the start; each later call starts reading
    # only once the answer before it is out (the model's first send has
    # returned: a waiting consumer was woken a scheduler pass earlier).
    for turn in (1, 2, 3):
        assert log.index(f"sent {turn}") < log.index(f"read {turn + 1}"), log


async def test_send_nowait_and_send_all(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(["ok"])
    session = LiveSession(model, input_buffer=1, end_of_input=EndOfInput.NEVER)
    async with session:
        # Taken directly while the pump waits; then a trigger goes to the
        # waiting pump, and the plain part behind it fills the buffer.
        session.send_nowait(text_part("a"))
        session.send_nowait(end_of_turn("q"))
        session.send_nowait(text_part("b"))
        with pytest.raises(trio.WouldBlock):
            session.send_nowait(text_part("c"))
        await session.send_all([text_part("c"), text_part("d"), end_of_turn("r")])
        session.close_input()
        with pytest.raises(SessionClosedError):
            session.send_nowait(text_part("x"))
        with pytest.raises(SessionClosedError):
            await session.send(text_part("x"))
        with pytest.raises(SessionClosedError):
            await session.send_all([text_part("x")])
        out = [part async for part in session]
    assert sum(is_turn_complete(p) for p in out) == 2
    said = [p.text for p in session.history() if p.role == "user"]
    assert said == ["a", "q", "b", "c", "d", "r"]


async def test_send_all_checkpoints_once_when_everything_fits(
    autojump_clock: trio.abc.Clock,
) -> None:
    session = LiveSession(ScriptedModel(["ok"]), end_of_input=EndOfInput.NEVER)
    async with session:
        with trio.CancelScope() as scope:
            scope.cancel()
            await session.send_all([text_part("lost")])
        await session.send_all([text_part(str(i)) for i in range(10)])
        session.close_input()
    assert [p.text for p in session.history()] == [str(i) for i in range(10)]


async def test_close_input_ends_the_task_form_too(autojump_clock: trio.abc.Clock) -> None:
    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, receive_out = trio.open_memory_channel[Part](10)
    session = LiveSession(ScriptedModel(["pong"]))
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run, receive_in, send_out)
        await send_in.send(text_part("ping"))
        await trio.sleep(1.0)
        await send_in.send(text_part("queued"))
        session.close_input()  # the inbox stays open
        got = [part async for part in receive_out]
    # The queued part was taken; the unanswered input got its answer.
    assert [p.text for p in got if p.text] == ["pong"]
    assert [p.text for p in session.history()] == ["ping", "queued", "pong"]


async def test_barge_in_latency_ends_at_the_cancel_not_at_the_markers(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel([["one", "two", "three"]], part_delay=1.0)
    await trio.sleep(5.0)
    session = LiveSession(model, output_buffer=1, end_of_input=EndOfInput.NEVER)
    async with session:
        assert session.started_at == 5.0
        await session.send(end_of_turn("q"))
        assert (await session.receive()).text == "one"
        await trio.sleep(1.5)
        # "two" fills the output; the closing markers wait for the reader.
        await session.send(start_of_speech())
        await trio.sleep(2.0)
        got = [(await session.receive()) for _ in range(4)]
        session.close_input()
    assert got[0].text == "two"
    assert is_answer_complete(got[1])
    assert is_interrupted(got[2])
    stats = session.statistics()
    assert stats.started_at == 5.0
    turn = stats.recent_turns[0]
    assert turn.triggered_at - stats.started_at == 0.0
    assert turn.barge_in_at == 6.5
    assert turn.stopped_at == 6.5
    assert turn.ended_at == 8.5
    assert turn.barge_in_latency == 0.0


def test_tune_gc_freezes_and_sets_thresholds() -> None:
    import gc

    from trio_live import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (50_000, 10, 10)
        assert gc.get_freeze_count() > 0
        tune_gc(freeze=False, thresholds=None)
        assert gc.get_threshold() == (50_000, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
