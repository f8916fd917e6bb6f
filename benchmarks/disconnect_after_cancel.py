"""How soon a model server sees the client leave after a barge-in.

One live session per API (OpenAI-compatible, Gemini) over the loopback model
server of the test suite. Each turn: ask, wait for the first streamed part,
then barge in (start of speech). The session records when it cancelled the
generation (`TurnStats.barge_in_at`); the server records when the socket
closed under it. Both are `trio.current_time()` in one process.

Run:  .venv/bin/python benchmarks/disconnect_after_cancel.py [turns]
"""

from __future__ import annotations

import pathlib
import statistics
import sys
from typing import Any

import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

from model_server import Reply, open_model_server

from trio_live import (
    EndOfInput,
    LiveSession,
    end_of_speech,
    end_of_turn,
    is_marker,
    is_turn_complete,
    start_of_speech,
)
from trio_live.models import GeminiModel, OpenAIChatModel


async def measure(kind: str, turns: int) -> list[float]:
    reply = Reply(text=["tick "] * 1000, chunk_delay=0.005)
    async with open_model_server([reply]) as server:
        model: Any
        if kind == "openai":
            model = OpenAIChatModel(model="m", base_url=server.openai_url, api_key="k")
        else:
            model = GeminiModel(model="m", base_url=server.gemini_url, api_key="k")
        async with (
            model,
            LiveSession(model, end_of_input=EndOfInput.NEVER, window=None) as session,
        ):
            for turn in range(turns):
                await session.send(end_of_turn(f"question {turn}"))
                async for part in session:
                    if part.role == "model" and not is_marker(part):
                        break
                await session.send(start_of_speech())
                async for part in session:
                    if is_turn_complete(part):
                        break
                await session.send(end_of_speech())
                await server.requests[turn].ended.wait()
            session.close_input()
            async for _ in session:
                pass
        stats = session.statistics().recent_turns
    gaps = []
    for request, turn in zip(server.requests, stats, strict=True):
        assert request.disconnected_at is not None
        assert turn.barge_in_at is not None
        gaps.append(request.disconnected_at - turn.barge_in_at)
    return gaps


async def main(turns: int) -> None:
    for kind in ("openai", "gemini"):
        gaps = sorted(await measure(kind, turns))
        ms = [gap * 1000 for gap in gaps]
        p90 = ms[int(0.9 * (len(ms) - 1))]
        print(
            f"{kind:7} {len(ms)} barge-ins: disconnect seen by the server after"
            f" median {statistics.median(ms):.2f} ms, p90 {p90:.2f} ms, max {ms[-1]:.2f} ms"
        )


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 50)
