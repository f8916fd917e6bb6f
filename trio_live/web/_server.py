"""The websocket bridge: one live session per connection, served with trio-websocket.

It reads each connection's HTTP request head, serves the page for plain
requests, checks the websocket handshake (path, origin, token, capacity) and
hands accepted connections to a `Bridge` (see ``_bridge.py``), with the
connection limits (a `BridgeConfig`) and the server's `ServerCounters`, which
the bridges add to and `WebServer.statistics` reads.

When the client goes away the reader returns and the connection's nursery is
cancelled: the model's request and everything else of the session stop at
their next checkpoint. When the server is cancelled (SIGINT/SIGTERM in the
CLI) every connection cancels its session and then sends a close frame (1001)
inside a shielded scope with a short deadline, so nothing hangs.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import socket
from typing import Final
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
import trio_websocket

from .._groups import raise_single
from .._logging import peer_name
from ._bridge import Bridge, BridgeConfig, PipelineFactory, ServerCounters
from ._http import (
    BadRequest,
    PrefixedStream,
    RequestHead,
    close_lingering,
    file_response,
    read_head,
    response,
    upgrade_refusal,
)
from ._http import static_files as _load_static
from ._metrics import Route, ServerMetrics
from ._protocol import SUBPROTOCOL
from ._ratelimit import FailureLimiter, retry_after_header
from ._serverconfig import ServerConfig, ServerStatistics
from ._workers import client_address, forwarded_head, peer_address
from ._wsconn import ServerWSConnection

# A client going away, at any point: it ends its own connection, nothing else.
_GONE: Final = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio_websocket.ConnectionClosed,
    trio_websocket.HandshakeError,
)
WEBSOCKET_PATH: Final = "/ws"
_MAX_HEAD_BYTES: Final = 16 * 1024

logger = logging.getLogger("trio_live.web")


@attrs.define(eq=False)
class WebServer:
    """Serves the page over HTTP and live sessions over websocket, on one port.

    Args:
        pipeline: builds each connection's `Pipeline`.
        config: the `ServerConfig`.
        sock: a listening socket to serve instead of binding ``config``'s
            address (a worker's, inherited from its parent).

    Besides the page it answers ``GET /healthz`` and ``GET /metrics``
    (`metrics`, see ``_metrics.py``).
    """

    pipeline: PipelineFactory
    config: ServerConfig = attrs.field(factory=ServerConfig)
    sock: socket.socket | None = attrs.field(default=None, kw_only=True)
    metrics: ServerMetrics = attrs.field(init=False)
    _routes: dict[str, Route] = attrs.field(init=False, factory=dict)
    _observed: PipelineFactory = attrs.field(init=False)
    _files: dict[str, tuple[str, bytes]] = attrs.field(init=False, factory=dict)
    _counters: ServerCounters = attrs.field(init=False, factory=ServerCounters)
    _bridge_config: BridgeConfig = attrs.field(init=False)
    _token_failures: FailureLimiter = attrs.field(init=False)
    _retry_after: float = attrs.field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        config = self.config
        self._token_failures = FailureLimiter(failures=config.token_failures, period=60.0)
        self._bridge_config = BridgeConfig(
            limits=config.limits,
            audio_in_frames=config.audio_in_frames,
            audio_out_chunks=config.audio_out_chunks,
            control_queue=config.control_queue,
            echo_tail=config.echo_tail,
            report_timeout=config.report_timeout,
            budgets=config.budgets,
            close_grace=config.close_grace,
            idle_timeout=config.idle_timeout,
        )
        # Health and metrics: extra GET routes, and a stage watching each session.
        self.metrics = ServerMetrics(
            self._counters, worker=config.worker or "0", max_sessions=config.max_sessions
        )
        self._routes = dict(self.metrics.routes())
        self._observed = self.metrics.observe(self.pipeline)

    def statistics(self) -> ServerStatistics:
        """A snapshot of the server's counters."""
        counters = self._counters
        return ServerStatistics(
            active_sessions=counters.active,
            total_sessions=counters.total,
            refused=counters.refused,
            protocol_errors=counters.protocol_errors,
            dropped_audio_in=counters.dropped_audio_in,
            dropped_audio_out=counters.dropped_audio_out,
        )

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; ``nursery.start`` returns the bound port.

        Cancellation cancels every session, sends each client a close frame
        (1001) within ``close_grace`` seconds, and closes the listeners.
        """
        config = self.config
        if config.static_dir is not None:
            self._files = _load_static(config.static_dir)
        if self.sock is not None:
            listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(self.sock))]
        else:
            listeners = await trio.open_tcp_listeners(config.port, host=config.host)
        port: int = listeners[0].socket.getsockname()[1]
        logger.info("serving on http://%s:%d/", config.host, port)
        async with trio.open_nursery() as nursery:
            task_status.started(port)
            await trio.serve_listeners(self._connection, listeners, handler_nursery=nursery)

    async def _connection(self, stream: trio.SocketStream) -> None:
        # Everything before the session (the request head, a refusal, the
        # websocket handshake) has `handshake_timeout` seconds in all.
        deadline = trio.current_time() + self.config.handshake_timeout
        peer = peer_name(stream)
        try:
            head = None
            with trio.move_on_at(deadline):
                head = await read_head(stream, max_bytes=_MAX_HEAD_BYTES)
            if head is None:
                return
            peer = peer_address(stream)
            head = forwarded_head(head, peer, self.config.trusted_proxies)
            # The path only: the query may carry the token.
            path = urlsplit(head.target).path
            logger.debug("%s %s from %s", head.method, path, client_address(head, peer))
            if not self._host_allowed(head.headers.get("host", "")):
                self._counters.refused += 1
                logger.warning("%s: refused (403): host not allowed", peer)
                answer = response(403, b"host not allowed\n", content_type="text/plain")
                with trio.move_on_at(deadline):
                    await _send_quietly(stream, answer)
                return
            if not head.is_websocket:
                route = self._routes.get(urlsplit(head.target).path)
                answer = route(head) if route is not None else file_response(self._files, head)
                with trio.move_on_at(deadline):
                    await _send_quietly(stream, answer)
                return
            refusal = upgrade_refusal(head) or self._refusal(head, _peer(stream))
            if refusal is not None:
                # Refused before trio-websocket sees the connection: a client
                # that never reads the answer only fails this send, and a
                # malformed upgrade never waits for a handshake.
                self._counters.refused += 1
                status, text = refusal
                logger.warning("%s: websocket refused (%d): %s", peer, status, text)
                extra = [("sec-websocket-version", "13")] if status == 426 else []
                if status == 429:
                    extra = [("retry-after", retry_after_header(self._retry_after))]
                answer = response(
                    status, f"{text}\n".encode(), content_type="text/plain", headers=extra
                )
                with trio.move_on_at(deadline):
                    await _send_quietly(stream, answer)
                return
            # Counted at once (no checkpoint since the capacity check).
            self._counters.active += 1
            logger.info("%s: websocket accepted (%d active)", peer, self._counters.active)
            try:
                await self._serve_websocket(stream, head, deadline)
            finally:
                self._counters.active -= 1
                logger.info("%s: websocket ended (%d active)", peer, self._counters.active)
        except BadRequest as error:
            # Not the error's text: the parser's can quote a header (a token).
            logger.warning("%s: bad request (400)", peer)
            body = f"bad request: {error}\n".encode()
            with trio.move_on_at(deadline):
                await _send_quietly(stream, response(400, body, content_type="text/plain"))
        except _GONE:
            pass
        except Exception as error:
            # The last resort: whatever went wrong ends this connection only,
            # never the server. Its type, not its text (which may quote what
            # the client sent).
            self.metrics.error("internal")
            logger.error("%s: connection failed (%s)", peer, type(error).__name__)
        finally:
            await stream.aclose()

    async def _serve_websocket(
        self, stream: trio.SocketStream, head: RequestHead, deadline: float
    ) -> None:
        # trio-websocket's reader task must outlive a server shutdown long
        # enough to finish the closing handshake, so the transport runs in a
        # shielded scope; the session runs in `session`, which a watcher
        # cancels when the server is cancelled. Every wait inside the shield
        # is bounded: the handshake by `deadline`, the close by `close_grace`,
        # the reader by the stream being closed at the end. A client that
        # goes away at any point ends only its own connection.
        session = trio.CancelScope()
        wrapped = PrefixedStream(head.raw, stream, grace=self.config.close_grace)
        async with trio.open_nursery() as watch:
            watch.start_soon(_cancel_when_cancelled, session)
            with trio.CancelScope(shield=True):
                try:
                    async with trio.open_nursery() as transport:
                        try:
                            with session:
                                ws = None
                                with trio.move_on_at(deadline):
                                    ws = await self._handshake(transport, wrapped)
                                if ws is not None:
                                    await self._websocket(ws)
                        finally:
                            # (If the library has not closed it already.) Through
                            # the wrapper: its close frame, if any, goes first.
                            await close_lingering(wrapped, self.config.close_grace)
                except BaseExceptionGroup as group:
                    _, rest = group.split(_GONE)
                    if rest is not None:
                        raise_single(rest)
            watch.cancel_scope.cancel()

    async def _handshake(
        self, nursery: trio.Nursery, wrapped: PrefixedStream
    ) -> trio_websocket.WebSocketConnection | None:
        """The accepted websocket, or None if the client went away first."""
        # As `trio_websocket.wrap_server_stream`, with our wsproto connection.
        connection = trio_websocket.WebSocketConnection(
            wrapped,
            ServerWSConnection(wrapped),
            max_message_size=self.config.limits.max_message_bytes,
        )
        nursery.start_soon(connection._reader_task)
        try:
            request = await connection._get_request()
            chosen = SUBPROTOCOL if SUBPROTOCOL in request.proposed_subprotocols else None
            return await request.accept(subprotocol=chosen)
        except trio_websocket.ConnectionClosed:
            return None

    def _refusal(self, head: RequestHead, peer: str) -> tuple[int, str] | None:
        url = urlsplit(head.target)
        if url.path != WEBSOCKET_PATH:
            return 404, "no websocket here"
        origin = head.headers.get("origin")
        proto = head.headers.get("x-forwarded-proto")  # only a trusted proxy's is left
        if origin is not None and not self._origin_allowed(
            origin, head.headers.get("host", ""), proto
        ):
            return 403, "origin not allowed"
        token = self.config.token
        if token is not None:
            # An address that failed too often is refused before its token
            # is checked: a guess cannot be tried while it is blocked.
            now = trio.current_time()
            wait = self._token_failures.retry_after(peer, now)
            if wait is not None:
                self._retry_after = wait
                return 429, "too many failed token attempts: try again later"
            header = head.headers.get("authorization", "")
            # Either carries it: a wrong header does not hide a right query.
            given = [
                header[7:] if header[:7].lower() == "bearer " else "",
                *parse_qs(url.query).get("token", []),
            ]
            if not any(hmac.compare_digest(g.encode(), token.encode()) for g in given):
                self._token_failures.failed(peer, now)
                return 401, "a valid token is required"
        if self._counters.active >= self.config.max_sessions:
            return 503, "too many sessions"
        return None

    def _host_allowed(self, host: str) -> bool:
        allowed = self.config.allowed_hosts
        if "*" in allowed:
            return True
        name = _host_name(host)
        if not name:
            return False
        names = {"localhost", self.config.host.lower(), *(n.lower() for n in allowed)}
        if name in names or name.endswith(".localhost"):
            return True
        # An address cannot be rebound: only names can.
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def _origin_allowed(self, origin: str, host: str, proto: str | None = None) -> bool:
        allowed = self.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        # The page's own origin: a web page, with the same host and port as the request.
        url = urlsplit(origin)
        same = url.netloc.lower() == host.lower()
        scheme = url.scheme in ("http", "https") if proto is None else url.scheme == proto
        return bool(host) and scheme and same

    async def _websocket(self, ws: trio_websocket.WebSocketConnection) -> None:
        counters = self._counters
        counters.total += 1
        bridge = Bridge(
            ws=ws,
            name=_session_name(self.config.worker, counters.total),
            config=self._bridge_config,
            counters=counters,
            pipeline=self._observed,
        )
        code: int = 1001
        reason: str | None = "server shutting down"
        try:
            code, reason = await bridge.run()
        except Exception:
            # One broken session must not take the server down.
            logger.exception("session %s failed", bridge.name)
            self.metrics.error("internal")
            code, reason = 1011, "internal error"
        finally:
            logger.info("session %s: closing with %d (%s)", bridge.name, code, reason)
            with trio.move_on_after(self.config.close_grace) as scope:
                scope.shield = True
                await ws.aclose(code, reason)


def _session_name(worker: str | None, number: int) -> str:
    """A session's name: its number, after the worker's id with several workers."""
    return str(number) if worker is None else f"w{worker}-{number}"


def _host_name(host: str) -> str:
    """The name or address of a ``Host`` header, without the port or brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else ""
    name, _, port = host.partition(":")
    return name if port.isdigit() or not port else ""


async def _cancel_when_cancelled(scope: trio.CancelScope) -> None:
    try:
        await trio.sleep_forever()
    finally:
        scope.cancel()


def _peer(stream: trio.SocketStream) -> str:
    """The peer's address ("" if the socket has none any more)."""
    try:
        address = stream.socket.getpeername()
    except OSError:
        return ""
    return str(address[0]) if isinstance(address, tuple) else str(address)


async def _send_quietly(stream: trio.SocketStream, data: bytes) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(data)
