"""Load test of the websocket bridge on loopback: N concurrent clients, scripted model.

Starts a `WebServer` (typed turns, scripted model, no speech back ends) and N
trio-websocket clients in the same process. All clients connect and stay
connected (the sessions held); then each plays T typed turns, measuring the
time from sending a turn to its first ``text`` event and to its
``turn_complete``. Every wait is bounded; the run stops by itself.

    .venv/bin/python benchmarks/web_load.py --clients 200 --turns 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import trio
import trio_websocket

from trio_live import LiveSession
from trio_live.testing import ScriptedModel
from trio_live.web import Config, Pipeline, ServerConfig, WebServer

REPLY = ["Sure", ",", " here", " is", " a", " short", " answer", "."]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def client(
    port: int,
    turns: int,
    connected: list[int],
    all_connected: trio.Event,
    first: list[float],
    complete: list[float],
    total: int,
) -> None:
    async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}/ws") as ws:
        ready = json.loads(await ws.get_message())
        assert ready["type"] == "ready"
        connected[0] += 1
        if connected[0] == total:
            all_connected.set()
        await all_connected.wait()
        for turn in range(turns):
            sent = time.perf_counter()
            await ws.send_message(json.dumps({"type": "text", "text": f"question {turn}"}))
            got_first = False
            while True:
                event = json.loads(await ws.get_message())
                if event["type"] == "text" and not got_first:
                    got_first = True
                    first.append(time.perf_counter() - sent)
                elif event["type"] == "turn_complete":
                    complete.append(time.perf_counter() - sent)
                    break


async def main(clients: int, turns: int, limit: float) -> None:
    def factory(config: Config) -> Pipeline:
        return Pipeline(session=LiveSession(ScriptedModel([REPLY]), model_errors="report"))

    server = WebServer(factory, ServerConfig(port=0, max_sessions=clients))
    first: list[float] = []
    complete: list[float] = []
    connected = [0]
    all_connected = trio.Event()
    held = 0
    started = time.perf_counter()
    with trio.move_on_after(limit) as scope:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            async with trio.open_nursery() as group:
                for _ in range(clients):
                    group.start_soon(
                        client, port, turns, connected, all_connected, first, complete, clients
                    )
                await all_connected.wait()
                held = server.statistics().active_sessions
                connected_after = time.perf_counter() - started
            nursery.cancel_scope.cancel()
    elapsed = time.perf_counter() - started
    print(f"clients: {clients}, turns each: {turns}, limit: {limit:.0f} s")
    print(f"sessions held at once: {held} (all connected after {connected_after:.2f} s)")
    print(f"turns completed: {len(complete)} of {clients * turns} in {elapsed:.2f} s")
    if first:
        ms = [1000 * v for v in first]
        print(
            f"send -> first text event: p50 {percentile(ms, 0.5):.1f} ms, p99 "
            f"{percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms"
        )
    if complete:
        ms = [1000 * v for v in complete]
        print(
            f"send -> turn_complete:    p50 {percentile(ms, 0.5):.1f} ms, p99 "
            f"{percentile(ms, 0.99):.1f} ms, mean {statistics.fmean(ms):.1f} ms"
        )
    if scope.cancelled_caught:
        print("stopped by the time limit")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--limit", type=float, default=60.0, help="stop after this many seconds")
    args = parser.parse_args()
    trio.run(main, args.clients, args.turns, args.limit)
