"""Voice pipeline figures on this machine (run by hand).

1. VAD real-time factor: seconds of compute per second of audio, for each
   back end, over the bundled conversation's microphone track.
2. End of speech -> final transcription -> first model text -> first reply
   audio, per turn, for the bundled conversation played in real time through
   VAD, speech to text, the local model (or --model URL) and espeak-ng, as
   the demo runs it (the local model warmed up first). Median and worst.

    .venv/bin/python benchmarks/voice_latency.py [--runs 3] [--stt auto]
        [--model URL --model-name NAME]
"""

from __future__ import annotations

import argparse
import time

import attrs
import trio

from trio_live import Part, audio_part
from trio_live._cli.demo import (
    load_conversation,
    microphone_track,
    prepare,
    run_demo,
    summary,
    warm_up,
)
from trio_live.voice import VadStage, make_backend


async def vad_rtf(backend: str, track: bytes) -> float:
    stage = VadStage(backend=make_backend(backend))
    parts = [audio_part(track[i : i + 640]) for i in range(0, len(track), 640)]
    send_in, receive_in = trio.open_memory_channel[Part](len(parts))
    send_out, receive_out = trio.open_memory_channel[Part](len(parts) + 100)
    for part in parts:
        send_in.send_nowait(part)
    send_in.close()
    began = time.perf_counter()
    await stage.run(receive_in, send_out)
    spent = time.perf_counter() - began
    receive_out.close()
    return spent / (len(track) / 2 / 16000)


async def main(args: argparse.Namespace) -> None:
    lines = load_conversation()
    track = microphone_track(lines)
    for backend in ("silero", "webrtc"):
        rtf = await vad_rtf(backend, track)
        print(f"VAD {backend}: real-time factor {rtf:.4f} ({rtf * 32:.3f} ms per 32 ms of audio)")
    model, stt = await prepare(args)
    if not args.final_recognizer:
        stt = attrs.evolve(stt, final_recognizer=None)
    timings = []
    for run in range(args.runs):
        if getattr(model, "load", None) is not None:
            # As a fresh demo: llama.cpp's cache must not hold the previous
            # run's conversation (the first turn would find its prompt there).
            await warm_up(model)
        result = await run_demo(model, stt, lines=lines, write=lambda _: None)
        for timing in result.log.timings.values():
            timings.append(timing)
            values = (timing.final, timing.first_text, timing.first_audio)
            print(
                f"run {run + 1} turn {timing.turn}: "
                + ", ".join("-" if v is None else f"{v * 1000:.0f}" for v in values)
                + " ms"
            )
        print("  heard:", [text for kind, text in result.log.events if kind == "heard"])
    print(summary(timings), end="")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--stt", default="auto")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--no-final-recognizer",
        dest="final_recognizer",
        action="store_false",
        help="one recognizer only (the final may wait for a partial in flight)",
    )
    parser.add_argument("--model", dest="model_url")
    parser.add_argument("--model-name")
    parser.add_argument("--provider")
    parser.add_argument("--system", dest="system_instruction")
    trio.run(main, parser.parse_args())
