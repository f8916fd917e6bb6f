"""The web server's configuration and statistics (frozen values)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs

from .._checks import non_negative, positive
from ._budget import Budgets
from ._protocol import Limits

STATIC_DIR: Final = Path(__file__).with_name("static")


@attrs.frozen(kw_only=True)
class ServerConfig:
    """How the server listens and what it accepts.

    Attributes:
        host: the address to bind (loopback by default: put a reverse proxy
            with TLS in front to serve other machines).
        port: the TCP port (0 picks a free one).
        allowed_origins: browser origins allowed besides the page's own
            (``"*"`` allows any); clients that send no Origin are allowed.
        allowed_hosts: host names a request's ``Host`` may carry besides
            ``localhost``, IP addresses and ``host`` (``"*"`` allows any).
            Other names are refused (403), on the page and on ``/ws``: a
            DNS-rebinding page cannot reach the server under its own name.
        token: if set, clients must send ``Authorization: Bearer <token>`` or
            ``?token=<token>`` in the websocket URL.
        token_failures: failed token checks a peer address may make per
            minute (a token bucket of that size); then it is refused with 429
            and ``Retry-After`` until it may try again, whatever it sends.
        max_sessions: the most concurrent sessions; more are refused (503).
        limits: the message limits (`Limits`).
        budgets: how much input one client may send over time (`Budgets`);
            a client over them gets an ``over_budget`` error and 1008.
        audio_in_frames: input audio frames queued before the oldest is dropped.
        audio_out_chunks: TTS chunks queued before the oldest is dropped.
        control_queue: control messages queued each way: the server's events
            wait for room; a client with this many messages not yet taken by
            its pipeline is closed with 1013.
        echo_tail: seconds after the speech sent to a client has had time to
            play before the echo guard turns off by itself (when the client
            does not report the end of playback: protocol version 1).
        report_timeout: for a client that reports the end of its playback
            (version 2), seconds after the speech sent has had time to play
            before the echo guard turns off without the report.
        close_grace: seconds allowed for the closing handshake.
        handshake_timeout: seconds a client has for the request head and
            the websocket handshake.
        idle_timeout: seconds without any client message before the server
            closes the connection with 4000 (``math.inf``: never).
        static_dir: the page's files (None: serve no page).
        trusted_proxies: addresses or networks of reverse proxies whose
            ``X-Forwarded-For``/``-Host``/``-Proto`` headers are believed
            (the Host and origin checks then use the forwarded host);
            anyone else's are ignored.
        worker: the worker's id with ``--workers`` (session names and the
            ``worker`` label of the metrics carry it); None: one process.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    allowed_origins: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    allowed_hosts: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    token: str | None = attrs.field(default=None, repr=False)
    token_failures: int = attrs.field(default=10, validator=positive)
    max_sessions: int = attrs.field(default=16, validator=positive)
    limits: Limits = attrs.field(factory=Limits)
    budgets: Budgets = attrs.field(factory=Budgets)
    audio_in_frames: int = attrs.field(default=250, validator=positive)
    audio_out_chunks: int = attrs.field(default=200, validator=positive)
    control_queue: int = attrs.field(default=64, validator=positive)
    echo_tail: float = attrs.field(default=0.5, validator=non_negative)
    report_timeout: float = attrs.field(default=5.0, validator=non_negative)
    close_grace: float = attrs.field(default=2.0, validator=positive)
    handshake_timeout: float = attrs.field(default=10.0, validator=positive)
    idle_timeout: float = attrs.field(default=300.0, validator=positive)
    static_dir: Path | None = STATIC_DIR
    trusted_proxies: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    worker: str | None = None


@attrs.frozen(kw_only=True)
class ServerStatistics:
    """A snapshot of a `WebServer`.

    Attributes:
        active_sessions: connections with a live session now.
        total_sessions: sessions accepted since the start.
        refused: websocket handshakes refused (path, origin, token, capacity).
        protocol_errors: malformed client messages answered with an error.
        dropped_audio_in: input audio frames dropped (pipeline too slow).
        dropped_audio_out: TTS chunks dropped (client too slow).
    """

    active_sessions: int
    total_sessions: int
    refused: int
    protocol_errors: int
    dropped_audio_in: int
    dropped_audio_out: int
