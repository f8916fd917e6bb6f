"""An incremental parser for server-sent events (the ``text/event-stream`` format).

Sans-IO: bytes go in through `SSEDecoder.feed`, finished events come out. The
decoder never does I/O and never reads a clock, so any split of a stream into
chunks gives the same events, which the tests check exhaustively.

The rules (from the HTML living standard, "Server-sent events"):

* the stream is UTF-8; a leading byte-order mark is dropped; invalid bytes
  become U+FFFD;
* a line ends with CRLF, LF or CR; a chunk may end between CR and LF, so a CR
  at the end of a chunk ends the line at once and a LF that starts the next
  chunk is skipped;
* a line that starts with ``:`` is a comment (servers send them as
  keep-alives); ``field: value`` sets a field (one space after the colon is
  dropped); a line without a colon is a field with an empty value;
* ``data`` lines accumulate, joined by LF; ``event`` names the event; ``id``
  sets the last event id (kept across events) unless it holds a NUL;
  ``retry`` is kept when it is all ASCII digits; other fields are ignored;
* an empty line dispatches the event, unless no ``data`` line was seen, in
  which case the buffers are reset and nothing is dispatched.

Two limits bound the memory a hostile server can make the decoder hold:
``max_line_length`` (one line, the ``data:`` prefix included) and
``max_event_length`` (the data of one event, its lines and the LFs that join
them), both in characters of the decoded text (for ASCII, bytes). Going over
either raises `ResponseTooLargeError` at once, in the `feed` call that
crossed it; None means no limit.

One deliberate leniency: at the end of the stream (`SSEDecoder.close`) an
unterminated last line is processed and a pending event is dispatched, where
the standard would drop it. Some servers end their stream with
``data: [DONE]`` and a single newline; dropping that event would turn a
complete answer into an error.
"""

from __future__ import annotations

import codecs
import re
from typing import Final

import attrs

from .._errors import ResponseTooLargeError

__all__ = ["SSEDecoder", "ServerSentEvent"]

_LINE_END: Final = re.compile(r"\r\n|\r|\n")
_BOM: Final = "\ufeff"


@attrs.frozen(kw_only=True)
class ServerSentEvent:
    """One dispatched event.

    Attributes:
        event: the event type (``"message"`` unless the server named it).
        data: the data lines, joined by LF.
        id: the last event id seen so far in the stream (None if none).
        retry: the reconnection time in milliseconds, if this event set one.
    """

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


def _limit(instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is not None and not (isinstance(value, int) and value > 0):
        raise ValueError(f"{attribute.name} must be an int > 0 or None, got {value!r}")


@attrs.define(eq=False)
class SSEDecoder:
    """Turns the bytes of an event stream into `ServerSentEvent` objects.

    Args:
        max_line_length: the longest line, in characters (None: no limit).
        max_event_length: the most data one event may hold, in characters
            (None: no limit).
    """

    max_line_length: int | None = attrs.field(default=None, kw_only=True, validator=_limit)
    max_event_length: int | None = attrs.field(default=None, kw_only=True, validator=_limit)
    _decoder: codecs.IncrementalDecoder = attrs.field(
        init=False, factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    # The unterminated line so far, in pieces (joined once it ends: appending
    # to one str would copy it on every chunk of a long line).
    _partial: list[str] = attrs.field(init=False, factory=list)
    _partial_length: int = attrs.field(init=False, default=0)
    _skip_lf: bool = attrs.field(init=False, default=False)
    _started: bool = attrs.field(init=False, default=False)
    _closed: bool = attrs.field(init=False, default=False)
    _event: str = attrs.field(init=False, default="")
    _data: list[str] = attrs.field(init=False, factory=list)
    _data_length: int = attrs.field(init=False, default=0)
    _last_id: str | None = attrs.field(init=False, default=None)
    _retry: int | None = attrs.field(init=False, default=None)

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Parse the next chunk; returns the events it completed (maybe none).

        Raises:
            RuntimeError: if called after `close`.
        """
        if self._closed:
            raise RuntimeError("feed() after close()")
        return self._text(self._decoder.decode(data))

    def close(self) -> list[ServerSentEvent]:
        """End the stream; returns what the last, unterminated lines held."""
        if self._closed:
            return []
        events = self._text(self._decoder.decode(b"", final=True))
        self._closed = True
        if self._partial:
            line = self._take_partial("")
            event = self._line(line)
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _text(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith(_BOM):
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        events: list[ServerSentEvent] = []
        start = 0
        for match in _LINE_END.finditer(text):
            line = text[start : match.start()]
            if self._partial:
                line = self._take_partial(line)
            self._check_line(len(line))
            start = match.end()
            event = self._line(line)
            if event is not None:
                events.append(event)
        if start < len(text):
            rest = text[start:]
            self._check_line(self._partial_length + len(rest))
            self._partial.append(rest)
            self._partial_length += len(rest)
        elif text.endswith("\r"):
            # The line ended with a CR that may be the first half of a CRLF.
            self._skip_lf = True
        return events

    def _take_partial(self, end: str) -> str:
        self._partial.append(end)
        line = "".join(self._partial)
        self._partial, self._partial_length = [], 0
        return line

    def _check_line(self, length: int) -> None:
        limit = self.max_line_length
        if limit is not None and length > limit:
            raise ResponseTooLargeError(
                f"an event-stream line is over max_line_length={limit} characters",
                limit="max_line_length",
            )

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_length += len(value) + (1 if self._data else 0)
            limit = self.max_event_length
            if limit is not None and self._data_length > limit:
                raise ResponseTooLargeError(
                    f"an event's data is over max_event_length={limit} characters",
                    limit="max_event_length",
                )
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, self._data, self._data_length = self._data, [], 0
        name, self._event = self._event, ""
        retry, self._retry = self._retry, None
        if not data:
            return None
        return ServerSentEvent(
            event=name or "message", data="\n".join(data), id=self._last_id, retry=retry
        )
