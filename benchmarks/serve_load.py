"""Load test of worker processes on loopback: N clients, scripted model, 1 or more workers.

The server is `trio_live.web._workers.Supervisor` running W worker processes
(each a `WebServer` on the shared socket, typed turns, scripted model, no
speech back ends), exactly as ``trio-live serve --workers W`` does; the
clients are trio-websocket clients in this process. All clients connect and
stay connected (the sessions held; the workers' RSS is read before and after
to give the memory per session); then each plays T typed turns, measuring
the time from sending a turn to its first ``text`` event. Every wait is
bounded; the run stops by itself and stops the workers.

    .venv/bin/python benchmarks/serve_load.py --clients 300 --workers 2 --turns 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import trio
import trio_websocket

from trio_live import LiveSession
from trio_live.testing import ScriptedModel
from trio_live.web import (
    Config,
    Pipeline,
    ServerConfig,
    Supervisor,
    WebServer,
    current_worker,
    listen_socket,
)

REPLY = ["Sure", ",", " here", " is", " a", " short", " answer", "."]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- the worker: what `trio-live serve` runs, with the scripted model ------------


async def worker(max_sessions: int) -> None:
    me = current_worker()
    assert me is not None

    def factory(config: Config) -> Pipeline:
        model = ScriptedModel([REPLY])
        return Pipeline(session=LiveSession(model, model_errors="report", emit_stats=True))

    config = ServerConfig(port=0, max_sessions=max_sessions, worker=me.id, idle_timeout=600)
    server = WebServer(factory, config, sock=me.sock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(me.exit_with_parent, nursery.cancel_scope)
        await server.serve()


# -- the clients -------------------------------------------------------------------


class Run:
    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.connected = 0
        self.all_connected = trio.Event()
        self.first: list[float] = []
        self.turns = 0
        self.errors: dict[str, int] = {}
        self.workers: set[str] = set()

    def error(self, error: BaseException) -> None:
        name = type(error).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def arrived(self) -> None:
        self.connected += 1
        if self.connected == self.clients:
            self.all_connected.set()


async def client(port: int, turns: int, run: Run) -> None:
    counted = False
    try:
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send_message(json.dumps({"type": "config", "tts": False}))
            ready = json.loads(await ws.get_message())
            assert ready["type"] == "ready", ready
            run.workers.add(ready["session"].split("-")[0])
            counted = True
            run.arrived()
            await run.all_connected.wait()
            for turn in range(turns):
                sent = time.perf_counter()
                await ws.send_message(json.dumps({"type": "text", "text": f"question {turn}"}))
                got_first = False
                while True:
                    event = json.loads(await ws.get_message())
                    if event["type"] == "text" and not got_first:
                        got_first = True
                        run.first.append(time.perf_counter() - sent)
                    elif event["type"] == "turn_complete":
                        run.turns += 1
                        break
    except (OSError, trio_websocket.HandshakeError, trio_websocket.ConnectionClosed) as error:
        run.error(error)
        if not counted:
            run.arrived()  # a failed client does not hold the others back


async def main(clients: int, workers: int, turns: int, limit: float) -> None:
    sock = listen_socket("127.0.0.1", 0)
    per_worker = clients  # the limit is not what is measured
    command = [sys.executable, __file__, "--worker", "--max-sessions", str(per_worker)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    supervisor = Supervisor(command=command, sock=sock, workers=workers, env=env)
    run = Run(clients)
    held_after = rss_after = rss_before = 0.0
    started = time.perf_counter()
    with trio.move_on_after(limit) as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            # The workers are up once each answered /healthz... approximately:
            # wait until a connection is served, then a little for the others.
            await _wait_served(supervisor.port)
            await trio.sleep(1.0)
            pids = [process.pid for process in supervisor.processes.values()]
            rss_before = sum(rss_kib(pid) for pid in pids)
            began = time.perf_counter()
            async with trio.open_nursery() as group:
                for _ in range(clients):
                    group.start_soon(client, supervisor.port, turns, run)
                await run.all_connected.wait()
                held_after = time.perf_counter() - began
                rss_after = sum(rss_kib(pid) for pid in pids)
            nursery.cancel_scope.cancel()
    sock.close()
    elapsed = time.perf_counter() - started
    held = run.connected - sum(run.errors.values())
    print(f"clients: {clients}, workers: {workers}, turns each: {turns}, limit: {limit:.0f} s")
    print(
        f"sessions held at once: {held} (after {held_after:.2f} s),"
        f" workers seen: {len(run.workers)}"
    )
    print(f"turns completed: {run.turns} of {clients * turns} in {elapsed:.2f} s")
    print(f"errors: {sum(run.errors.values())} {run.errors or ''}")
    if held:
        per = (rss_after - rss_before) / held
        print(
            f"workers' RSS: {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB,"
            f" {per:.0f} KiB/session"
        )
    if run.first:
        ms = [1000 * v for v in run.first]
        p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
        print(f"send -> first text: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(ms):.1f} ms")
    if scope.cancelled_caught:
        print("stopped by the time limit")


async def _wait_served(port: int) -> None:
    with trio.fail_after(60):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.1)
                continue
            async with stream:
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if await stream.receive_some(100):
                    return


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--limit", type=float, default=120.0, help="stop after this many seconds")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-sessions", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        trio.run(worker, args.max_sessions)
    else:
        trio.run(main, args.clients, args.workers, args.turns, args.limit)
