"""Speech-to-text speed on this machine.

1. Real-time factor (processing time / audio duration) of each offline back
   end on the bundled clips, median of a few runs.
2. Final-transcript latency: the test clips are played in real time through
   the VAD stage and `SpeechToText`; the latency is the time from the
   end-of-speech event to the final transcription. Measured with partials and
   pause recognition (the default), the same with a second Moonshine instance
   as ``final_recognizer`` (what the demo uses), and without (``partial_every=inf``,
   ``quiet_ratio=0``: the whole utterance is recognized after end of speech).

    .venv/bin/python benchmarks/stt_speed.py [--runs 3] [--skip-latency]
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from pathlib import Path
from typing import Any

import trio

from trio_live._chain import Stage, run_chain
from trio_live._parts import Part, is_end_of_speech, is_final_transcription, is_transcription
from trio_live.voice import VadStage, read_wav, send_paced
from trio_live.voice._stt import SpeechToText
from trio_live.voice._stt_backends import (
    MoonshineRecognizer,
    PocketSphinxRecognizer,
    Recognizer,
)

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
CLIPS = ("stt_weather.wav", "stt_stop.wav", "stt_long.wav")
KEYWORDS = [
    "what is the weather like in paris today",
    "please stop talking and tell me a story about a green dragon",
    "my sister lives in london and every morning she rides her bicycle to the office",
    "on sundays she cooks dinner for the whole family",
]


def real_time_factors(recognizers: dict[str, Recognizer], runs: int) -> None:
    print("== real-time factor (processing time / audio time; lower is faster)")
    clips = {name: read_wav(DATA / name) for name in CLIPS}
    for label, recognizer in recognizers.items():
        for name, (pcm, rate) in clips.items():
            seconds = len(pcm) / 2 / rate
            if label.startswith("moonshine") and seconds > 7.0:
                # Moonshine takes at most ~8 s at once: what the stage does.
                half = len(pcm) // 2 & ~1
                pieces = [pcm[:half], pcm[half:]]
            else:
                pieces = [pcm]
            times = []
            text = ""
            for _ in range(runs):
                started = time.perf_counter()
                text = " ".join(recognizer.transcribe(piece, rate) for piece in pieces)
                times.append(time.perf_counter() - started)
            rtf = statistics.median(times) / seconds
            print(f"{label:24} {name:16} {seconds:5.2f} s  RTF {rtf:.3f}  {text[:60]!r}")


async def feed(send_in: trio.MemorySendChannel[Part], pcm: bytes, rate: int) -> None:
    with send_in:
        await send_paced(send_in, pcm, rate=rate)


async def final_latency(recognizer: Recognizer, **config: Any) -> list[float]:
    latencies: list[float] = []
    for name in CLIPS:
        pcm, rate = read_wav(DATA / name)
        send_in, receive_in = trio.open_memory_channel[Part](64)
        send_out, receive_out = trio.open_memory_channel[Part](64)
        stages: list[Stage] = [VadStage(), SpeechToText(recognizer, **config)]
        ended: float | None = None
        partials = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_chain, stages, receive_in, send_out)

            # A second of silence after the clip lets VAD end the speech.
            nursery.start_soon(feed, send_in, pcm + bytes(rate * 2), rate)
            async for part in receive_out:
                now = trio.current_time()
                if is_end_of_speech(part):
                    ended = now
                elif is_final_transcription(part) and ended is not None:
                    latencies.append(now - ended)
                    print(
                        f"  {name:16} final {now - ended:.3f} s after end of speech, "
                        f"{partials} partials: {part.text[:50]!r}"
                    )
                    ended = None
                elif is_transcription(part):
                    partials += 1
    return latencies


def report(label: str, latencies: list[float]) -> None:
    if latencies:
        print(
            f"{label}: median {statistics.median(latencies):.3f} s, "
            f"worst {max(latencies):.3f} s over {len(latencies)} utterances"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    moonshine = MoonshineRecognizer()
    print(f"Moonshine loaded in {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    sphinx = PocketSphinxRecognizer()
    sphinx_keywords = PocketSphinxRecognizer(keywords=KEYWORDS)
    print(f"PocketSphinx (twice) loaded in {time.perf_counter() - started:.2f} s")
    real_time_factors(
        {
            "moonshine": moonshine,
            "pocketsphinx": sphinx,
            "pocketsphinx+keywords": sphinx_keywords,
        },
        args.runs,
    )
    if args.skip_latency:
        return
    print("== final transcript latency, clips played in real time through VAD -> STT")
    for label, recognizer in (("moonshine", moonshine), ("pocketsphinx", sphinx)):
        print(f"{label}, partials and pause recognition (defaults):")
        report(f"{label} defaults", trio.run(final_latency, recognizer))
        if label == "moonshine":
            print(f"{label}, defaults and a second instance as final_recognizer:")
            second = functools.partial(final_latency, final_recognizer=MoonshineRecognizer())
            report(f"{label} final_recognizer", trio.run(second, recognizer))
        print(f"{label}, whole utterance after end of speech:")
        whole = functools.partial(final_latency, partial_every=math.inf, quiet_ratio=0.0)
        baseline = trio.run(whole, recognizer)
        report(f"{label} baseline", baseline)


if __name__ == "__main__":
    main()
