"""PCM16 audio helpers: WAV files, fixed frames, resampling, validation.

Everything audio in trio_live is 16-bit little-endian mono PCM, with its rate
in the part's mimetype (``audio/l16;rate=16000``). These helpers turn WAV data
into that shape and back, cut a stream into fixed frames, and change the rate.
Anything else (stereo, 8-bit, float or compressed WAV, odd byte counts,
absurd rates) raises `AudioFormatError` with a message that says what was
found, so a stage can report it and go on.

WAV parsing is done by hand rather than with the `wave` module because
espeak-ng writes a WAV header with a bogus length when it writes to a pipe:
a data chunk whose size runs past the end (or is 0 / 0xFFFFFFFF) is read to
the end of the bytes we have.
"""

from __future__ import annotations

import struct
from os import PathLike
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from .._errors import AudioFormatError
from .._parts import Part, audio_rate, is_audio
from .._wav import wav_from_pcm
from ._resample import resample_samples

#: The rate the voice pipeline works at unless told otherwise.
DEFAULT_RATE: Final = 16000
#: The lowest and highest rates accepted anywhere (telephone to studio).
MIN_RATE: Final = 8000
MAX_RATE: Final = 192000

_PCM_FORMAT: Final = 1
_EXTENSIBLE_FORMAT: Final = 0xFFFE
_FORMAT_NAMES: Final = {3: "32-bit float", 6: "A-law", 7: "mu-law", 0x55: "MP3", 2: "ADPCM"}


def check_rate(rate: int) -> int:
    """Return ``rate`` if it is a sample rate trio_live accepts.

    Raises:
        AudioFormatError: if it is not an int between `MIN_RATE` and `MAX_RATE`.
    """
    if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError(
            f"sample rate must be an int from {MIN_RATE} to {MAX_RATE} Hz, got {rate!r}"
        )
    return rate


def check_pcm(pcm: bytes) -> bytes:
    """Return ``pcm`` if it can be 16-bit PCM (an even number of bytes).

    Raises:
        AudioFormatError: for an odd byte count or a non-bytes value.
    """
    if not isinstance(pcm, (bytes, bytearray, memoryview)):
        raise AudioFormatError(f"PCM16 audio must be bytes, got {type(pcm).__name__}")
    if len(pcm) & 1:
        raise AudioFormatError(f"PCM16 audio needs an even number of bytes, got {len(pcm)}")
    return bytes(pcm)


def part_pcm(part: Part) -> tuple[bytes, int]:
    """The PCM bytes and sample rate of an audio part, checked.

    Raises:
        AudioFormatError: if the part is not ``audio/l16`` with a sane rate,
            or its content is not an even number of bytes.
    """
    if not is_audio(part):
        raise AudioFormatError(f"expected an audio part, got mimetype {part.mimetype!r}")
    if isinstance(part.content, str):
        raise AudioFormatError("audio part holds text, not PCM bytes")
    rate = check_rate(audio_rate(part))
    return check_pcm(part.content), rate


def duration(pcm: bytes, rate: int) -> float:
    """Seconds of audio in ``pcm`` at ``rate`` Hz."""
    return len(pcm) // 2 / rate


# --- WAV --------------------------------------------------------------------


def parse_wav(data: bytes) -> tuple[bytes, int]:
    """Read a WAV file held in memory: its PCM16 mono samples and rate.

    A data chunk whose declared size runs past the end of ``data`` (as
    espeak-ng writes to a pipe) is read to the end.

    Raises:
        AudioFormatError: if ``data`` is not RIFF/WAVE, or holds anything but
            16-bit mono integer PCM.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError("not a WAV file (no RIFF/WAVE header)")
    position = 12
    rate: int | None = None
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (size,) = struct.unpack_from("<I", data, position + 4)
        body = position + 8
        if chunk_id == b"fmt ":
            rate = _parse_fmt(data[body : body + size])
        elif chunk_id == b"data":
            if rate is None:
                raise AudioFormatError("WAV data chunk comes before its fmt chunk")
            end = body + size if 0 < size <= len(data) - body else len(data)
            pcm = data[body:end]
            return pcm[: len(pcm) & ~1], rate
        position = body + size + (size & 1)
    raise AudioFormatError("WAV file has no data chunk")


def _parse_fmt(fmt: bytes) -> int:
    if len(fmt) < 16:
        raise AudioFormatError(f"WAV fmt chunk too short ({len(fmt)} bytes)")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE_FORMAT and len(fmt) >= 26:
        (tag,) = struct.unpack_from("<H", fmt, 24)
    if tag != _PCM_FORMAT:
        name = _FORMAT_NAMES.get(tag, f"format tag {tag:#x}")
        raise AudioFormatError(f"WAV holds compressed or float audio ({name}); need 16-bit PCM")
    if channels != 1:
        raise AudioFormatError(f"WAV has {channels} channels; need mono (downmix it first)")
    if bits != 16:
        raise AudioFormatError(f"WAV has {bits}-bit samples; need 16-bit PCM")
    return check_rate(rate)


def read_wav(path: str | PathLike[str]) -> tuple[bytes, int]:
    """Read a 16-bit mono PCM WAV file: its samples and rate.

    Raises:
        AudioFormatError: if the file holds another kind of audio.
        OSError: if the file cannot be read.
    """
    with open(path, "rb") as file:
        return parse_wav(file.read())


def write_wav(path: str | PathLike[str], pcm: bytes, rate: int = DEFAULT_RATE) -> None:
    """Write ``pcm`` (16-bit mono at ``rate`` Hz) as a WAV file."""
    check_pcm(pcm)
    check_rate(rate)
    with open(path, "wb") as file:
        file.write(wav_from_pcm(pcm, rate))


# --- samples ----------------------------------------------------------------


def pcm_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    """Samples in [-1, 1) as a new float32 array."""
    return np.frombuffer(check_pcm(pcm), dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm(samples: npt.NDArray[np.floating]) -> bytes:
    """Float samples (clipped to [-1, 1]) as PCM16 bytes."""
    scaled = np.clip(np.asarray(samples, dtype=np.float64) * 32768.0, -32768, 32767)
    return np.round(scaled).astype("<i2").tobytes()


def rms(pcm: bytes) -> float:
    """Root mean square of the samples, from 0 (silence) to about 1."""
    if not pcm:
        return 0.0
    samples = pcm_to_float(pcm)
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Change the sample rate of ``pcm``.

    Linear interpolation; when going down, an anti-alias low-pass first
    removes what lies above the new Nyquist frequency (at least 60 dB down),
    keeping the band below 40% of the new rate flat.

    Raises:
        AudioFormatError: for an odd byte count or a rate out of range.
    """
    check_pcm(pcm)
    check_rate(from_rate)
    check_rate(to_rate)
    if from_rate == to_rate or not pcm:
        return bytes(pcm)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    count = round(len(samples) * to_rate / from_rate)
    out = resample_samples(samples, from_rate, to_rate, count)
    resampled: bytes = np.round(np.clip(out, -32768, 32767)).astype("<i2").tobytes()
    return resampled


@attrs.define(eq=False)
class Rechunker:
    """Cuts a stream of PCM16 bytes into frames of exactly ``frame_samples``.

    Feed it chunks of any (even) size; it returns the whole frames they
    complete and keeps the rest for the next call.
    """

    frame_samples: int = attrs.field()
    _pending: bytearray = attrs.field(init=False, factory=bytearray)

    @frame_samples.validator
    def _check(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value <= 0:
            raise ValueError(f"frame_samples must be > 0, got {value!r}")

    @property
    def pending_samples(self) -> int:
        """Samples held back until a frame is complete."""
        return len(self._pending) // 2

    def feed(self, pcm: bytes) -> list[bytes]:
        """Add ``pcm``; return the frames now complete, oldest first.

        Raises:
            AudioFormatError: for an odd byte count (nothing is kept).
        """
        check_pcm(pcm)
        pending = self._pending
        pending += pcm
        size = self.frame_samples * 2
        count = len(pending) // size
        frames = [bytes(pending[i * size : (i + 1) * size]) for i in range(count)]
        del pending[: count * size]
        return frames

    def flush(self, pad: bool = False) -> bytes:
        """Return what is held back (zero-padded to a full frame if ``pad``) and forget it."""
        rest = bytes(self._pending)
        self._pending.clear()
        if pad and rest:
            rest += bytes(self.frame_samples * 2 - len(rest))
        return rest


def frames(pcm: bytes, frame_samples: int, *, pad: bool = False) -> list[bytes]:
    """Cut ``pcm`` into frames of ``frame_samples``; the short tail is dropped unless ``pad``."""
    rechunker = Rechunker(frame_samples)
    out = rechunker.feed(pcm)
    tail = rechunker.flush(pad=pad)
    if pad and tail:
        out.append(tail)
    return out
