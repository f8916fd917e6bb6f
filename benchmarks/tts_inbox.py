"""How promptly `EspeakTts` obeys an interrupted marker while it speaks under CPU load.

Each run feeds a long answer (``--sentences`` sentences, one model part per
word, as a model streams them) into the stage's inbox, and reads its outbox
at once (as the demo's player does: it queues audio and plays it on its own
clock). A fraction of a second after the first audio (``--after``, random in
that range), the interrupted marker is sent, then the next turn's text.
Meanwhile ``--load`` subprocesses spin on the CPU (default: one per core).

Per run it reports, from the moment the marker was sent:

* ``last audio``: when the last audio part of the cut turn came out of the
  stage (0 if none came after the marker);
* ``marker out``: when the marker itself came out (it follows the audio
  already sent);
* ``late chunks``: the audio parts of the cut turn that came out after the
  marker was sent.

Then the median and the maximum over the runs.

Run: .venv/bin/python benchmarks/tts_inbox.py [--runs 10] [--load 2] [--sentences 60]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_live import Part, interrupted, is_audio, is_interrupted, text_part
from trio_live.voice import EspeakTts

SPIN = "while True: pass"


def words(sentences: int, turn: int) -> list[Part]:
    text = " ".join(f"This is sentence number {n} of a long answer." for n in range(sentences))
    pieces = text.split(" ")
    return [
        text_part(word if i == 0 else " " + word, role="model").with_metadata(turn=turn)
        for i, word in enumerate(pieces)
    ]


async def one_run(sentences: int, after: float, inbox_size: int) -> tuple[float, float, int]:
    tts = EspeakTts()
    send_in, receive_in = trio.open_memory_channel[Part](inbox_size)
    send_out, receive_out = trio.open_memory_channel[Part](inbox_size)
    first_audio = trio.Event()
    sent_at = 0.0
    last_audio = 0.0
    marker_out = 0.0
    late = 0

    async def feed() -> None:
        nonlocal sent_at
        async with send_in:
            for part in words(sentences, turn=1):
                await send_in.send(part)
            await first_audio.wait()
            await trio.sleep(after)
            sent_at = time.perf_counter()
            await send_in.send(interrupted().with_metadata(turn=1))
            await send_in.send(text_part("Next turn.", role="model").with_metadata(turn=2))

    async def read() -> None:
        nonlocal last_audio, marker_out, late
        async with receive_out:
            async for part in receive_out:
                now = time.perf_counter()
                if is_audio(part) and part.metadata.get("turn") == 1:
                    first_audio.set()
                    if sent_at:
                        last_audio = now - sent_at
                        late += 1
                elif is_interrupted(part):
                    marker_out = now - sent_at

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.run, receive_in, send_out)
            nursery.start_soon(feed)
            nursery.start_soon(read)
    return last_audio, marker_out, late


def summary(label: str, values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    scaled = [v * scale for v in values]
    return f"{label}: median {statistics.median(scaled):.1f} {unit}, max {max(scaled):.1f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sentences", type=int, default=60)
    parser.add_argument("--inbox", type=int, default=64, help="inbox and outbox capacity")
    parser.add_argument("--after", type=float, nargs=2, default=(0.1, 1.0))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(
        f"{args.runs} runs, {args.sentences} sentences per answer, inbox {args.inbox}, "
        f"{args.load} CPU-spinning processes, marker {args.after[0]}-{args.after[1]} s "
        "after the first audio",
        flush=True,
    )
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.load)]
    results: list[tuple[float, float, int]] = []
    try:
        for run in range(1, args.runs + 1):
            after = rng.uniform(*args.after)
            result = trio.run(one_run, args.sentences, after, args.inbox)
            results.append(result)
            last, marker, late = result
            print(
                f"run {run:2d}: marker at {after:.2f} s; last audio {last * 1000:6.1f} ms, "
                f"marker out {marker * 1000:6.1f} ms, late chunks {late}",
                flush=True,
            )
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    print(summary("last audio of the cut turn after the marker", [r[0] for r in results]))
    print(summary("marker out after the marker", [r[1] for r in results]))
    print(summary("late chunks", [float(r[2]) for r in results], unit="", scale=1.0))


if __name__ == "__main__":
    main()
