"""The voice activity stage: the thin trio driver around `VadMachine`.

Audio parts pass through unchanged; after each one come the speech events
its frames caused, so the events sit in stream order right after the audio
that decided them. Event parts are the `start_of_speech` / `end_of_speech`
markers with two stream times in their metadata: ``at`` (where speech
starts or ends, padded) and ``detected_at`` (where the decision was made).
Stream time counts samples, never the clock.

Inference runs on the event loop: Silero takes about 0.15-0.3 ms per 32 ms
frame here, so a 20 ms chunk costs well under a millisecond. A big chunk
(a whole file in one part) yields to other tasks every 16 frames.

Bad audio (not ``audio/l16`` with a rate, odd byte counts) is dropped and
reported with an `error_part` on the status substream; the stage goes on.
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

from .._errors import AudioFormatError
from .._parts import Part, end_of_speech, error_part, is_audio, start_of_speech
from ._audio import Rechunker, part_pcm, resample, rms
from ._vad import SpeechEvent, VadConfig, VadMachine
from ._vad_backends import VadBackend, make_backend

# Frames analysed between two checkpoints.
_FRAMES_PER_CHECKPOINT: Final = 16


@attrs.frozen(kw_only=True)
class VadStatistics:
    """What a `VadStage` has seen.

    Attributes:
        backend: the back end's name.
        frames: frames analysed.
        audio_seconds: seconds of audio analysed (stream time).
        speech_segments: start-of-speech events sent.
        bad_parts: audio parts rejected as malformed.
        speaking: True between a start and its end.
    """

    backend: str
    frames: int
    audio_seconds: float
    speech_segments: int
    bad_parts: int
    speaking: bool


def speech_event_part(event: SpeechEvent) -> Part:
    """The marker part for ``event``, with its stream times in the metadata."""
    marker = start_of_speech() if event.kind == "start" else end_of_speech()
    marker = marker.with_metadata(at=round(event.at, 6), detected_at=round(event.detected_at, 6))
    # Under the echo guard the audio before ``at`` is the model's echo.
    return marker.with_metadata(echo_before=True) if event.guarded else marker


@attrs.define(eq=False)
class VadStage:
    """Detects speech in the audio going through.

    Args:
        config: the tunables (threshold, minimum speech, silence to end,
            padding, echo guard).
        backend: a `VadBackend`, or its name (``"auto"``, ``"silero"``,
            ``"webrtc"``), built when the stage runs.
    """

    config: VadConfig = attrs.field(factory=VadConfig)
    backend: VadBackend | str = "auto"
    _machine: VadMachine = attrs.field(init=False)
    _rechunker: Rechunker | None = attrs.field(init=False, default=None)
    _samples: int = attrs.field(init=False, default=0)
    _frames: int = attrs.field(init=False, default=0)
    _segments: int = attrs.field(init=False, default=0)
    _bad_parts: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._machine = VadMachine(self.config)

    @property
    def model_speaking(self) -> bool:
        """The echo guard: set it while the model's voice plays through speakers.

        While set, starting speech needs frames clearly louder than the echo
        the microphone hears meanwhile (see `VadMachine`), so the model's own
        voice reaching the microphone does not barge in on itself, while a
        user who speaks over it still does, about as fast as without the guard.
        """
        return self._machine.model_speaking

    @model_speaking.setter
    def model_speaking(self, value: bool) -> None:
        self._machine.model_speaking = value

    @property
    def answer_playing(self) -> bool:
        """Set while an answer plays: a start of speech is then a barge-in.

        Without the echo guard (a headset), a start then needs only
        ``barge_in_min_speech`` seconds of speech (see `VadMachine`).
        """
        return self._machine.answer_playing

    @answer_playing.setter
    def answer_playing(self, value: bool) -> None:
        self._machine.answer_playing = value

    def statistics(self) -> VadStatistics:
        """A snapshot of the stage's counters."""
        backend = self.backend
        rate = 16000 if isinstance(backend, str) else backend.rate
        return VadStatistics(
            backend=backend if isinstance(backend, str) else backend.name,
            frames=self._frames,
            audio_seconds=self._samples / rate,
            speech_segments=self._segments,
            bad_parts=self._bad_parts,
            speaking=self._machine.speaking,
        )

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        """Pass ``inbox`` to ``outbox`` with speech events after the audio that caused them.

        When the input ends during speech, an end of speech is sent last.
        Closes both channels. Cancellation leaves the machine where it was.

        Raises:
            SpeechError: if the back end cannot load or fails.
        """
        with inbox, outbox:
            backend = self.backend
            if isinstance(backend, str):
                backend = self.backend = make_backend(backend)
            self._rechunker = Rechunker(backend.frame_samples)
            async for part in inbox:
                if not is_audio(part) or part.substream:
                    await outbox.send(part)
                    continue
                try:
                    pcm, rate = part_pcm(part)
                except AudioFormatError as error:
                    self._bad_parts += 1
                    await outbox.send(error_part(error))
                    continue
                await outbox.send(part)
                if rate != backend.rate:
                    pcm = resample(pcm, rate, backend.rate)
                for event in await self._analyse(backend, pcm):
                    await self._send_event(event, outbox)
            for event in self._machine.finish(self._samples / backend.rate):
                await self._send_event(event, outbox)

    async def _analyse(self, backend: VadBackend, pcm: bytes) -> list[SpeechEvent]:
        assert self._rechunker is not None
        events: list[SpeechEvent] = []
        rate = backend.rate
        size = backend.frame_samples
        push = self._machine.push
        for index, frame in enumerate(self._rechunker.feed(pcm)):
            if index and index % _FRAMES_PER_CHECKPOINT == 0:
                await trio.lowlevel.checkpoint()
            start = self._samples
            self._samples += size
            self._frames += 1
            # The level lets the echo guard tell the user from the echo.
            probability = backend.probability(frame)
            events.extend(push(probability, start / rate, self._samples / rate, rms(frame)))
        return events

    async def _send_event(self, event: SpeechEvent, outbox: trio.MemorySendChannel[Part]) -> None:
        if event.kind == "start":
            self._segments += 1
        await outbox.send(speech_event_part(event))
