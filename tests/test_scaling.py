"""Serving past one process: health and metrics, forwarded headers, workers, nginx.

Everything over real loopback sockets: ``/healthz`` and ``/metrics`` with a
plain HTTP client, the forwarded headers with and without a trusted proxy,
``trio-live serve --workers 2`` in a subprocess (both workers serve, a killed
worker comes back, SIGTERM closes every client with 1001 and every process
exits), and nginx with ``examples/nginx.conf`` in front of two workers.

The subprocess servers use a model server of ``model_server.py`` in the
test's process (an OpenAI-compatible one), and ``--stt none``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from _nginx import http_get, needs_nginx, running_nginx, serve_workers
from prometheus_client.parser import text_string_to_metric_families

from trio_live import LiveSession
from trio_live.testing import ScriptedModel
from trio_live.web import Config, Pipeline, ServerConfig, WebServer
from trio_live.web._http import RequestHead
from trio_live.web._workers import client_address, forwarded_head, is_trusted

ROOT = Path(__file__).parent.parent
Event = dict[str, Any]


# -- helpers ----------------------------------------------------------------------


def sessions(model: Any) -> Callable[[Config], Pipeline]:
    def factory(config: Config) -> Pipeline:
        return Pipeline(session=LiveSession(model, model_errors="report", emit_stats=True))

    return factory


@asynccontextmanager
async def running(model: Any, **config: Any) -> AsyncIterator[tuple[WebServer, int]]:
    server = WebServer(sessions(model), ServerConfig(port=0, **config))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        yield server, port
        nursery.cancel_scope.cancel()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of a Prometheus text page: (name, labels) → value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return page[name, frozenset(labels.items())]


@asynccontextmanager
async def connect(
    port: int, *, host: str | None = None, origin: str | None = None
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A websocket client whose socket is always closed at the end."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    headers = [(b"origin", origin.encode())] if origin else None
    async with stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery, stream, host or f"127.0.0.1:{port}", "/ws", extra_headers=headers
        )
        try:
            yield ws
        finally:
            with trio.move_on_after(2) as scope:
                scope.shield = True
                await ws.aclose()
            await stream.aclose()


async def receive(ws: trio_websocket.WebSocketConnection) -> Event:
    """The next event (TTS audio, binary, is skipped)."""
    message = await ws.get_message()
    while isinstance(message, bytes):
        message = await ws.get_message()
    event: Event = json.loads(message)
    return event


async def typed_turn(ws: trio_websocket.WebSocketConnection, text: str) -> str:
    """Send a typed turn; the reply's text, once the turn is complete.

    As a client should, it reports the playback finished at the answer's end
    (with speech the server ends the turn only after that report).
    """
    await ws.send_message(json.dumps({"type": "text", "text": text}))
    reply = ""
    while True:
        event = await receive(ws)
        if event["type"] == "text":
            reply += event["text"]
        elif event["type"] == "answer_complete":
            playback = {"type": "playback", "turn": event["turn"], "chars": 0, "finished": True}
            await ws.send_message(json.dumps(playback))
        elif event["type"] == "turn_complete":
            return reply


# -- /healthz and /metrics ---------------------------------------------------------


async def test_healthz_reports_the_worker_and_metrics_count_a_turn() -> None:
    model = ScriptedModel(["Short answer."])
    with trio.fail_after(20):
        async with running(model) as (_, port):
            status, headers, body = await http_get(port, "/healthz")
            assert status == 200
            assert headers["content-type"] == "application/json"
            health = json.loads(body)
            assert health["status"] == "ok"
            assert (health["live"], health["ready"]) == (True, True)
            assert (health["worker"], health["pid"]) == ("0", os.getpid())
            assert (health["sessions"], health["max_sessions"]) == (0, 16)

            async with connect(port) as ws:
                ready = await receive(ws)
                assert ready["session"] == "1"  # a single process: no worker prefix
                assert await typed_turn(ws, "hello") == "Short answer."
                await ws.send_message("{")  # a protocol error
                assert (await receive(ws))["type"] in ("metrics", "state", "error")
                health = json.loads((await http_get(port, "/healthz"))[2])
                assert health["sessions"] == 1
                with trio.fail_after(5):
                    while True:
                        status, headers, body = await http_get(port, "/metrics")
                        page = samples(body.decode())
                        if value(page, "trio_live_errors_total", worker="0", kind="protocol"):
                            break
            assert status == 200
            assert headers["content-type"].startswith("text/plain; version=0.0.4")
            assert value(page, "trio_live_sessions_open", worker="0") == 1
            assert value(page, "trio_live_sessions_total", worker="0") == 1
            assert value(page, "trio_live_turns_total", worker="0") == 1
            assert value(page, "trio_live_interruptions_total", worker="0") == 0
            assert value(page, "trio_live_first_text_seconds_count", worker="0") == 1
            assert value(page, "trio_live_first_text_seconds_sum", worker="0") >= 0
            assert value(page, "trio_live_barge_in_seconds_count", worker="0") == 0
            assert value(page, "trio_live_errors_total", worker="0", kind="model") == 0
            assert value(page, "trio_live_errors_total", worker="0", kind="refused") == 0
            assert value(page, "trio_live_dropped_audio_total", worker="0", direction="in") == 0


async def test_metrics_count_interruptions_model_errors_and_refusals() -> None:
    model = ScriptedModel(
        [["one", *[" two"] * 200], "fine"], part_delay=0.01, errors={2: RuntimeError("boom")}
    )
    with trio.fail_after(20):
        async with running(model, allowed_origins=frozenset()) as (_, port):
            async with connect(port) as ws:
                await receive(ws)
                await ws.send_message(json.dumps({"type": "text", "text": "talk"}))
                while (await receive(ws))["type"] != "text":
                    pass
                await ws.send_message(json.dumps({"type": "interrupt"}))
                while (event := await receive(ws))["type"] != "metrics":
                    pass
                assert event["cancelled"] is True
                assert await typed_turn(ws, "again") == "fine"
                await typed_turn(ws, "fail now")  # the model raises: reported
            assert (await upgrade(port, {"origin": "https://evil.example"}))[0] == 403
            with trio.fail_after(5):
                while True:
                    page = samples((await http_get(port, "/metrics"))[2].decode())
                    if value(page, "trio_live_sessions_open", worker="0") == 0:
                        break
    assert value(page, "trio_live_interruptions_total", worker="0") == 1
    assert value(page, "trio_live_errors_total", worker="0", kind="model") == 1
    assert value(page, "trio_live_errors_total", worker="0", kind="refused") == 1
    assert value(page, "trio_live_barge_in_seconds_count", worker="0") == 1


async def test_healthz_is_503_when_full_but_live() -> None:
    with trio.fail_after(20):
        async with running(ScriptedModel(), max_sessions=1) as (_, port):
            async with connect(port) as ws:
                await receive(ws)
                status, _, body = await http_get(port, "/healthz")
                assert status == 503
                assert json.loads(body)["status"] == "full"
                assert json.loads(body)["ready"] is False
                status, _, body = await http_get(port, "/healthz?probe=live")
                assert status == 200
                assert json.loads(body)["live"] is True
            status, _, _ = await http_get(port, "/metrics", host="evil.example")
            assert status == 403  # the Host allowlist covers these routes too


# -- forwarded headers ------------------------------------------------------------


def _head(**headers: str) -> RequestHead:
    return RequestHead(method="GET", target="/ws", headers=headers, raw=b"")


def test_forwarded_headers_are_believed_only_from_a_trusted_proxy() -> None:
    head = _head(
        host="10.0.0.2:8765",
        **{
            "x-forwarded-host": "chat.example",
            "x-forwarded-proto": "HTTPS",
            "x-forwarded-for": "203.0.113.9, 198.51.100.7",
        },
    )
    trusted = frozenset({"10.0.0.0/24"})
    seen = forwarded_head(head, "10.0.0.1", trusted)
    assert seen.headers["host"] == "chat.example"
    assert seen.headers["x-forwarded-proto"] == "https"
    assert client_address(seen, "10.0.0.1") == "198.51.100.7"  # the proxy's entry
    stranger = forwarded_head(head, "192.0.2.1", trusted)
    assert stranger.headers == {"host": "10.0.0.2:8765"}
    assert client_address(stranger, "192.0.2.1") == "192.0.2.1"
    assert forwarded_head(_head(host="h"), "10.0.0.1", trusted) == _head(host="h")
    assert is_trusted("::1", ["::1"])
    assert not is_trusted("not an address", ["10.0.0.0/8"])
    assert not is_trusted("10.0.0.1", ["garbage"])


async def test_behind_a_trusted_proxy_host_and_origin_checks_use_the_forwarded_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = {"x-forwarded-host": "chat.example", "x-forwarded-for": "203.0.113.9"}
    caplog.set_level(logging.DEBUG, logger="trio_live.web")
    with trio.fail_after(20):
        async with running(ScriptedModel(), trusted_proxies=frozenset({"127.0.0.1"})) as (_, p):
            # The forwarded host is not allowed: refused, as a direct request would be.
            assert (await http_get(p, "/", headers=proxy))[0] == 403
        async with running(
            ScriptedModel(),
            trusted_proxies=frozenset({"127.0.0.0/8"}),
            allowed_hosts=frozenset({"chat.example"}),
        ) as (_, port):
            assert (await http_get(port, "/", headers=proxy))[0] == 200
            assert "GET / from 203.0.113.9" in caplog.text
            https = {**proxy, "x-forwarded-proto": "https", "origin": "https://chat.example"}
            assert (await upgrade(port, https))[0] == 101
            # The page's own origin is the forwarded scheme and host, nothing else.
            assert (await upgrade(port, {**https, "origin": "http://chat.example"}))[0] == 403
            assert (await upgrade(port, {**https, "origin": f"http://127.0.0.1:{port}"}))[0] == 403
        async with running(ScriptedModel(), allowed_hosts=frozenset({"chat.example"})) as (_, p):
            # No trusted proxy: the forwarded host is ignored, the real one is checked.
            assert (await upgrade(p, {**https}))[0] == 403
            assert (await upgrade(p, {**https, "origin": f"http://127.0.0.1:{p}"}))[0] == 101
            assert "from 127.0.0.1" in caplog.text


async def upgrade(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    """A websocket upgrade request's status (the connection is closed right after)."""
    fields = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    lines = ["GET /ws HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in fields.items()]
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while b"\r\n\r\n" not in data and (chunk := await stream.receive_some(4096)):
                data += chunk
    return int(data.split()[1]), data


# -- workers ------------------------------------------------------------------------


async def worker_pids(port: int, *, not_: set[int] = frozenset()) -> dict[str, int]:  # type: ignore[assignment]
    """Worker id → pid, from ``/healthz`` (asked until both workers answered)."""
    pids: dict[str, int] = {}
    with trio.fail_after(60):
        while len(pids) < 2:
            try:
                health = json.loads((await http_get(port, "/healthz"))[2])
            except (OSError, ValueError, IndexError):
                await trio.sleep(0.1)
                continue
            if health["pid"] not in not_:
                pids[health["worker"]] = health["pid"]
    return pids


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").exists() and " Z " in Path(f"/proc/{pid}/stat").read_text()


async def test_workers_share_the_port_restart_and_stop_with_1001() -> None:
    # Room for all 40 clients in one worker: the kernel may hand one worker
    # most connections before the other accepts (16 overflowed once: 503).
    workers = serve_workers("--max-sessions", "64")
    async with workers as (parent, port, errors), trio.open_nursery() as nursery:
        pids = await worker_pids(port)
        assert set(pids) == {"1", "2"}
        # Clients, until both workers hold some (each worker accepts in turn).
        clients: dict[str, list[trio_websocket.WebSocketConnection]] = {"w1": [], "w2": []}
        closed: list[int | None] = []

        async def client(task_status: trio.TaskStatus[str]) -> None:
            async with connect(port) as ws:
                session = (await receive(ws))["session"]
                worker = session.split("-")[0]
                assert await typed_turn(ws, "hi") == "Served answer."
                clients[worker].append(ws)
                task_status.started(worker)
                try:
                    while True:
                        await ws.get_message()
                except trio_websocket.ConnectionClosed as closing:
                    closed.append(closing.reason.code if closing.reason else None)

        with trio.fail_after(60):
            for _ in range(40):
                await nursery.start(client)
                if all(len(held) >= 2 for held in clients.values()):
                    break
            assert all(clients.values()), {k: len(v) for k, v in clients.items()}

            # A worker killed: its clients lose their connection, it comes back.
            dying = len(clients["w1"])
            os.kill(pids["1"], signal.SIGKILL)
            restarted = await worker_pids(port, not_={pids["1"]})
            assert restarted["2"] == pids["2"]
            assert restarted["1"] != pids["1"]
            while len(closed) < dying:  # noqa: ASYNC110 (the clients' tasks append)
                await trio.sleep(0.05)
            assert any("worker 1" in line and "restarting" in line for line in errors), errors
            async with connect(port) as ws:
                assert (await receive(ws))["type"] == "ready"

            # SIGTERM to the parent: every remaining client gets 1001, all exit.
            remaining = len(clients["w2"])
            parent.send_signal(signal.SIGTERM)
            assert await parent.wait() == 0
            while len(closed) < dying + remaining:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert closed[dying:] == [1001] * remaining
        assert all(gone(pid) for pid in restarted.values())


# -- nginx in front -----------------------------------------------------------------


@needs_nginx
async def test_nginx_in_front_of_two_workers(tmp_path: Path) -> None:
    async with (
        serve_workers("--trusted-proxy", "127.0.0.1", "--allow-host", "chat.test") as (_, up, _),
        running_nginx(up, tmp_path) as listen,
    ):
        with trio.fail_after(30):
            status, _, body = await http_get(listen, "/")
            assert status == 200
            assert b"<html" in body.lower()
            assert json.loads((await http_get(listen, "/healthz"))[2])["worker"] in "12"
            # The page's origin through the proxy: accepted, a typed turn answered.
            origin = f"http://chat.test:{listen}"
            async with connect(listen, host=f"chat.test:{listen}", origin=origin) as ws:
                assert (await receive(ws))["type"] == "ready"
                assert await typed_turn(ws, "through nginx") == "Served answer."
            # Another site's page: refused by the worker, behind the proxy too.
            assert (await upgrade(listen, {"origin": "http://evil.test"}))[0] == 403
            assert (await http_get(listen, "/", host="evil.test"))[0] == 403
    log = (tmp_path / "access.log").read_text()
    assert 'GET /ws HTTP/1.1" 101' in log
