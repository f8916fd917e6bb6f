"""Sample-rate conversion of float samples: an anti-alias low-pass, then interpolation.

Going down in rate, whatever lies above the new Nyquist frequency (half the
new rate) cannot be represented and would fold back into the speech band as
a false tone. So before the samples are taken at the new rate, a low-pass
filter removes it: a windowed-sinc FIR (Kaiser window) at the input rate,
designed for the target rate, with

* the passband flat (within 0.02 dB) up to 40% of the new rate (6.4 kHz at
  16 kHz), and
* ``STOPBAND_DB`` of attenuation (within 1 dB: Kaiser's design formulas are
  close, not exact) from 50% of the new rate, the new Nyquist frequency,
  upwards; the transition band lies between the two.

The filter is symmetric with an odd number of taps and is applied centred,
so it delays nothing. Beyond the ends of the clip it sees the clip mirrored
(an odd reflection, which keeps the edge's value and slope) rather than
zeros, so a clip cut into chunks and resampled chunk by chunk (as the VAD
stage does) does not dip at every chunk's edges. Going up in rate needs no
filter. The samples are then
taken at the new rate by linear interpolation, as before the filter existed,
so the output length is unchanged; the interpolation itself rounds off the
top of the band a little (about 2 dB at 6 kHz from 22050 Hz, 0.1 dB at
1 kHz). Filters are designed once per pair of rates and kept.
"""

from __future__ import annotations

import functools
import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["STOPBAND_DB", "lowpass", "lowpass_taps", "resample_samples"]

#: The attenuation the filter is designed for above the new Nyquist frequency.
STOPBAND_DB: Final = 60.0
#: Where the passband ends and the stopband starts, as fractions of the new rate.
_PASS_EDGE: Final = 0.4
_STOP_EDGE: Final = 0.5
#: Above this many taps the filter is applied through the FFT.
_DIRECT_TAPS: Final = 128


@functools.lru_cache(maxsize=32)
def lowpass_taps(from_rate: int, to_rate: int) -> npt.NDArray[np.float64]:
    """The anti-alias filter (read-only taps, unit gain at 0 Hz) for ``from_rate`` -> ``to_rate``.

    Raises:
        ValueError: unless ``0 < to_rate < from_rate``.
    """
    if not 0 < to_rate < from_rate:
        raise ValueError(f"a low-pass is for going down in rate, got {from_rate} -> {to_rate}")
    # Kaiser's formulas: the window's shape for the attenuation, its length
    # for the width of the transition band (in radians per input sample).
    attenuation = STOPBAND_DB
    beta = 0.1102 * (attenuation - 8.7)
    transition = 2.0 * math.pi * (_STOP_EDGE - _PASS_EDGE) * to_rate / from_rate
    count = math.ceil((attenuation - 7.95) / (2.285 * transition)) + 1
    count += 1 - count % 2  # odd: a whole-sample centre
    cutoff = (_PASS_EDGE + _STOP_EDGE) / 2.0 * to_rate / from_rate  # cycles per sample
    offsets = np.arange(count, dtype=np.float64) - (count - 1) / 2.0
    taps = 2.0 * cutoff * np.sinc(2.0 * cutoff * offsets) * np.kaiser(count, beta)
    taps /= taps.sum()
    taps.setflags(write=False)
    return taps


def lowpass(
    samples: npt.NDArray[np.float64], from_rate: int, to_rate: int
) -> npt.NDArray[np.float64]:
    """``samples`` (at ``from_rate``) without what lies above ``to_rate``'s Nyquist frequency.

    A new array of the same length; ``samples`` is not changed.

    Raises:
        ValueError: unless ``0 < to_rate < from_rate``.
    """
    taps = lowpass_taps(from_rate, to_rate)
    half = (taps.size - 1) // 2
    if samples.size > 1:
        padded = np.pad(samples, half, mode="reflect", reflect_type="odd")
    else:
        padded = np.pad(samples, half, mode="edge")
    if taps.size <= _DIRECT_TAPS:
        filtered: npt.NDArray[np.float64] = np.convolve(padded, taps, mode="valid")
        return filtered
    size = padded.size + taps.size - 1
    fft_size = 1 << (size - 1).bit_length()
    spectrum = np.fft.rfft(padded, fft_size) * np.fft.rfft(taps, fft_size)
    full = np.fft.irfft(spectrum, fft_size)
    filtered = full[taps.size - 1 : taps.size - 1 + samples.size]
    return filtered


def resample_samples(
    samples: npt.NDArray[np.float64], from_rate: int, to_rate: int, count: int
) -> npt.NDArray[np.float64]:
    """``count`` samples at ``to_rate`` from ``samples`` at ``from_rate``.

    Low-pass filtered first when going down in rate (see the module
    docstring), then linearly interpolated at the new rate's instants.
    """
    if to_rate < from_rate and samples.size:
        samples = lowpass(samples, from_rate, to_rate)
    positions = np.arange(count, dtype=np.float64) * (from_rate / to_rate)
    resampled: npt.NDArray[np.float64] = np.interp(positions, np.arange(samples.size), samples)
    return resampled
