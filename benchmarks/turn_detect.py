"""Semantic end of turn: premature turns with and without Smart Turn, and its latency.

Each utterance is spoken by espeak-ng, then 0.3 s of silence (what the VAD
waits before its end of speech) is appended; the stage scores that audio the
way `TurnDetector` does at the end of speech. Half the utterances are
complete, half cut off mid-sentence (what a user says before a pause).

* Without the model every VAD pause ends the turn: each cut-off utterance is
  a premature turn.
* With it, a cut-off utterance scored complete is a premature turn, and a
  complete one scored incomplete waits `incomplete_turn_timeout` (a late
  turn).

Run: .venv/bin/python benchmarks/turn_detect.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_live.voice import SmartTurnModel, log_mel_features, parse_wav, pcm_to_float, resample
from trio_live.voice._turn_detect import trim_trailing_quiet

COMPLETE = [
    "What is the capital of France?",
    "Can you tell me the weather for tomorrow in Berlin?",
    "Please set a timer for ten minutes.",
    "Thank you very much.",
    "I would like to order a large pizza with mushrooms.",
    "How far is it from here to the station?",
    "Turn off the lights in the kitchen.",
    "That sounds great, let's do it.",
    "What time does the museum open on Sunday?",
    "Remind me to call my mother tonight.",
    "I think that's everything for today.",
    "Who wrote the novel Pride and Prejudice?",
]
CUT_OFF = [
    "I would like to order",
    "So what I was thinking is that",
    "I need to book a flight to",
    "Could you remind me to call my",
    "Can you tell me how to get to the",
    "The thing I wanted to ask about is",
    "If it is not too much trouble, could you",
    "My favourite kind of music is",
    "Tomorrow I have to go to the",
    "What I really want to know is whether",
    "Let me think, I want the one with",
    "And then after that we could",
]
VAD_SILENCE = 0.3


def speak(text: str) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    pcm, rate = parse_wav(wav)
    samples = pcm_to_float(resample(pcm, rate, 16000))
    return np.concatenate([samples, np.zeros(round(VAD_SILENCE * 16000), np.float32)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed decisions per utterance")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()
    model = SmartTurnModel(threads=1)
    audio = [(text, True, speak(text)) for text in COMPLETE]
    audio += [(text, False, speak(text)) for text in CUT_OFF]
    latencies: list[float] = []
    features: list[float] = []
    premature = late = 0
    for text, complete, samples in audio:
        probability = 0.0
        for _ in range(args.repeat):
            start = time.perf_counter()
            probability = model.probability(trim_trailing_quiet(samples))
            latencies.append(time.perf_counter() - start)
            start = time.perf_counter()
            log_mel_features(trim_trailing_quiet(samples))
            features.append(time.perf_counter() - start)
        judged = probability >= args.threshold
        premature += not complete and judged
        late += complete and not judged
        print(f"{probability:6.3f} {'complete' if complete else 'cut off ':8} {text}")
    latencies.sort()
    cut = len(CUT_OFF)
    print()
    print(f"utterances: {len(COMPLETE)} complete, {cut} cut off (espeak-ng, +{VAD_SILENCE} s)")
    print(f"premature turns without the model (VAD silence only): {cut}/{cut}")
    print(f"premature turns with Smart Turn v3.2: {premature}/{cut}")
    print(f"complete turns held as incomplete (late): {late}/{len(COMPLETE)}")
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"decision latency (features + inference, 1 thread): median "
        f"{statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"fastest {latencies[0] * 1000:.1f} ms "
        f"over {len(latencies)} decisions (the features alone: median "
        f"{statistics.median(features) * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
