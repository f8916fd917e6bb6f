"""The semantic end-of-turn stage (Smart Turn v3.2 on onnxruntime)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trio

from trio_live import Part, audio_part, end_of_speech, start_of_speech, text_part
from trio_live.voice import (
    SmartTurnModel,
    TurnDetector,
    log_mel_features,
    smart_turn_available,
    smart_turn_model_path,
)
from trio_live.voice._audio import parse_wav, resample

needs_model = pytest.mark.skipif(
    not smart_turn_available(), reason="the turn extra (onnxruntime, pipecat-ai weights)"
)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng")


def spoken(text: str) -> bytes:
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    pcm, rate = parse_wav(wav)
    return resample(pcm, rate, 16000)


def test_features_have_smart_turns_shape() -> None:
    rng = np.random.default_rng(1)
    features = log_mel_features(rng.standard_normal(16000).astype(np.float32) * 0.1)
    assert features.shape == (80, 800)
    assert features.dtype == np.float32
    # Clamped to 8 decades below the peak, then scaled by (x + 4) / 4.
    assert features.max() - features.min() <= 2.0 + 1e-5
    # Longer audio keeps its last 8 s.
    long = rng.standard_normal(16000 * 10).astype(np.float32)
    assert np.array_equal(log_mel_features(long), log_mel_features(long[-128000:]))


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="threshold"):
        TurnDetector(model=None, threshold=1.5)
    with pytest.raises(ValueError, match="model"):
        TurnDetector(model="smart")


async def run_stage(stage: TurnDetector, parts: list[Part]) -> list[Part]:
    send_in, receive_in = trio.open_memory_channel[Part](len(parts) + 1)
    send_out, receive_out = trio.open_memory_channel[Part](len(parts) + 1)
    for part in parts:
        send_in.send_nowait(part)
    send_in.close()
    await stage.run(receive_in, send_out)
    return [part async for part in receive_out]


async def test_without_a_model_everything_passes_unmarked() -> None:
    parts = [start_of_speech(), audio_part(bytes(640)), end_of_speech(), text_part("x")]
    assert await run_stage(TurnDetector(model=None), parts) == parts


@needs_model
@needs_espeak
@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("What is the capital of France?", True),
        ("Can you tell me the weather for tomorrow in Berlin?", True),
        ("I would like to order", False),
        ("So what I was thinking is that", False),
    ],
)
async def test_smart_turn_marks_each_end_of_speech(text: str, complete: bool) -> None:
    assert smart_turn_model_path() is not None
    stage = TurnDetector(model=SmartTurnModel())
    pcm = spoken(text) + bytes(16000 * 2 // 5)  # the VAD's trailing silence
    chunks = [audio_part(pcm[k : k + 640]) for k in range(0, len(pcm), 640)]
    out = await run_stage(stage, [start_of_speech(), *chunks, end_of_speech()])
    marked = out[-1]
    assert marked.metadata["turn_complete"] is complete
    probability = marked.metadata["turn_probability"]
    assert (probability >= 0.5) is complete
    assert stage.decisions == 1
    assert len(out) == len(chunks) + 2


@needs_model
def test_the_weights_are_recorded_bsd_2() -> None:
    path = smart_turn_model_path()
    assert path is not None
    assert path.name == "smart-turn-v3.2-cpu.onnx"
    licence = next(Path(path).parents[5].glob("pipecat_ai-1.14.0.dist-info/licenses/LICENSE"))
    assert "BSD 2-Clause" in licence.read_text()


def test_the_sparse_filterbank_is_the_filterbank() -> None:
    # The features sum each mel band over its own FFT bins (no BLAS call).
    from trio_live.voice._turn_detect import _filterbank, _sparse_filterbank

    bins, weights, starts = _sparse_filterbank()
    dense = np.zeros_like(_filterbank())
    ends = [*starts[1:], len(bins)]
    for band, (begin, end) in enumerate(zip(starts, ends, strict=True)):
        assert end > begin  # every band has a bin
        dense[band, bins[begin:end]] = weights[begin:end]
    assert np.array_equal(dense, _filterbank())
    power = np.random.default_rng(2).random((801, 201))
    summed = np.add.reduceat(power[:, bins] * weights, starts, axis=1).T
    assert np.allclose(summed, _filterbank() @ power.T, rtol=1e-12)
