"""The server, over real sockets on 127.0.0.1 with a real trio-websocket client.

Here the socket is the point: the handshake and its checks (origin, token,
path, capacity), the message size limit, the page's files, shutdown, and
whole conversations end to end. What one connection does with its messages
is tested on in-memory streams in ``test_bridge.py``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from model_server import Reply, open_model_server

from trio_live import LiveSession, is_text
from trio_live.models import OpenAIChatModel
from trio_live.testing import ScriptedModel
from trio_live.voice import VadStage, read_wav
from trio_live.voice._stt import SpeechToText
from trio_live.voice._stt_backends import Recognizer, load_recognizer
from trio_live.web import Config, Limits, Pipeline, ServerConfig, WebServer
from trio_live.web._ratelimit import FailureLimiter, retry_after_header

Event = dict[str, Any]
DATA = Path(__file__).parent / "data"
FRAME = 640  # 20 ms of 16 kHz PCM16


@asynccontextmanager
async def running(
    factory: Callable[[Config], Pipeline], **config: Any
) -> AsyncIterator[tuple[WebServer, int]]:
    server = WebServer(factory, ServerConfig(port=0, **config))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        yield server, port
        nursery.cancel_scope.cancel()


def sessions(model: Any, *, after: list[Any] | None = None) -> Callable[[Config], Pipeline]:
    def factory(config: Config) -> Pipeline:
        session = LiveSession(model, model_errors="report", emit_stats=True, emit_activity=True)
        return Pipeline(session=session, after=after or [])

    return factory


@asynccontextmanager
async def connect(
    port: int,
    query: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A trio-websocket client whose socket is always closed at the end.

    (When the server starts the closing handshake, trio-websocket's client
    waits for the TCP close but never closes its own socket: we do.)
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery, stream, f"{host}:{port}", f"/ws{query}", extra_headers=headers
        )
        try:
            yield ws
        except BaseException:
            await trio.aclose_forcefully(stream)  # no close frame: the server sees 1006
            raise
        else:
            with trio.move_on_after(2) as scope:
                scope.shield = True
                await ws.aclose()
        finally:
            await stream.aclose()


async def receive(ws: trio_websocket.WebSocketConnection) -> Event:
    message = await ws.get_message()
    assert isinstance(message, str), message
    event: Event = json.loads(message)
    return event


async def read_to_the_end(ws: trio_websocket.WebSocketConnection) -> None:
    while True:
        await ws.get_message()


async def until_idle(server: WebServer) -> None:
    """Wait (5 s at most) until the server holds no session.

    The server ends a session a moment after the client saw its socket close,
    and has no hook for it: the condition is polled.
    """
    with trio.fail_after(5):
        while server.statistics().active_sessions:  # noqa: ASYNC110
            await trio.sleep(0.005)


async def until(ws: trio_websocket.WebSocketConnection, kind: str, seen: list[Event]) -> Event:
    """Read events (keeping them in ``seen``) until one of type ``kind``."""
    while True:
        event = await receive(ws)
        seen.append(event)
        if event["type"] == "audio":
            seen.append({"binary": await ws.get_message()})
        if event["type"] == kind:
            return event


async def test_typed_turn() -> None:
    model = ScriptedModel()
    with trio.fail_after(10):
        async with (
            running(sessions(model)) as (server, port),
            connect(port) as ws,
        ):
            ready = await receive(ws)
            assert ready["type"] == "ready"
            assert ready["version"] == 2
            await ws.send_message(json.dumps({"type": "text", "text": "hello there"}))
            seen: list[Event] = []
            done = await until(ws, "turn_complete", seen)
            assert done == {"type": "turn_complete", "turn": 1}
            texts = "".join(e["text"] for e in seen if e["type"] == "text")
            assert texts == "You said: hello there"
            metrics = await until(ws, "metrics", seen)
            # The session shows "listening" once the turn is over: after turn_complete.
            states = [e["state"] for e in seen if e["type"] == "state"]
            assert states == ["thinking", "speaking", "listening"]
            assert metrics["turn"] == 1
            assert metrics["cancelled"] is False
            assert metrics["time_to_first_output"] >= 0
            assert model.prompts[0][-1].text == "hello there"
            assert server.statistics().active_sessions == 1
            # The bridge counts into the server's statistics.
            await ws.send_message("{")
            assert (await until(ws, "error", seen))["code"] == "bad_json"
            assert server.statistics().protocol_errors == 1


async def test_shutdown_closes_with_1001_and_cancels() -> None:
    model = ScriptedModel([["one", *[" two"] * 500]], part_delay=0.01)
    server = WebServer(sessions(model), ServerConfig(port=0))
    serving = trio.CancelScope()

    async def serve(task_status: trio.TaskStatus[int]) -> None:
        with serving:
            await server.serve(task_status=task_status)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve)
            async with connect(port) as ws:
                await receive(ws)
                await ws.send_message(json.dumps({"type": "text", "text": "talk"}))
                await until(ws, "text", [])
                serving.cancel()
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    await read_to_the_end(ws)
                assert info.value.reason is not None
                assert info.value.reason.code == 1001
    assert not model.calls[0].finished
    assert server.statistics().active_sessions == 0
    with trio.socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        await sock.connect(("127.0.0.1", port))


async def test_message_size_limit_closes_with_1009() -> None:
    limits = Limits(max_message_bytes=4096)
    with trio.fail_after(10):
        async with (
            running(sessions(ScriptedModel()), limits=limits) as (server, port),
            connect(port) as ws,
        ):
            assert (await receive(ws))["limits"]["max_message_bytes"] == 4096
            await ws.send_message(json.dumps({"type": "text", "text": "x" * 5000}))
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
            assert info.value.reason is not None
            assert info.value.reason.code == 1009
            await until_idle(server)


async def rejected(
    port: int,
    path: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    host: str = "127.0.0.1",
) -> int:
    statuses: list[int] = []
    try:
        async with connect(port, path, headers, host):
            pass
    except* trio_websocket.ConnectionRejected as group:
        statuses.extend(
            e.status_code
            for e in group.exceptions
            if isinstance(e, trio_websocket.ConnectionRejected)
        )
    (status,) = statuses
    return status


async def accepted(
    port: int,
    path: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    host: str = "127.0.0.1",
) -> None:
    async with connect(port, path, headers, host) as ws:
        assert (await receive(ws))["type"] == "ready"


async def test_origin_check() -> None:
    factory = sessions(ScriptedModel())
    with trio.fail_after(10):
        async with running(factory, allowed_origins={"https://app.example"}) as (server, port):
            assert await rejected(port, headers=[(b"Origin", b"http://evil.example")]) == 403
            assert await rejected(port, headers=[(b"Origin", b"null")]) == 403
            await accepted(port, headers=[(b"Origin", f"http://127.0.0.1:{port}".encode())])
            await accepted(port, headers=[(b"Origin", b"https://app.example")])
            await accepted(port)  # no Origin: not a browser
            assert server.statistics().refused == 2
        async with running(factory, allowed_origins={"*"}) as (_, port):
            await accepted(port, headers=[(b"Origin", b"http://evil.example")])


async def get(port: int, request: bytes) -> bytes:
    """A plain HTTP request's whole answer."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
    return data


async def test_dns_rebinding_is_refused() -> None:
    factory = sessions(ScriptedModel())
    with trio.fail_after(10):
        async with running(factory) as (server, port):
            # A page of evil.example whose name now points at 127.0.0.1.
            evil = [(b"Origin", f"http://evil.example:{port}".encode())]
            assert await rejected(port, headers=evil, host="evil.example") == 403
            page = await get(port, f"GET / HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n".encode())
            assert page.startswith(b"HTTP/1.1 403")
            for name in ("localhost", "127.0.0.1", "[::1]"):
                own = [(b"Origin", f"http://{name}:{port}".encode())]
                await accepted(port, headers=own, host=name)
                page = await get(port, f"GET / HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n".encode())
                assert page.startswith(b"HTTP/1.1 200")
            # The origin's scheme counts: only web pages have the page's own origin.
            odd = [(b"Origin", f"ftp://127.0.0.1:{port}".encode())]
            assert await rejected(port, headers=odd) == 403
            assert server.statistics().refused == 3
        async with running(factory, allowed_hosts={"voice.example"}) as (_, port):
            own = [(b"Origin", f"https://voice.example:{port}".encode())]
            await accepted(port, headers=own, host="voice.example")
            assert await rejected(port, host="evil.example") == 403


async def test_token() -> None:
    config = ServerConfig(token="s3cret")
    assert "s3cret" not in repr(config)
    with trio.fail_after(10):
        async with running(sessions(ScriptedModel()), token="s3cret") as (_, port):
            assert await rejected(port) == 401
            assert await rejected(port, "?token=wrong") == 401
            assert await rejected(port, headers=[(b"Authorization", b"Bearer nope")]) == 401
            await accepted(port, "?token=s3cret")
            await accepted(port, headers=[(b"Authorization", b"Bearer s3cret")])
            # Either carries it: a wrong header does not hide the right query.
            await accepted(port, "?token=s3cret", headers=[(b"Authorization", b"Bearer nope")])
            await accepted(port, "?token=s3cret", headers=[(b"Authorization", b"Basic eA==")])


async def test_bare_lf_request_head_is_answered_at_once() -> None:
    with trio.fail_after(10):
        async with running(sessions(ScriptedModel()), handshake_timeout=5) as (_, port):
            start = trio.current_time()
            page = await get(port, b"GET /nothing HTTP/1.1\nHost: 127.0.0.1\n\n")
            assert page.startswith(b"HTTP/1.1 404")
            assert trio.current_time() - start < 2


async def test_max_sessions_and_path() -> None:
    with trio.fail_after(10):
        async with running(sessions(ScriptedModel()), max_sessions=1) as (server, port):
            assert await rejected(port, "/../other") == 404
            async with connect(port) as ws:
                await receive(ws)
                assert await rejected(port) == 503
            await until_idle(server)
            await accepted(port)
            assert server.statistics().total_sessions == 2


async def test_page_is_served_over_http(tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "app.js").write_text("console.log(1)")
    with trio.fail_after(10):
        async with running(sessions(ScriptedModel()), static_dir=tmp_path) as (_, port):

            async def get(request: bytes) -> bytes:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with stream:
                    await stream.send_all(request)
                    data = b""
                    while chunk := await stream.receive_some():
                        data += chunk
                return data

            page = await get(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert page.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"content-type: text/html; charset=utf-8" in page
            assert page.endswith(b"<!doctype html><title>t</title>")
            script = await get(b"GET /app.js?v=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"javascript" in script
            assert script.endswith(b"console.log(1)")
            head = await get(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert head.endswith(b"\r\n\r\n")
            assert (
                await get(b"GET /../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            ).startswith(b"HTTP/1.1 404")
            assert (await get(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")).startswith(
                b"HTTP/1.1 405"
            )
            assert (await get(b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400")


@functools.cache
def recognizer() -> Recognizer:
    return load_recognizer("auto")


async def stream_wav(ws: trio_websocket.WebSocketConnection, name: str) -> None:
    """Send a WAV file as 20 ms binary frames (as fast as the socket takes them)."""
    pcm, rate = read_wav(DATA / name)
    assert rate == 16000
    for start in range(0, len(pcm), FRAME):
        await ws.send_message(pcm[start : start + FRAME])


async def test_spoken_turn_and_spoken_barge_in() -> None:
    stt = await trio.to_thread.run_sync(recognizer)
    model = ScriptedModel(
        [["It is", *[" sunny"] * 300], "Waiting."], first_part_delay=0.05, part_delay=0.02
    )

    def factory(config: Config) -> Pipeline:
        session = LiveSession(model, model_errors="report")
        return Pipeline(session=session, before=[VadStage(), SpeechToText(stt)])

    with trio.fail_after(30):
        async with running(factory) as (_, port), connect(port) as ws:
            await receive(ws)
            await stream_wav(ws, "hello.wav")
            seen: list[Event] = []
            final: Event = {}
            while not final.get("final"):
                final = await until(ws, "transcript", seen)
            assert "weather" in final["text"].lower()
            assert await until(ws, "text", seen) == {"type": "text", "turn": 1, "text": "It is"}
            # The user talks over the answer: their speech interrupts it.
            await stream_wav(ws, "interrupt.wav")
            assert await until(ws, "interrupted", seen) == {"type": "interrupted", "turn": 1}
            final = {}
            while not final.get("final"):
                final = await until(ws, "transcript", seen)
            assert "stop" in final["text"].lower()
            assert await until(ws, "text", seen) == {"type": "text", "turn": 2, "text": "Waiting."}
    assert not model.calls[0].finished
    assert "weather" in " ".join(p.text for p in model.prompts[0] if is_text(p)).lower()


async def test_disconnect_cancels_the_model_request_on_the_server() -> None:
    reply = Reply(text=["Hel", *["lo"] * 200], chunk_delay=0.02)
    with trio.fail_after(10):
        async with open_model_server([reply]) as model_server:
            model = OpenAIChatModel(model="m", base_url=model_server.openai_url, api_key="k")
            async with model, running(sessions(model)) as (server, port):
                with trio.CancelScope() as client:
                    async with connect(port) as ws:
                        await receive(ws)
                        await ws.send_message(json.dumps({"type": "text", "text": "hi"}))
                        await until(ws, "text", [])
                        client.cancel()  # the browser tab goes away
                        await trio.sleep_forever()
                await until_idle(server)
                (request,) = await model_server.wait_for_requests(1)
                await request.ended.wait()
                assert request.disconnected_at is not None
                assert request.completed_at is None
                assert len(request.sent) < 201


async def test_failure_limiter_on_the_mock_clock(autojump_clock: trio.abc.Clock) -> None:
    limiter = FailureLimiter(failures=3, period=60.0, max_peers=2)
    for _ in range(3):
        assert limiter.retry_after("a", trio.current_time()) is None
        limiter.failed("a", trio.current_time())
    # Empty: one token comes back every 20 s.
    assert limiter.retry_after("a", trio.current_time()) == pytest.approx(20.0)
    assert limiter.retry_after("b", trio.current_time()) is None  # per address
    await trio.sleep(15)
    assert limiter.retry_after("a", trio.current_time()) == pytest.approx(5.0)
    await trio.sleep(5)
    assert limiter.retry_after("a", trio.current_time()) is None
    limiter.failed("a", trio.current_time())
    assert limiter.retry_after("a", trio.current_time()) == pytest.approx(20.0)
    # Refilled over a long pause, never beyond the bucket's size.
    await trio.sleep(3600)
    for _ in range(3):
        limiter.failed("a", trio.current_time())
    assert limiter.retry_after("a", trio.current_time()) is not None
    # At most max_peers buckets: the one failed longest ago goes first.
    limiter.failed("b", trio.current_time())
    limiter.failed("c", trio.current_time())
    assert len(limiter) == 2
    assert limiter.retry_after("a", trio.current_time()) is None  # forgotten
    assert retry_after_header(19.2) == "20"
    assert retry_after_header(0.01) == "1"


async def test_token_failures_are_rate_limited_per_address() -> None:
    factory = sessions(ScriptedModel())
    with trio.fail_after(10):
        async with running(factory, token="s3cret", token_failures=3) as (server, port):
            for _ in range(3):
                assert await rejected(port, "?token=guess") == 401
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(
                    b"GET /ws?token=s3cret HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n"
                )
                data = b""
                while chunk := await stream.receive_some():
                    data += chunk
            # Blocked: even the right token is refused, with when to come back.
            assert data.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
            assert b"\r\nretry-after: 20\r\n" in data
            assert await rejected(port, "?token=guess") == 429
            # Another address is not blocked (127.0.0.2 is loopback too).
            sock = trio.socket.socket()
            await sock.bind(("127.0.0.2", 0))
            await sock.connect(("127.0.0.1", port))
            other = trio.SocketStream(sock)
            async with other, trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery, other, f"127.0.0.1:{port}", "/ws?token=s3cret"
                )
                assert (await receive(ws))["type"] == "ready"
                await ws.aclose()
            assert server.statistics().refused == 5
