"""Tool calls through both HTTP adapters, on the real loopback model server.

The server streams the calls in each API's dialect and records every request
body; a barge-in lands at random points of the exchange (while the text
streams, while the calls stream, while the tools run, after), and every body
sent must be valid for its API: each call id with exactly one outcome.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
import trio

from tests.model_server import Reply, open_model_server
from trio_live import (
    LiveSession,
    end_of_turn,
    is_tool_call,
    is_tool_result,
    read_tool_call,
    read_tool_result,
    start_of_speech,
    tool,
)
from trio_live.models import GeminiModel, OpenAIChatModel
from trio_live.testing import play_timeline

DIALECTS = ["openai", "gemini"]


@tool
async def clock() -> str:
    """The time."""
    return "noon"


@tool
async def search(query: str) -> str:
    """Search (interruptible)."""
    await trio.sleep(0.1)
    return f"found {query}"


NOTES: list[str] = []


@tool(interruptible=False)
async def send_note(text: str) -> str:
    """Send a note (cannot be unsent)."""
    await trio.sleep(0.15)
    NOTES.append(text)
    return "sent"


def make_model(dialect: str, url: str) -> OpenAIChatModel | GeminiModel:
    if dialect == "openai":
        return OpenAIChatModel(model="m", base_url=url + "/v1", api_key=None)
    return GeminiModel(model="g", base_url=url + "/v1beta", api_key="k")


def check_openai(body: dict[str, Any]) -> None:
    """Each assistant tool call is answered by exactly one tool message, right after."""
    messages = body["messages"]
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            before = messages[:index]
            assert any(
                call["id"] == message["tool_call_id"]
                for m in before
                for call in m.get("tool_calls", ())
            )
        for call in message.get("tool_calls", ()):
            after = []
            for later in messages[index + 1 :]:
                if later["role"] != "tool":
                    break
                after.append(later["tool_call_id"])
            assert after.count(call["id"]) == 1, (call, messages)


def check_gemini(body: dict[str, Any]) -> None:
    """Each functionCall is followed by a user content holding its one functionResponse."""
    contents = body["contents"]
    for index, content in enumerate(contents):
        calls = [p["functionCall"]["id"] for p in content["parts"] if "functionCall" in p]
        if calls:
            assert content["role"] == "model"
            following = contents[index + 1]
            assert following["role"] == "user"
            answered = Counter(
                p["functionResponse"]["id"] for p in following["parts"] if "functionResponse" in p
            )
            for call_id in calls:
                assert answered[call_id] == 1, (call_id, contents)
    calls = Counter(
        p["functionCall"]["id"] for c in contents for p in c["parts"] if "functionCall" in p
    )
    responses = Counter(
        p["functionResponse"]["id"] for c in contents for p in c["parts"] if "functionResponse" in p
    )
    assert calls == responses


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_tool_round_on_loopback(dialect: str) -> None:
    script = [
        Reply(text=["Let me check."], calls=[("call_a", "clock", {})]),
        Reply(text=["It is noon."]),
    ]
    async with open_model_server(script) as server:
        async with make_model(dialect, server.url) as model:
            session = LiveSession(model, tools=[clock])
            await play_timeline(session, [(0.0, end_of_turn("time?"))])
        first, second = (r.body for r in server.requests[:2])
    history = session.history()
    assert [read_tool_call(p).id for p in history if is_tool_call(p)] == ["call_a"]
    assert [read_tool_result(p).content for p in history if is_tool_result(p)] == ["noon"]
    assert history[-1].content == "It is noon."
    if dialect == "openai":
        assert first["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "clock",
                    "description": "The time.",
                    "parameters": {"type": "object", "properties": {}},
                },
            }
        ]
        assert second["messages"] == [
            {"role": "user", "content": "time?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "clock", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "noon"},
        ]
    else:
        assert first["tools"] == [
            {
                "functionDeclarations": [
                    {
                        "name": "clock",
                        "description": "The time.",
                        "parameters": {"type": "object", "properties": {}},
                    }
                ]
            }
        ]
        assert second["contents"] == [
            {"role": "user", "parts": [{"text": "time?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Let me check."},
                    {"functionCall": {"id": "call_a", "name": "clock", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "call_a",
                            "name": "clock",
                            "response": {"result": "noon"},
                        }
                    }
                ],
            },
        ]


async def interrupted_exchange(dialect: str, barge_in: float) -> tuple[list[Any], LiveSession]:
    """A search and a note, cut by a barge-in at ``barge_in`` s, then a new turn."""
    script = [
        Reply(
            text=["Looking", " that up."],
            calls=[("call_s", "search", {"query": "x"}), ("call_n", "send_note", {"text": "hi"})],
            chunk_delay=0.02,
        ),
        Reply(text=["Done."]),
    ]
    async with open_model_server(script) as server:
        async with make_model(dialect, server.url) as model:
            session = LiveSession(model, tools=[search, send_note], max_tool_rounds=2)
            await play_timeline(
                session,
                [
                    (0.0, end_of_turn("find x and note hi")),
                    (barge_in, start_of_speech()),
                    (barge_in + 0.01, end_of_turn("and?")),
                ],
                end_at=barge_in + 0.5,
            )
        return [r.body for r in server.requests], session


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("seed", range(8))
async def test_interrupted_tool_exchange_stays_valid(dialect: str, seed: int) -> None:
    barge_in = random.Random(seed).uniform(0.0, 0.35)
    NOTES.clear()
    bodies, session = await interrupted_exchange(dialect, barge_in)
    check = check_openai if dialect == "openai" else check_gemini
    for body in bodies:
        check(body)
    history = session.history()
    calls = [read_tool_call(p) for p in history if is_tool_call(p)]
    results = {read_tool_result(p).id: read_tool_result(p) for p in history if is_tool_result(p)}
    assert sorted(results) == sorted(c.id for c in calls)
    if "call_n" in results:
        # The note was shielded: it was sent, and its real result is kept.
        assert NOTES == ["hi"]
        assert results["call_n"].outcome == "result"
    if "call_s" in results:
        assert results["call_s"].outcome in ("result", "cancelled")
    json.dumps(bodies)  # every body was JSON


@pytest.mark.parametrize("model", ["scripted", "loopback-openai", "loopback-gemini"])
def test_the_example_runs(model: str) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "tools.py"), "--model", model],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    out = result.stdout
    assert "[interrupted]" in out
    assert "notes sent: ['to Ann:" in out
    # The note's real result joined the history after the user moved on.
    history = out.split("history:")[1]
    assert history.index("'Wait, one more thing.'") < history.index('"note sent to Ann"')
