"""A real streaming model server on 127.0.0.1, for tests (trio + h11).

It speaks both streaming formats the adapters use, chosen by the path:

* ``POST .../chat/completions`` answers like an OpenAI-compatible server
  (``data: {"choices": [{"delta": {"content": ...}}]}`` events, then
  ``data: [DONE]``);
* ``POST .../models/NAME:streamGenerateContent?alt=sse`` answers like Gemini
  (``data: {"candidates": [...]}`` events, CRLF line ends, ``finishReason``
  on the last one).

Both speak their API's tool dialect: a reply's ``calls`` are streamed after
its text (OpenAI: ``delta.tool_calls`` pieces by index, the arguments split
across events, ``finish_reason: "tool_calls"``; Gemini: ``functionCall``
parts), and the request bodies record what came back (``tools``, the
``assistant`` ``tool_calls`` and ``tool`` messages, or the ``functionCall``
and ``functionResponse`` parts).

Each request gets the next `Reply` of the script (the last one repeats), or
the reply a function of the `RecordedRequest` returns. A reply can wait
before its headers or between chunks, send keep-alive comments, fail with an
error status, and end by finishing, hanging, resetting the connection (TCP
RST), ending the body early, or sending an error event.

Every request is recorded with its JSON body, and the server watches the
socket while it streams, so it records the `trio.current_time` at which the
client went away. Usage::

    async with open_model_server([Reply(text=["Hel", "lo"])]) as server:
        model = OpenAIChatModel(model="m", base_url=server.openai_url)
        ...
        [request] = await server.wait_for_requests(1)
        await request.ended.wait()
        request.body["messages"], request.disconnected_at

Connections are kept alive between requests (HTTP/1.1), and each request
records the number of the connection it came on, so pooling is visible.
"""

from __future__ import annotations

import functools
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, NoReturn

import attrs
import h11
import trio

from trio_live import Part, PromptStream, RollingPrompt

End = Literal["finish", "hang", "reset", "truncate", "error_event", "endless_line", "endless_event"]
# What the hostile modes send, block after block, until the client leaves.
BLOCK = 64 * 1024


@attrs.frozen(kw_only=True)
class Reply:
    """One scripted answer.

    Attributes:
        text: the text deltas, one event each.
        status: the HTTP status; 400 and above sends an error body in the
            API's shape with `message`.
        message: the message of an error status or error event.
        headers: extra response headers (``Retry-After``...).
        headers_delay: seconds before the response headers (``math.inf``
            hangs before any byte).
        first_delay: seconds between the headers and the first event.
        chunk_delay: seconds between events (and between keep-alives).
        keepalives: ``: keep-alive`` comments sent before the first delta.
        after: how many deltas are sent before `end` happens (None: all).
        end: ``"finish"`` (the normal end), ``"hang"`` (stay silent until
            the client leaves), ``"reset"`` (abort with a TCP RST),
            ``"truncate"`` (end the body without the final event) or
            ``"error_event"`` (send an error event, then end the body).
        body: raw bytes sent as the body instead of events (with the
            ``content-type`` from `headers`, or ``text/event-stream``).
        calls: tool calls ``(id, name, arguments)`` streamed after the
            text, in the API's dialect (each after `chunk_delay`).

    The hostile modes (each sends until the client leaves, and the request
    records the body bytes it managed to send in ``bytes_sent``):

    * ``end="endless_line"``: after the deltas, one line that never ends;
    * ``end="endless_event"``: after the deltas, ``data:`` lines without
      the blank line that would end the event;
    * ``error_body``: with an error `status`, this raw body instead of the
      API's error object, or ``"endless"`` for a body that never ends;
    * ``payloads``: these JSON values sent as the events' data instead of
      deltas (wrong types, odd shapes), then the end;
    * ``echo_key``: the error message holds the request's key (from its
      ``authorization`` or ``x-goog-api-key`` header) after this many
      characters, to put it across a cut of the message.
    """

    text: Sequence[str] = ("Hello", " there", "!")
    status: int = 200
    message: str = "scripted failure"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    headers_delay: float = 0.0
    first_delay: float = 0.0
    chunk_delay: float = 0.0
    keepalives: int = 0
    after: int | None = None
    end: End = "finish"
    body: bytes | None = None
    error_body: bytes | Literal["endless"] | None = None
    payloads: Sequence[Any] | None = None
    echo_key: int | None = None
    calls: Sequence[tuple[str, str, Any]] = ()


@attrs.define(eq=False)
class RecordedRequest:
    """One request the server received, and what became of its answer.

    Attributes:
        index: the request's number, from 0.
        connection: the number of the TCP connection it came on, from 0.
        dialect: ``"openai"`` or ``"gemini"`` (from the path).
        target: the path and query.
        headers: the request headers, names in lower case.
        body: the parsed JSON body (None if it was not JSON).
        received_at: when the request was complete.
        sent: the deltas sent so far.
        completed_at: when the response was sent in full (None otherwise).
        disconnected_at: when the client went away before the response
            ended (None if it did not).
        ended: set once the server is done with the request, whatever the
            outcome.
    """

    index: int
    connection: int
    dialect: str
    target: str
    headers: dict[str, str]
    body: Any
    received_at: float
    sent: list[str] = attrs.field(factory=list)
    completed_at: float | None = None
    disconnected_at: float | None = None
    bytes_sent: int = 0
    ended: trio.Event = attrs.field(factory=trio.Event)


Script = Sequence[Reply] | Callable[[RecordedRequest], Reply]


@attrs.define(eq=False)
class ModelServer:
    """The running server (made by `open_model_server`).

    Attributes:
        port: the port it listens on.
        requests: every request received, in order.
        connections: how many connections were accepted.
    """

    script: Script
    port: int = 0
    requests: list[RecordedRequest] = attrs.field(factory=list)
    connections: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """The base URL for `OpenAIChatModel` (``.../v1``)."""
        return f"{self.url}/v1"

    @property
    def gemini_url(self) -> str:
        """The base URL for `GeminiModel` (``.../v1beta``)."""
        return f"{self.url}/v1beta"

    async def wait_for_requests(self, count: int) -> list[RecordedRequest]:
        """Wait until ``count`` requests were received; returns the first ``count``."""
        while len(self.requests) < count:
            await self._changed.wait()
        return self.requests[:count]

    def _reply(self, request: RecordedRequest) -> Reply:
        if callable(self.script):
            return self.script(request)
        return self.script[min(request.index, len(self.script) - 1)]

    async def _serve(self, stream: trio.SocketStream) -> None:
        number = self.connections
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                received = await _read_request(stream, conn)
                if received is None:
                    return
                head, raw = received
                record = self._record(number, head, raw)
                try:
                    keep_alive = await self._respond(stream, conn, record)
                finally:
                    record.ended.set()
                if not keep_alive or conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    def _record(self, number: int, head: h11.Request, raw: bytes) -> RecordedRequest:
        target = head.target.decode()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        dialect = "gemini" if ":streamGenerateContent" in target else "openai"
        record = RecordedRequest(
            index=len(self.requests),
            connection=number,
            dialect=dialect,
            target=target,
            headers={k.decode().lower(): v.decode() for k, v in head.headers},
            body=body,
            received_at=trio.current_time(),
        )
        self.requests.append(record)
        self._changed.set()
        self._changed = trio.Event()
        return record

    async def _respond(
        self, stream: trio.SocketStream, conn: h11.Connection, record: RecordedRequest
    ) -> bool:
        reply = self._reply(record)
        formats = _GEMINI if record.dialect == "gemini" else _OPENAI
        outcome = "close"

        async def watch(cancel_scope: trio.CancelScope) -> None:
            # HTTP/1.1 clients send nothing while a response is on its way, so
            # a read that returns means the client closed or reset the connection.
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if data:
                conn.receive_data(data)
                return
            record.disconnected_at = trio.current_time()
            cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            try:
                outcome = await self._send_reply(stream, conn, record, reply, formats)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if record.disconnected_at is None:
                    record.disconnected_at = trio.current_time()
            nursery.cancel_scope.cancel()
        if outcome == "reset":
            # Linger 0: closing sends a TCP RST instead of a FIN.
            sock = stream.socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        return outcome == "keep" and record.disconnected_at is None

    async def _send_reply(
        self,
        stream: trio.SocketStream,
        conn: h11.Connection,
        record: RecordedRequest,
        reply: Reply,
        formats: _Dialect,
    ) -> str:
        await trio.sleep(reply.headers_delay)
        headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        if reply.status >= 400 and reply.error_body == "endless":
            headers += [(b"content-type", b"text/html")]
            await stream.send_all(
                conn.send(h11.Response(status_code=reply.status, headers=headers))
            )
            await self._endless(stream, conn, record, b"<p>" + b"error " * (BLOCK // 6))
        if reply.status >= 400:
            message = reply.message
            if reply.echo_key is not None:
                key = record.headers.get("x-goog-api-key") or record.headers.get(
                    "authorization", ""
                ).removeprefix("Bearer ")
                message = "x" * reply.echo_key + key + " is not a valid key"
            body = json.dumps(formats.error(reply.status, message)).encode()
            if isinstance(reply.error_body, bytes):
                body = reply.error_body
            headers += [(b"content-type", b"application/json")]
            headers += [(b"content-length", str(len(body)).encode())]
            await stream.send_all(
                conn.send(h11.Response(status_code=reply.status, headers=headers))
            )
            await stream.send_all(conn.send(h11.Data(data=body)))
            record.bytes_sent += len(body)
            await stream.send_all(conn.send(h11.EndOfMessage()))
            record.completed_at = trio.current_time()
            return "keep"
        if not any(k.lower() == "content-type" for k in reply.headers):
            headers.append((b"content-type", b"text/event-stream"))
        await stream.send_all(conn.send(h11.Response(status_code=reply.status, headers=headers)))
        return await self._stream(stream, conn, record, reply, formats)

    async def _stream(
        self,
        stream: trio.SocketStream,
        conn: h11.Connection,
        record: RecordedRequest,
        reply: Reply,
        formats: _Dialect,
    ) -> str:
        async def send(text: str) -> None:
            data = text.encode()
            await stream.send_all(conn.send(h11.Data(data=data)))
            record.bytes_sent += len(data)

        await trio.sleep(reply.first_delay)
        if reply.body is not None:
            await stream.send_all(conn.send(h11.Data(data=reply.body)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            record.completed_at = trio.current_time()
            return "keep"
        for index in range(reply.keepalives):
            if index:
                await trio.sleep(reply.chunk_delay)
            await send(": keep-alive" + formats.newline * 2)
        if reply.payloads is not None:
            for payload in reply.payloads:
                await send(formats.event(json.dumps(payload)))
            count = 0
        else:
            count = len(reply.text) if reply.after is None else reply.after
            for index, delta in enumerate(reply.text[:count]):
                if index or reply.keepalives:
                    await trio.sleep(reply.chunk_delay)
                await send(formats.event(formats.delta(delta)))
                record.sent.append(delta)
        if reply.end == "endless_line":
            await send("data: ")
            await self._endless(stream, conn, record, b"x" * BLOCK)
        if reply.end == "endless_event":
            line = ("data: " + "x" * 1000 + formats.newline).encode()
            await self._endless(stream, conn, record, line * (BLOCK // len(line)))
        if reply.end == "hang":
            await trio.sleep_forever()
        if reply.end == "reset":
            return "reset"
        if reply.end == "finish":
            for event in formats.calls(reply.calls):
                await trio.sleep(reply.chunk_delay)
                await send(formats.event(event))
            await trio.sleep(reply.chunk_delay if count else 0)
            for event in formats.finish(bool(reply.calls)):
                await send(formats.event(event))
        elif reply.end == "error_event":
            await send(formats.event(formats.error(503, reply.message)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        record.completed_at = trio.current_time()
        return "keep"

    async def _endless(
        self, stream: trio.SocketStream, conn: h11.Connection, record: RecordedRequest, block: bytes
    ) -> NoReturn:
        # Until the client leaves (the watcher cancels, or a send fails).
        while True:
            await stream.send_all(conn.send(h11.Data(data=block)))
            record.bytes_sent += len(block)


async def _read_request(
    stream: trio.SocketStream, conn: h11.Connection
) -> tuple[h11.Request, bytes] | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


@attrs.frozen
class _Dialect:
    newline: str
    delta: Callable[[str], Any]
    finish: Callable[[bool], list[Any]]
    error: Callable[[int, str], Any]
    calls: Callable[[Sequence[tuple[str, str, Any]]], list[Any]]

    def event(self, payload: Any) -> str:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        return f"data: {data}{self.newline}{self.newline}"


def _openai_delta(text: str) -> Any:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


def _openai_calls(calls: Sequence[tuple[str, str, Any]]) -> list[Any]:
    # Like OpenAI: the id and name first, then the arguments in pieces.
    events: list[Any] = []
    for index, (call_id, name, arguments) in enumerate(calls):
        text = json.dumps(arguments)
        first = {"index": index, "id": call_id, "type": "function"}
        first["function"] = {"name": name, "arguments": ""}
        pieces = [text[: len(text) // 2], text[len(text) // 2 :]]
        events.extend(
            {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
            for call in [first, *({"index": index, "function": {"arguments": p}} for p in pieces)]
        )
    return events


def _gemini_calls(calls: Sequence[tuple[str, str, Any]]) -> list[Any]:
    parts = [{"functionCall": {"id": i, "name": n, "args": a}} for i, n, a in calls]
    if not parts:
        return []
    return [{"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}]}]


_OPENAI = _Dialect(
    newline="\n",
    delta=_openai_delta,
    finish=lambda tools: [
        {
            "choices": [
                {"index": 0, "delta": {}, "finish_reason": "tool_calls" if tools else "stop"}
            ]
        },
        "[DONE]",
    ],
    calls=_openai_calls,
    error=lambda status, message: {
        "error": {"message": message, "type": "server_error", "code": status}
    },
)

_GEMINI = _Dialect(
    newline="\r\n",
    delta=lambda text: {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}]
    },
    calls=_gemini_calls,
    finish=lambda tools: [
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1},
        }
    ],
    error=lambda status, message: {
        "error": {"code": status, "message": message, "status": "UNAVAILABLE"}
    },
)


@asynccontextmanager
async def open_model_server(script: Script = (Reply(),)) -> AsyncIterator[ModelServer]:
    """Run a `ModelServer` on a free port of 127.0.0.1 for the block.

    Leaving the block stops the server and closes every connection.
    """
    if not callable(script) and not script:
        raise ValueError("the script needs at least one reply")
    server = ModelServer(script)
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, host="127.0.0.1")
        listeners = await nursery.start(serve, server._serve, 0)
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


class Collector(trio.abc.SendChannel[Part]):
    """A send channel that keeps what it is sent in `parts`."""

    def __init__(self) -> None:
        self.parts: list[Part] = []

    async def send(self, value: Part) -> None:
        await trio.lowlevel.checkpoint()
        self.parts.append(value)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    @property
    def texts(self) -> list[str]:
        """The text of each part."""
        return [part.text for part in self.parts]


async def run_turn(
    model: Callable[[PromptStream, trio.abc.SendChannel[Part]], Awaitable[None]],
    parts: Sequence[Part],
    output: Collector | None = None,
) -> list[str]:
    """Call a turn model once on a finished prompt, outside a session.

    Returns the texts it sent; pass ``output`` to see them even if it fails.
    """
    prompt = RollingPrompt(window=None, max_parts=None)
    cursor = prompt.pending()
    for part in parts:
        prompt.add(part, trio.current_time())
    prompt.finalize(trio.current_time())
    output = Collector() if output is None else output
    await model(PromptStream(cursor), output)
    return output.texts
