"""One lazily opened httpx client, shared by everything that talks HTTP."""

from __future__ import annotations

import math
from types import TracebackType
from typing import Self

import httpx
import trio


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
