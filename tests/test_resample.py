"""The anti-alias low-pass shared by `resample` and the recognizers' resampling."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from trio_live.voice import float_to_pcm, pcm_to_float, resample
from trio_live.voice._resample import STOPBAND_DB, lowpass, lowpass_taps, resample_samples
from trio_live.voice._stt_backends import MODEL_RATE, _to_float32

Samples = npt.NDArray[np.float64]


def tone(seconds: float, rate: int, hz: float, level: float = 0.5) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return float_to_pcm(level * np.sin(2 * math.pi * hz * t))


def level_db(samples: npt.NDArray[np.floating], reference: npt.NDArray[np.floating]) -> float:
    # RMS level of ``samples`` against ``reference``, away from the ends.
    def rms(x: npt.NDArray[np.floating]) -> float:
        middle = np.asarray(x, dtype=np.float64)[x.size // 10 : -x.size // 10]
        return float(np.sqrt(np.mean(middle**2)))

    return 20.0 * math.log10(max(rms(samples), 1e-12) / rms(reference))


def by_resample(pcm: bytes, rate: int) -> npt.NDArray[np.floating]:
    return pcm_to_float(resample(pcm, rate, 16000))


def by_recognizer(pcm: bytes, rate: int) -> npt.NDArray[np.floating]:
    return np.asarray(_to_float32(pcm, rate))


CONVERTERS: list[Callable[[bytes, int], npt.NDArray[np.floating]]] = [by_resample, by_recognizer]


@pytest.mark.parametrize("convert", CONVERTERS)
def test_a_tone_above_the_new_nyquist_is_removed_at_22050_hz(
    convert: Callable[[bytes, int], npt.NDArray[np.floating]],
) -> None:
    # 10 kHz cannot exist at 16 kHz: without a filter it folds back to 6 kHz
    # (22050 -> 16000 is too close a ratio for a moving average to help).
    pcm = tone(1.0, 22050, 10000.0)
    assert level_db(convert(pcm, 22050), pcm_to_float(pcm)) <= -30.0


@pytest.mark.parametrize("convert", CONVERTERS)
@pytest.mark.parametrize("rate", [22050, 24000, 44100, 48000])
def test_a_tone_inside_the_band_passes(
    convert: Callable[[bytes, int], npt.NDArray[np.floating]], rate: int
) -> None:
    pcm = tone(1.0, rate, 1000.0)
    assert abs(level_db(convert(pcm, rate), pcm_to_float(pcm))) <= 1.0


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_length_and_type_are_those_of_the_new_rate(rate: int) -> None:
    pcm = tone(0.3, rate, 440.0)
    samples = len(pcm) // 2
    assert len(resample(pcm, rate, 16000)) == 2 * round(samples * 16000 / rate)
    converted = _to_float32(pcm, rate)
    assert converted.dtype == np.float32
    assert converted.size == round(samples * MODEL_RATE / rate)
    assert converted.flags.c_contiguous


@pytest.mark.parametrize(
    ("from_rate", "to_rate"),
    [(22050, 16000), (17000, 16000), (44100, 16000), (48000, 16000), (16000, 8000), (192000, 8000)],
)
def test_the_filter_is_flat_in_the_band_and_stops_above_the_new_nyquist(
    from_rate: int, to_rate: int
) -> None:
    taps = lowpass_taps(from_rate, to_rate)
    assert taps.size % 2 == 1
    np.testing.assert_allclose(taps, taps[::-1])  # symmetric: no delay, no phase change
    assert taps.sum() == pytest.approx(1.0)
    size = 1 << 16
    response = np.abs(np.fft.rfft(taps, size))
    frequency = np.arange(response.size) * from_rate / size
    passband = response[frequency <= 0.4 * to_rate]
    stopband = response[frequency >= 0.5 * to_rate]
    assert 20 * math.log10(passband.max() / passband.min()) < 0.05
    assert 20 * math.log10(stopband.max()) <= -(STOPBAND_DB - 1.0)


def test_the_filter_runs_the_same_directly_and_through_the_fft() -> None:
    # 48000 -> 16000 (111 taps) is convolved directly, 192000 -> 8000 (873
    # taps) through the FFT; both must equal a plain convolution.
    rng = np.random.default_rng(7)
    samples: Samples = rng.uniform(-1.0, 1.0, 5000)
    for from_rate, to_rate in [(48000, 16000), (192000, 8000)]:
        taps = lowpass_taps(from_rate, to_rate)
        half = taps.size // 2
        reference = np.convolve(samples, taps)[half : half + samples.size]
        filtered = lowpass(samples, from_rate, to_rate)
        # Away from the ends (where the clip is mirrored, not zero-padded).
        np.testing.assert_allclose(filtered[half:-half], reference[half:-half], atol=1e-9)


def test_chunk_by_chunk_resampling_matches_the_whole_clip() -> None:
    # The VAD stage resamples each 20 ms chunk on its own: the filter's edges
    # must not dent every chunk.
    rate = 48000
    t = np.arange(rate) / rate
    samples: Samples = 0.5 * np.sin(2 * math.pi * 440.0 * t)
    whole = resample_samples(samples, rate, 16000, 16000)
    step = rate // 50
    chunks = [
        resample_samples(samples[i : i + step], rate, 16000, step // 3)
        for i in range(0, rate, step)
    ]
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-3)


def test_the_input_is_not_changed_and_tiny_clips_work() -> None:
    samples: Samples = np.array([0.25])
    assert lowpass(samples, 48000, 16000).tolist() == pytest.approx([0.25])
    assert samples.tolist() == [0.25]
    assert resample(b"\x00\x40", 48000, 16000) == b""  # a third of a sample rounds to none
    assert _to_float32(b"\x00\x40", 48000).size == 1


def test_the_filter_is_only_for_going_down() -> None:
    with pytest.raises(ValueError, match="going down in rate"):
        lowpass_taps(16000, 16000)
    with pytest.raises(ValueError, match="going down in rate"):
        lowpass_taps(16000, 48000)
