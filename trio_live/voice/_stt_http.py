"""Speech to text on a server: OpenAI-compatible ``/v1/audio/transcriptions``.

`HttpRecognizer` is an `AsyncRecognizer`: each call uploads the clip as a WAV
file in a multipart form (``file``, ``model``, ``response_format=json`` and
optional ``language``/``prompt``) and reads ``{"text": ...}`` back. OpenAI,
Groq, a local faster-whisper or whisper.cpp server all speak this.

Failures are the model errors of `trio_live._errors` (the server is a model
server): `AuthenticationError` (401/403), `RateLimitedError` (429, with the
server's Retry-After), `BadRequestError` (other 4xx), `ServerError` (5xx, or
no connection), `ModelTimeoutError` (connect or response too slow) and
`MalformedStreamError` (a 200 whose body has no text). The API key is sent in
the ``Authorization`` header only; it is never in a repr or a message.
"""

from __future__ import annotations

import json
from typing import Final

import attrs
import httpx
import trio

from .._checks import positive
from .._errors import (
    MalformedStreamError,
    ModelError,
    ModelTimeoutError,
    ResponseTooLargeError,
    ServerError,
)
from .._httpclient import OwnsHTTPClient, check_api_key, close_chunks, mask_secret
from .._httpstatus import error_for_status, parse_retry_after, shorten
from .._wav import wav_from_pcm
from ._stt_backends import check_pcm16

_MAX_MESSAGE: Final = 300  # cut after masking, in _mask_error


def _size(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{attribute.name} must be an int > 0, got {value!r}")


def _message(response: httpx.Response, body: bytes) -> str:
    fallback = f"the server answered {response.status_code} {response.reason_phrase}".strip()
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", errors="replace").strip() or fallback
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail"))
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
    return fallback


@attrs.define(eq=False)
class HttpRecognizer(OwnsHTTPClient):
    """A recognizer that asks an OpenAI-compatible transcription server.

    Use it as an async context manager (or call `aclose`) to close its
    connections.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``; requests
            go to ``{base_url}/audio/transcriptions``.
        model: the model name the server expects (``whisper-1``...).
        api_key: sent as a bearer token; never shown. Printable ASCII
            without spaces, or `ValueError` (as the HTTP models).
        language: an ISO-639-1 hint such as ``"en"``, or None.
        prompt: text that guides the spelling of names and terms, or None.
        connect_timeout: seconds to wait for a connection.
        response_timeout: seconds to wait for the whole answer.
        max_response_bytes: the most bytes read of an answer; over it, a
            200 raises `ResponseTooLargeError` and an error status its own
            error, made from what was read.
        transport: an httpx transport (tests use `httpx.MockTransport`).
    """

    base_url: str
    model: str = attrs.field(default="whisper-1", kw_only=True)
    api_key: str | None = attrs.field(
        default=None, kw_only=True, repr=False, validator=check_api_key
    )
    language: str | None = attrs.field(default=None, kw_only=True)
    prompt: str | None = attrs.field(default=None, kw_only=True)
    connect_timeout: float = attrs.field(default=5.0, kw_only=True, validator=positive)
    response_timeout: float = attrs.field(default=30.0, kw_only=True, validator=positive)
    max_response_bytes: int = attrs.field(default=1024 * 1024, kw_only=True, validator=_size)
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, kw_only=True, repr=False)
    _client: httpx.AsyncClient | None = attrs.field(init=False, default=None, repr=False)

    @property
    def url(self) -> str:
        """Where the clips are sent."""
        return self.base_url.rstrip("/") + "/audio/transcriptions"

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        """Upload ``pcm16`` (mono, ``rate`` Hz) and return the server's text.

        Cancellation abandons the request.

        Raises:
            AudioFormatError: if ``pcm16``/``rate`` is not PCM16 audio.
            ModelError: a subclass of it for each failure (see the module).
        """
        check_pcm16(pcm16, rate)
        data = {"model": self.model, "response_format": "json"}
        if self.language:
            data["language"] = self.language
        if self.prompt:
            data["prompt"] = self.prompt
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        files = {"file": ("speech.wav", wav_from_pcm(pcm16, rate), "audio/wav")}
        client = self._open_client()
        request = client.build_request("POST", self.url, data=data, files=files, headers=headers)
        try:
            answer: tuple[httpx.Response, bytes, bool] | None = None
            with trio.move_on_after(self.response_timeout):
                answer = await self._send(client, request)
            if answer is None:
                raise ModelTimeoutError(
                    f"no answer within {self.response_timeout} s", phase="first_byte"
                )
        except httpx.HTTPError as error:
            raise self._mask_error(self._transport_error(error)) from error
        response, content, over = answer
        if response.status_code != 200:
            failure = error_for_status(
                response.status_code,
                _message(response, content),
                retry_after=parse_retry_after(response.headers),
            )
            raise self._mask_error(failure)
        if over:
            raise ResponseTooLargeError(
                f"the answer is over max_response_bytes={self.max_response_bytes}",
                limit="max_response_bytes",
            )
        try:
            payload = json.loads(content)
        except (ValueError, RecursionError):
            payload = None
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            body = content.decode("utf-8", errors="replace")
            raise self._mask_error(
                MalformedStreamError(f'expected JSON with a "text" string, got {body!r}')
            )
        return text.strip()

    async def _send(
        self, client: httpx.AsyncClient, request: httpx.Request
    ) -> tuple[httpx.Response, bytes, bool]:
        # The answer, at most max_response_bytes of its body, and whether
        # there was more (left unread: the connection is closed).
        limit = self.max_response_bytes
        response = await client.send(request, stream=True)
        chunks = response.aiter_bytes()
        body = bytearray()
        try:
            async for chunk in chunks:
                body += chunk
                if len(body) > limit:
                    return response, bytes(body[:limit]), True
        finally:
            try:
                await close_chunks(chunks)
            finally:
                await response.aclose()
        return response, bytes(body), False

    def _transport_error(self, error: httpx.HTTPError) -> ModelError:
        if isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout):
            return ModelTimeoutError(
                f"no connection within {self.connect_timeout} s", phase="connect"
            )
        if isinstance(error, httpx.TimeoutException):
            return ModelTimeoutError(f"the request timed out: {error}", phase="first_byte")
        detail = str(error) or type(error).__name__
        if isinstance(error, httpx.ConnectError):
            return ServerError(f"could not connect to {self.url}: {detail}")
        return ServerError(f"the request to {self.url} failed: {detail}")

    def _mask_error(self, error: ModelError) -> ModelError:
        # Mask first, then cut: a cut never halves an echoed key.
        message = shorten(mask_secret(error.message, self.api_key), _MAX_MESSAGE)
        error.message = message
        error.args = (message if error.status is None else f"{message} (status {error.status})",)
        return error
