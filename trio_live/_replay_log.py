"""The record-and-replay log: a pure, line-oriented codec (no I/O, no clock).

A log is JSON lines. The first line is the header::

    {"format":"trio_live.log","version":1,"library":"0.1.0","options":{...}}

and every other line is one event, with ``at``, its time in seconds after the
session started (rounded to the microsecond):

=============  ==============================================================
``input``      an input part, as the session took it
``playback``   a `LiveSession.report_playback` call (``turn``, ``chars``, ...)
``input_end``  the input ended
``call``       model call ``call`` started
``prompt``     the call read one prompt part
``prompt_end`` the call saw the end of its prompt (its turn was triggered)
``model``      the call sent one output part
``call_end``   the call ended: ``outcome`` ``finished``, ``cancelled``, ``error``
``output``     the session handed one output part to the listener
``end``        the session ended
=============  ==============================================================

A part is ``{"text": ...}`` or ``{"b64": ...}`` (bytes, base64) with
``mimetype``, ``role``, ``substream`` and ``metadata`` when they differ from
the defaults. A part already logged (the same object) is written as
``"ref": N``, N its line number (from 1, the header); a part whose bytes are
an earlier part's (an audio chunk in the prompt, retagged) has
``"content_ref": N`` instead of its content. `LogEncoder` writes lines and
`LogDecoder` reads them back, resolving references; both raise
`ReplayLogError` with the line number for anything they cannot take.
"""

from __future__ import annotations

import base64
import binascii
import json
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias

import attrs

from ._errors import ReplayLogError
from ._parts import (
    EMPTY_METADATA,
    END_OF_SPEECH_MIMETYPE,
    END_OF_TURN_KEY,
    FINAL_KEY,
    INTERRUPTED_MIMETYPE,
    START_OF_SPEECH_MIMETYPE,
    TEXT_MIMETYPE,
    TRANSCRIPTION_SUBSTREAM,
    TURN_COMPLETE_MIMETYPE,
    Part,
    is_marker,
)

FORMAT: Final = "trio_live.log"
FORMAT_VERSION: Final = 1

EventKind: TypeAlias = Literal[
    "input",
    "playback",
    "input_end",
    "call",
    "prompt",
    "prompt_end",
    "model",
    "call_end",
    "output",
    "end",
]
_KINDS: Final = frozenset(
    {
        "input",
        "playback",
        "input_end",
        "call",
        "prompt",
        "prompt_end",
        "model",
        "call_end",
        "output",
        "end",
    }
)
_WITH_PART: Final = frozenset({"input", "prompt", "model", "output"})
_WITH_CALL: Final = frozenset({"call", "prompt", "prompt_end", "model", "call_end"})
_OUTCOMES: Final = frozenset({"finished", "cancelled", "error"})


@attrs.frozen(kw_only=True)
class LogHeader:
    """The log's first line."""

    version: int
    library: str
    options: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class LogEvent:
    """One event line, references resolved.

    Attributes:
        line: its line number (the header is line 1).
        kind: what happened (see the module's table).
        at: seconds after the session started.
        part: the part (``input``, ``prompt``, ``model``, ``output``).
        call: the model call's number, from 0 (the call events).
        outcome: how a call ended (``call_end``).
        error: the error's type name and message (``call_end`` with ``error``).
        turn: the playback report's turn; ``chars``, ``finished`` likewise.
    """

    line: int
    kind: EventKind
    at: float
    part: Part | None = None
    call: int | None = None
    outcome: str | None = None
    error: tuple[str, str] | None = None
    turn: int | None = None
    chars: int | None = None
    finished: bool | None = None


def _dumps(value: Mapping[str, Any]) -> str:
    # Metadata that JSON cannot hold is written as its repr, never an error:
    # a recording must not break the session it records.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr) + "\n"


def _time(at: float) -> float:
    return round(at, 6)


class LogEncoder:
    """Turns a session's events into log lines (each ends with a newline)."""

    def __init__(self) -> None:
        self._lines = 0
        # id(part) -> (weak reference, line): a part logged once is referred to.
        self._parts: dict[int, tuple[weakref.ref[Part], int]] = {}
        self._contents: dict[int, tuple[weakref.ref[Part], int]] = {}

    @property
    def lines(self) -> int:
        """How many lines were encoded."""
        return self._lines

    def header(self, *, library: str, options: Mapping[str, Any]) -> str:
        """The first line."""
        if self._lines:
            raise RuntimeError("the header is the first line")
        self._lines = 1
        head = {"format": FORMAT, "version": FORMAT_VERSION, "library": library}
        return _dumps({**head, "options": dict(options)})

    def event(self, kind: EventKind, at: float, **fields: Any) -> str:
        """An event line; a ``part`` field is encoded (or referred to)."""
        if not self._lines:
            raise RuntimeError("the header comes first")
        if kind not in _KINDS:
            raise ValueError(f"no such event kind: {kind!r}")
        self._lines += 1
        line = self._lines
        record: dict[str, Any] = {"kind": kind, "at": _time(at)}
        part = fields.pop("part", None)
        record.update(fields)
        if part is not None:
            known = self._parts.get(id(part))
            if known is not None and known[0]() is part:
                record["ref"] = known[1]
            else:
                record["part"] = self._part(part)
                if not is_marker(part) and part.content:
                    self._parts[id(part)] = (weakref.ref(part), line)
                    if isinstance(part.content, bytes) and id(part.content) not in self._contents:
                        self._contents[id(part.content)] = (weakref.ref(part), line)
        return _dumps(record)

    def _part(self, part: Part) -> dict[str, Any]:
        encoded: dict[str, Any] = {}
        content = part.content
        if isinstance(content, str):
            encoded["text"] = content
        else:
            known = self._contents.get(id(content))
            owner = known[0]() if known is not None else None
            if known is not None and owner is not None and owner.content is content:
                encoded["content_ref"] = known[1]
            else:
                encoded["b64"] = base64.b64encode(content).decode("ascii")
        if part.mimetype != TEXT_MIMETYPE:
            encoded["mimetype"] = part.mimetype
        if part.role:
            encoded["role"] = part.role
        if part.substream:
            encoded["substream"] = part.substream
        if part.metadata:
            encoded["metadata"] = dict(part.metadata)
        return encoded


def _field(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...], line: int) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise ReplayLogError(f"{key!r} missing or of the wrong type", line=line)
    return value


class LogDecoder:
    """Reads log lines back, one at a time, checking and resolving each."""

    def __init__(self) -> None:
        self._lines = 0
        self._parts: dict[int, Part] = {}
        self.header: LogHeader | None = None

    @property
    def lines(self) -> int:
        """How many lines were decoded."""
        return self._lines

    def decode(self, text: str) -> LogHeader | LogEvent:
        """The header or the event that line ``text`` holds."""
        self._lines += 1
        line = self._lines
        if not text.endswith("\n"):
            raise ReplayLogError("truncated line (no newline at its end)", line=line)
        try:
            record = json.loads(text)
        except ValueError:
            raise ReplayLogError("not a JSON line", line=line) from None
        if not isinstance(record, dict):
            raise ReplayLogError("not a JSON object", line=line)
        if line == 1:
            return self._header(record)
        kind = record.get("kind")
        if kind not in _KINDS:
            raise ReplayLogError(f"unknown event kind {kind!r}", line=line)
        at = float(_field(record, "at", (int, float), line))
        event = LogEvent(line=line, kind=kind, at=at, **self._fields(kind, record, line))
        if event.part is not None and not is_marker(event.part) and event.part.content:
            self._parts[line] = event.part
        return event

    def _header(self, record: Mapping[str, Any]) -> LogHeader:
        if record.get("format") != FORMAT:
            raise ReplayLogError("not a trio_live log (no header)", line=1)
        version = _field(record, "version", int, 1)
        if version > FORMAT_VERSION:
            raise ReplayLogError(
                f"log format version {version} is newer than this trio_live reads "
                f"({FORMAT_VERSION}); upgrade trio_live",
                line=1,
            )
        self.header = LogHeader(
            version=version,
            library=_field(record, "library", str, 1),
            options=_field(record, "options", dict, 1),
        )
        return self.header

    def _fields(self, kind: str, record: Mapping[str, Any], line: int) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if kind in _WITH_PART:
            fields["part"] = self._part(record, line)
        if kind in _WITH_CALL:
            fields["call"] = _field(record, "call", int, line)
        if kind == "call_end":
            outcome = fields["outcome"] = _field(record, "outcome", str, line)
            if outcome not in _OUTCOMES:
                raise ReplayLogError(f"unknown call outcome {outcome!r}", line=line)
            if outcome == "error":
                fields["error"] = (
                    _field(record, "error", str, line),
                    _field(record, "message", str, line),
                )
        if kind == "playback":
            fields["turn"] = _field(record, "turn", int, line)
            fields["chars"] = _field(record, "chars", int, line)
            fields["finished"] = _field(record, "finished", bool, line)
        return fields

    def _ref(self, value: Any, line: int) -> Part:
        if isinstance(value, int) and not isinstance(value, bool) and value in self._parts:
            return self._parts[value]
        raise ReplayLogError(f"reference to line {value!r}, which holds no part", line=line)

    def _part(self, record: Mapping[str, Any], line: int) -> Part:
        if "ref" in record:
            return self._ref(record["ref"], line)
        encoded = _field(record, "part", dict, line)
        content: str | bytes
        if "text" in encoded:
            content = _field(encoded, "text", str, line)
        elif "b64" in encoded:
            try:
                content = base64.b64decode(_field(encoded, "b64", str, line), validate=True)
            except binascii.Error:
                raise ReplayLogError("bad base64 content", line=line) from None
        elif "content_ref" in encoded:
            content = self._ref(encoded["content_ref"], line).content
        else:
            raise ReplayLogError("a part without content", line=line)
        try:
            return Part(
                content=content,
                mimetype=encoded.get("mimetype", TEXT_MIMETYPE),
                role=encoded.get("role", ""),
                substream=encoded.get("substream", ""),
                metadata=encoded.get("metadata", EMPTY_METADATA),
            )
        except (TypeError, ValueError) as error:
            raise ReplayLogError(f"bad part: {error}", line=line) from None


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
                call["prompt"].append((event.at, event.part))
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
            elif event.kind == "call_end" and event.outcome == "error" and event.error:
                rows.append((event.at, "model", f"<error {event.error[0]}: {event.error[1]}>"))
        flush()
        return rows


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
