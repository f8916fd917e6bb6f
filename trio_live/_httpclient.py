"""What everything that talks HTTP shares: one lazily opened client, the API key's rules.

An API key is sent in a header, so it must be printable ASCII without spaces;
`check_api_key` refuses anything else when the model is built (a key pasted
with its trailing newline is the common case) with a `ValueError` that names
the parameter and the offending position, never the key. `mask_secret`
replaces a key in a text, in the forms a server or a library may echo it:
as it is, escaped as in a repr or JSON, and URL-encoded.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final, Self

import attrs
import httpx
import trio

__all__ = ["OwnsHTTPClient", "check_api_key", "close_chunks", "mask_secret"]

MASK: Final = "***"


def check_api_key(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    """Check an ``api_key`` attribute: None, or printable ASCII without spaces.

    An empty key means no key, as None does.

    Raises:
        ValueError: naming the attribute and the first bad character's position
            and kind, never the key itself.
    """
    name = attribute.name.lstrip("_")
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    for index, char in enumerate(value):
        if char.isspace():
            kind = "a line break" if char in "\r\n" else "whitespace"
        elif not char.isascii():
            kind = "a non-ASCII character"
        elif not char.isprintable():
            kind = "a control character"
        else:
            continue
        raise ValueError(
            f"{name} holds {kind} at position {index + 1} of {len(value)}; keys are"
            " printable ASCII without spaces (check for a newline pasted with it)"
        )


def _escaped_forms(secret: str) -> set[str]:
    forms = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
        urllib.parse.quote(secret),
    }
    forms.discard("")
    return forms


def mask_secret(text: str, secret: str | None) -> str:
    """``text`` with every form of ``secret`` in it replaced by ``***``."""
    if not secret:
        return text
    # Longest first, so a longer escaped form is not left half replaced.
    for form in sorted(_escaped_forms(secret), key=len, reverse=True):
        if form in text:
            text = text.replace(form, MASK)
    return text


class OwnsHTTPClient:
    """Mixin: an ``httpx.AsyncClient`` opened on first use, closed by `aclose`.

    The class using it defines ``transport``, ``connect_timeout`` and
    ``_client`` (None until the first request). It is an async context
    manager; without ``async with``, call `aclose` when done. A request after
    `aclose` opens a new client.
    """

    transport: httpx.AsyncBaseTransport | None
    connect_timeout: float
    _client: httpx.AsyncClient | None

    def _open_client(self) -> httpx.AsyncClient:
        client = self._client
        if client is None or client.is_closed:
            connect = None if math.isinf(self.connect_timeout) else self.connect_timeout
            client = self._client = httpx.AsyncClient(
                transport=self.transport,
                timeout=httpx.Timeout(None, connect=connect, pool=connect),
                headers={"user-agent": "trio-live"},
            )
        return client

    async def __aenter__(self) -> Self:
        self._open_client()
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client and its connections (a later request opens new ones).

        The connections are closed even if this is cancelled.
        """
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        else:
            await trio.lowlevel.checkpoint()


async def close_chunks(chunks: AsyncIterator[bytes]) -> None:
    """Close a response body's iterator that was left before its end.

    httpx's body is a stack of async generators; abandoning them (``break``)
    leaves their closing to the garbage collector, which trio reports as a
    `ResourceWarning`. They are resumed once inside a cancelled scope: the
    innermost one is at a socket read, which raises Cancelled, and each
    generator exits through it, closing the connection.
    """
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            async for _ in chunks:
                pass
        except httpx.HTTPError:
            pass
