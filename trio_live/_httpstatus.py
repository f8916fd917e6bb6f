"""HTTP statuses and error payloads as the typed errors of `trio_live._errors`.

Shared by everything that talks HTTP: the HTTP models and the HTTP speech
recognizer. Both model APIs wrap errors the same way, ``{"error": {"message": ..., "code": ...}}``
(Gemini's streaming endpoint sometimes inside a list); a server that says
nothing useful gets the reason phrase.

These functions never cut a message: a key echoed by the server must be
masked first, or a cut through the key would leave half of it outside the
mask. The caller masks, then calls `shorten` (500 characters).
"""

from __future__ import annotations

import email.utils
import json
import math
from typing import Any, Final

import httpx

from ._errors import (
    AuthenticationError,
    BadRequestError,
    MalformedStreamError,
    ModelError,
    RateLimitedError,
    ServerError,
)

__all__ = [
    "error_for_status",
    "error_from_payload",
    "json_field",
    "json_item",
    "load_json",
    "message_from_body",
    "parse_retry_after",
    "shorten",
]

MAX_MESSAGE: Final = 500


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters (call it after masking secrets)."""
    return text if len(text) <= limit else text[:limit]


def error_for_status(status: int, message: str, *, retry_after: float | None = None) -> ModelError:
    """The typed error for an HTTP error status."""
    if status in (401, 403):
        return AuthenticationError(message, status=status)
    if status == 429:
        return RateLimitedError(message, status=status, retry_after=retry_after)
    if status >= 500 or status == 408:
        return ServerError(message, status=status)
    return BadRequestError(message, status=status)


def error_from_payload(error: Any) -> ModelError:
    """The typed error for an ``{"error": ...}`` object sent inside a stream."""
    if not isinstance(error, dict):
        return ServerError(f"the server sent an error: {error}")
    message = str(error.get("message") or "the server sent an error")
    code = error.get("code")
    if isinstance(code, int) and 400 <= code < 600:
        return error_for_status(code, message)
    kind = f"{error.get('type', '')} {error.get('status', '')} {code or ''}".lower()
    if "rate" in kind or "quota" in kind or "resource_exhausted" in kind:
        return RateLimitedError(message, status=None)
    if "auth" in kind or "permission" in kind:
        return AuthenticationError(message)
    if "invalid" in kind or "not_found" in kind:
        return BadRequestError(message)
    return ServerError(message)


def message_from_body(body: bytes, fallback: str) -> str:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        text = body.decode("utf-8", errors="replace").strip()
        return text or fallback
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
    return fallback


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``Retry-After-Ms`` or ``Retry-After`` (None if absent).

    An HTTP date is measured against the response's own ``Date`` header, so no
    wall clock is read.
    """
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                then = email.utils.parsedate_to_datetime(value)
                now = email.utils.parsedate_to_datetime(headers.get("date", ""))
                seconds = (then - now).total_seconds()
            except (TypeError, ValueError):
                continue
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


def load_json(data: str) -> Any:
    """Parse an event's data.

    Raises:
        MalformedStreamError: if it is not JSON.
    """
    try:
        return json.loads(data)
    except ValueError:
        raise MalformedStreamError(f"an event's data is not JSON: {data!r}") from None
    except RecursionError:
        raise MalformedStreamError("an event's data is JSON nested too deeply") from None


_JSON_TYPES: Final = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def json_field(container: dict[str, Any], name: str, kind: type, where: str) -> Any:
    """``container[name]`` when it is a ``kind``, or None when absent or null.

    ``kind`` is one of ``dict``, ``list``, ``str``, ``bool`` or ``int`` (which
    refuses booleans); ``where`` is the path shown in the error, for example
    ``"choices[0].delta"``.

    Raises:
        MalformedStreamError: naming the field and the JSON type it had (not
            its value).
    """
    value = container.get(name)
    if value is None:
        return None
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    expected = "an integer" if kind is int else _JSON_TYPES[kind]
    raise MalformedStreamError(
        f"{where}.{name} must be {expected} or null, got {_json_type(value)}"
    )


def json_item(value: Any, kind: type, where: str) -> Any:
    """``value`` (an array's item) when it is a ``kind``.

    Raises:
        MalformedStreamError: naming ``where`` and the JSON type it had.
    """
    if isinstance(value, kind):
        return value
    raise MalformedStreamError(f"{where} must be {_JSON_TYPES[kind]}, got {_json_type(value)}")
