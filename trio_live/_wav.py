"""WAV files from raw PCM, for the models and the voice side alike."""

from __future__ import annotations

import io
import wave

__all__ = ["wav_from_pcm"]


def wav_from_pcm(pcm: bytes, rate: int) -> bytes:
    """Wrap 16-bit little-endian mono PCM at ``rate`` Hz in a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return buffer.getvalue()
