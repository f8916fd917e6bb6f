"""One port for the page and the websocket: read the request head, then route.

The server reads a connection's HTTP request head itself (bounded in size),
parses it with h11, and then either answers a plain ``GET`` with a file of the
page, or hands the stream, with the bytes already read put back in front, to
trio-websocket for the handshake.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import h11
import trio

_HEAD_END = b"\r\n\r\n"


class BadRequest(Exception):
    """The request head is malformed or too large."""


@attrs.frozen(kw_only=True)
class RequestHead:
    """The parsed head of an HTTP request, and the raw bytes read so far."""

    method: str
    target: str
    headers: Mapping[str, str]
    raw: bytes

    @property
    def is_websocket(self) -> bool:
        """True for a websocket upgrade request."""
        return self.headers.get("upgrade", "").lower() == "websocket"


async def read_head(stream: trio.abc.ReceiveStream, *, max_bytes: int) -> RequestHead:
    """Read and parse a request head (the stream is left just after what was read).

    Raises:
        BadRequest: the head is malformed, larger than ``max_bytes``, or the
            peer closed the connection first.
    """
    raw = b""
    # The head is small: no need to scan incrementally. Bare LF line endings
    # (which h11 accepts) end it too, rather than waiting for a CRLF never sent.
    while _HEAD_END not in raw and b"\n\n" not in raw:
        if len(raw) > max_bytes:
            raise BadRequest("request head too large")
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise BadRequest("connection closed before the request head ended")
        raw += chunk
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(raw)
    try:
        request = parser.next_event()
    except h11.RemoteProtocolError as error:
        raise BadRequest(str(error)) from None
    if not isinstance(request, h11.Request):
        raise BadRequest("no request")
    headers: dict[str, str] = {}
    for name, value in request.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return RequestHead(
        method=request.method.decode("ascii"),
        target=request.target.decode("latin-1"),
        headers=headers,
        raw=raw,
    )


# How much a lingering close reads at a time (and drops).
_LINGER_READ = 65536


async def close_lingering(stream: trio.abc.Stream, grace: float) -> None:
    """Close ``stream``, lingering for at most ``grace`` seconds first.

    The server closes a websocket's socket with it once the websocket
    library is done with the connection. Lingering: the stream is
    half-closed and whatever the peer still sends is read and dropped until
    it closes too. Closing a socket while the peer is still sending (the
    rest of a message too big to read, say) makes the kernel answer with a
    reset, which can destroy the close frame just sent before the peer reads
    it: a browser then reports 1006, not 1009. Cancellation closes at once.
    """
    try:
        with trio.move_on_after(grace):
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
                while await stream.receive_some(_LINGER_READ):
                    pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
        pass
    finally:
        await stream.aclose()


class PrefixedStream(trio.abc.HalfCloseableStream):
    """A stream that first returns ``prefix``, then whatever ``stream`` receives.

    Its `last_words`, if set, are sent just before it closes (within
    ``grace`` seconds): the websocket library closes the stream on a frame it
    cannot parse without a close frame, which the server then puts here.
    Every send (`send_all`, `send_eof`, the last words) takes one lock, so a
    lingering close (`close_lingering` on this stream) waits for the last
    words instead of colliding with them on the socket.
    """

    def __init__(self, prefix: bytes, stream: trio.abc.Stream, *, grace: float = 1.0) -> None:
        self._prefix = prefix
        self._stream = stream
        self._grace = grace
        # The library serializes its own sends; this lock orders `last_words`
        # after a send still under way.
        self._send_lock = trio.Lock()
        self.last_words = b""

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """The prefix first, then the wrapped stream's data."""
        if self._prefix:
            await trio.lowlevel.checkpoint()
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return bytes(data)
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send through the wrapped stream."""
        async with self._send_lock:
            await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """As the wrapped stream."""
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """As the wrapped stream, where it can (after a send under way)."""
        async with self._send_lock:
            if isinstance(self._stream, trio.abc.HalfCloseableStream):
                await self._stream.send_eof()

    async def aclose(self) -> None:
        """Send `last_words` if any (bounded in time), then close the wrapped stream."""
        words, self.last_words = self.last_words, b""
        try:
            if words:
                with trio.move_on_after(self._grace):
                    async with self._send_lock:
                        await self._stream.send_all(words)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await self._stream.aclose()

    @property
    def socket(self) -> object:
        """The wrapped stream's socket (trio-websocket reads the endpoints from it)."""
        return getattr(self._stream, "socket", None)


def upgrade_refusal(head: RequestHead) -> tuple[int, str] | None:
    """Why a websocket upgrade request is malformed (status, text), or None.

    The checks of RFC 6455 section 4.2.1, made before the request reaches
    the websocket library: a refused request is answered here, and never
    becomes a connection that waits for a handshake that cannot happen.
    A wrong version gets 426 (with ``Sec-WebSocket-Version: 13``).
    """
    headers = head.headers
    if head.method != "GET":
        return 400, "a websocket upgrade must be a GET"
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    if "upgrade" not in tokens:
        return 400, "missing header 'Connection: Upgrade'"
    if "sec-websocket-key" not in headers:
        return 400, "missing header 'Sec-WebSocket-Key'"
    version = headers.get("sec-websocket-version")
    if version is None:
        return 400, "missing header 'Sec-WebSocket-Version'"
    if version.strip() != "13":
        return 426, "only websocket version 13 is spoken"
    if "host" not in headers:
        return 400, "missing header 'Host'"
    return None


def static_files(directory: Path) -> dict[str, tuple[str, bytes]]:
    """URL path → (content type, body) for the files directly in ``directory``.

    The files are read once, when the server starts; ``/`` is ``index.html``.
    """
    files: dict[str, tuple[str, bytes]] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        files[f"/{path.name}"] = (kind, path.read_bytes())
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


def response(
    status: int,
    body: bytes,
    *,
    content_type: str,
    head: bool = False,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        f"content-type: {content_type}",
        f"content-length: {len(body)}",
        "cache-control: no-store",
        "x-content-type-options: nosniff",
        "connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data if head else data + body


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def file_response(files: Mapping[str, tuple[str, bytes]], request: RequestHead) -> bytes:
    """The response to a plain HTTP request for the page."""
    if request.method not in ("GET", "HEAD"):
        return response(405, b"method not allowed\n", content_type="text/plain")
    found = files.get(request.target.partition("?")[0])
    if found is None:
        return response(404, b"not found\n", content_type="text/plain")
    kind, body = found
    return response(200, body, content_type=kind, head=request.method == "HEAD")
