"""What the HTTP turn models share: one client, timeouts, retries, errors.

`HTTPTurnModel` runs one streaming request per turn; a subclass says how to
build the request body from the prompt and how to read text out of each
server-sent event. Everything else is here, once:

* one `httpx.AsyncClient` per model, created on first use (or by
  ``async with``) and reused across turns, so connections are pooled;
* three deadlines, all on trio's clock: ``connect_timeout`` (enforced by
  httpx), ``first_byte_timeout`` (from the start of an attempt to the first
  byte of the response body) and ``idle_timeout`` (between two chunks of the
  body); each raises `ModelTimeoutError` with its phase;
* retries with exponential backoff and jitter on 429, 5xx, connection
  failures and connect timeouts, honouring ``Retry-After``, and only while no
  part of the answer was delivered: a half-delivered answer is never replayed;
* HTTP statuses and error payloads become the classes of `trio_live._errors`,
  carrying the status and the server's message, with the API key masked.
* read limits, so a hostile or broken server cannot make a turn hold
  unbounded memory: ``max_error_body`` bytes of an error (or non-stream)
  body are read, the rest is not; ``max_line_length`` and
  ``max_event_length`` characters bound one line and one event of the
  stream, and ``max_response_bytes`` the whole streamed body. An answer over
  one of the last three raises `ResponseTooLargeError` (a
  `MalformedStreamError`) and closes the connection.

Closing a response early (barge-in, an error event, a timeout) never leaves
httpx's nested async generators suspended: they are resumed once inside a
cancelled scope, so each of them exits through an exception and releases its
connection at once. Abandoning them (``break``) would leave that to the
garbage collector, which trio reports as a `ResourceWarning`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
import httpx
import trio

from .._checks import finite_non_negative, positive
from .._errors import (
    BadRequestError,
    MalformedStreamError,
    ModelError,
    ModelTimeoutError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
)
from .._httpclient import OwnsHTTPClient, check_api_key, close_chunks, mask_secret
from .._httpstatus import error_for_status, message_from_body, parse_retry_after, shorten
from .._model import PromptStream
from .._parts import Part, text_part, tool_call
from .._toolruns import prompt_tools
from .._tools import Tool, check_tools
from ._sse import ServerSentEvent, SSEDecoder

__all__ = ["HTTPTurnModel", "ToolCallDelta"]

logger = logging.getLogger("trio_live.models")


def _retryable(error: ModelError) -> bool:
    if isinstance(error, ModelTimeoutError):
        return error.phase == "connect"
    return isinstance(error, RateLimitedError | ServerError)


def _count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not (isinstance(value, int) and value >= 0):
        raise ValueError(f"{attribute.name} must be an int >= 0, got {value!r}")


def _size(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{attribute.name} must be an int > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class ToolCallDelta:
    """A piece of a streamed tool call, as `HTTPTurnModel._event` reads it.

    Pieces with one ``index`` are joined (the id and name are taken from the
    first that has them, the argument texts are concatenated) and sent as one
    tool-call part when the answer is complete; a piece whose ``index`` is
    None is a whole call, sent at once.
    """

    index: int | None
    id: str = ""
    name: str = ""
    arguments: str = ""


@attrs.define(eq=False)
class _Attempt:
    delivered: int = 0
    finished: bool = False
    retry_after: float | None = None
    #: Streamed tool calls being put together, by index.
    calls: dict[int, list[str]] = attrs.field(factory=dict)


@attrs.define(eq=False, kw_only=True)
class HTTPTurnModel(OwnsHTTPClient):
    """The base of the streaming HTTP turn models (see the module docstring).

    Args:
        api_key: the key sent to the server; never shown in a repr, message
            or log line. It must be printable ASCII without spaces: anything
            else (a pasted trailing newline...) raises `ValueError` here.
        connect_timeout: seconds to open a connection.
        first_byte_timeout: seconds from the start of a request (connecting
            included) to the first byte of the response body.
        idle_timeout: the longest gap, in seconds, between two chunks of the
            response body (servers' keep-alive comments count as chunks).
        max_retries: how many times a failed request is sent again.
        retry_backoff: the first backoff in seconds; it doubles on each retry
            and a random factor between 0.5 and 1 is applied.
        max_retry_wait: the longest wait before a retry; a server asking to
            wait longer gets its error raised at once.
        max_error_body: the most bytes read of an error body (or of a body
            that is not an event stream); the rest is not read, and the
            error is raised from what was.
        max_line_length: the longest line of the event stream, in characters.
        max_event_length: the most data one event may hold, in characters.
        max_response_bytes: the most bytes of one streamed answer.
        transport: an httpx transport, for example `httpx.MockTransport`.
    """

    api_key: str | None = attrs.field(default=None, repr=False, validator=check_api_key)
    connect_timeout: float = attrs.field(default=10.0, validator=positive)
    first_byte_timeout: float = attrs.field(default=60.0, validator=positive)
    idle_timeout: float = attrs.field(default=30.0, validator=positive)
    max_retries: int = attrs.field(default=2, validator=_count)
    retry_backoff: float = attrs.field(default=0.5, validator=finite_non_negative)
    max_retry_wait: float = attrs.field(default=30.0, validator=finite_non_negative)
    max_error_body: int = attrs.field(default=64 * 1024, validator=_size)
    max_line_length: int = attrs.field(default=1024 * 1024, validator=_size)
    max_event_length: int = attrs.field(default=1024 * 1024, validator=_size)
    max_response_bytes: int = attrs.field(default=32 * 1024 * 1024, validator=_size)
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=check_tools)
    _client: httpx.AsyncClient | None = attrs.field(init=False, default=None, repr=False)
    _random: random.Random = attrs.field(init=False, factory=random.Random, repr=False)

    # -- what a subclass provides ------------------------------------------

    def _url(self) -> str:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _body(self, parts: Sequence[Part]) -> dict[str, Any] | None:
        """The request body for a prompt, or None when there is nothing to send."""
        raise NotImplementedError

    def _event(self, event: ServerSentEvent) -> tuple[Sequence[str | ToolCallDelta], bool]:
        """The text deltas and tool-call pieces in one event, and whether the answer ended."""
        raise NotImplementedError

    def _declare(self, tools: Sequence[Tool]) -> dict[str, Any]:
        """The request body's fields that declare ``tools``."""
        raise BadRequestError(f"{type(self).__name__} does not take tools")

    # -- the client ----------------------------------------------------------

    # -- one turn ------------------------------------------------------------

    async def __call__(self, prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        """Wait for the whole prompt, then stream the answer's text to ``output``.

        Cancellation closes the response at once; the parts already sent stay
        delivered.

        Raises:
            ModelError: a subclass of it for each failure; see the module docstring.
        """
        parts = await prompt.collect()
        body = self._body(parts)
        if body is None:
            return
        tools = prompt_tools(prompt) or self.tools
        if tools:
            body.update(self._declare(tools))
        content = json.dumps(body).encode()
        client = self._open_client()
        retries = 0
        while True:
            attempt = _Attempt()
            try:
                await self._attempt(client, content, output, attempt)
                return
            except ModelError as error:
                if attempt.delivered or retries >= self.max_retries or not _retryable(error):
                    raise
                delay = self._backoff(retries, attempt.retry_after)
                if delay is None:
                    raise
                logger.info("retrying in %.3f s after: %s", delay, error)
            retries += 1
            await trio.sleep(delay)

    def _backoff(self, retries: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_wait else None
        delay = self.retry_backoff * 2.0**retries * self._random.uniform(0.5, 1.0)
        return min(delay, self.max_retry_wait)

    def _mask(self, text: str) -> str:
        return mask_secret(text, self.api_key)

    def _error(self, error: ModelError) -> ModelError:
        # Every error with server text leaves through here: the key is masked
        # first, then the message is cut, so a cut never halves an echoed key.
        message = shorten(self._mask(error.message))
        error.message = message
        error.args = (message if error.status is None else f"{message} (status {error.status})",)
        return error

    def _transport_error(self, error: httpx.HTTPError) -> ModelError:
        if isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout):
            message = f"no connection within {self.connect_timeout} s"
            return ModelTimeoutError(message, phase="connect")
        detail = self._mask(str(error)) or type(error).__name__
        if isinstance(error, httpx.ConnectError):
            return ServerError(f"could not connect: {detail}")
        if isinstance(error, httpx.LocalProtocolError):
            # Our request could not be written (a header h11 refuses): sending
            # it again would fail the same way, so it is not retried.
            return BadRequestError(f"the request could not be sent: {detail}")
        if isinstance(error, httpx.TransportError):
            return ServerError(f"the connection failed: {detail}")
        return BadRequestError(f"the request failed: {detail}")

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        content: bytes,
        output: trio.abc.SendChannel[Part],
        attempt: _Attempt,
    ) -> None:
        deadline = trio.current_time() + self.first_byte_timeout
        request = client.build_request(
            "POST", self._url(), content=content, headers=self._headers()
        )
        request.headers["content-type"] = "application/json"
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise self._error(self._transport_error(error)) from error
        if scope.cancelled_caught:
            raise ModelTimeoutError(
                f"no first byte within {self.first_byte_timeout} s", phase="first_byte"
            )
        chunks = response.aiter_bytes()
        try:
            if not response.is_success:
                body = await self._read_all(chunks, deadline, "first_byte")
                attempt.retry_after = parse_retry_after(response.headers)
                message = message_from_body(body, response.reason_phrase or "error")
                status = response.status_code
                raise self._error(
                    error_for_status(status, message, retry_after=attempt.retry_after)
                )
            kind = response.headers.get("content-type", "text/event-stream")
            if "event-stream" not in kind:
                body = await self._read_all(chunks, deadline, "first_byte")
                message = message_from_body(body, "no details")
                raise self._error(
                    MalformedStreamError(f"expected an event stream, got {kind!r}: {message}")
                )
            await self._stream(chunks, deadline, output, attempt)
        finally:
            try:
                await close_chunks(chunks)
            finally:
                await response.aclose()

    async def _next_chunk(
        self, chunks: AsyncIterator[bytes], deadline: float, phase: str
    ) -> bytes | None:
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                return await anext(chunks)
            except StopAsyncIteration:
                return None
            except httpx.HTTPError as error:
                raise self._error(self._transport_error(error)) from error
        if scope.cancelled_caught:
            if phase == "first_byte":
                message = f"no first byte within {self.first_byte_timeout} s"
            else:
                message = f"no data for {self.idle_timeout} s between chunks"
            raise ModelTimeoutError(message, phase=phase)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read_all(self, chunks: AsyncIterator[bytes], deadline: float, phase: str) -> bytes:
        # At most max_error_body bytes: the rest is left unread (the
        # connection is closed), and the message made from what came.
        body = bytearray()
        limit = self.max_error_body
        while (chunk := await self._next_chunk(chunks, deadline, phase)) is not None:
            body += chunk[: limit - len(body)]
            if len(body) >= limit:
                break
            deadline, phase = trio.current_time() + self.idle_timeout, "idle"
        return bytes(body)

    async def _stream(
        self,
        chunks: AsyncIterator[bytes],
        deadline: float,
        output: trio.abc.SendChannel[Part],
        attempt: _Attempt,
    ) -> None:
        decoder = SSEDecoder(
            max_line_length=self.max_line_length, max_event_length=self.max_event_length
        )
        phase = "first_byte"
        received = 0
        while (chunk := await self._next_chunk(chunks, deadline, phase)) is not None:
            deadline, phase = trio.current_time() + self.idle_timeout, "idle"
            received += len(chunk)
            if received > self.max_response_bytes:
                raise ResponseTooLargeError(
                    f"the answer is over max_response_bytes={self.max_response_bytes}",
                    limit="max_response_bytes",
                )
            for event in decoder.feed(chunk):
                await self._deliver(event, output, attempt)
        for event in decoder.close():
            await self._deliver(event, output, attempt)
        if not attempt.finished:
            raise self._error(MalformedStreamError("the stream ended before the answer did"))

    async def _deliver(
        self, event: ServerSentEvent, output: trio.abc.SendChannel[Part], attempt: _Attempt
    ) -> None:
        try:
            texts, finished = self._event(event)
        except ModelError as error:
            raise self._error(error) from None
        for text in texts:
            if isinstance(text, ToolCallDelta):
                if text.index is None:
                    await output.send(tool_call(text.name, text.arguments, call_id=text.id))
                    attempt.delivered += 1
                    continue
                piece = attempt.calls.setdefault(text.index, ["", "", ""])
                piece[0] = piece[0] or text.id
                piece[1] = piece[1] or text.name
                piece[2] += text.arguments
            elif text:
                await output.send(text_part(text, role="model"))
                attempt.delivered += 1
        if finished and not attempt.finished:
            # The streamed calls are whole once the answer is.
            calls, attempt.calls = attempt.calls, {}
            for index in sorted(calls):
                call_id, name, arguments = calls[index]
                await output.send(tool_call(name, arguments, call_id=call_id))
                attempt.delivered += 1
        attempt.finished = attempt.finished or finished
