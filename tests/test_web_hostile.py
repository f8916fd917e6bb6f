"""The server under hostile clients, over real sockets on 127.0.0.1.

Each test abuses the handshake or the protocol a bounded number of times,
then checks that the server still serves and holds no more tasks than before.
The counts are small by default; set ``TRIO_LIVE_HOSTILE_SCALE`` to multiply
them for a heavy run by hand, e.g. 50 malformed upgrades x 200 = 10,000::

    TRIO_LIVE_HOSTILE_SCALE=50 python -m pytest -q tests/test_web_hostile.py

The generated tests (hypothesis) run ``30 x TRIO_LIVE_HOSTILE_SCALE`` examples.
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

import pytest
import trio
import trio_websocket
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trio_live import LiveSession
from trio_live.testing import ScriptedModel
from trio_live.web import Config, Pipeline, ServerConfig, WebServer
from trio_live.web._protocol import WireError, decode_client_message

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
        async with running(token="t", token_failures=10**6) as (server, port):
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


# --- protocol errors after a real handshake ---------------------------------------


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """One websocket frame as a client sends it (masked unless told)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class Frames:
    """The server's frames, read from a raw socket."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.data = b""

    async def _need(self, size: int) -> bool:
        while len(self.data) < size:
            chunk = await self.sock.recv(65536)
            if not chunk:
                return False
            self.data += chunk
        return True

    async def next(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame, or None when the server closed TCP."""
        if not await self._need(2):
            return None
        size = self.data[1] & 0x7F
        start = 2
        if size == 126:
            await self._need(4)
            size, start = struct.unpack("!H", self.data[2:4])[0], 4
        elif size == 127:
            await self._need(10)
            size, start = struct.unpack("!Q", self.data[2:10])[0], 10
        if not await self._need(start + size):
            return None
        opcode, payload = self.data[0] & 0x0F, self.data[start : start + size]
        self.data = self.data[start + size :]
        return opcode, payload

    async def close_code(self) -> int | None:
        """The code of the server's close frame (skipping other frames), or None."""
        while (got := await self.next()) is not None:
            opcode, payload = got
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005
        return None


async def opened(port: int, query: str = "") -> tuple[trio.socket.SocketType, Frames]:
    """A raw socket after a real handshake, and the server's first event read."""
    sock = await raw(port)
    await sock.send(upgrade(port, f"/ws{query}"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    frames = Frames(sock)
    got = await frames.next()
    assert got is not None
    assert got[0] == 0x1
    assert json.loads(got[1])["type"] == "ready"
    return sock, frames


PROTOCOL_ERRORS = [
    ("invalid UTF-8 in a text frame", frame(0x1, b"\xff\xfe{}"), 1007),
    ("invalid UTF-8 across fragments", frame(0x1, b"\xe2", fin=False) + frame(0x0, b"\x28"), 1007),
    ("an unmasked client frame", frame(0x1, b"{}", mask=False), 1002),
    ("a reserved bit set", frame(0x1, b"{}", rsv=4), 1002),
    ("a reserved opcode", frame(0x3, b"x"), 1002),
    ("a fragmented ping", frame(0x9, b"x", fin=False), 1002),
    ("a ping over 125 bytes", frame(0x9, b"x" * 126), 1002),
    ("a continuation with nothing to continue", frame(0x0, b"x"), 1002),
    ("a new message inside a fragmented one", frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002),
    ("a close code never sent (1005)", frame(0x8, close_payload(1005)), 1002),
    ("a close code out of range (999)", frame(0x8, close_payload(999)), 1002),
    ("a close code out of range (5000)", frame(0x8, close_payload(5000)), 1002),
    ("a close frame of one byte", frame(0x8, b"\x03"), 1002),
    ("a close reason not UTF-8", frame(0x8, close_payload(1000, b"\xff")), 1007),
]


async def test_protocol_errors_are_answered_with_a_close_frame() -> None:
    with trio.fail_after(TIMEOUT):
        async with running(token="t") as (server, port):
            await still_serves(port)
            baseline = await idle_tasks(server)
            for _ in range(SCALE):
                for what, data, code in PROTOCOL_ERRORS:
                    sock, frames = await opened(port, "?token=t")
                    with sock:
                        await sock.send(data)
                        assert await frames.close_code() == code, what
            await still_serves(port)
            await back_to(server, baseline)


async def test_pings_around_the_closing_handshake_do_not_crash_the_server() -> None:
    # After a close frame (either side's), wsproto refuses to send a pong: the
    # server must not answer a ping then, nor let the error escape.
    with trio.fail_after(TIMEOUT):
        async with running(idle_timeout=0.3) as (server, port):
            await still_serves(port)
            baseline = await idle_tasks(server)
            for _ in range(3 * SCALE):
                # The client's close and a ping in one packet.
                sock, frames = await opened(port)
                with sock:
                    await sock.send(frame(0x8, close_payload(1000)) + frame(0x9, b"late"))
                    assert await frames.close_code() == 1000
                # The server closes (idle), the client pings before its close.
                sock, frames = await opened(port)
                with sock:
                    assert await frames.close_code() == 4000
                    await sock.send(frame(0x9, b"late") + frame(0x8, close_payload(1000)))
                    assert await frames.next() is None
                # A message over the size limit, then a ping, in one packet.
                sock, frames = await opened(port)
                with sock:
                    await sock.send(frame(0x2, bytes(300_000)) + frame(0x9, b"late"))
                    assert await frames.close_code() == 1009
            await still_serves(port)
            await back_to(server, baseline)


# --- generated messages and frames against a real server ---------------------------
#
# Each example runs its own server (in its own trio.run) and checks that it
# answers every malformed message (an ``error`` event) or closes with a
# documented code, holds no more tasks than before, and still serves a whole
# typed turn on a new connection. ``max_examples`` grows with the scale.

EXAMPLES = 30 * SCALE
DOCUMENTED_CLOSES = {1000, 1002, 1007, 1008, 1009, 1011, 1013, 4000}
ERROR_CODES = {"bad_json", "bad_message", "unknown_type", "unsupported_version"}
ERROR_CODES |= {"bad_audio", "too_large", "over_budget", "bad_option"}
FIELDS = ["text", "end_of_turn", "turn", "chars", "finished", "version", "tts", "sample_rate"]
FIELDS += ["echo_guard", "min_interruption_duration", "min_interruption_words"]
FIELDS += ["false_interruption_timeout"]
TYPES = ["config", "text", "end_of_turn", "interrupt", "playback", "options", "nonsense", ""]


def _nested(leaves: st.SearchStrategy[Any], key: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    # Two levels of lists and objects, written out: hypothesis's recursive()
    # sometimes warns that such an extend "can't recurse", which -W error fails.
    level = leaves | st.lists(leaves, max_size=3) | st.dictionaries(key, leaves, max_size=3)
    return leaves | st.lists(level, max_size=3) | st.dictionaries(key, level, max_size=3)


json_values = _nested(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    st.text(max_size=6),
)
typed = st.builds(
    lambda kind, fields: json.dumps({"type": kind, **fields}),
    st.sampled_from(TYPES) | json_values,
    st.dictionaries(
        st.sampled_from(FIELDS),
        json_values | st.sampled_from([1, 16000, "", "hi", True, False, -1]),
        max_size=4,
    ),
)
messages = st.lists(
    typed
    | st.text(max_size=40)
    | st.binary(max_size=2000)
    | st.sampled_from(["[" * 5000, '{"type": "text", "text": "\\ud800"}', "null", "[]"]),
    max_size=10,
)


def expected_errors(sent: list[str | bytes]) -> int:
    """How many ``error`` events the server owes for ``sent`` (the codec as the oracle)."""
    errors, started = 0, False
    for message in sent:
        try:
            decoded = decode_client_message(message)
        except WireError:
            errors += 1
            continue
        if isinstance(decoded, Config) and started:
            errors += 1
        started = True
    return errors


async def typed_turn_works(port: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(nursery, stream, f"127.0.0.1:{port}", "/ws")
        assert json.loads(await ws.get_message())["type"] == "ready"
        await ws.send_message(json.dumps({"type": "text", "text": "still there?"}))
        while json.loads(await ws.get_message())["type"] != "turn_complete":
            pass
        await ws.aclose()


def against_a_server(scenario: Callable[[int], Any]) -> None:
    """Run ``scenario(port)`` against a fresh server, then check what it left."""

    async def main() -> None:
        with trio.fail_after(20):
            async with running() as (server, port):
                await still_serves(port)
                baseline = await idle_tasks(server)
                await scenario(port)
                await back_to(server, baseline)
                await typed_turn_works(port)
                await back_to(server, baseline)

    trio.run(main)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(sent=messages)
def test_generated_messages_get_errors_or_a_documented_close(sent: list[str | bytes]) -> None:
    owed = expected_errors(sent)

    async def scenario(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream, trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, f"127.0.0.1:{port}", "/ws"
            )
            assert json.loads(await ws.get_message())["type"] == "ready"
            errors = 0
            closed_with: trio_websocket.CloseReason | None = None
            try:
                for message in sent:
                    await ws.send_message(message)
                with trio.fail_after(5):
                    while errors < owed:
                        received = await ws.get_message()
                        if isinstance(received, str):
                            event = json.loads(received)
                            if event["type"] == "error":
                                assert event["code"] in ERROR_CODES, event
                                errors += 1
            except trio_websocket.ConnectionClosed as closed:
                closed_with = closed.reason or trio_websocket.CloseReason(1005, None)
            if closed_with is None:
                assert errors == owed
                await ws.aclose()
            else:
                assert closed_with.code in DOCUMENTED_CLOSES, closed_with
            await trio.aclose_forcefully(stream)

    against_a_server(scenario)


valid_closes = st.sampled_from([1000, 1001, 3000, 4999])
operations = st.lists(
    st.tuples(
        st.just("message"),
        st.sampled_from([0x1, 0x2]),
        typed | st.text(max_size=60),
        st.integers(1, 4),
        st.booleans(),
    )
    | st.tuples(st.just("ping"), st.binary(max_size=125))
    | st.tuples(st.just("pong"), st.binary(max_size=125)),
    max_size=8,
)
endings = st.sampled_from(PROTOCOL_ERRORS) | valid_closes | st.none()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=operations, ending=endings)
# Found by this test: two errors and a pong on their way, then invalid UTF-8.
# The lingering close's end-of-file collided with the close frame on the
# socket (BusyResourceError): the client got no close frame.
@example(
    ops=[
        ("message", 1, '{"type": "config", "text": null, "version": null}', 1, False),
        ("message", 1, "", 1, False),
        ("ping", b""),
    ],
    ending=next(error for error in PROTOCOL_ERRORS if error[2] == 1007),
)
def test_generated_frame_sequences_end_with_a_close_frame(
    ops: list[tuple[Any, ...]], ending: tuple[str, bytes, int] | int | None
) -> None:
    data = b""
    for op in ops:
        if op[0] == "message":
            _, opcode, text, pieces, ping_inside = op
            payload = text.encode()
            cuts = sorted({len(payload) * i // pieces for i in range(1, pieces)})
            parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                data += frame(opcode if i == 0 else 0x0, part, fin=last)
                if ping_inside and not last:
                    data += frame(0x9, b"between")  # control frames may come between fragments
        else:
            data += frame(0x9 if op[0] == "ping" else 0xA, op[1])
    if isinstance(ending, tuple):
        data += ending[1]
        expected = ending[2]
    else:
        expected = 1000 if ending is None else ending
        data += frame(0x8, close_payload(expected))

    async def scenario(port: int) -> None:
        sock, frames = await opened(port)
        with sock:
            await sock.send(data)
            with trio.fail_after(5):
                code = await frames.close_code()
                assert code == expected or code in {1008, 1013}, (code, expected)
                while await frames.next() is not None:  # then the server closes TCP
                    pass

    against_a_server(scenario)


async def test_an_unexpected_error_ends_its_connection_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Whatever goes wrong while one connection is served (here the upgrade
    # check itself fails), the server logs it and goes on serving others.
    import trio_live.web._server as server_module

    real = server_module.upgrade_refusal
    calls = 0

    def flaky(head: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("secret-looking text the client sent")
        return real(head)

    monkeypatch.setattr(server_module, "upgrade_refusal", flaky)
    with trio.fail_after(TIMEOUT):
        async with running(token="t") as (_, port):
            sock = await raw(port)
            await sock.send(upgrade(port, "/ws?token=t"))
            assert await answer(sock) == b""
            await still_serves(port)
    assert "connection failed (RuntimeError)" in caplog.text
    assert "secret-looking" not in caplog.text


async def test_a_message_too_big_gets_its_1009_although_the_client_still_sends() -> None:
    # The client is still sending the rest of an oversized message when the
    # server closes with 1009. A server that then closes its socket with that
    # data unread makes the kernel answer with a reset, and the close frame
    # can be lost (the page showed 1006): the server lingers instead.
    with trio.fail_after(TIMEOUT):
        async with running() as (_, port):
            for _ in range(3):
                sock, frames = await opened(port)
                big = frame(0x1, b"x" * (1 << 20))
                await sock.send(big[: 300 * 1024])
                await trio.sleep(0.05)  # the server has read past the limit and closed
                # A browser that gets a reset while it writes reports 1006 at once.
                rest = memoryview(big)[300 * 1024 :]
                while rest:
                    rest = rest[await sock.send(rest) :]
                got = await frames.next()
                while got is not None and got[0] != 0x8:
                    got = await frames.next()
                assert got is not None, "no close frame: the connection was reset"
                assert struct.unpack("!H", got[1][:2])[0] == 1009
                sock.close()
