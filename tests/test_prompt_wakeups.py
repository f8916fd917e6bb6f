"""How a model reading its prompt part by part is woken: audio coalesced, the rest at once.

Every test runs on trio's mock clock: the times a model reads its parts are
exact.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_live import (
    LiveSession,
    Part,
    PromptStream,
    audio_part,
    end_of_turn,
    is_audio,
    text_part,
)
from trio_live._prompt import RollingPrompt

FRAME = 0.02


class Reader:
    """A model that reads its prompt with ``async for``, noting when each part came."""

    def __init__(self) -> None:
        self.reads: list[list[tuple[float, Part]]] = []

    async def __call__(self, prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        reads: list[tuple[float, Part]] = []
        self.reads.append(reads)
        reads.extend([(trio.current_time(), part) async for part in prompt])
        await output.send(text_part("ok", role="model"))


def frame(index: int) -> Part:
    return audio_part(bytes([index % 256]) * 640, rate=16000)


async def stream(session: LiveSession, frames: int, start: float) -> None:
    for index in range(frames):
        await trio.sleep_until(start + index * FRAME)
        await session.send(frame(index))


async def end_turn(session: LiveSession) -> None:
    """Trigger the turn, end the input and read the session to its end."""
    await session.send(end_of_turn())
    session.close_input()
    async for _ in session:
        pass


def wake_times(reads: list[tuple[float, Part]]) -> list[float]:
    return sorted({round(at, 6) for at, part in reads if is_audio(part)})


async def test_audio_wakes_a_waiting_reader_at_most_once_per_interval(
    autojump_clock: trio.abc.Clock,
) -> None:
    reader = Reader()
    async with LiveSession(reader, audio_wake_interval=0.1) as session:
        start = trio.current_time()
        await stream(session, 26, start)  # 0.00 .. 0.50 s
        await end_turn(session)
    reads = reader.reads[0]
    # Every frame was read once, in order.
    assert [part for _, part in reads if is_audio(part)] == [frame(i) for i in range(26)]
    # The first frame wakes the reader at once; then one wake per 0.1 s,
    # with the frame that comes after the interval.
    assert [round(at - start, 6) for at in wake_times(reads)] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    by_time: dict[float, int] = {}
    for at, part in reads:
        if is_audio(part):
            by_time[round(at - start, 6)] = by_time.get(round(at - start, 6), 0) + 1
    assert by_time == {0.0: 1, 0.1: 5, 0.2: 5, 0.3: 5, 0.4: 5, 0.5: 5}


async def test_with_no_interval_every_frame_wakes_the_reader(
    autojump_clock: trio.abc.Clock,
) -> None:
    reader = Reader()
    async with LiveSession(reader, audio_wake_interval=0.0) as session:
        start = trio.current_time()
        await stream(session, 10, start)
        await end_turn(session)
    times = [round(at - start, 6) for at, part in reader.reads[0] if is_audio(part)]
    assert times == [round(i * FRAME, 6) for i in range(10)]


async def test_text_wakes_the_reader_at_once_and_takes_the_waiting_audio_along(
    autojump_clock: trio.abc.Clock,
) -> None:
    reader = Reader()
    async with LiveSession(reader, audio_wake_interval=0.1) as session:
        start = trio.current_time() + 0.01
        await trio.sleep_until(start)  # the model waits on its prompt
        await session.send(frame(0))  # wakes it at once: it rests until 0.1
        await trio.sleep_until(start + 0.02)
        await session.send(frame(1))  # waits for the next wake
        await trio.sleep_until(start + 0.03)
        await session.send(text_part("typed"))  # wakes it at once, with frame 1
        await trio.sleep_until(start + 0.04)
        await session.send(frame(2))  # a rest began at 0.03: waits
        await trio.sleep_until(start + 0.06)
        await end_turn(session)  # the trigger hands it over
    reads = [(round(at - start, 6), part) for at, part in reader.reads[0]]
    assert reads == [
        (0.0, frame(0)),
        (0.03, frame(1)),
        (0.03, text_part("typed")),
        (0.06, frame(2)),
    ]


async def test_audio_left_unread_when_the_source_goes_quiet_is_read_within_two_intervals(
    autojump_clock: trio.abc.Clock,
) -> None:
    reader = Reader()
    async with LiveSession(reader, audio_wake_interval=0.1) as session:
        start = trio.current_time()
        await stream(session, 3, start)  # 0.00, 0.02, 0.04; then nothing
        await trio.sleep_until(start + 1.0)
        await end_turn(session)
    reads = [(round(at - start, 6), part) for at, part in reader.reads[0]]
    # Frames 1 and 2 came while the reader rested (until 0.1): it wakes by
    # itself one interval later, long before the turn ends at 1.0.
    assert reads == [(0.0, frame(0)), (0.2, frame(1)), (0.2, frame(2))]


async def test_the_trigger_hands_over_coalesced_audio_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    reader = Reader()
    async with LiveSession(reader, audio_wake_interval=0.1) as session:
        start = trio.current_time()
        await stream(session, 3, start)
        await trio.sleep_until(start + 0.05)
        await end_turn(session)
    reads = [(round(at - start, 6), part) for at, part in reader.reads[0]]
    assert reads == [(0.0, frame(0)), (0.05, frame(1)), (0.05, frame(2))]


def test_the_interval_is_validated() -> None:
    async def model(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        pass

    with pytest.raises(ValueError, match="audio_wake_interval"):
        LiveSession(model, audio_wake_interval=-0.1)
    with pytest.raises(ValueError, match="audio_wake_interval"):
        LiveSession(model, audio_wake_interval=float("nan"))
    with pytest.raises(ValueError, match="audio_wake_interval"):
        RollingPrompt(audio_wake_interval=-1.0)


async def test_breaking_out_of_async_for_leaves_the_rest_unread() -> None:
    prompt = RollingPrompt()
    for name in "abcd":
        prompt.add(text_part(name), 0.0)
    stream = PromptStream(prompt.finalize(0.0))
    async for part in stream:
        if part == text_part("b"):
            break
    assert stream.ready() == [text_part("c"), text_part("d")]
    # A second loop over the same stream reads what is left: nothing.
    assert [part async for part in stream] == []


# -- the listener's side ---------------------------------------------------------


class Passes:
    """Counts scheduler passes: its task checkpoints once and counts, every pass."""

    def __init__(self) -> None:
        self.count = 0

    async def run(self) -> None:
        while True:
            await trio.lowlevel.checkpoint()
            self.count += 1


async def test_ready_output_parts_reach_the_listener_without_a_trip_through_the_scheduler(
    autojump_clock: trio.abc.Clock,
) -> None:
    passes = Passes()

    async def answer(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        await prompt.collect()
        await output.send(text_part("yes", role="model"))

    seen: list[tuple[int, str]] = []
    async with LiveSession(answer) as session, trio.open_nursery() as nursery:
        nursery.start_soon(passes.run)
        await session.send(end_of_turn("well?"))
        session.close_input()
        seen.extend([(passes.count, part.mimetype) async for part in session])
        nursery.cancel_scope.cancel()
    # The answer's closing markers came together: one pass for all of them.
    markers = [at for at, mimetype in seen if mimetype != "text/plain"]
    assert len(markers) >= 2
    assert len(set(markers)) == 1


async def test_a_flood_of_ready_output_still_lets_other_tasks_run(
    autojump_clock: trio.abc.Clock,
) -> None:
    passes = Passes()

    async def chatty(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        await prompt.collect()
        for index in range(300):
            await output.send(text_part(f"{index} ", role="model"))

    async with LiveSession(chatty, output_buffer=400) as session, trio.open_nursery() as nursery:
        await session.send(end_of_turn("count"))
        session.close_input()
        # Let the whole answer pile up in the output before reading it.
        await trio.testing.wait_all_tasks_blocked()
        assert session.statistics().turns == 1
        nursery.start_soon(passes.run)
        await trio.lowlevel.checkpoint()
        before = passes.count
        received = [part async for part in session]
        during = passes.count - before
        nursery.cancel_scope.cancel()
    assert len([p for p in received if p.mimetype == "text/plain"]) == 300
    # Over 300 ready parts the listener yielded now and then (once per 64
    # parts in a row), not after every part.
    assert 0 < during < 300 // 16
