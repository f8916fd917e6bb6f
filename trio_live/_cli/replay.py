"""``trio-live replay LOG``: a recorded conversation's timeline, or its replay's diff.

Without options it prints the conversation the way the demo shows it (the
user starts and stops speaking, what was heard, the model's text on one
line per answer, barge-ins, and per turn the latencies from the end of
speech); ``--parts`` prints every part instead (time, who, what). With ``--diff`` it
replays the log on the mock clock against the recorded answers and compares
with what was recorded: exit status 0 if they are the same, 1 with the first
divergence if not. A log that holds the microphone (format 3, ``--record`` on
``demo`` and ``serve``) is replayed through the voice stages it names in its
header (VAD, speech to text: real work, on a `WorkClock`, frozen time), and
what reached the session is compared too; ``--session-only`` replays at the
session, from the recorded transcriptions. ``--vad NAME=VALUE`` changes a
VAD setting for the replay (what if the silence before the end of speech
were longer?). A log that cannot be read, or voice stages that cannot be
built, is a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import (
    LiveError,
    ReplayLogError,
    Stage,
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
from ..testing import ReplayLog, conversation_diff, read_log, replay, replay_pipeline
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
    parser.add_argument(
        "--session-only",
        action="store_true",
        help="with --diff, replay at the session only, not the recorded microphone"
        " through VAD and speech to text",
    )
    parser.add_argument(
        "--vad",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --diff, change a VAD setting for the replay (e.g. silence_to_end=0.6)",
    )


def check(args: argparse.Namespace) -> None:
    """The log file exists (its content is checked as it is read); ``--vad`` is NAME=NUMBER."""
    if not Path(args.log).is_file():
        raise UsageError(f"{args.log}: No such file or directory")
    vad_settings(getattr(args, "vad", []))


def vad_settings(pairs: Sequence[str]) -> dict[str, float]:
    """``--vad NAME=VALUE`` options as settings.

    Raises:
        UsageError: one that is not NAME=NUMBER.
    """
    settings = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        try:
            settings[name.strip().replace("-", "_")] = float(value)
        except ValueError:
            equals = ""
        if not equals or not name.strip():
            raise UsageError(f"--vad {pair}: expected NAME=NUMBER, e.g. silence_to_end=0.6")
    return settings


def voice_stages(voice: Mapping[str, Any], vad: Mapping[str, float] | None = None) -> list[Stage]:
    """The voice stages a log's header names (VAD, turn detector, speech to text), fresh.

    ``voice`` is the header's ``voice`` field (`Recorder`'s ``voice``):
    ``vad`` (`VadConfig` settings, which ``vad`` here overrides),
    ``vad_backend``, ``turn_detect``, ``stt`` (a `load_recognizer` back end,
    ``"none"`` for none) and ``recognizers`` (2: a second one for finals, as
    the demo runs). Loading the recognizers takes a few seconds.

    Raises:
        UsageError: settings that do not make a VAD.
        SpeechError: a back end that is not installed.
    """
    # The voice extra is loaded only for a replay of the whole pipeline.
    from ..voice import SpeechToText, TurnDetector, VadConfig, VadStage, load_recognizer

    settings = {**dict(voice.get("vad") or {}), **dict(vad or {})}
    try:
        config = VadConfig(**settings)
    except (TypeError, ValueError) as error:
        raise UsageError(f"VAD settings {settings}: {error}") from None
    stages: list[Stage] = [VadStage(config, backend=str(voice.get("vad_backend", "auto")))]
    if voice.get("turn_detect"):
        stages.append(TurnDetector())
    stt = str(voice.get("stt", "auto"))
    if stt != "none":
        first = load_recognizer(stt)
        second = load_recognizer(stt) if int(voice.get("recognizers", 1)) > 1 else None
        stages.append(SpeechToText(first, final_recognizer=second))
    return stages


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
    if not log.microphone or getattr(args, "session_only", False):
        diff = conversation_diff(log.outputs, replay(log))
        if diff is None:
            print(f"the replay matches the recording ({len(log.outputs)} outputs)")
            return 0
        print(diff)
        return 1
    try:
        stages = voice_stages(log.header.voice, vad_settings(getattr(args, "vad", [])))
    except (UsageError, LiveError) as error:
        print(f"trio-live replay: {args.log}: {error}", file=sys.stderr)
        return 2
    again = replay_pipeline(log, stages)
    diff = conversation_diff(log.inputs, again.inputs, label="input")
    if diff is None:
        diff = conversation_diff(log.outputs, again.outputs)
    if diff is None:
        print(
            "the replay through the voice pipeline matches the recording"
            f" ({len(log.microphone)} microphone chunks, {len(log.inputs)} inputs,"
            f" {len(log.outputs)} outputs)"
        )
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
