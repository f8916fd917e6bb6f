"""``trio-live chat``: a live text conversation on the command line.

Each line read from stdin (typed, or piped) is a user turn; the model's
answer streams to stdout as ``model: ...``. A line that comes while an answer
streams interrupts it: the session cancels the running generation, the answer
is marked `` [interrupted]`` and the new turn is answered. At the end of the
input (Ctrl-D, or the end of a pipe) the last answer finishes and the command
ends. When stdin is not a terminal, each line is shown as ``you: ...``.

The model is the local one (`LocalModel`, set up for short English answers)
unless ``--model URL``, ``openai`` or ``gemini`` names another.
``--script`` (or ``--demo``) plays a fixed conversation with a barge-in
instead, on the built-in `ScriptedModel`: a smoke run with no model at all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

import attrs
import trio

from .. import (
    LiveSession,
    Part,
    SessionStatistics,
    TriggerMode,
    TurnModel,
    end_of_speech,
    end_of_turn,
    is_error,
    is_interrupted,
    is_reserved,
    is_turn_complete,
    start_of_speech,
    text_part,
    transcription,
)
from ..models import add_model_arguments, model_from_args
from ..testing import ScriptedModel
from ._checks import UsageError, check_local_model, check_model
from ._defaults import voice_model

#: What ``--script`` plays: (seconds from the start, input part).
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
        "--script",
        "--demo",
        dest="script",
        action="store_true",
        help="play a scripted conversation with a barge-in instead of reading stdin"
        " (on a built-in scripted model unless --model is given)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="with --script: time scale, 2 runs twice as fast (default 1: real time)",
    )
    add_model_arguments(parser)


def check(args: argparse.Namespace) -> None:
    """Find mistakes in the options before any work starts."""
    if not args.speed > 0:
        raise UsageError(f"--speed must be > 0, got {args.speed}")
    check_model(args)
    if not args.script and not args.model_url:
        check_local_model()


def run(args: argparse.Namespace) -> int:
    """Chat on stdin and stdout (or play the script); returns the exit status."""
    if args.script:
        scripted = model_from_args(args) if args.model_url else None
        trio.run(script_chat, args.speed, sys.stdout, scripted)
        return 0
    model = voice_model(args)
    trio.run(_chat_on_stdin, model)
    return 0


async def _chat_on_stdin(model: TurnModel) -> None:
    # A duplicate, so that closing the stream leaves the process's stdin open.
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as lines:
        await interactive_chat(model, lines, sys.stdout, echo=not sys.stdin.isatty())


async def interactive_chat(
    model: TurnModel, lines: trio.abc.ReceiveStream, out: TextIO, *, echo: bool = True
) -> SessionStatistics:
    """Chat with ``model``: each line of ``lines`` is a user turn, answers go to ``out``.

    A line that comes while an answer streams interrupts it. At the end of
    ``lines`` the last answer finishes, the model is closed (if it has
    ``aclose``) and the session's statistics are returned. Blank lines are
    skipped. A model error is shown as ``error: ...`` and the chat goes on.

    Args:
        model: the turn model.
        lines: the user's input, UTF-8 text.
        out: where the conversation is written.
        echo: write each user line as ``you: ...`` (off on a terminal,
            which shows what is typed already).
    """
    transcript = _Transcript(out, echo=echo)
    session = LiveSession(model, model_errors="report")
    try:
        async with session, trio.open_nursery() as nursery:
            nursery.start_soon(_read_turns, lines, session, transcript)
            async for part in session:
                if is_error(part):
                    transcript.end(interrupted=False)
                    transcript.line(f"error: {json.loads(part.text)['message']}")
                elif is_reserved(part):
                    continue
                elif is_interrupted(part):
                    transcript.end(interrupted=True)
                elif is_turn_complete(part):
                    transcript.end(interrupted=False)
                elif part.role == "model" and part.text:
                    transcript.model(part.text)
            transcript.end(interrupted=False)
    finally:
        await _close_model(model)
    return session.statistics()


async def _read_turns(
    lines: trio.abc.ReceiveStream, session: LiveSession, transcript: _Transcript
) -> None:
    async def turn(raw: bytes) -> None:
        text = raw.decode(errors="replace").strip()
        if text:
            transcript.user(text)
            await session.send(end_of_turn(text))

    buffer = b""
    try:
        while chunk := await lines.receive_some():
            *complete, buffer = (buffer + chunk).split(b"\n")
            for raw in complete:
                await turn(raw)
        await turn(buffer)  # a last line without its newline
    finally:
        session.close_input()


@attrs.define
class _Transcript:
    """Writes the conversation in lines: ``you: ...``, ``model: ...``."""

    out: TextIO
    echo: bool
    #: a ``model:`` line is open
    speaking: bool = False
    #: the open line's trailing whitespace, written only if more text follows
    _space: str = ""
    #: user lines that came while the model was speaking, shown after its line
    _waiting: list[str] = attrs.field(factory=list)

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def user(self, text: str) -> None:
        if not self.echo:
            return
        if self.speaking:
            self._waiting.append(text)
        else:
            self.line(f"you: {text}")

    def model(self, text: str) -> None:
        if not self.speaking:
            self.out.write("model: ")
            self.speaking = True
            text = text.lstrip()
        text = self._space + text
        shown = text.rstrip()
        self._space = text[len(shown) :]
        self.out.write(shown)
        self.out.flush()

    def end(self, *, interrupted: bool) -> None:
        if self.speaking:
            self.line(" [interrupted]" if interrupted else "")
            self.speaking = False
            self._space = ""
        for text in self._waiting:
            self.line(f"you: {text}")
        self._waiting.clear()


async def _close_model(model: TurnModel) -> None:
    aclose = getattr(model, "aclose", None)
    if aclose is not None:
        with trio.CancelScope(shield=True):
            await aclose()


async def script_chat(speed: float, out: TextIO, model: TurnModel | None = None) -> None:
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
        await _close_model(model)


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
