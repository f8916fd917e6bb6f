"""The record-and-replay log: a pure, line-oriented codec (no I/O, no clock).

A log is JSON lines. The first line is the header::

    {"format":"trio_live.log","version":3,"library":"0.1.0","options":{...},"voice":{...}}

(``voice``, from version 3 and only when given: what a replay needs to
rebuild the voice stages, free-form) and every other line is one event, with
``at``, its time in seconds after the recording started (the session's start,
or the first microphone chunk if that came first; rounded to the
microsecond):

=============  ==============================================================
``mic``        a microphone audio chunk, as the first voice stage got it (v3)
``mic_end``    the microphone input ended (v3)
``echo_guard`` the echo guard went ``on`` (true) or off (false) (v3)
``input``      an input part, as the session took it
``playback``   a `LiveSession.report_playback` call (``turn``, ``chars``, ...)
``input_end``  the input ended
``call``       model call ``call`` started
``prompt``     the call read prompt parts (see below)
``prompt_end`` the call saw the end of its prompt (its turn was triggered)
``model``      the call sent one output part
``call_end``   the call ended: ``outcome`` ``finished``, ``cancelled``, ``error``
``output``     the session output one part (its output channel took it)
``end``        the session ended
=============  ==============================================================

A part is ``{"text": ...}`` or ``{"b64": ...}`` (bytes, base64) with
``mimetype``, ``role``, ``substream`` and ``metadata`` when they differ from
the defaults. A part already logged (the same object) is written as
``"ref": N``, N its line number (from 1, the header); a part whose bytes are
an earlier part's (an audio chunk in the prompt, retagged) has
``"content_ref": N`` instead of its content.

The parts a call reads at one instant are one ``prompt`` line (version 2):
``"refs": [[first, last], ...]``, each range the parts held in full (with
``part``, not ``ref``; markers and empty parts aside) on the lines from line
``first`` to line ``last``, in the order read. A history read again by each
call is so a few ranges, not a line per part: the log grows with the
conversation, not with its square. A part read that no range can name (one
not logged yet, a marker) is its own ``prompt`` line, with ``part``, at the
same time. Version 1 logs (a ``prompt`` line per part) are read as well.

Version 3 adds the voice pipeline's side: the raw microphone audio before
voice activity detection and speech to text (an ``input`` audio part that is a
``mic`` chunk passed on is a ``ref`` to its line, so the voice is stored
once), the end of the microphone, and the echo guard's changes. Version 1
and 2 logs, which have none of these, are read as they are.

`LogEncoder` writes lines and `LogDecoder` reads them back, resolving
references; both raise `ReplayLogError` with the line number for anything
they cannot take.
"""

from __future__ import annotations

import base64
import binascii
import json
import typing
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias

import attrs

from ._errors import ReplayLogError
from ._parts import (
    EMPTY_METADATA,
    TEXT_MIMETYPE,
    Part,
    is_marker,
)

FORMAT: Final = "trio_live.log"
FORMAT_VERSION: Final = 3

EventKind: TypeAlias = Literal[
    "mic",
    "mic_end",
    "echo_guard",
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
_KINDS: Final[frozenset[EventKind]] = frozenset(typing.get_args(EventKind))
_WITH_PART: Final = frozenset({"mic", "input", "prompt", "model", "output"})
# The kinds each version knows (a kind newer than the log's version is corrupt).
_SINCE: Final[dict[str, int]] = {"mic": 3, "mic_end": 3, "echo_guard": 3}
_WITH_CALL: Final = frozenset({"call", "prompt", "prompt_end", "model", "call_end"})
_OUTCOMES: Final = frozenset({"finished", "cancelled", "error"})


@attrs.frozen(kw_only=True)
class LogHeader:
    """The log's first line."""

    version: int
    library: str
    options: Mapping[str, Any]
    voice: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class LogEvent:
    """One event line, references resolved.

    Attributes:
        line: its line number (the header is line 1).
        kind: what happened (see the module's table).
        at: seconds after the session started.
        part: the part (``input``, ``model``, ``output``; ``prompt`` when
            the line holds one part).
        parts: every part a ``prompt`` line holds, in the order read.
        call: the model call's number, from 0 (the call events).
        outcome: how a call ended (``call_end``).
        error: the error's type name and message (``call_end`` with ``error``).
        turn: the playback report's turn; ``chars``, ``finished`` likewise.
        on: the echo guard's new state (``echo_guard``).
    """

    line: int
    kind: EventKind
    at: float
    part: Part | None = None
    parts: tuple[Part, ...] = ()
    call: int | None = None
    outcome: str | None = None
    error: tuple[str, str] | None = None
    turn: int | None = None
    chars: int | None = None
    finished: bool | None = None
    on: bool | None = None


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
        # id(part) -> (weak reference, line, its place among the parts that
        # ranges name): for the ranges of a prompt line.
        self._ranged: dict[int, tuple[weakref.ref[Part], int, int]] = {}
        self._places = 0

    @property
    def lines(self) -> int:
        """How many lines were encoded."""
        return self._lines

    def header(
        self,
        *,
        library: str,
        options: Mapping[str, Any],
        voice: Mapping[str, Any] | None = None,
    ) -> str:
        """The first line (``voice`` only when given)."""
        if self._lines:
            raise RuntimeError("the header is the first line")
        self._lines = 1
        head = {"format": FORMAT, "version": FORMAT_VERSION, "library": library}
        record: dict[str, Any] = {**head, "options": dict(options)}
        if voice:
            record["voice"] = dict(voice)
        return _dumps(record)

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
                    if kind in _WITH_PART:
                        self._ranged[id(part)] = (weakref.ref(part), line, self._places)
                        self._places += 1
        return _dumps(record)

    def prompt(self, at: float, call: int, parts: Iterable[Part]) -> str:
        """The lines of the prompt parts call ``call`` read at ``at``: ranges where it can."""
        text: list[str] = []
        ranges: list[list[int]] = []
        last_place = -2

        def flush() -> None:
            if ranges:
                text.append(self.event("prompt", at, call=call, refs=list(ranges)))
                ranges.clear()

        for part in parts:
            known = self._ranged.get(id(part))
            if known is None or known[0]() is not part:
                flush()
                last_place = -2
                text.append(self.event("prompt", at, call=call, part=part))
                continue
            _, line, place = known
            if place == last_place + 1:
                ranges[-1][1] = line
            else:
                ranges.append([line, line])
            last_place = place
        flush()
        return "".join(text)

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
        # The parts that ranges name, in order, and each one's line -> place.
        self._ranged: list[Part] = []
        self._places: dict[int, int] = {}
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
        since = _SINCE.get(kind, 1)
        if self.header is not None and self.header.version < since:
            raise ReplayLogError(
                f"a {kind!r} event in a version {self.header.version} log", line=line
            )
        at = float(_field(record, "at", (int, float), line))
        event = LogEvent(line=line, kind=kind, at=at, **self._fields(kind, record, line))
        part = event.part
        if part is not None and not is_marker(part) and part.content:
            self._parts[line] = part
            if kind in _WITH_PART and "part" in record:
                self._places[line] = len(self._ranged)
                self._ranged.append(part)
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
            voice=_field(record, "voice", dict, 1) if "voice" in record else {},
        )
        return self.header

    def _fields(self, kind: str, record: Mapping[str, Any], line: int) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if kind == "prompt" and "refs" in record:
            fields["parts"] = self._ranges(record["refs"], line)
        elif kind in _WITH_PART:
            fields["part"] = self._part(record, line)
            if kind == "prompt":
                fields["parts"] = (fields["part"],)
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
        if kind == "echo_guard":
            fields["on"] = _field(record, "on", bool, line)
        return fields

    def _ranges(self, refs: Any, line: int) -> tuple[Part, ...]:
        if self.header is not None and self.header.version < 2:
            raise ReplayLogError("'refs' in a version 1 log", line=line)
        if not isinstance(refs, list) or not refs:
            raise ReplayLogError("'refs' must be a list of [first, last] ranges", line=line)
        parts: list[Part] = []
        for pair in refs:
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
            ):
                raise ReplayLogError(f"bad range {pair!r} in 'refs'", line=line)
            first, last = (self._places.get(x) for x in pair)
            if first is None or last is None or first > last:
                raise ReplayLogError(f"range {pair!r} names no parts", line=line)
            parts.extend(self._ranged[first : last + 1])
        return tuple(parts)

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
