from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from trio_live import AudioFormatError, Part, audio_part
from trio_live.voice import (
    Rechunker,
    check_rate,
    duration,
    float_to_pcm,
    frames,
    parse_wav,
    part_pcm,
    pcm_to_float,
    read_wav,
    resample,
    rms,
    write_wav,
)

DATA = Path(__file__).parent / "data"


def tone(seconds: float, rate: int = 16000, hz: float = 440.0, level: float = 0.5) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return float_to_pcm(level * np.sin(2 * math.pi * hz * t))


def wav_bytes(
    pcm: bytes, *, rate: int = 16000, channels: int = 1, width: int = 2, tag: int = 1
) -> bytes:
    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, rate * channels * width, channels * width, 8 * width
    )
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(pcm))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(pcm))
        + pcm
    )


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    pcm = tone(0.25)
    path = tmp_path / "tone.wav"
    write_wav(path, pcm, 16000)
    assert read_wav(path) == (pcm, 16000)
    with wave.open(str(path)) as file:  # a standard reader agrees
        assert (file.getnchannels(), file.getsampwidth(), file.getframerate()) == (1, 2, 16000)


def test_committed_test_data_is_16k_mono() -> None:
    for name in ("hello", "two_parts", "interrupt", "silence", "click", "cough"):
        pcm, rate = read_wav(DATA / f"{name}.wav")
        assert rate == 16000
        assert 1.0 < duration(pcm, rate) < 6.0


def test_parse_wav_reads_to_the_end_when_the_length_is_bogus() -> None:
    # espeak-ng on a pipe declares a data chunk far longer than what follows.
    pcm = tone(0.1)
    data = bytearray(wav_bytes(pcm, rate=22050))
    struct.pack_into("<I", data, 40, 0x7FFFF000)
    struct.pack_into("<I", data, 4, 0x7FFFF024)
    assert parse_wav(bytes(data)) == (pcm, 22050)


def test_parse_wav_skips_unknown_chunks() -> None:
    pcm = tone(0.05)
    data = wav_bytes(pcm)
    extra = b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd size, padded
    data = data[:36] + extra + data[36:]
    assert parse_wav(data) == (pcm, 16000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (wav_bytes(bytes(400), channels=2), "2 channels; need mono"),
        (wav_bytes(bytes(400), width=1), "8-bit samples"),
        (wav_bytes(bytes(400), tag=3, width=4), "32-bit float"),
        (wav_bytes(bytes(400), tag=7, width=1), "mu-law"),
        (wav_bytes(bytes(400), rate=4000), "sample rate must be an int from 8000"),
        (b"ID3\x03mp3 data here", "not a WAV file"),
        (wav_bytes(b"")[:36], "no data chunk"),
    ],
)
def test_unsupported_wav_gives_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        parse_wav(data)


def test_read_wav_of_a_stereo_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as file:
        file.setnchannels(2)
        file.setsampwidth(2)
        file.setframerate(16000)
        file.writeframes(bytes(800))
    with pytest.raises(AudioFormatError, match="mono"):
        read_wav(path)


def test_part_pcm_checks_the_part() -> None:
    pcm = tone(0.02)
    assert part_pcm(audio_part(pcm, rate=8000)) == (pcm, 8000)
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        part_pcm(Part(content=b"abc", mimetype="audio/l16;rate=16000"))
    with pytest.raises(AudioFormatError, match="audio/l16"):
        part_pcm(Part(content=b"xx", mimetype="audio/mpeg"))
    with pytest.raises(AudioFormatError, match="no valid rate"):
        part_pcm(Part(content=b"xx", mimetype="audio/l16"))
    with pytest.raises(AudioFormatError, match="got 1000000"):
        part_pcm(Part(content=b"xx", mimetype="audio/l16;rate=1000000"))
    with pytest.raises(AudioFormatError, match="holds text"):
        part_pcm(Part(content="hi", mimetype="audio/l16;rate=16000"))
    with pytest.raises(AudioFormatError, match="expected an audio part"):
        part_pcm(Part(content="hi"))


def test_check_rate() -> None:
    assert check_rate(44100) == 44100
    for bad in (0, -16000, 7999, 192001, True):
        with pytest.raises(AudioFormatError):
            check_rate(bad)


def test_rechunker_cuts_fixed_frames_across_feeds() -> None:
    rechunker = Rechunker(4)
    stream = bytes(range(40))
    out: list[bytes] = []
    for piece in (stream[:6], stream[6:8], stream[8:30], stream[30:]):
        out.extend(rechunker.feed(piece))
    assert out == [stream[i : i + 8] for i in range(0, 40, 8)]
    assert rechunker.pending_samples == 0
    assert rechunker.feed(b"\x01\x02") == []
    assert rechunker.flush(pad=True) == b"\x01\x02" + bytes(6)
    assert rechunker.flush() == b""


def test_rechunker_rejects_odd_bytes_and_bad_sizes() -> None:
    rechunker = Rechunker(4)
    with pytest.raises(AudioFormatError):
        rechunker.feed(b"abc")
    assert rechunker.pending_samples == 0
    with pytest.raises(ValueError, match="frame_samples must be > 0"):
        Rechunker(0)


def test_frames() -> None:
    pcm = bytes(range(10))
    assert frames(pcm, 2) == [pcm[:4], pcm[4:8]]
    assert frames(pcm, 2, pad=True) == [pcm[:4], pcm[4:8], pcm[8:] + bytes(2)]


@pytest.mark.parametrize(("source", "target"), [(22050, 16000), (16000, 48000), (48000, 16000)])
def test_resample_keeps_duration_and_pitch(source: int, target: int) -> None:
    pcm = tone(0.5, rate=source, hz=300.0)
    out = resample(pcm, source, target)
    assert duration(out, target) == pytest.approx(0.5, abs=1e-3)
    samples = pcm_to_float(out)
    spectrum = np.abs(np.fft.rfft(samples))
    peak = np.argmax(spectrum) * target / len(samples)
    assert peak == pytest.approx(300.0, abs=4.0)
    assert rms(out) == pytest.approx(rms(pcm), rel=0.05)


@pytest.mark.parametrize(("source", "hz"), [(48000, 14000.0), (44100, 12000.0), (24000, 10000.0)])
def test_downsampling_attenuates_what_would_fold_back(source: int, hz: float) -> None:
    # A tone above the new Nyquist frequency (8 kHz) cannot be represented at
    # 16 kHz: without the anti-alias filter it folds back at nearly full level.
    pcm = tone(0.5, rate=source, hz=hz)
    out = resample(pcm, source, 16000)
    assert rms(out) < 0.25 * rms(pcm)
    # Speech-band content at the same rates is kept.
    speech = tone(0.5, rate=source, hz=1000.0)
    assert rms(resample(speech, source, 16000)) == pytest.approx(rms(speech), rel=0.1)


def test_resample_same_rate_and_errors() -> None:
    pcm = tone(0.01)
    assert resample(pcm, 16000, 16000) == pcm
    with pytest.raises(AudioFormatError):
        resample(b"abc", 16000, 8000)
    with pytest.raises(AudioFormatError):
        resample(pcm, 16000, 100)


def test_float_round_trip_and_rms() -> None:
    pcm = tone(0.1, level=0.5)
    assert rms(pcm) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)
    assert float_to_pcm(pcm_to_float(pcm)) == pcm
    assert float_to_pcm(np.array([2.0, -2.0])) == struct.pack("<hh", 32767, -32768)
    assert rms(b"") == 0.0


def test_write_wav_rejects_odd_bytes() -> None:
    with pytest.raises(AudioFormatError):
        write_wav(io.BytesIO(), b"abc")  # type: ignore[arg-type]
