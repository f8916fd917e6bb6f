"""Figures of the local model (LocalModel, SmolLM2-135M-Instruct) on this machine.

Runs a live session over `LocalModel` several times and prints the median of:

* load: reading the GGUF file into llama.cpp (`LocalModel.load`);
* time to first token, cold (the first turn after loading) and warm (a
  second turn: llama.cpp reuses the cached prefix of the conversation);
* tokens per second while streaming (one delta is one token);
* stop latency: from the user's start of speech (barge-in), sent half a token
  after the fifth token, to the session's ``interrupted`` marker, which comes
  once the worker thread has stopped.

With ``--compile`` it also times a clean build of the llama-cpp-python wheel
(no pip cache, a few minutes on 2 cores), the way `.ci/setup.d/30-local-model.sh`
builds it.

Usage::

    .venv/bin/python benchmarks/local_model.py [--runs 5] [--threads 2] [--compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import trio

from trio_live import LiveSession
from trio_live._parts import (
    end_of_turn,
    is_interrupted,
    is_text,
    is_turn_complete,
    start_of_speech,
)
from trio_live.models.local import LocalModel

LLAMA_CPP = "llama-cpp-python==0.3.36"
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"


async def read_turn(session: LiveSession, start: float) -> tuple[float, float, int]:
    """Read one answer: (time to first token, tokens/s, tokens)."""
    first = last = None
    tokens = 0
    async for part in session:
        if is_text(part) and part.role == "model" and not part.substream:
            last = time.perf_counter()
            if first is None:
                first = last
            tokens += 1
        elif is_turn_complete(part):
            break
    if first is None or last is None:
        raise RuntimeError("the model said nothing")
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else float("nan")
    return first - start, rate, tokens


async def one_run(threads: int, max_tokens: int) -> dict[str, float]:
    model = LocalModel(max_tokens=max_tokens, n_threads=threads, temperature=0.8)
    figures: dict[str, float] = {}
    start = time.perf_counter()
    await model.load()
    figures["load_s"] = time.perf_counter() - start
    try:
        async with LiveSession(model) as session:
            start = time.perf_counter()
            await session.send(end_of_turn("What is the capital of France?"))
            ttft, rate, _ = await read_turn(session, start)
            figures["ttft_cold_s"], figures["tokens_per_second"] = ttft, rate

            start = time.perf_counter()
            await session.send(end_of_turn("And of Italy?"))
            figures["ttft_warm_s"], figures["tokens_per_second_warm"], _ = await read_turn(
                session, start
            )

            await session.send(end_of_turn("Tell me a very long story about a dragon."))
            seen = 0
            stop_at = None
            async for part in session:
                if is_text(part) and part.role == "model" and not part.substream:
                    seen += 1
                    if seen == 5:
                        # Speak up in the middle of the next token, as a user would.
                        await trio.sleep(0.5 / rate)
                        stop_at = time.perf_counter()
                        await session.send(start_of_speech())
                elif is_interrupted(part):
                    assert stop_at is not None
                    figures["stop_s"] = time.perf_counter() - stop_at
                    break
                elif is_turn_complete(part):
                    break
            session.close_input()
            async for _ in session:
                pass
    finally:
        await model.aclose()
    return figures


def compile_once() -> float:
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS}
        start = time.perf_counter()
        pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-cache-dir", "--no-deps"]
        subprocess.run(
            [*pip, "-w", folder, LLAMA_CPP],
            check=True,
            env=env,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--compile", action="store_true", help="also time a clean wheel build")
    args = parser.parse_args()

    runs = [trio.run(one_run, args.threads, args.max_tokens) for _ in range(args.runs)]
    if runs:
        print(f"LocalModel, SmolLM2-135M-Instruct Q4_1, n_threads={args.threads}, {args.runs} runs")
        print(f"{'figure':<24}{'median':>10}{'min':>10}{'max':>10}")
    for key in runs[0] if runs else ():
        values = [run[key] for run in runs if key in run]
        scale, unit = (1000.0, "ms") if key.endswith("_s") else (1.0, "")
        name = key.removesuffix("_s") + (f" ({unit})" if unit else "")
        median, low, high = (
            statistics.median(values) * scale,
            min(values) * scale,
            max(values) * scale,
        )
        print(f"{name:<24}{median:>10.1f}{low:>10.1f}{high:>10.1f}")
    if args.compile:
        print(f"clean compile of {LLAMA_CPP}: {compile_once():.0f} s")


if __name__ == "__main__":
    main()
