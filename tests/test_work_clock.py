"""`trio_live.testing.WorkClock`: virtual time that stands still while real work runs."""

from __future__ import annotations

import socket
import threading

import trio
import trio.testing

from trio_live.testing import WorkClock


def test_work_in_a_thread_takes_no_virtual_time_and_sleeps_take_no_real_time() -> None:
    release = threading.Event()
    seen: list[tuple[str, float]] = []

    async def main() -> None:
        async def ticker() -> None:
            # Would run on while the thread works, on an autojump MockClock.
            for _ in range(3):
                await trio.sleep(0.01)
                seen.append(("tick", trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            # The thread waits until the main thread says so: real work of
            # unknown length, here made to outlast any jump the clock could make.
            timer = threading.Timer(0.2, release.set)
            timer.start()
            await trio.to_thread.run_sync(release.wait)
            seen.append(("work done", trio.current_time()))
        await trio.sleep(3600.0)
        seen.append(("an hour later", trio.current_time()))

    trio.run(main, clock=WorkClock())
    assert seen == [
        ("work done", 0.0),
        ("tick", 0.01),
        ("tick", 0.02),
        ("tick", 0.03),
        ("an hour later", 3600.03),
    ]


def test_other_limiters_and_working_blocks_hold_the_clock() -> None:
    limiter = trio.CapacityLimiter(1)
    clock = WorkClock([limiter])
    times: list[float] = []

    async def main() -> None:
        async def ticker() -> None:
            await trio.sleep(0.5)
            times.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.to_thread.run_sync(threading.Event().wait, 0.05, limiter=limiter)
            times.append(trio.current_time())
            # Real work the clock cannot see (a subprocess, say): I/O that
            # comes after 50 ms of real time.
            ours, theirs = socket.socketpair()
            with trio.socket.from_stdlib_socket(ours) as mine, theirs, clock.working():
                threading.Timer(0.05, theirs.send, (b"done",)).start()
                assert await mine.recv(4) == b"done"
                times.append(trio.current_time())
        times.append(trio.current_time())

    trio.run(main, clock=clock)
    assert times == [0.0, 0.0, 0.5, 0.5]


def test_settled_wakes_once_the_others_wait_before_time_moves() -> None:
    clock = WorkClock()
    order: list[str] = []

    async def main() -> None:
        async def busy() -> None:
            for n in range(3):
                await trio.lowlevel.checkpoint()
                order.append(f"busy {n}")
            await trio.sleep(1.0)
            order.append("slept")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy)
            await clock.settled()
            order.append(f"settled at {trio.current_time()}")

    trio.run(main, clock=clock)
    assert order == ["busy 0", "busy 1", "busy 2", "settled at 0.0", "slept"]
