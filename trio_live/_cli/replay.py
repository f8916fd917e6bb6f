"""``trio-live replay LOG``: a recorded conversation's timeline, or its replay's diff.

Without options it prints the conversation the way the demo shows it (the
user starts and stops speaking, what was heard, the model's text on one
line per answer, barge-ins, and per turn the latencies from the end of
speech); ``--parts`` prints every part instead (time, who, what). With ``--diff`` it
replays the log on the mock clock against the recorded answers and compares
the output with what was recorded: exit status 0 if they are the same, 1 with
the first divergence if not. A log that cannot be read is a one-line error
and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import (
    ReplayLogError,
    is_end_of_speech,
    is_end_of_turn,
    is_error,
    is_final_transcription,
    is_interrupted,
    is_start_of_speech,
    is_text,
    is_transcription,
    is_turn_complete,
)
from ..testing import ReplayLog, conversation_diff, read_log, replay
from ._checks import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    parser.add_argument("log", metavar="LOG", help="a log written by trio_live.Recorder")
    parser.add_argument(
        "--parts",
        action="store_true",
        help="print every input and output part, not the conversation as the demo shows it",
    )
    parser.add_argument(
        "--diff",
        action="store_true",
        help="replay the log and compare with what was recorded (exit status 1 if different)",
    )


def check(args: argparse.Namespace) -> None:
    """The log file exists (its content is checked as it is read)."""
    if not Path(args.log).is_file():
        raise UsageError(f"{args.log}: No such file or directory")


def run(args: argparse.Namespace) -> int:
    """Print the timeline, or replay and compare."""
    try:
        log = read_log(args.log)
    except (ReplayLogError, OSError, UnicodeDecodeError) as error:
        print(f"trio-live replay: {args.log}: {error}", file=sys.stderr)
        return 2
    if not args.diff:
        options = ", ".join(f"{key}={value!r}" for key, value in log.options.items())
        print(f"# trio_live {log.header.library}, log format {log.header.version}: {options}")
        if getattr(args, "parts", False):
            for at, who, what in log.timeline():
                print(f"{at:9.3f} s  {who:<5} {what}")
        else:
            sys.stdout.write(conversation_text(log))
        return 0
    diff = conversation_diff(log.outputs, replay(log))
    if diff is None:
        print(f"the replay matches the recording ({len(log.outputs)} outputs)")
        return 0
    print(diff)
    return 1


def conversation_text(log: ReplayLog) -> str:
    """The conversation as the demo prints it, from a log (one text, lines stamped).

    The audio itself and the playback reports are not shown; a typed turn is
    ``user: '...'``, a model error ``error: ...``.
    """
    out: list[str] = []
    streaming = False
    end_of_speech: float | None = None
    final: float | None = None
    first_text: dict[int, float] = {}

    def line(at: float, text: str) -> None:
        nonlocal streaming
        if streaming:
            out.append("\n")
            streaming = False
        out.append(f"[{at:6.2f}] {text}\n")

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    for event in log.events:
        part, at = event.part, event.at
        if event.kind == "end":
            line(at, "conversation over")
        if part is None:
            continue
        if event.kind == "input":
            if is_start_of_speech(part):
                line(at, "user starts speaking")
            elif is_end_of_speech(part):
                end_of_speech = at
                line(at, "user stops speaking")
            elif is_final_transcription(part):
                final = at
                line(at, f"heard: {part.text!r}")
            elif is_transcription(part):
                line(at, f"  ...  {part.text}")
            elif is_text(part) and not part.substream and (part.text or is_end_of_turn(part)):
                if is_end_of_turn(part):
                    end_of_speech = final = at
                line(at, f"user: {part.text!r}{' <end of turn>' if is_end_of_turn(part) else ''}")
            continue
        if event.kind != "output":
            continue
        turn = part.metadata.get("turn", 0)
        if is_interrupted(part):
            line(at, f"turn {turn} interrupted: the user barged in")
        elif is_turn_complete(part):
            since = None if end_of_speech is None else first_text.get(turn)
            heard = (
                None
                if final is None or end_of_speech is None or final < end_of_speech
                else final - end_of_speech
            )
            text_after = None if since is None or end_of_speech is None else since - end_of_speech
            line(
                at,
                f"turn {turn}: end of speech -> heard {ms(heard)} -> first text {ms(text_after)}",
            )
        elif is_error(part):
            line(at, f"error: {part.text}")
        elif is_text(part) and part.role == "model" and not part.substream:
            first_text.setdefault(turn, at)
            if not streaming:
                out.append(f"[{at:6.2f}] model: ")
                streaming = True
            out.append(part.text)
    if streaming:
        out.append("\n")
    return "".join(out)
