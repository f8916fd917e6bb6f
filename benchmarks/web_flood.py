"""The server's memory under a flood of valid audio: RSS growth over a run.

Starts a `WebServer` (scripted model, no speech back ends) in this process,
and the clients in a child process (this script with ``--clients-only``), so
that only the server's memory is measured. Each client connects and sends
valid 1 s audio frames (32,000 bytes of PCM16) as fast as the socket takes
them; the input budget (1.5 x real time over 10 s) closes it with 1008, and
it connects again at once. The server's RSS (VmRSS) is sampled every second;
the growth is the last sample minus the first one after ``--warmup`` seconds.
Loopback only; the run stops by itself after ``--seconds``.

    .venv/bin/python benchmarks/web_flood.py --seconds 60 --clients 8

The goal: less than 50 MB of growth over 60 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import trio
import trio_websocket

from trio_live import LiveSession
from trio_live.testing import ScriptedModel
from trio_live.web import Config, Pipeline, ServerConfig, WebServer

FRAME = bytes(32000)  # 1 s of silence at 16 kHz, PCM16


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def flood(port: int, until: float, stats: dict[str, int]) -> None:
    while trio.current_time() < until:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream, trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery, stream, f"127.0.0.1:{port}", "/ws"
                )
                stats["connections"] += 1
                nursery.start_soon(drain, ws)
                try:
                    while trio.current_time() < until:
                        await ws.send_message(FRAME)
                        stats["frames"] += 1
                    await ws.aclose()
                except trio_websocket.ConnectionClosed as closed:
                    code = closed.reason.code if closed.reason else 0
                    stats[f"closed_{code}"] = stats.get(f"closed_{code}", 0) + 1
                nursery.cancel_scope.cancel()
        except (OSError, trio.BrokenResourceError, trio_websocket.HandshakeError):
            stats["errors"] += 1
            await trio.sleep(0.1)


async def drain(ws: trio_websocket.WebSocketConnection) -> None:
    with contextlib.suppress(trio_websocket.ConnectionClosed):
        while True:
            await ws.get_message()


async def clients_only(port: int, clients: int, seconds: float) -> None:
    stats = {"connections": 0, "frames": 0, "errors": 0}
    until = trio.current_time() + seconds
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(flood, port, until, stats)
    print(json.dumps(stats))


def factory(config: Config) -> Pipeline:
    return Pipeline(session=LiveSession(ScriptedModel()))


async def server_side(args: argparse.Namespace) -> None:
    server = WebServer(factory, ServerConfig(port=0, max_sessions=args.clients * 2))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        command = [sys.executable, __file__, "--clients-only", str(port)]
        command += ["--clients", str(args.clients), "--seconds", str(args.seconds)]
        child = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
        start = time.monotonic()
        samples: list[tuple[float, float]] = []
        with trio.move_on_after(args.seconds + 30):
            while child.poll() is None:
                samples.append((time.monotonic() - start, rss_mb()))
                await trio.sleep(1)
        if child.poll() is None:
            child.kill()
        await child.wait()
        assert child.stdout is not None
        out = await child.stdout.receive_some(65536)
        nursery.cancel_scope.cancel()
    after_warmup = [mb for t, mb in samples if t >= args.warmup]
    first, last, peak = after_warmup[0], after_warmup[-1], max(after_warmup)
    print(f"clients: {out.decode().strip()}")
    print(f"server: {server.statistics()}")
    print(
        f"RSS after {args.warmup:g} s warm-up: {first:.1f} MB; end: {last:.1f} MB; "
        f"peak: {peak:.1f} MB; growth: {last - first:+.1f} MB (peak {peak - first:+.1f} MB) "
        f"over {samples[-1][0] - args.warmup:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--clients-only", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_only is not None:
        trio.run(clients_only, args.clients_only, args.clients, args.seconds)
    else:
        trio.run(server_side, args)


if __name__ == "__main__":
    main()
