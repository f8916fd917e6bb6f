"""What the anti-alias low-pass costs and does, going down to 16 kHz.

For each input rate: the time per second of audio of `resample` (PCM16 in
and out) and of the recognizers' conversion to float32, against plain linear
interpolation (what both did before the filter, apart from a moving average
at ratios of 1.5 and above); then the level of a 10 kHz tone (above the new
Nyquist frequency) and of a 1 kHz tone after `resample`.

Run: .venv/bin/python benchmarks/resample_cost.py [--seconds 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_live.voice import float_to_pcm, pcm_to_float, resample
from trio_live.voice._resample import lowpass_taps
from trio_live.voice._stt_backends import _to_float32

RATES = (22050, 44100, 48000)


def interpolate_only(pcm: bytes, rate: int) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    count = round(samples.size * 16000 / rate)
    out = np.interp(np.arange(count) * (rate / 16000), np.arange(samples.size), samples)
    pcm16: bytes = np.round(np.clip(out, -32768, 32767)).astype("<i2").tobytes()
    return pcm16


def level_db(rate: int, hz: float) -> float:
    t = np.arange(rate * 2) / rate
    pcm = float_to_pcm(0.5 * np.sin(2 * math.pi * hz * t))
    out = pcm_to_float(resample(pcm, rate, 16000))[1600:-1600]
    return 20 * math.log10(max(float(np.sqrt(np.mean(out.astype(np.float64) ** 2))), 1e-9) / 0.3536)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print("microseconds per second of audio (best of --repeat), to 16000 Hz")
    for rate in RATES:
        pcm = float_to_pcm(rng.uniform(-0.3, 0.3, rate * args.seconds))
        runs = {
            "linear only": functools.partial(interpolate_only, pcm, rate),
            "resample": functools.partial(resample, pcm, rate, 16000),
            "_to_float32": functools.partial(_to_float32, pcm, rate),
        }
        cells = []
        for name, run in runs.items():
            best = min(timeit.repeat(run, number=1, repeat=args.repeat)) / args.seconds
            cells.append(f"{name} {best * 1e6:6.0f}")
        taps = lowpass_taps(rate, 16000).size
        print(f"{rate:6d} Hz ({taps:3d} taps): " + ", ".join(cells), flush=True)
    for rate in RATES:
        print(
            f"{rate:6d} Hz: 10 kHz tone {level_db(rate, 10000.0):7.1f} dB, "
            f"1 kHz tone {level_db(rate, 1000.0):5.2f} dB"
        )


if __name__ == "__main__":
    main()
