"""``trio-live chat``: a scripted text conversation, shown live.

The user types two questions; while the model answers the second one, the
user starts speaking (barge-in), and then finishes with a third question.
It runs on the built-in `ScriptedModel`, so it needs no network and no key;
``--model URL`` runs the same conversation against a served model.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import trio

from .. import (
    LiveSession,
    Part,
    TriggerMode,
    TurnModel,
    end_of_speech,
    end_of_turn,
    is_interrupted,
    is_reserved,
    is_turn_complete,
    start_of_speech,
    text_part,
    transcription,
)
from ..models import add_model_arguments, model_from_args
from ..testing import ScriptedModel
from ._checks import UsageError, check_model

SCRIPT: list[tuple[float, Part]] = [
    (0.0, text_part("Hello! Who are you?")),
    (0.3, end_of_turn()),
    (1.6, end_of_turn("Tell me a long story about trio nurseries.")),
    (2.2, start_of_speech()),
    (2.5, transcription("Sorry, stop", final=False)),
    (2.9, transcription("Sorry, stop. What is a cancel scope?", final=True)),
    (3.0, end_of_speech()),
]

REPLIES = [
    "I am a scripted model inside a trio_live session.",
    "Once upon a time a nursery opened, and its tasks ran, and ran, and ran, and ran.",
    "A cancel scope is where cancellation starts and stops.",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time scale: 2 runs twice as fast (default 1: real time)",
    )
    add_model_arguments(parser)


def check(args: argparse.Namespace) -> None:
    """Find mistakes in the options before any work starts."""
    if not args.speed > 0:
        raise UsageError(f"--speed must be > 0, got {args.speed}")
    check_model(args)


def run(args: argparse.Namespace) -> int:
    """Run the conversation and print it as it happens."""
    model = model_from_args(args) if args.model_url else None
    trio.run(chat, args.speed, sys.stdout, model)
    return 0


async def chat(speed: float, out: TextIO, model: TurnModel | None = None) -> None:
    """Play `SCRIPT` into a session and print the live transcript to ``out``.

    Without ``model``, a `ScriptedModel` answers with `REPLIES`.
    """
    if model is None:
        model = ScriptedModel(
            [reply.split(" ") for reply in REPLIES],
            first_part_delay=0.25 / speed,
            part_delay=0.08 / speed,
        )
    try:
        await _converse(model, speed, out)
    finally:
        aclose = getattr(model, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True):
                await aclose()


async def _converse(model: TurnModel, speed: float, out: TextIO) -> None:
    session = LiveSession(model, trigger=TriggerMode.FINAL_TRANSCRIPTION)
    start = trio.current_time()

    def stamp() -> str:
        return f"[{(trio.current_time() - start) * speed:5.2f}s]"

    async def feed() -> None:
        for at, part in SCRIPT:
            await trio.sleep_until(start + at / speed)
            if part.mimetype.startswith("text/") and part.content and not part.substream:
                print(f"\n{stamp()} user: {part.text}", file=out)
            elif part.mimetype.endswith("start-of-speech"):
                print(f"\n{stamp()} (user starts speaking)", file=out)
            await session.send(part)
        session.close_input()

    speaking = False
    async with session, trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        async for part in session:
            if is_reserved(part):
                continue
            if is_interrupted(part):
                print(f" ... {stamp()} (interrupted)", file=out)
                speaking = False
            elif is_turn_complete(part):
                if speaking:
                    print(f"  {stamp()}", file=out)
                speaking = False
            elif part.role == "model":
                if not speaking:
                    print(f"{stamp()} model:", end="", file=out)
                    speaking = True
                print(f" {part.text}", end="", file=out, flush=True)
            else:
                final = "final" if part.metadata.get("final") else "partial"
                print(f"{stamp()} heard ({final}): {part.text}", file=out)
    stats = session.statistics()
    print(f"\n{stats.turns} turns, {stats.interrupted_turns} interrupted.", file=out)
    for turn in stats.recent_turns:
        ttft = turn.time_to_first_output
        shown = "-" if ttft is None else f"{ttft * 1000 * speed:.0f} ms"
        print(f"  turn {turn.turn}: time to first part {shown}", file=out)
