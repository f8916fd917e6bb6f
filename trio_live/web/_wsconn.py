"""wsproto's server side, made to close a connection as RFC 6455 asks."""

from __future__ import annotations

from collections.abc import Generator

import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Event, Pong

from ._http import PrefixedStream


class ServerWSConnection(wsproto.WSConnection):
    """wsproto's server side, made to close a connection as RFC 6455 asks.

    * A frame wsproto cannot parse (invalid UTF-8, an unmasked frame, a
      reserved bit, a bad close code...) comes out of `events` as a
      ``CloseConnection`` (1002 or 1007) while the connection is still open;
      trio-websocket then closes TCP without a close frame. Here the close
      frame is made at once (the connection is then closing) and left with
      the stream, which sends it before it closes.
    * Once a close frame was sent, wsproto refuses to send a pong (and
      trio-websocket's reader task would fail on a ping): no pong is sent then.
    """

    def __init__(self, stream: PrefixedStream) -> None:
        super().__init__(wsproto.ConnectionType.SERVER)
        self._stream = stream

    def events(self) -> Generator[Event, None, None]:
        """The events of wsproto; a parse failure also leaves its close frame with the stream."""
        for event in super().events():
            if isinstance(event, CloseConnection) and self.state is ConnectionState.OPEN:
                close = CloseConnection(code=event.code, reason=event.reason)
                self._stream.last_words += self.send(close)
            yield event

    def send(self, event: Event) -> bytes:
        """The bytes of ``event`` (none for a pong once the connection closes)."""
        if isinstance(event, Pong) and self.state is not ConnectionState.OPEN:
            return b""
        return super().send(event)
