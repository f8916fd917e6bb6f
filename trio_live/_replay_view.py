"""A parsed record-and-replay log: its calls, inputs, outputs and timeline.

`trio_live._replay_log` turns lines into `LogHeader` and `LogEvent` values;
`ReplayLog` gathers them into what a replay and a reader need.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from ._errors import ReplayLogError
from ._parts import (
    ANSWER_COMPLETE_MIMETYPE,
    END_OF_SPEECH_MIMETYPE,
    END_OF_TURN_KEY,
    FINAL_KEY,
    INTERRUPTED_MIMETYPE,
    START_OF_SPEECH_MIMETYPE,
    TRANSCRIPTION_SUBSTREAM,
    TURN_COMPLETE_MIMETYPE,
    TURN_STATS_MIMETYPE,
    Part,
)
from ._replay_log import EventKind, LogDecoder, LogEvent, LogHeader


@attrs.frozen(kw_only=True)
class RecordedCall:
    """One model call as the log tells it.

    Attributes:
        call: its number, from 0.
        started_at: when it started.
        prompt: each prompt part with the time the model read it.
        prompt_end_at: when the model saw its prompt end (None: never).
        outputs: each part it sent, with the time it offered it.
        ended_at: when it ended (None: the log stops first).
        outcome: ``"finished"``, ``"cancelled"``, ``"error"`` (None likewise).
        error: the error's type name and message, for ``"error"``.
    """

    call: int
    started_at: float
    prompt: tuple[tuple[float, Part], ...] = ()
    prompt_end_at: float | None = None
    outputs: tuple[tuple[float, Part], ...] = ()
    ended_at: float | None = None
    outcome: str | None = None
    error: tuple[str, str] | None = None


@attrs.frozen(kw_only=True)
class ReplayLog:
    """A whole log, read and checked (`ReplayLog.parse`).

    Attributes:
        header: the first line: format version, library version, options.
        events: every other line, references resolved.
        complete: False when the log stops before its ``end`` line.
    """

    header: LogHeader
    events: tuple[LogEvent, ...]
    complete: bool

    @classmethod
    def parse(cls, lines: Iterable[str], *, partial: bool = False) -> ReplayLog:
        """Read a log from its lines (each with its newline).

        Raises:
            ReplayLogError: for a truncated, corrupt or newer-version log; a
                log without its ``end`` line too, unless ``partial``.
        """
        decoder = LogDecoder()
        header: LogHeader | None = None
        events: list[LogEvent] = []
        calls: dict[int, int] = {}
        ended = False
        for text in lines:
            decoded = decoder.decode(text)
            if isinstance(decoded, LogHeader):
                header = decoded
                continue
            if ended:
                raise ReplayLogError("an event after the end line", line=decoded.line)
            if decoded.kind == "call":
                assert decoded.call is not None
                if decoded.call in calls or decoded.call != len(calls):
                    raise ReplayLogError(f"call {decoded.call} out of order", line=decoded.line)
                calls[decoded.call] = decoded.line
            elif decoded.call is not None and decoded.call not in calls:
                raise ReplayLogError(f"call {decoded.call} never started", line=decoded.line)
            ended = decoded.kind == "end"
            events.append(decoded)
        if header is None:
            raise ReplayLogError("an empty log", line=1)
        if not ended and not partial:
            raise ReplayLogError(
                "the log stops before its end line (truncated?)", line=decoder.lines + 1
            )
        return cls(header=header, events=tuple(events), complete=ended)

    @property
    def options(self) -> Mapping[str, Any]:
        """The session's options, as plain values."""
        return self.header.options

    def of_kind(self, kind: EventKind) -> list[LogEvent]:
        """The events of one kind, in order."""
        return [event for event in self.events if event.kind == kind]

    @property
    def inputs(self) -> list[tuple[float, Part]]:
        """Each input part with its time."""
        return [(e.at, e.part) for e in self.events if e.kind == "input" and e.part is not None]

    @property
    def outputs(self) -> list[tuple[float, Part]]:
        """Each output part the listener got, with its time."""
        return [(e.at, e.part) for e in self.events if e.kind == "output" and e.part is not None]

    @property
    def microphone(self) -> list[tuple[float, Part]]:
        """Each raw microphone chunk (before the voice stages) with its time (version 3)."""
        return [(e.at, e.part) for e in self.events if e.kind == "mic" and e.part is not None]

    @property
    def microphone_end_at(self) -> float | None:
        """When the microphone input ended (None if the log does not say)."""
        return next((e.at for e in self.events if e.kind == "mic_end"), None)

    @property
    def echo_guard(self) -> list[tuple[float, bool]]:
        """Each change of the echo guard: its time and its new state."""
        return [(e.at, bool(e.on)) for e in self.events if e.kind == "echo_guard"]

    @property
    def input_end_at(self) -> float | None:
        """When the input ended (None if the log does not say)."""
        return next((e.at for e in self.events if e.kind == "input_end"), None)

    @property
    def end_at(self) -> float | None:
        """When the session ended (None for a partial log)."""
        return next((e.at for e in self.events if e.kind == "end"), None)

    @property
    def calls(self) -> list[RecordedCall]:
        """Every model call, in order."""
        fields: list[dict[str, Any]] = []
        for event in self.events:
            if event.call is None:
                continue
            if event.kind == "call":
                fields.append({"call": event.call, "started_at": event.at})
                fields[-1].update(prompt=[], outputs=[])
                continue
            call = fields[event.call]
            if event.kind == "prompt":
                call["prompt"].extend((event.at, part) for part in event.parts)
            elif event.kind == "prompt_end":
                call["prompt_end_at"] = event.at
            elif event.kind == "model":
                call["outputs"].append((event.at, event.part))
            elif event.kind == "call_end":
                call.update(ended_at=event.at, outcome=event.outcome, error=event.error)
        for call in fields:
            call.update(prompt=tuple(call["prompt"]), outputs=tuple(call["outputs"]))
        return [RecordedCall(**call) for call in fields]

    def timeline(self) -> list[tuple[float, str, str]]:
        """The conversation as (time, who, what) rows: the input, then what came out.

        A run of audio input chunks is one row.
        """
        rows: list[tuple[float, str, str]] = []
        audio: list[tuple[float, Part]] = []

        def flush() -> None:
            if audio:
                seconds = sum(audio_seconds(p) for _, p in audio)
                rows.append((audio[0][0], "user", f"audio {seconds:.2f} s ({len(audio)} chunks)"))
                audio.clear()

        for event in self.events:
            part = event.part
            if event.kind == "input" and part is not None and part.mimetype.startswith("audio/"):
                audio.append((event.at, part))
                continue
            if event.kind == "input" and part is not None:
                flush()
                rows.append((event.at, "in", describe(part)))
            elif event.kind == "output" and part is not None:
                flush()
                rows.append((event.at, "out", describe(part)))
            elif event.kind == "input_end":
                flush()
                rows.append((event.at, "in", "<end of input>"))
            elif event.kind == "playback":
                rows.append(
                    (
                        event.at,
                        "in",
                        f"<heard turn {event.turn}: {event.chars} chars"
                        f"{', finished' if event.finished else ''}>",
                    )
                )
            elif event.kind == "echo_guard":
                rows.append((event.at, "voice", f"<echo guard {'on' if event.on else 'off'}>"))
            elif event.kind == "call_end" and event.outcome == "error" and event.error:
                rows.append((event.at, "model", f"<error {event.error[0]}: {event.error[1]}>"))
        flush()
        return rows


def since_start(part: Part, start: float) -> Part:
    """``part``, a turn's statistics (`emit_stats`) counted from ``start``; others as they are.

    A statistics part holds `trio.current_time` values, which differ from run
    to run; the log and a replay hold them as seconds after the recording's
    (the replay's) start, and every number to the microsecond, so that a
    faithful replay equals its log.
    """
    if part.mimetype != TURN_STATS_MIMETYPE or not isinstance(part.content, str):
        return part
    try:
        values = json.loads(part.content)
    except ValueError:
        return part
    return Part(
        content=json.dumps(_rebased(values, start)),
        mimetype=part.mimetype,
        role=part.role,
        substream=part.substream,
        metadata=part.metadata,
    )


def _rebased(value: Any, start: float) -> Any:
    if isinstance(value, list):
        return [_rebased(item, start) for item in value]
    if not isinstance(value, dict):
        return value
    # Times since ``start``, and every duration, to the microsecond (as the
    # log's times): what the clock's offset leaves in their last bits goes.
    rebased = {}
    for key, item in value.items():
        if isinstance(item, float | int) and not isinstance(item, bool):
            rebased[key] = round(item - start if key.endswith("_at") else item, 6)
        else:
            rebased[key] = _rebased(item, start)
    return rebased


def audio_seconds(part: Part) -> float:
    """The duration of a PCM16 audio part (0 if its rate is unknown)."""
    _, _, params = part.mimetype.partition("rate=")
    try:
        return len(part.data) / 2 / int(params.split(";")[0])
    except ValueError:
        return 0.0


_MARKER_NAMES: Final = {
    START_OF_SPEECH_MIMETYPE: "<start of speech>",
    END_OF_SPEECH_MIMETYPE: "<end of speech>",
    ANSWER_COMPLETE_MIMETYPE: "<answer complete>",
    TURN_COMPLETE_MIMETYPE: "<turn complete>",
    INTERRUPTED_MIMETYPE: "<interrupted>",
}


def describe(part: Part) -> str:
    """One short line saying what ``part`` is: who said what, or which marker."""
    who = part.role or "-"
    if part.mimetype in _MARKER_NAMES:
        return f"{who} {_MARKER_NAMES[part.mimetype]}"
    if part.mimetype.startswith("audio/"):
        return f"{who} audio {audio_seconds(part):.2f} s"
    if isinstance(part.content, bytes):
        return f"{who} {part.mimetype} ({len(part.content)} bytes)"
    if part.substream == TRANSCRIPTION_SUBSTREAM:
        flag = "final" if part.metadata.get(FINAL_KEY) is True else "partial"
        return f"{who} transcription ({flag}) {part.content!r}"
    if part.substream:
        return f"{who} [{part.substream}] {part.content}"
    eot = " <end of turn>" if part.metadata.get(END_OF_TURN_KEY) is True else ""
    text = f" {part.content!r}" if part.content or not eot else ""
    return f"{who}{text}{eot}"
