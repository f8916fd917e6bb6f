"""First audio: espeak-ng against Piper (joe, medium), through the TTS stage.

For each answer, the whole text is sent at once as one model part; the
figure is the time until the stage sends the answer's first audio part (its
first clause synthesised). Piper's voice is loaded before timing.

Run: .venv/bin/python benchmarks/tts_first_audio.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_live import Part, text_part
from trio_live.voice import EspeakTts, PiperTts, piper_available

ANSWERS = [
    "The capital of France is Paris, a city on the Seine.",
    "Sure, I can help with that. What time would you like?",
    "It will be sunny tomorrow in Berlin, with a high of twenty degrees.",
    "Ten minutes, starting now.",
]


async def first_audio(tts: EspeakTts, text: str) -> float:
    send_in, receive_in = trio.open_memory_channel[Part](4)
    send_out, receive_out = trio.open_memory_channel[Part](1024)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tts.run, receive_in, send_out)
        start = time.perf_counter()
        await send_in.send(text_part(text, role="model", turn=1))
        async for part in receive_out:
            if part.mimetype.startswith("audio/"):
                elapsed = time.perf_counter() - start
                break
        await send_in.aclose()
        nursery.cancel_scope.cancel()
    return elapsed


async def main(repeat: int) -> None:
    voices: list[tuple[str, EspeakTts]] = [("espeak-ng", EspeakTts())]
    if piper_available():
        piper = PiperTts()
        await trio.to_thread.run_sync(piper.load)
        voices.append(("piper joe-medium", piper))
    else:
        print("piper extra not installed: espeak-ng only")
    for name, tts in voices:
        times = [await first_audio(tts, text) for _ in range(repeat) for text in ANSWERS]
        print(
            f"{name:17} first audio: median {statistics.median(times) * 1000:6.1f} ms, "
            f"max {max(times) * 1000:6.1f} ms over {len(times)} answers"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    trio.run(main, parser.parse_args().repeat)
