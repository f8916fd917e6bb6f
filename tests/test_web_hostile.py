"""The server under hostile clients, over real sockets on 127.0.0.1.

Each test abuses the handshake or the protocol a bounded number of times,
then checks that the server still serves and holds no more tasks than before.
The counts are small by default; set ``TRIO_LIVE_HOSTILE_SCALE`` to multiply
them for a heavy run by hand, e.g. 50 malformed upgrades x 200 = 10,000::

    TRIO_LIVE_HOSTILE_SCALE=50 python -m pytest -q tests/test_web_hostile.py
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_websocket

from trio_live import LiveSession
from trio_live.testing import ScriptedModel
from trio_live.web import Config, Pipeline, ServerConfig, WebServer

SCALE = int(os.environ.get("TRIO_LIVE_HOSTILE_SCALE", "1"))
TIMEOUT = 20 * SCALE


def count_tasks() -> int:
    """Every task of the run, by a walk of the task tree."""
    count = 0
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


async def idle_tasks(server: WebServer) -> int:
    """The task count once the server holds no session (5 s at most)."""
    with trio.fail_after(5):
        while server.statistics().active_sessions:  # noqa: ASYNC110
            await trio.sleep(0.01)
    await trio.sleep(0.05)  # the connections' last tasks end
    return count_tasks()


async def back_to(server: WebServer, baseline: int) -> None:
    """Wait (5 s at most) until the server is idle with ``baseline`` tasks again."""
    with trio.fail_after(5):
        while server.statistics().active_sessions or count_tasks() > baseline:  # noqa: ASYNC110
            await trio.sleep(0.01)


def factory(config: Config) -> Pipeline:
    return Pipeline(session=LiveSession(ScriptedModel()))


@asynccontextmanager
async def running(
    pipeline: Callable[[Config], Pipeline] = factory, **config: Any
) -> AsyncIterator[tuple[WebServer, int]]:
    server = WebServer(pipeline, ServerConfig(port=0, **config))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        yield server, port
        nursery.cancel_scope.cancel()


def upgrade(port: int, path: str = "/ws", *, drop: str = "", extra: str = "") -> bytes:
    """A websocket upgrade request (``drop``: a header name to leave out)."""
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
    }
    headers.pop(drop, None)
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


async def raw(port: int) -> trio.socket.SocketType:
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    return sock


def reset(sock: trio.socket.SocketType) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def still_serves(port: int) -> None:
    """A whole normal connection: the server is alive."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery, stream, f"127.0.0.1:{port}", "/ws?token=t"
        )
        message = await ws.get_message()
        assert isinstance(message, str)
        assert json.loads(message)["type"] == "ready"
        await ws.aclose()


# --- handshake abuse ------------------------------------------------------------


async def test_refused_handshake_not_read_does_not_crash_the_server() -> None:
    with trio.fail_after(TIMEOUT):
        async with running(token="t") as (server, port):
            await still_serves(port)
            baseline = await idle_tasks(server)
            for path in ["/ws", "/ws?token=wrong", "/other"] * (10 * SCALE):
                sock = await raw(port)
                await sock.send(upgrade(port, path))
                reset(sock)  # never reads the refusal
            await still_serves(port)
            await back_to(server, baseline)
            assert server.statistics().refused >= 30 * SCALE


async def test_reset_during_or_after_the_handshake_does_not_crash_the_server() -> None:
    with trio.fail_after(TIMEOUT):
        async with running(token="t") as (server, port):
            await still_serves(port)
            baseline = await idle_tasks(server)
            for i in range(30 * SCALE):
                sock = await raw(port)
                await sock.send(upgrade(port, "/ws?token=t"))
                if i % 2:
                    assert (await sock.recv(4096)).startswith(b"HTTP/1.1 101")
                reset(sock)
            await still_serves(port)
            await back_to(server, baseline)


async def answer(sock: trio.socket.SocketType) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := await sock.recv(4096):
        data += chunk
    sock.close()
    return data


async def test_malformed_upgrades_are_answered_and_leave_nothing_behind() -> None:
    malformed = [
        ({"drop": "Sec-WebSocket-Key"}, b"400"),
        ({"drop": "Sec-WebSocket-Version"}, b"400"),
        ({"drop": "Connection"}, b"400"),
        ({"drop": "Sec-WebSocket-Version", "extra": "Sec-WebSocket-Version: 8\r\n"}, b"426"),
    ]
    with trio.fail_after(TIMEOUT):
        async with running() as (server, port):
            baseline = await idle_tasks(server)
            for i in range(200 * SCALE):  # no token needed for any of this
                options, status = malformed[i % len(malformed)]
                sock = await raw(port)
                await sock.send(upgrade(port, **options))
                assert (await answer(sock)).startswith(b"HTTP/1.1 " + status)
            await back_to(server, baseline)
            await still_serves(port)
            assert server.statistics().refused == 200 * SCALE
