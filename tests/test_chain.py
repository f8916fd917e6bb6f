from __future__ import annotations

import pytest
import trio

from trio_live import Part, run_chain, text_part


class Upper:
    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for part in inbox:
                await outbox.send(part.replace(content=part.text.upper()))


class Append:
    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for part in inbox:
                await outbox.send(part.replace(content=part.text + self.suffix))


class Fails:
    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for _ in inbox:
                raise KeyError("stage broke")


async def run(stages: list[object], parts: list[Part]) -> list[str]:
    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, receive_out = trio.open_memory_channel[Part](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_chain, stages, receive_in, send_out)
        with send_in:
            for part in parts:
                await send_in.send(part)
        got = [p.text async for p in receive_out]
    return got


async def test_stages_run_in_order() -> None:
    # Two different stages: a chain run backwards (or one stage skipped) gives
    # another text.
    parts = [text_part("a"), text_part("b")]
    assert await run([Append("1"), Append("2")], parts) == ["a12", "b12"]
    assert await run([Append("2"), Append("1")], parts) == ["a21", "b21"]
    assert await run([Upper(), Append("x")], parts) == ["Ax", "Bx"]
    assert await run([Append("x"), Upper()], parts) == ["AX", "BX"]


async def test_empty_chain_passes_through() -> None:
    assert await run([], [text_part("a")]) == ["a"]


async def test_a_failing_stage_raises_its_own_error() -> None:
    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, _receive_out = trio.open_memory_channel[Part](10)
    await send_in.send(text_part("x"))
    with pytest.raises(KeyError, match="stage broke"):
        await run_chain([Upper(), Fails()], receive_in, send_out)


async def test_negative_buffer_is_rejected() -> None:
    _send_in, receive_in = trio.open_memory_channel[Part](0)
    send_out, _ = trio.open_memory_channel[Part](0)
    with pytest.raises(ValueError, match="buffer"):
        await run_chain([], receive_in, send_out, buffer=-1)
