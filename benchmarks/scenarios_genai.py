"""The benchmark scenarios on genai-processors 2.0.3 (the asyncio original).

Runs in its own venv (``benchmarks/.venv-gp``, made by `compare.py`); never
imported by trio_live. Usage as for `scenarios_trio_live.py`. The workload
(model, replies, delays, schedules) comes from `_bench.py`, like trio_live's.

Time: genai-processors stamps parts and cuts its window with
`time.perf_counter` (in ``genai_processors.core.window``). The memory
scenario's virtual hour replaces that module's ``time`` with a virtual clock
that the audio source advances by 20 ms per chunk; the asyncio loop itself
runs in real time (nothing in it sleeps).
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import tracemalloc
import types
from collections.abc import AsyncIterable, AsyncIterator
from time import perf_counter
from typing import Any

from _bench import (
    AUDIO_MIMETYPE,
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
from genai_processors import content_api, processor
from genai_processors.core import realtime, speech_events, window

ProcessorPart = content_api.ProcessorPart
Samples = dict[str, list[float]]


class FakeModel:
    """The benchmark's turn model (the same one as in `scenarios_trio_live.py`)."""

    def __init__(self, *, reply: tuple[str, ...] = REPLY, part_delay: float = 0.0) -> None:
        self.reply = reply
        self.part_delay = part_delay
        self.prompt_sizes: list[int] = []
        self.cancelled_at: float | None = None
        self.watch = 0
        self.reached_at: float | None = None
        self.reached = asyncio.Event()
        self.processor = processor.processor_function(self._generate)

    async def _generate(
        self, content: AsyncIterable[ProcessorPart]
    ) -> AsyncIterator[ProcessorPart]:
        seen = 0
        watch = self.watch
        async for _ in content:
            seen += 1
            if watch and seen >= watch and self.reached_at is None:
                self.reached_at = perf_counter()
                self.reached.set()
        self.prompt_sizes.append(seen)
        delay = self.part_delay
        try:
            for index, text in enumerate(self.reply):
                if delay and index:
                    await asyncio.sleep(delay)
                yield ProcessorPart(text, role="model")
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled_at = perf_counter()
            raise


def _is_turn_complete(part: ProcessorPart) -> bool:
    return part.role == "model" and bool(part.get_metadata("turn_complete"))


class Listener:
    """Reads the live processor's output; timestamps the first reply part and the turn's end."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.first_at: float | None = None
        self.done_at: float | None = None
        self.first = asyncio.Event()
        self.done = asyncio.Event()

    async def run(self, stream: AsyncIterable[ProcessorPart]) -> None:
        async for part in stream:
            now = perf_counter()
            if part.role != "model":
                continue
            if part.get_metadata("turn_complete"):
                self.done_at = now
                self.done.set()
            elif self.first_at is None:
                self.first_at = now
                self.first.set()


async def _queue_source(queue: asyncio.Queue[ProcessorPart | None]) -> AsyncIterator[ProcessorPart]:
    while (part := await queue.get()) is not None:
        yield part


class Session:
    """A LiveProcessor fed from a queue, its output read by a `Listener`."""

    def __init__(self, model: FakeModel, **options: Any) -> None:
        self.model = model
        self.queue: asyncio.Queue[ProcessorPart | None] = asyncio.Queue()
        self.listener = Listener()
        live = realtime.LiveProcessor(turn_processor=model.processor, **options)
        self.task = asyncio.create_task(self.listener.run(live(_queue_source(self.queue))))

    def send(self, part: ProcessorPart) -> None:
        self.queue.put_nowait(part)

    async def turn(self) -> float:
        """One turn; the seconds from sending the end of turn to the first reply part."""
        listener = self.listener
        listener.reset()
        part = _end_of_turn()
        started = perf_counter()
        self.send(part)
        await listener.done.wait()
        assert listener.first_at is not None
        return listener.first_at - started

    async def close(self) -> None:
        """End the input and wait for the end (its extra model call is not timed)."""
        self.queue.put_nowait(None)
        await self.task


def _end_of_turn() -> ProcessorPart:
    return ProcessorPart(QUESTION, role="user", metadata={"turn_complete": True})


def _text(text: str) -> ProcessorPart:
    return ProcessorPart(text, role="user")


def _audio(pcm: bytes) -> ProcessorPart:
    return ProcessorPart(pcm, mimetype=AUDIO_MIMETYPE, role="user")


# --- 1. per-turn overhead ----------------------------------------------------


async def _overhead(turns: int) -> list[float]:
    session = Session(FakeModel())
    samples = [await session.turn() for _ in range(turns)]
    await session.close()
    return samples


def overhead(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    return {"overhead": asyncio.run(_overhead(cfg["turns"]))}


# --- 2. barge-in -------------------------------------------------------------


async def _barge(trials: int, rng: random.Random) -> Samples:
    model = FakeModel(reply=("word",) * BARGE_REPLY_PARTS, part_delay=BARGE_PART_DELAY)
    session = Session(model)
    listener = session.listener
    cancel, last = [], []
    for _ in range(trials):
        listener.reset()
        session.send(_end_of_turn())
        await listener.first.wait()
        await asyncio.sleep(rng.uniform(*BARGE_WAIT))
        model.cancelled_at = None
        part = ProcessorPart.from_dataclass(dataclass=speech_events.StartOfSpeech())
        started = perf_counter()
        session.send(part)
        await listener.done.wait()
        assert listener.done_at is not None
        # NaN if the cancel never reached the model.
        cancel.append(
            model.cancelled_at - started if model.cancelled_at is not None else float("nan")
        )
        last.append(listener.done_at - started)
        session.send(ProcessorPart.from_dataclass(dataclass=speech_events.EndOfSpeech()))
    model.reply = ()  # the extra call at end of input (not timed) answers nothing
    await session.close()
    return {"barge_cancel": cancel, "barge_last": last}


def barge(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    return asyncio.run(_barge(cfg["barge_trials"], rng))


# --- 3. throughput -----------------------------------------------------------


async def _throughput_once(
    count: int, *, ready: bool, prebuilt: list[ProcessorPart] | None
) -> float:
    pcm = payloads()
    model = FakeModel()
    model.watch = count
    started = 0.0

    async def source() -> AsyncIterator[ProcessorPart]:
        nonlocal started
        started = perf_counter()
        for index in range(count):
            if not ready:
                await asyncio.sleep(0)  # yield to the loop once per part
            yield prebuilt[index] if prebuilt is not None else _audio(pcm[index & 63])

    async def drain() -> None:
        async for _ in realtime.LiveProcessor(turn_processor=model.processor)(source()):
            pass

    task = asyncio.create_task(drain())
    await model.reached.wait()
    await task  # includes the extra model call at end of input (not timed)
    assert model.reached_at is not None
    return count / (model.reached_at - started)


def throughput(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    count = cfg["throughput_parts"]
    pcm = payloads()
    samples: Samples = {}
    for ready in (True, False):
        source = "ready" if ready else "yield"
        rate = asyncio.run(_throughput_once(count, ready=ready, prebuilt=None))
        samples[f"tp_build_{source}"] = [rate]
        parts = [_audio(pcm[index & 63]) for index in range(count)]
        rate = asyncio.run(_throughput_once(count, ready=ready, prebuilt=parts))
        samples[f"tp_prebuilt_{source}"] = [rate]
        del parts
        gc.collect()
    return samples


# --- 4. history growth ---------------------------------------------------------


async def _history(size: int, turns: int) -> tuple[list[float], list[int]]:
    model = FakeModel()
    session = Session(model)
    for index in range(history_prefill(size, turns)):
        session.send(_text(f"note {index}"))
    await session.turn()  # warm-up: the model reads the pre-fill
    samples = [await session.turn() for _ in range(turns)]
    await session.close()
    return samples, model.prompt_sizes[1 : 1 + turns]


def history(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    samples: Samples = {}
    for size in HISTORY_SIZES:
        times: list[float] = []
        sizes: list[int] = []
        for _ in range(cfg["history_sessions"]):
            t, s = asyncio.run(_history(size, cfg["history_turns"]))
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
    parts = [_audio(pcm[index & 63]) for index in range(count)]
    build = (perf_counter() - started) / count
    del parts
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    parts = [_audio(pcm[index & 63]) for index in range(count)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_part = (after - before - sys.getsizeof(parts)) / count + sys.getsizeof(pcm[0])
    return per_part, build * 1e6


class _VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


async def _conversation(seconds: float, clock: _VirtualClock) -> Samples:
    pcm = payloads()
    prompts: list[window.RollingPrompt] = []
    original = window.RollingPrompt

    class RecordedPrompt(original):  # type: ignore[misc,valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            prompts.append(self)

    window.RollingPrompt = RecordedPrompt
    chunks = round(seconds / CHUNK_SECONDS)
    per_turn = round(MEMORY_TURN_EVERY / CHUNK_SECONDS)
    per_checkpoint = round(600.0 / CHUNK_SECONDS)
    rss: list[float] = []
    retained: list[float] = []

    async def source() -> AsyncIterator[ProcessorPart]:
        for index in range(chunks):
            clock.now = index * CHUNK_SECONDS
            await asyncio.sleep(0)
            yield _audio(pcm[index & 63])
            if index % per_turn == per_turn - 1:
                yield _end_of_turn()
            if index % per_checkpoint == per_checkpoint - 1:
                rss.append(float(rss_bytes()))
                retained.append(float(len(prompts[0]._conversation_history)))
                log(
                    f"virtual {(index + 1) * CHUNK_SECONDS / 60:.0f} min: "
                    f"RSS {rss[-1] / 2**20:.1f} MB, {retained[-1]:.0f} parts kept"
                )

    live = realtime.LiveProcessor(
        turn_processor=FakeModel().processor, duration_prompt_sec=MEMORY_WINDOW
    )
    async for _ in live(source()):
        pass
    return {"memory_rss_checkpoints": rss, "memory_retained_checkpoints": retained}


def memory(cfg: dict[str, Any], rng: random.Random, params: dict[str, str]) -> Samples:
    per_part, build_us = _part_cost()
    clock = _VirtualClock()
    # Only genai_processors.core.window reads the clock (part stamps, window cut).
    window.time = types.SimpleNamespace(perf_counter=clock.perf_counter)  # type: ignore[assignment]
    started = perf_counter()
    samples = asyncio.run(_conversation(cfg["memory_seconds"], clock))
    samples["memory_wall_seconds"] = [perf_counter() - started]
    samples["memory_peak_rss"] = [float(peak_rss_bytes())]
    samples["memory_retained"] = samples["memory_retained_checkpoints"][-1:]
    samples["part_bytes"] = [per_part]
    samples["part_build_us"] = [build_us]
    return samples


# --- 6. concurrent sessions --------------------------------------------------------


async def _concurrent(sessions: int, seconds: float, rng: random.Random) -> list[float]:
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    start = loop.time() + 0.5
    warm_until = start + CONCURRENT_TURN_EVERY
    end = start + seconds
    offsets = [rng.uniform(0, CONCURRENT_TURN_EVERY) for _ in range(sessions)]

    async def one(offset: float) -> None:
        session = Session(FakeModel())
        at = start + offset
        while at < end:
            await asyncio.sleep(max(0.0, at - loop.time()))
            latency = await session.turn()
            if at >= warm_until:
                samples.append(latency)
            at += CONCURRENT_TURN_EVERY
        await session.close()

    await asyncio.gather(*(one(offset) for offset in offsets))
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
    seconds = cfg["concurrent_seconds"] + CONCURRENT_TURN_EVERY
    started = perf_counter()
    with GcPauses() as gc_pauses:
        latencies = asyncio.run(_concurrent(sessions, seconds, rng))
    per_second = sum(gc_pauses.pauses) / (perf_counter() - started)
    return {name: latencies, f"{name}_gc": gc_pauses.pauses, f"{name}_gc_per_s": [per_second]}


SCENARIOS = {
    "overhead": overhead,
    "barge": barge,
    "throughput": throughput,
    "history": history,
    "memory": memory,
    "concurrent": concurrent,
}

if __name__ == "__main__":
    worker_main("genai_processors", SCENARIOS, sys.argv[1:])
