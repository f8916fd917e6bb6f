"""The benchmark scenarios on trio_live (run by `compare.py`, one per process).

Usage: ``python benchmarks/scenarios_trio_live.py SCENARIO [--quick] [--seed N]``;
prints ``RESULT {json}`` on stdout. Times are wall clock (`time.perf_counter`)
around the real trio run loop, except the memory scenario, which runs a
one-hour conversation on trio's `MockClock` (virtual time, autojump).
"""

from __future__ import annotations

import functools
import gc
import random
import sys
import tracemalloc
from time import perf_counter
from typing import Any

import trio
import trio.testing
from _bench import (
    BARGE_PART_DELAY,
    BARGE_REPLY_PARTS,
    BARGE_WAIT,
    CHUNK_SECONDS,
    CONCURRENT_TURN_EVERY,
    HISTORY_SIZES,
    MEMORY_TURN_EVERY,
    MEMORY_WINDOW,
    QUESTION,
    REPLY,
    GcPauses,
    history_prefill,
    log,
    payloads,
    peak_rss_bytes,
    rss_bytes,
    worker_main,
)

from trio_live import (
    LiveSession,
    Part,
    PromptStream,
    audio_part,
    end_of_speech,
    end_of_turn,
    is_marker,
    is_turn_complete,
    start_of_speech,
    text_part,
)

Samples = dict[str, list[float]]


class FakeModel:
    """The benchmark's turn model (the same one as in `scenarios_genai.py`).

    Reads the whole prompt (counting its parts), then sends ``reply`` part by
    part, ``part_delay`` seconds apart; records when a cancel reaches it.

    It reads the most natural way, ``async for part in prompt``, like the
    genai-processors model. With ``batched=True`` (a favourable variant,
    shown only in rows labelled so) it takes every ready part at once with
    `PromptStream.ready`.
    """

    def __init__(
        self, *, reply: tuple[str, ...] = REPLY, part_delay: float = 0.0, batched: bool = False
    ) -> None:
        self.reply = reply
        self.part_delay = part_delay
        self.batched = batched
        self.prompt_sizes: list[int] = []
        self.cancelled_at: float | None = None
        # Throughput: note when the prompt has reached `watch` parts.
        self.watch = 0
        self.reached_at: float | None = None
        self.reached = trio.Event()

    async def __call__(self, prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        seen = 0
        watch = self.watch
        batched = self.batched
        async for _ in prompt:
            seen += 1
            if batched:
                # One wait when nothing is ready, then everything ready at once.
                seen += len(prompt.ready())
            if watch and seen >= watch and self.reached_at is None:
                self.reached_at = perf_counter()
                self.reached.set()
        self.prompt_sizes.append(seen)
        delay = self.part_delay
        try:
            for index, text in enumerate(self.reply):
                if delay and index:
                    await trio.sleep(delay)
                await output.send(text_part(text, role="model"))
        except trio.Cancelled:
            self.cancelled_at = perf_counter()
            raise


class Listener:
    """Reads a session's output and timestamps the first reply part and the turn's end."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.first_at: float | None = None
        self.done_at: float | None = None
        self.first = trio.Event()
        self.done = trio.Event()

    async def run(self, session: LiveSession) -> None:
        async for part in session:
            now = perf_counter()
            if is_turn_complete(part):
                self.done_at = now
                self.done.set()
            elif self.first_at is None and not part.substream and not is_marker(part):
                self.first_at = now
                self.first.set()


async def _turn(session: LiveSession, listener: Listener) -> float:
    """One turn; the seconds from sending the end of turn to the first reply part."""
    listener.reset()
    part = end_of_turn(QUESTION)
    started = perf_counter()
    await session.send(part)
    await listener.done.wait()
    assert listener.first_at is not None
    return listener.first_at - started


# --- 1. per-turn overhead ----------------------------------------------------


async def _overhead(turns: int) -> list[float]:
    model = FakeModel()
    listener = Listener()
    async with LiveSession(model) as session, trio.open_nursery() as nursery:
        nursery.start_soon(listener.run, session)
        samples = [await _turn(session, listener) for _ in range(turns)]
        session.close_input()
    return samples


def overhead(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    return {"overhead": trio.run(_overhead, cfg["turns"])}


# --- 2. barge-in -------------------------------------------------------------


async def _barge(trials: int, rng: random.Random) -> Samples:
    model = FakeModel(reply=("word",) * BARGE_REPLY_PARTS, part_delay=BARGE_PART_DELAY)
    listener = Listener()
    cancel, last = [], []
    async with LiveSession(model) as session, trio.open_nursery() as nursery:
        nursery.start_soon(listener.run, session)
        for _ in range(trials):
            listener.reset()
            await session.send(end_of_turn(QUESTION))
            await listener.first.wait()
            await trio.sleep(rng.uniform(*BARGE_WAIT))
            model.cancelled_at = None
            part = start_of_speech()
            started = perf_counter()
            await session.send(part)
            await listener.done.wait()
            assert model.cancelled_at is not None
            assert listener.done_at is not None
            cancel.append(model.cancelled_at - started)
            last.append(listener.done_at - started)
            await session.send(end_of_speech())
        model.reply = ()  # the answer at end of input (not timed) is empty
        session.close_input()
    return {"barge_cancel": cancel, "barge_last": last}


def barge(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    return trio.run(_barge, cfg["barge_trials"], rng)


async def _cancel_floor(trials: int, rng: random.Random) -> Samples:
    """Trio's own floor for barge-in: the same path as the barge-in scenario,
    written by hand with bare trio. A task streams a part every 10 ms inside
    its cancel scope; a part sent over a channel to a second task makes it
    cancel that scope; the streaming task catches the cancel and sends a
    closing marker, which the reader receives."""
    send_in, receive_in = trio.open_memory_channel[object](64)
    send_barge, receive_barge = trio.open_memory_channel[object](64)
    send_out, receive_out = trio.open_memory_channel[object](64)
    scopes: list[trio.CancelScope] = []
    caught: list[float] = []

    async def stream() -> None:
        while True:
            await receive_in.receive()  # a turn
            with trio.CancelScope() as scope:
                scopes[:] = [scope]
                try:
                    while True:
                        await send_out.send("word")
                        await trio.sleep(BARGE_PART_DELAY)
                except trio.Cancelled:
                    caught.append(perf_counter())
                    raise
            await send_out.send("closed")

    async def control() -> None:
        async for _ in receive_barge:
            scopes[0].cancel()

    cancel, last = [], []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream)
        nursery.start_soon(control)
        for _ in range(trials):
            await send_in.send("end of turn")
            await receive_out.receive()  # the first part
            await trio.sleep(rng.uniform(*BARGE_WAIT))
            started = perf_counter()
            await send_barge.send("start of speech")
            while await receive_out.receive() != "closed":
                pass
            cancel.append(caught[-1] - started)
            last.append(perf_counter() - started)
        nursery.cancel_scope.cancel()
    return {"floor_cancel": cancel, "floor_cancel_reply": last}


def cancel_floor(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    return trio.run(_cancel_floor, cfg["barge_trials"], rng)


# --- 3. throughput -----------------------------------------------------------


async def _throughput_once(count: int, *, ready: bool, prebuilt: list[Part] | None) -> float:
    pcm = payloads()
    model = FakeModel()
    model.watch = count

    def part_at(index: int) -> Part:
        return prebuilt[index] if prebuilt is not None else audio_part(pcm[index & 63])

    if not ready:
        # A source that yields once per part: `await session.send(part)`.
        async with LiveSession(model) as session, trio.open_nursery() as nursery:
            nursery.start_soon(_drain, session)
            started = perf_counter()
            for index in range(count):
                await session.send(part_at(index))
            await model.reached.wait()
            session.close_input()
    else:
        # A source that is always ready: the session's `run` over our own
        # channel, filled with `send_nowait` (it waits only when full).
        session = LiveSession(model)
        send_in, receive_in = trio.open_memory_channel[Part](session.input_buffer)
        send_out, receive_out = trio.open_memory_channel[Part](session.output_buffer)
        async with trio.open_nursery() as nursery:
            await nursery.start(session.run, receive_in, send_out)
            nursery.start_soon(_drain, receive_out)
            with send_in:
                started = perf_counter()
                for index in range(count):
                    part = part_at(index)
                    try:
                        send_in.send_nowait(part)
                    except trio.WouldBlock:
                        await send_in.send(part)
                await model.reached.wait()
    assert model.reached_at is not None
    return count / (model.reached_at - started)


async def _drain(output: trio.MemoryReceiveChannel[Part] | LiveSession) -> None:
    async for _ in output:
        pass


async def _channel_floor(count: int) -> float:
    send, receive = trio.open_memory_channel[object](64)
    item = object()
    done_at = 0.0

    async def consume() -> None:
        nonlocal done_at
        seen = 0
        async for _ in receive:
            seen += 1
        done_at = perf_counter()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        started = perf_counter()
        with send:
            for _ in range(count):
                await send.send(item)
    return count / (done_at - started)


def throughput(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    count = cfg["throughput_parts"]
    pcm = payloads()
    samples: Samples = {}
    samples["floor_channel"] = [trio.run(_channel_floor, count)]
    for ready in (True, False):
        source = "ready" if ready else "yield"
        rate = trio.run(functools.partial(_throughput_once, count, ready=ready, prebuilt=None))
        samples[f"tp_build_{source}"] = [rate]
        parts = [audio_part(pcm[index & 63]) for index in range(count)]
        rate = trio.run(functools.partial(_throughput_once, count, ready=ready, prebuilt=parts))
        samples[f"tp_prebuilt_{source}"] = [rate]
        del parts
        gc.collect()
    return samples


# --- 4. history growth ---------------------------------------------------------


async def _history(size: int, turns: int) -> tuple[list[float], list[int]]:
    model = FakeModel()
    listener = Listener()
    prefill = [text_part(f"note {index}") for index in range(history_prefill(size, turns))]
    async with LiveSession(model) as session, trio.open_nursery() as nursery:
        nursery.start_soon(listener.run, session)
        for part in prefill:
            await session.send(part)
        await _turn(session, listener)  # warm-up: the model reads the pre-fill
        samples = [await _turn(session, listener) for _ in range(turns)]
        session.close_input()
    return samples, model.prompt_sizes[1:]


def history(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    samples: Samples = {}
    for size in HISTORY_SIZES:
        times: list[float] = []
        sizes: list[int] = []
        for _ in range(cfg["history_sessions"]):
            t, s = trio.run(_history, size, cfg["history_turns"])
            times += t
            sizes += s
        samples[f"history_{size}"] = times
        samples[f"history_{size}_prompt_parts"] = [float(n) for n in sizes]
    return samples


# --- 5. memory -----------------------------------------------------------------


def _part_cost(count: int = 20_000) -> tuple[float, float]:
    """Bytes per 640-byte audio part (payload included) and microseconds to build one."""
    pcm = payloads()
    gc.collect()
    started = perf_counter()
    parts = [audio_part(pcm[index & 63]) for index in range(count)]
    build = (perf_counter() - started) / count
    del parts
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    parts = [audio_part(pcm[index & 63]) for index in range(count)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # The payload is the microphone's (shared here); count it once per part.
    per_part = (after - before - sys.getsizeof(parts)) / count + sys.getsizeof(pcm[0])
    return per_part, build * 1e6


async def _conversation(seconds: float) -> Samples:
    pcm = payloads()
    model = FakeModel()
    chunks = round(seconds / CHUNK_SECONDS)
    per_turn = round(MEMORY_TURN_EVERY / CHUNK_SECONDS)
    per_checkpoint = round(600.0 / CHUNK_SECONDS)
    rss: list[float] = []
    retained: list[float] = []

    async def drain(session: LiveSession) -> None:
        async for _ in session:
            pass

    async with LiveSession(model, window=MEMORY_WINDOW) as session, trio.open_nursery() as nursery:
        nursery.start_soon(drain, session)
        start = trio.current_time()
        for index in range(chunks):
            await trio.sleep_until(start + index * CHUNK_SECONDS)
            await session.send(audio_part(pcm[index & 63]))
            if index % per_turn == per_turn - 1:
                await session.send(end_of_turn(QUESTION))
            if index % per_checkpoint == per_checkpoint - 1:
                rss.append(float(rss_bytes()))
                retained.append(float(session.statistics().history_parts))
                log(
                    f"virtual {(index + 1) * CHUNK_SECONDS / 60:.0f} min: "
                    f"RSS {rss[-1] / 2**20:.1f} MB, {retained[-1]:.0f} parts kept"
                )
        session.close_input()
    return {"memory_rss_checkpoints": rss, "memory_retained_checkpoints": retained}


def memory(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    per_part, build_us = _part_cost()
    started = perf_counter()
    clock = trio.testing.MockClock(autojump_threshold=0)
    samples = trio.run(_conversation, cfg["memory_seconds"], clock=clock)
    samples["memory_wall_seconds"] = [perf_counter() - started]
    samples["memory_peak_rss"] = [float(peak_rss_bytes())]
    samples["memory_retained"] = samples["memory_retained_checkpoints"][-1:]
    samples["part_bytes"] = [per_part]
    samples["part_build_us"] = [build_us]
    return samples


# --- 6. concurrent sessions --------------------------------------------------------


async def _concurrent(sessions: int, seconds: float, rng: random.Random) -> list[float]:
    samples: list[float] = []
    start = trio.current_time() + 0.5
    warm_until = start + CONCURRENT_TURN_EVERY
    end = start + seconds
    offsets = [rng.uniform(0, CONCURRENT_TURN_EVERY) for _ in range(sessions)]

    async def one(offset: float) -> None:
        listener = Listener()
        async with LiveSession(FakeModel()) as session, trio.open_nursery() as nursery:
            nursery.start_soon(listener.run, session)
            at = start + offset
            while at < end:
                await trio.sleep_until(at)
                latency = await _turn(session, listener)
                if at >= warm_until:
                    samples.append(latency)
                at += CONCURRENT_TURN_EVERY
            session.close_input()

    async with trio.open_nursery() as nursery:
        for offset in offsets:
            nursery.start_soon(one, offset)
    return samples


def concurrent(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    sessions = int(params["sessions"])
    name = f"concurrent_{sessions}"
    if params.get("gc") == "off":
        gc.disable()
        name += "_nogc"
    elif params.get("gc") == "freeze":
        # What an application can do: keep start-up objects out of every collection.
        gc.collect()
        gc.freeze()
        name += "_freeze"
    elif params.get("gc") == "tuned":
        # The library's helper: freeze after start-up and rarer young collections
        # (imported here, so that older trio_live trees still run the rest).
        from trio_live import tune_gc

        tune_gc()
        name += "_tuned"
    seconds = cfg["concurrent_seconds"] + CONCURRENT_TURN_EVERY
    started = perf_counter()
    with GcPauses() as gc_pauses:
        latencies = trio.run(_concurrent, sessions, seconds, rng)
    per_second = sum(gc_pauses.pauses) / (perf_counter() - started)
    return {name: latencies, f"{name}_gc": gc_pauses.pauses, f"{name}_gc_per_s": [per_second]}


SCENARIOS = {
    "overhead": overhead,
    "barge": barge,
    "cancel_floor": cancel_floor,
    "throughput": throughput,
    "history": history,
    "memory": memory,
    "concurrent": concurrent,
}

if __name__ == "__main__":
    worker_main("trio_live", SCENARIOS, sys.argv[1:])
