"""Semantic end of turn: Smart Turn v3.2 scores the user's audio at each pause.

The voice activity detector ends speech after a short silence, which also
ends a turn where the user only paused ("I would like to ... order a
pizza"). `TurnDetector` is a stage after the VAD: it keeps the user's last
8 seconds of audio and, at each end of speech, asks Smart Turn v3.2 (a
Whisper-encoder classifier from Daily/pipecat, BSD-2-Clause, CPU ONNX) how
likely the turn is complete. The end of speech goes on with
``metadata["turn_complete"]`` (and ``"turn_probability"``); the policy
(rule 19) waits up to ``incomplete_turn_timeout`` after one marked
incomplete.

The weights ship inside the ``pipecat-ai`` wheel, installed with
``--no-deps`` (see ``.ci/setup.d/35-turn.sh``); the file is read with
``onnxruntime``, pipecat is never imported. The features (Whisper's 80-band
log-mel spectrogram of 8 s at 16 kHz: 400-sample periodic Hann frames every
160 samples, Slaney mel bands up to 8 kHz, log10 clamped 8 decades below
the peak, scaled by (x + 4) / 4) are computed here with numpy. Without
``onnxruntime`` or the weights the stage passes everything through
unmarked: turns end on VAD silence alone.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt
import trio

from .._errors import AudioFormatError, SpeechError
from .._parts import END_OF_SPEECH_MIMETYPE, Part, is_audio
from ._audio import part_pcm, pcm_to_float, resample

RATE: Final = 16000
SECONDS: Final = 8
_SAMPLES: Final = RATE * SECONDS
_N_FFT: Final = 400
_HOP: Final = 160
_N_MELS: Final = 80
_MODEL_FILE: Final = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


def smart_turn_model_path() -> Path | None:
    """Where the ``pipecat-ai`` wheel put ``smart-turn-v3.2-cpu.onnx`` (None: not installed)."""
    try:
        dist = importlib.metadata.distribution("pipecat-ai")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(_MODEL_FILE)))
    return path if path.is_file() else None


def smart_turn_available() -> bool:
    """True if ``onnxruntime`` and the Smart Turn weights are both installed."""
    return (
        importlib.util.find_spec("onnxruntime") is not None and smart_turn_model_path() is not None
    )


def _mel(freq: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Slaney's mel scale: linear below 1 kHz, logarithmic above.
    log_step = np.log(6.4) / 27.0
    linear = 3.0 * freq / 200.0
    return np.where(
        freq >= 1000.0, 15.0 + np.log(np.maximum(freq, 1e-9) / 1000.0) / log_step, linear
    )


def _hertz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), 200.0 * mel / 3.0)


@functools.cache
def _filterbank() -> npt.NDArray[np.float64]:
    # (mel bands, FFT bins): triangles evenly spaced on the mel scale, each
    # scaled to unit area (Slaney normalisation).
    bins = np.linspace(0.0, RATE / 2, _N_FFT // 2 + 1)
    edges = _hertz(np.linspace(_mel(np.array([0.0]))[0], _mel(np.array([8000.0]))[0], _N_MELS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    return bank * (2.0 / (edges[2:] - edges[:-2]))[:, None]


@functools.cache
def _sparse_filterbank() -> tuple[
    npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.intp]
]:
    # The filterbank's nonzero weights, band by band: (FFT bins, weights,
    # where each band starts). Each band covers a few bins; a dense matrix
    # product would go to BLAS, whose thread pool costs 20 ms per decision
    # on a busy machine (0.5 ms on one thread).
    bank = _filterbank()
    bands, bins = np.nonzero(bank)
    starts = np.searchsorted(bands, np.arange(_N_MELS))
    if len(np.unique(bands)) != _N_MELS:
        raise AssertionError("every mel band covers an FFT bin")
    return bins, bank[bands, bins], starts


@functools.cache
def _window() -> npt.NDArray[np.float64]:
    # Periodic Hann.
    n = np.arange(_N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / _N_FFT)


def log_mel_features(samples: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """Smart Turn's input for 16 kHz ``samples``: an (80, 800) float32 array.

    The last 8 s are used; shorter audio is padded with silence in front.
    The waveform is normalised to zero mean and unit variance first.
    """
    x = np.asarray(samples, dtype=np.float32)[-_SAMPLES:]
    if x.size < _SAMPLES:
        x = np.concatenate([np.zeros(_SAMPLES - x.size, dtype=np.float32), x])
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _window(), axis=-1)) ** 2
    bins, weights, starts = _sparse_filterbank()
    mel = np.maximum(np.add.reduceat(power[:, bins] * weights, starts, axis=1).T, 1e-10)
    log = np.log10(mel)[:, :-1]
    log = np.maximum(log, log.max() - 8.0)
    features: npt.NDArray[np.float32] = ((log + 4.0) / 4.0).astype(np.float32)
    return features


def trim_trailing_quiet(
    samples: npt.NDArray[np.float32], *, keep: float = 0.2, relative: float = 0.05
) -> npt.NDArray[np.float32]:
    """``samples`` with at most ``keep`` seconds of quiet after the last speech.

    The VAD ends speech after a silence, which the audio kept here holds.
    Measured on espeak-ng phrases (``benchmarks/turn_detect.py``), the model
    is sensitive to how much silence follows the speech: complete turns fell
    to 0.2-0.4 with 0.4-0.6 s of it; about 0.2 s separated best. A 10 ms
    frame is quiet below ``relative`` times the loudest frame's RMS.
    """
    frames = samples.size // _HOP
    if frames == 0:
        return samples
    levels = np.sqrt((samples[: frames * _HOP].reshape(frames, _HOP) ** 2).mean(axis=1))
    loud = np.flatnonzero(levels >= relative * levels.max())
    if loud.size == 0:
        return samples
    return samples[: (int(loud[-1]) + 1) * _HOP + round(keep * RATE)]


@attrs.define(eq=False)
class SmartTurnModel:
    """Smart Turn v3.2 on onnxruntime: the probability that a turn is complete.

    Args:
        path: the ONNX file (default: the one in the ``pipecat-ai`` wheel).
        threads: onnxruntime's intra-op threads (one decision takes about
            30 ms on one thread).

    Raises:
        SpeechError: if onnxruntime or the weights are missing.
    """

    path: Path | None = None
    threads: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    _session: Any = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        path = self.path if self.path is not None else smart_turn_model_path()
        if path is None:
            raise SpeechError(
                "the Smart Turn weights are missing: pip install --no-deps pipecat-ai==1.14.0"
            )
        try:
            import onnxruntime  # type: ignore[import-untyped,unused-ignore]
        except ImportError as error:
            raise SpeechError("onnxruntime is missing: pip install 'trio-live[turn]'") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self._session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def probability(self, samples: npt.NDArray[np.floating[Any]]) -> float:
        """How likely the turn in ``samples`` (16 kHz) is complete, from 0 to 1."""
        features = log_mel_features(samples)[None, :, :]
        (logits,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(logits).reshape(-1)[0])


@attrs.define(eq=False)
class TurnDetector:
    """A stage that marks each end of speech complete or incomplete.

    Args:
        model: a `SmartTurnModel`, ``"auto"`` (Smart Turn if installed,
            else pass-through) or None (pass-through: VAD silence only).
        threshold: the probability at or above which a turn is complete.
    """

    model: SmartTurnModel | str | None = "auto"
    threshold: float = attrs.field(default=0.5)
    #: Decisions made, and the seconds each took (the latest 1000).
    decisions: int = attrs.field(init=False, default=0)
    latencies: list[float] = attrs.field(init=False, factory=list)
    _audio: list[npt.NDArray[np.float32]] = attrs.field(init=False, factory=list)
    _samples: int = attrs.field(init=False, default=0)

    @threshold.validator
    def _check_threshold(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not 0.0 < value < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {value!r}")

    def __attrs_post_init__(self) -> None:
        if isinstance(self.model, str) and self.model != "auto":
            raise ValueError(f"model must be a SmartTurnModel, 'auto' or None, got {self.model!r}")

    @property
    def active(self) -> bool:
        """True once a model scores the turns (False: pass-through)."""
        return isinstance(self.model, SmartTurnModel)

    def _keep(self, part: Part) -> None:
        pcm, rate = part_pcm(part)
        if rate != RATE:
            pcm = resample(pcm, rate, RATE)
        samples = pcm_to_float(pcm)
        self._audio.append(samples)
        self._samples += samples.size
        while self._audio and self._samples - self._audio[0].size >= _SAMPLES:
            self._samples -= self._audio.pop(0).size

    def score(self) -> float:
        """The model's probability for the audio kept (the last 8 s, trailing quiet cut)."""
        model = self.model
        assert isinstance(model, SmartTurnModel)
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
        return model.probability(trim_trailing_quiet(audio))

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        """Pass ``inbox`` to ``outbox``, each end of speech marked; closes both channels."""
        with inbox, outbox:
            if self.model == "auto":
                self.model = (
                    await trio.to_thread.run_sync(SmartTurnModel)
                    if smart_turn_available()
                    else None
                )
            async for part in inbox:
                if self.model is None:
                    await outbox.send(part)
                    continue
                if is_audio(part) and not part.substream and part.role == "user":
                    # A malformed part is the VAD's to report.
                    with contextlib.suppress(AudioFormatError):
                        self._keep(part)
                elif part.mimetype == END_OF_SPEECH_MIMETYPE and not part.substream:
                    part = await self._decide(part)
                await outbox.send(part)

    async def _decide(self, part: Part) -> Part:
        start = trio.current_time()
        probability = await trio.to_thread.run_sync(self.score)
        self.decisions += 1
        self.latencies = [*self.latencies[-999:], trio.current_time() - start]
        complete = probability >= self.threshold
        if complete:
            # The next turn is scored on its own audio.
            self._audio.clear()
            self._samples = 0
        return part.with_metadata(turn_complete=complete, turn_probability=round(probability, 4))
