"""Play recorded audio into a channel at the pace of a microphone.

Frame ``k`` is sent at ``start + k * frame_duration`` by `trio.sleep_until`,
so the same code plays in real time under trio's normal clock and in virtual
time under a `trio.testing.MockClock` (with the ``autojump_clock`` a minute of
audio takes milliseconds, and every send time is exact). Times are computed
from the frame index, never accumulated, so they do not drift.
"""

from __future__ import annotations

from os import PathLike

import attrs
import trio

from .._parts import Part, audio_part
from ._audio import DEFAULT_RATE, check_pcm, check_rate, read_wav, resample


def _check_frame(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.001 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be from 0.001 to 1 second, got {value!r}")


async def send_paced(
    outbox: trio.abc.SendChannel[Part],
    pcm: bytes,
    *,
    rate: int = DEFAULT_RATE,
    frame_duration: float = 0.02,
    start: float | None = None,
    realtime: bool = True,
    role: str = "user",
) -> float:
    """Send ``pcm`` as audio parts of ``frame_duration`` seconds, paced.

    Args:
        outbox: where the audio parts go (it is not closed).
        pcm: 16-bit mono samples at ``rate``.
        rate: the sample rate.
        frame_duration: seconds per part (the last one may be shorter).
        start: the `trio.current_time` at which frame 0 is due (default:
            now). Frame ``k`` is sent at ``start + k * frame_samples / rate``.
        realtime: False sends every frame without waiting (a checkpoint each).
        role: the parts' role.

    Returns:
        When the audio is over: ``start`` plus its duration.

    Cancellation leaves the frames sent so far sent and no others.

    Raises:
        AudioFormatError: for an odd byte count or a bad rate.
    """
    check_pcm(pcm)
    check_rate(rate)
    if not 0.001 <= frame_duration <= 1.0:
        raise ValueError(f"frame_duration must be from 0.001 to 1 second, got {frame_duration!r}")
    if start is None:
        start = trio.current_time()
    frame_bytes = max(1, round(frame_duration * rate)) * 2
    for index, offset in enumerate(range(0, len(pcm), frame_bytes)):
        if realtime:
            await trio.sleep_until(start + index * (frame_bytes // 2) / rate)
        else:
            await trio.lowlevel.checkpoint()
        await outbox.send(audio_part(pcm[offset : offset + frame_bytes], rate=rate, role=role))
    return start + len(pcm) // 2 / rate


@attrs.define(eq=False)
class WavSource:
    """A microphone stand-in: plays a WAV file into a channel.

    Args:
        path: a 16-bit mono PCM WAV file.
        rate: resample to this rate (None: keep the file's).
        frame_duration: seconds of audio per part.
        realtime: pace at the audio's speed (False: as fast as the channel
            takes it).
        lead_in: seconds of silence sent before the file.
        tail: seconds of silence sent after it (gives voice activity
            detection time to see the end of speech).
    """

    path: str | PathLike[str]
    rate: int | None = DEFAULT_RATE
    frame_duration: float = attrs.field(default=0.02, validator=_check_frame)
    realtime: bool = True
    lead_in: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    tail: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))

    def load(self) -> tuple[bytes, int]:
        """The samples that will be played (with lead-in and tail) and their rate."""
        pcm, rate = read_wav(self.path)
        if self.rate is not None and self.rate != rate:
            pcm, rate = resample(pcm, rate, self.rate), self.rate
        lead = bytes(round(self.lead_in * rate) * 2)
        tail = bytes(round(self.tail * rate) * 2)
        return lead + pcm + tail, rate

    async def run(self, outbox: trio.MemorySendChannel[Part]) -> None:
        """Play the file into ``outbox``, then close it.

        Raises:
            AudioFormatError: if the file is not 16-bit mono PCM.
            OSError: if it cannot be read.
        """
        with outbox:
            pcm, rate = self.load()
            await send_paced(
                outbox,
                pcm,
                rate=rate,
                frame_duration=self.frame_duration,
                realtime=self.realtime,
            )
