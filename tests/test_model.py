from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_live import LiveSession, Part, PromptStream, end_of_turn, text_part
from trio_live._prompt import RollingPrompt


async def test_a_second_waiting_reader_is_refused_at_once() -> None:
    prompt = RollingPrompt(window=None, max_parts=None)
    stream = PromptStream(prompt.pending())
    read: list[Part] = []

    async def reader() -> None:
        read.extend([part async for part in stream])

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await stream.__anext__()
            with pytest.raises(trio.BusyResourceError):
                await stream.collect()
            # The first reader is unharmed: it still gets every part.
            prompt.add(text_part("a"), 0.0)
            prompt.finalize(0.0)
    assert [part.text for part in read] == ["a"]


async def test_a_model_reading_from_two_tasks_fails_instead_of_hanging() -> None:
    async def greedy(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(prompt.collect)
            nursery.start_soon(prompt.collect)

    # Today's failure was a silent hang: the second reader parked forever.
    async def converse() -> None:
        async with LiveSession(greedy) as session:
            await session.send(end_of_turn("q"))
            async for _ in session:
                pass

    with trio.fail_after(5), pytest.raises(ExceptionGroup) as info:
        await converse()
    assert info.group_contains(trio.BusyResourceError)


async def test_readers_one_after_the_other_are_fine() -> None:
    prompt = RollingPrompt(window=None, max_parts=None)
    stream = PromptStream(prompt.pending())

    async def first() -> Part:
        return await stream.__anext__()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await trio.testing.wait_all_tasks_blocked()
            prompt.add(text_part("a"), 0.0)
        prompt.add(text_part("b"), 0.0)
        prompt.finalize(0.0)
        assert [part.text for part in await stream.collect()] == ["b"]
