"""Tool calls in a live session: a clock, and a slow note that cannot be unsent.

Run (offline, with the scripted model; the default):

    .venv/bin/python examples/tools.py

Against the loopback model server of the tests (both API dialects):

    .venv/bin/python examples/tools.py --model loopback-openai
    .venv/bin/python examples/tools.py --model loopback-gemini

Against a real API or a local OpenAI-compatible server (Ollama, vLLM...):

    OPENAI_API_KEY=... .venv/bin/python examples/tools.py --model openai --name gpt-4o-mini
    GEMINI_API_KEY=... .venv/bin/python examples/tools.py --model gemini --name gemini-2.0-flash
    .venv/bin/python examples/tools.py --model openai --name llama3.2 \\
        --base-url http://localhost:11434/v1

The user asks for the time and a note; the model calls both tools; the user
barges in while the note is being sent. The clock's answer is cut off, but
the note (``interruptible=False``) is sent anyway, and its real result joins
the history after the user moved on, without starting a new answer.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from trio_live import (
    LiveSession,
    TurnModel,
    end_of_turn,
    is_interrupted,
    is_tool_call,
    is_tool_result,
    read_tool_call,
    read_tool_result,
    start_of_speech,
    tool,
    tool_call,
)
from trio_live.testing import ScriptedModel, play_timeline

ROOT = Path(__file__).resolve().parent.parent
SENT: list[str] = []


@tool
async def clock() -> str:
    """The current time of day."""
    return datetime.datetime.now().strftime("%H:%M:%S")


@tool(interruptible=False)
async def send_note(to: str, text: str) -> str:
    """Send a note to someone (it cannot be unsent)."""
    await trio.sleep(1.0)  # the slow side effect
    SENT.append(f"to {to}: {text}")
    return f"note sent to {to}"


SCRIPT: list[Any] = [
    [
        "Let me see.",
        tool_call("clock", {}),
        tool_call("send_note", {"to": "Ann", "text": "running late"}),
    ],
    ["Sure,", " what", " else?"],
]


@contextlib.asynccontextmanager
async def open_model(args: argparse.Namespace) -> AsyncIterator[TurnModel]:
    from trio_live.models import GeminiModel, OpenAIChatModel

    if args.model == "scripted":
        yield ScriptedModel(SCRIPT, first_part_delay=0.1, part_delay=0.2)
    elif args.model.startswith("loopback"):
        sys.path.insert(0, str(ROOT))
        from tests.model_server import Reply, open_model_server

        calls = [("call_1", "clock", {}), ("call_2", "send_note", {"to": "Ann", "text": "late"})]
        replies = [
            Reply(text=["Let me see."], calls=calls, chunk_delay=0.05),
            Reply(text=["Sure,", " what else?"], chunk_delay=0.3),
        ]
        async with open_model_server(replies) as server:
            model: OpenAIChatModel | GeminiModel
            if args.model == "loopback-openai":
                model = OpenAIChatModel(model="m", base_url=server.openai_url, api_key=None)
            else:
                model = GeminiModel(model="g", base_url=server.gemini_url, api_key="k")
            async with model:
                yield model
    elif args.model == "openai":
        kwargs = {"base_url": args.base_url} if args.base_url else {}
        async with OpenAIChatModel(model=args.name or "gpt-4o-mini", **kwargs) as model:
            yield model
    else:
        async with GeminiModel(model=args.name or "gemini-2.0-flash") as model:
            yield model


def show(part: Any) -> str:
    if is_tool_call(part):
        call = read_tool_call(part)
        return f"call {call.name}({call.arguments}) [{call.id}]"
    if is_tool_result(part):
        result = read_tool_result(part)
        return f"{result.outcome}: {json.dumps(result.content)} [{result.id}]"
    return f"{part.role}: {part.content!r}"


async def main(args: argparse.Namespace) -> None:
    async with open_model(args) as model:
        session = LiveSession(model, tools=[clock, send_note], model_errors="report")
        timeline = [
            (0.0, end_of_turn("What time is it? And tell Ann I'm running late.")),
            (args.barge_in, start_of_speech()),
            (args.barge_in + 0.1, end_of_turn("Wait, one more thing.")),
        ]
        out = await play_timeline(session, timeline, end_at=args.barge_in + 3.0)
    for at, part in out:
        if part.substream == "status" and "tool-status" in part.mimetype:
            print(f"{at:5.2f} s  status  {part.content}")
        elif is_interrupted(part):
            print(f"{at:5.2f} s  [interrupted]")
        elif part.role == "model" and part.content:
            print(f"{at:5.2f} s  {show(part)}")
    print("\nhistory:")
    for part in session.history():
        if part.content:
            print("  ", show(part))
    print("\nnotes sent:", SENT)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="scripted",
        choices=["scripted", "loopback-openai", "loopback-gemini", "openai", "gemini"],
    )
    parser.add_argument("--name", help="the model's name (openai, gemini)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server's URL, up to /v1")
    parser.add_argument("--barge-in", type=float, default=0.6, help="seconds until the user speaks")
    trio.run(main, parser.parse_args())
