"""Speech to text as a stage: transcribe while the user speaks.

`SpeechToText` passes every part through and adds transcription parts:

* At start of speech it opens an utterance (seeded with ``pre_roll`` seconds
  of the audio just before, because the voice activity detector raises the
  event a little after speech began) and buffers audio until end of speech.
* While the user speaks, a worker task recognizes the utterance so far every
  ``partial_every`` seconds of new audio, and emits partial transcriptions.
  A synchronous recognizer runs in a worker thread (an async one in the
  worker task); one stage never runs two recognitions at a time, and a
  partial that would have to wait is merged into the next one.
* When incoming audio turns quiet it recognizes at once, so that at end of
  speech the last result usually covers all the words: the final is then that
  text, with no recognition left to do. Otherwise only the audio since the
  last committed segment is recognized again.
* Speech longer than ``max_segment`` seconds is cut into segments that are
  recognized once and kept (Moonshine returns nothing for clips over about
  8 s). A cut falls in the middle of the longest pause in the second half of
  the segment (or its quietest 20 ms); a recognition made at a pause after
  at least half of ``max_segment`` is kept as a segment as it is. Moonshine
  hears a clip that starts inside a sentence less well, so cuts are only made
  where needed.

Ordering, per utterance: partials come after its start-of-speech and before
its end-of-speech; exactly one final (unless its text is empty, then none)
comes after its end-of-speech and before anything of the next utterance's
transcription. The next utterance's start-of-speech is never held back to wait
for a final: barge-in stays immediate.

Errors: audio that is not PCM16 as declared (or changes rate inside an
utterance) is passed through untouched, left out of the utterance, and reported
as an `error_part` on the status substream. A `LiveError` from the recognizer
is reported the same way; that result is lost and the stage goes on.
"""

from __future__ import annotations

import array
import collections
import inspect
import math
import sys
from collections.abc import Sequence
from typing import cast

import attrs
import trio

from .._errors import AudioFormatError, LiveError
from .._parts import (
    Part,
    audio_rate,
    error_part,
    is_audio,
    is_end_of_speech,
    is_start_of_speech,
    transcription,
)
from ._stt_backends import AsyncRecognizer, Recognizer

_FRAME = 0.02  # seconds, for cut points
_PAUSE = 0.15  # seconds of quiet after speech that start a recognition at once


def _rms(pcm16: bytes) -> float:
    samples = array.array("h", pcm16)
    if sys.byteorder == "big":  # pragma: no cover
        samples.byteswap()
    if not samples:
        return 0.0
    return math.sqrt(sum(x * x for x in samples) / len(samples))


def _cut_point(pcm16: bytes, rate: int, limit: int, search: int) -> int:
    # Where to end a segment: a byte offset in (limit - search, limit], in the
    # middle of the longest pause there (20 ms frames below a tenth of the
    # loudest frame's level), or of the quietest frame if there is no pause.
    frame = max(2, int(rate * _FRAME) * 2)
    ends = list(range(limit, max(frame, limit - search + frame) - 1, -frame))[::-1]
    levels = [_rms(pcm16[end - frame : end]) for end in ends]
    if not levels:
        return limit
    quiet = max(levels) * 0.1
    best: tuple[int, float, int] = (0, -min(levels), 0)  # (run length, -level, index)
    run = 0
    for index, level in enumerate(levels):
        run = run + 1 if level <= quiet else 0
        middle = index - run // 2
        best = max(best, (run, -levels[middle], middle))
    middle_end = ends[best[2]] - frame // 2
    return middle_end - middle_end % 2


def _join(texts: Sequence[str]) -> str:
    return " ".join(text for text in texts if text)


@attrs.define(eq=False)
class _Utterance:
    rate: int | None = None
    #: PCM not yet committed to a segment; ``base`` bytes were dropped before it.
    pcm: bytearray = attrs.field(factory=bytearray)
    base: int = 0
    committed: list[str] = attrs.field(factory=list)
    #: (end offset in bytes from the utterance start, loudness) per audio part.
    levels: list[tuple[int, float]] = attrs.field(factory=list)
    peak: float = 0.0
    #: Offset up to which the last recognition went, and its text.
    covered: int = 0
    text: str = ""
    shown: str = ""
    ended: bool = False
    end_sent: bool = False
    wakeup: trio.Event = attrs.field(factory=trio.Event)

    @property
    def size(self) -> int:
        return self.base + len(self.pcm)

    def add(self, pcm16: bytes, level: float) -> None:
        self.pcm += pcm16
        self.levels.append((self.size, level))
        self.peak = max(self.peak, level)
        self.wakeup.set()

    def quiet_since(self, offset: int, ratio: float) -> bool:
        # All audio after ``offset`` is quiet (and some speech came before).
        if self.peak <= 0.0 or ratio <= 0.0:
            return False
        limit = self.peak * ratio
        for end, level in reversed(self.levels):
            if end <= offset:
                break
            if level > limit:
                return False
        return True


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.define(eq=False)
class SpeechToText:
    """A stage that adds partial and final transcriptions of detected speech.

    Place it after voice activity detection: it needs the start-of-speech and
    end-of-speech events among the audio parts.

    Args:
        recognizer: the back end (see `load_recognizer`). A synchronous
            `Recognizer` runs in a worker thread; an `AsyncRecognizer` (such
            as `HttpRecognizer`) is awaited in the stage's task.
        partial_every: seconds of new speech between two partial
            transcriptions; ``math.inf`` for finals only.
        max_segment: the longest clip, in seconds, given to the recognizer at
            once (at most 7 for Moonshine).
        pre_roll: seconds of audio before start-of-speech to include.
        quiet_ratio: audio below this fraction of the utterance's loudest part
            counts as a pause (recognized at once; a final may reuse it);
            0 turns pauses off.
        role: the role of the transcription parts.
    """

    recognizer: Recognizer | AsyncRecognizer
    partial_every: float = attrs.field(default=1.0, kw_only=True, validator=_positive)
    max_segment: float = attrs.field(default=7.0, kw_only=True, validator=_positive)
    pre_roll: float = attrs.field(default=0.5, kw_only=True, validator=_non_negative)
    quiet_ratio: float = attrs.field(default=0.05, kw_only=True, validator=_non_negative)
    role: str = attrs.field(default="user", kw_only=True)
    _is_async: bool = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._is_async = inspect.iscoroutinefunction(self.recognizer.transcribe)

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        """Pass ``inbox`` to ``outbox`` with transcriptions added; close both.

        An utterance still open when ``inbox`` ends is transcribed as if its
        speech had ended. Cancellation drops pending transcriptions; a
        recognition already running in its thread finishes there, unused.
        """
        with inbox, outbox:
            send_utterances, receive_utterances = trio.open_memory_channel[_Utterance](16)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._transcribe_all, receive_utterances, outbox)
                with send_utterances:
                    await self._read(inbox, outbox, send_utterances)

    async def _read(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
        utterances: trio.MemorySendChannel[_Utterance],
    ) -> None:
        current: _Utterance | None = None
        recent: collections.deque[tuple[int, bytes, float]] = collections.deque()
        recent_bytes = 0
        try:
            async for part in inbox:
                if is_audio(part):
                    await outbox.send(part)
                    try:
                        rate = audio_rate(part)
                        pcm16 = part.data
                        if len(pcm16) & 1:
                            raise AudioFormatError(
                                f"PCM16 audio needs an even number of bytes, got {len(pcm16)}"
                            )
                        if current is not None and current.rate not in (None, rate):
                            raise AudioFormatError(
                                f"audio rate changed from {current.rate} to {rate} Hz in speech"
                            )
                    except AudioFormatError as error:
                        await outbox.send(error_part(error))
                        continue
                    level = _rms(pcm16)
                    if current is not None:
                        current.rate = rate
                        current.add(pcm16, level)
                        continue
                    # Keep the last ``pre_roll`` seconds for the next utterance.
                    recent.append((rate, pcm16, level))
                    recent_bytes += len(pcm16)
                    while recent and recent_bytes - len(recent[0][1]) >= self.pre_roll * rate * 2:
                        recent_bytes -= len(recent.popleft()[1])
                elif is_start_of_speech(part):
                    if current is not None:
                        current.ended = current.end_sent = True
                        current.wakeup.set()
                    current = _Utterance()
                    for rate, pcm16, level in recent:
                        if current.rate in (None, rate):
                            current.rate = rate
                            current.add(pcm16, level)
                    recent.clear()
                    recent_bytes = 0
                    await utterances.send(current)
                    await outbox.send(part)
                elif is_end_of_speech(part) and current is not None:
                    current.ended = True
                    await outbox.send(part)
                    current.end_sent = True
                    current.wakeup.set()
                    current = None
                else:
                    await outbox.send(part)
        finally:
            if current is not None:
                current.ended = current.end_sent = True
                current.wakeup.set()

    async def _transcribe_all(
        self,
        utterances: trio.MemoryReceiveChannel[_Utterance],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        with utterances:
            async for utterance in utterances:
                await self._transcribe(utterance, outbox)

    async def _transcribe(
        self, utterance: _Utterance, outbox: trio.MemorySendChannel[Part]
    ) -> None:
        while True:
            rate = utterance.rate or 16000
            new = utterance.size - utterance.covered
            if utterance.end_sent:
                if new > 0 and not utterance.quiet_since(utterance.covered, self.quiet_ratio):
                    await self._recognize(utterance, outbox)
                text = _join([*utterance.committed, utterance.text])
                if text:
                    await outbox.send(transcription(text, final=True, role=self.role))
                return
            pause = utterance.levels and utterance.quiet_since(
                utterance.size - int(_PAUSE * rate) * 2, self.quiet_ratio
            )
            due = new >= self.partial_every * rate * 2 or (
                pause and not utterance.quiet_since(utterance.covered, self.quiet_ratio)
            )
            if not due:
                utterance.wakeup = trio.Event()
                await utterance.wakeup.wait()
                continue
            await self._recognize(utterance, outbox)
            shown = _join([*utterance.committed, utterance.text])
            if shown and shown != utterance.shown and not utterance.ended:
                utterance.shown = shown
                await outbox.send(transcription(shown, final=False, role=self.role))

    async def _recognize(self, utterance: _Utterance, outbox: trio.MemorySendChannel[Part]) -> None:
        # Recognize the uncommitted audio; commit whole segments while it is
        # longer than max_segment.
        rate = utterance.rate or 16000
        pcm16 = bytes(utterance.pcm)
        end = utterance.size
        max_bytes = int(self.max_segment * rate) * 2
        search = max_bytes // 2
        try:
            while len(pcm16) > max_bytes:
                cut = _cut_point(pcm16[:max_bytes], rate, max_bytes, search)
                text = await self._call(pcm16[:cut], rate)
                utterance.committed.append(text)
                del utterance.pcm[:cut]
                utterance.base += cut
                pcm16 = pcm16[cut:]
            pause = utterance.quiet_since(end - int(_PAUSE * rate) * 2, self.quiet_ratio)
            text = await self._call(pcm16, rate) if pcm16 else ""
            if pause and len(pcm16) >= max_bytes // 2:
                # A long stretch that ends in a pause is a segment already.
                utterance.committed.append(text)
                del utterance.pcm[: len(pcm16)]
                utterance.base += len(pcm16)
                text = ""
            utterance.text = text
        except LiveError as error:
            utterance.text = ""
            await outbox.send(error_part(error))
        finally:
            utterance.covered = end

    async def _call(self, pcm16: bytes, rate: int) -> str:
        recognizer = self.recognizer
        if self._is_async:
            return await cast("AsyncRecognizer", recognizer).transcribe(pcm16, rate)
        return await trio.to_thread.run_sync(
            cast("Recognizer", recognizer).transcribe, pcm16, rate, abandon_on_cancel=True
        )
