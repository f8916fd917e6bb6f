"""What the voice demo shows: a live log of the conversation and its latencies."""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import numpy as np
import trio

from .. import (
    Part,
    is_audio,
    is_end_of_speech,
    is_error,
    is_final_transcription,
    is_interrupted,
    is_start_of_speech,
    is_text,
    is_transcription,
    is_turn_complete,
)


@attrs.define(eq=False)
class TurnTiming:
    """Latencies of one answer, in seconds (None: did not happen).

    Attributes:
        turn: the session's turn number.
        end_of_speech: when the end of speech reached the session's input.
        final: seconds from end of speech to the final transcription.
        first_text: seconds from end of speech to the first model text.
        first_audio: seconds from end of speech to the first reply audio.
        interrupted: True if the user barged in.
        speech_end: where on the microphone track the speech that ended the
            turn stopped, in seconds (the end of speech's ``at``; None:
            unknown).
    """

    turn: int
    end_of_speech: float
    speech_end: float | None = None
    final: float | None = None
    first_text: float | None = None
    first_audio: float | None = None
    interrupted: bool = False


@attrs.define(eq=False)
class Overlap:
    """Speech over an answer (while it streamed or played).

    Attributes:
        turn: the turn whose answer it was over.
        words: what speech to text heard of it (the latest transcription).
        cut: True if the answer was interrupted while this speech was the latest.
    """

    turn: int
    words: str = ""
    cut: bool = False


@attrs.define(eq=False)
class DemoLog:
    """What the demo shows, as text lines and as a turn sequence."""

    write: Callable[[str], None] = attrs.field(factory=lambda: write_stdout)
    start: float = 0.0
    events: list[tuple[str, Any]] = attrs.field(factory=list)
    timings: dict[int, TurnTiming] = attrs.field(factory=dict)
    last_end_of_speech: float | None = None
    last_final: float | None = None
    last_speech_end: float | None = None
    #: Every speech over an answer, in order.
    overlaps: list[Overlap] = attrs.field(factory=list)
    # The turn whose answer is out (from its first part to its turn_complete),
    # and the latest speech if it started over an answer.
    _speaking: int = 0
    _overlap: Overlap | None = None
    _open_line: bool = False

    def line(self, text: str) -> None:
        """Print one line, stamped with the conversation's time."""
        self._close()
        self.write(f"[{trio.current_time() - self.start:6.2f}] {text}\n")

    def stream(self, text: str) -> None:
        """Print model text without a line break."""
        if not self._open_line:
            self.write(f"[{trio.current_time() - self.start:6.2f}] model: ")
            self._open_line = True
        self.write(text)

    def _close(self) -> None:
        if self._open_line:
            self.write("\n")
            self._open_line = False

    def user_part(self, part: Part) -> None:
        """Show a part seen between speech to text and the session."""
        if is_start_of_speech(part):
            self.line("user starts speaking")
            self.events.append(("speech", "start"))
            self._overlap = None
            if self._speaking:
                self._overlap = Overlap(turn=self._speaking)
                self.overlaps.append(self._overlap)
        elif is_end_of_speech(part):
            self.last_end_of_speech = trio.current_time()
            at = part.metadata.get("at")
            self.last_speech_end = at if isinstance(at, (int, float)) else None
            self.line("user stops speaking")
            self.events.append(("speech", "end"))
        elif is_final_transcription(part):
            self.last_final = trio.current_time()
            self.line(f"heard: {part.text!r}")
            self.events.append(("heard", part.text))
            if self._overlap is not None:
                self._overlap.words = part.text
        elif is_transcription(part):
            self.line(f"  ...  {part.text}")
            if self._overlap is not None:
                self._overlap.words = part.text

    def model_part(self, part: Part) -> None:
        """Show a part the session (through text to speech) sent."""
        turn = part.metadata.get("turn", 0)
        timing = self.timings.get(turn)
        if timing is None and self.last_end_of_speech is not None and turn:
            end = self.last_end_of_speech
            final = self.last_final
            timing = self.timings[turn] = TurnTiming(
                turn=turn,
                end_of_speech=end,
                final=None if final is None or final < end else final - end,
                speech_end=self.last_speech_end,
            )
        since = None if timing is None else trio.current_time() - timing.end_of_speech
        if (is_audio(part) or is_text(part)) and part.role == "model" and turn:
            self._speaking = turn
        if is_audio(part):
            if timing is not None and timing.first_audio is None:
                timing.first_audio = since
        elif is_interrupted(part):
            if timing is not None:
                timing.interrupted = True
            overlap = self._overlap
            if overlap is not None and overlap.turn == turn:
                overlap.cut = True
            self.line(f"turn {turn} interrupted: the user barged in")
            self.events.append(("interrupted", turn))
        elif is_turn_complete(part):
            self._close()
            self.events.append(("turn complete", turn))
            if self._speaking == turn:
                self._speaking = 0
            if timing is not None:
                self.line(_describe(timing))
        elif is_error(part):
            self.line(f"error: {part.text}")
        elif is_text(part) and part.role == "model" and not part.substream:
            if timing is not None and timing.first_text is None:
                timing.first_text = since
            self.stream(part.text)
            self.events.append(("model", (turn, part.text)))

    def model_texts(self) -> dict[int, str]:
        """Each turn's model text."""
        texts: dict[int, str] = collections.defaultdict(str)
        for kind, value in self.events:
            if kind == "model":
                texts[value[0]] += value[1]
        return dict(texts)


def summary(timings: Iterable[TurnTiming]) -> str:
    """Median and worst of each latency over ``timings``, one line each."""
    timings = list(timings)
    lines = []
    for name, field in (
        ("final transcript", "final"),
        ("first model text", "first_text"),
        ("first reply audio", "first_audio"),
    ):
        values = [v for v in (getattr(t, field) for t in timings) if v is not None]
        if values:
            lines.append(
                f"end of speech -> {name}: median {np.median(values) * 1000:.0f} ms,"
                f" worst {max(values) * 1000:.0f} ms over {len(values)} turns\n"
            )
    return "".join(lines)


def quality_summary(
    timings: Iterable[TurnTiming],
    overlaps: Iterable[Overlap],
    lines: Iterable[tuple[float, float]],
) -> str:
    """Premature turns and interruptions, two lines.

    Args:
        timings: the turns answered.
        overlaps: the speech over answers (`DemoLog.overlaps`).
        lines: where each spoken line of the conversation starts and ends on
            the microphone track, in seconds. A turn is premature if the
            speech that ended it stopped inside one of them, more than 0.2 s
            before its end (the line went on after a pause).
    """
    spans = list(lines)
    ends = [t.speech_end for t in timings if t.speech_end is not None]
    premature = sum(any(start < at < end - 0.2 for start, end in spans) for at in ends)
    overlaps = list(overlaps)
    cut = [o for o in overlaps if o.cut]
    worded = sum(bool(o.words.strip()) for o in cut)
    return (
        f"premature turns (answered before the user's line was over): {premature}\n"
        f"speech over an answer: {len(overlaps)} (cut it: {worded} with words,"
        f" {len(cut) - worded} without words; let it go on: {len(overlaps) - len(cut)})\n"
    )


def _describe(timing: TurnTiming) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    return (
        f"turn {timing.turn}: end of speech -> heard {ms(timing.final)}"
        f" -> first text {ms(timing.first_text)} -> first audio {ms(timing.first_audio)}"
    )


def write_stdout(text: str) -> None:
    """Write ``text`` to standard output at once (the demo is watched live)."""
    sys.stdout.write(text)
    sys.stdout.flush()
