"""Speech to text as a stage: transcribe while the user speaks.

`SpeechToText` passes every part through and adds transcription parts:

* At start of speech it opens an utterance (seeded with ``pre_roll`` seconds
  of the audio just before, because the voice activity detector raises the
  event a little after speech began, or from the event's ``at`` stream time
  if that is earlier, up to 2 s before; exactly from ``at`` when the event
  says ``echo_before``: the audio before it is the model's echo) and buffers
  audio until end of speech. Stream time counts the seconds of audio seen, as `VadStage` does.
* While the user speaks, a worker task recognizes the utterance so far every
  ``partial_every`` seconds of new audio, and emits partial transcriptions.
  A synchronous recognizer runs in a worker thread (an async one in a task);
  one recognizer never runs two recognitions at a time, and a partial that
  would have to wait is merged into the next one.
* When incoming audio has been quiet for ``pause`` seconds it recognizes at
  once, so that at end of speech (which the voice activity detector raises
  only after a longer silence) the last result usually covers all the words:
  the final is then that text, with no recognition left to do. Otherwise only
  the audio since the last committed segment is recognized again.
* With a ``final_recognizer`` (a second instance of the back end), the
  recognitions the final depends on (at a pause, at end of speech) start at
  once on whichever recognizer is free, the second one first, instead of
  waiting for a partial still running; partials stay on the first one. A
  result is kept only if no later recognition finished before it; a partial
  still running when the final is sent is abandoned.
* Speech longer than ``max_segment`` seconds is cut into segments that are
  recognized once and kept (Moonshine returns nothing for clips over about
  8 s). A cut falls in the middle of the longest pause in the second half of
  the segment (or its quietest 20 ms); a recognition of at least half of
  ``max_segment`` that ends in a pause (quiet just before its end, or just
  after it once that audio arrives) is kept as a segment as it is. Moonshine
  hears a clip that starts inside a sentence less well, so cuts are only made
  where needed.

Each final transcription says where its speech lies in the audio that went
through before it: its ``speech_before`` metadata is ``(start, end)``, the
seconds of audio back from the final to the utterance's first sample (the
pre-roll included) and to its end of speech. A model that hears audio sends
that stretch only, without the silences (see `trio_live.models`).

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

from .._checks import non_negative, positive
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
_LOOK_BACK = 2.0  # seconds before start-of-speech its ``at`` may reach back to


#: Metadata of a final transcription: ``(start, end)``, how many seconds of the
#: audio that went through before it the speech starts (its pre-roll
#: included) and ends. A model that hears audio uses it to send speech only.
SPEECH_KEY = "speech_before"


def _seconds(part: Part) -> float:
    try:
        return len(part.data) // 2 / audio_rate(part)
    except AudioFormatError:
        return 0.0


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
    #: Stream times of the speech: its first sample (pre-roll included) and its end.
    begin: float = 0.0
    end: float | None = None
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
        return self.quiet_between(offset, self.size, ratio)

    def quiet_between(self, begin: int, end: int, ratio: float) -> bool:
        # The audio from ``begin`` to ``end`` has arrived and is all quiet.
        if self.peak <= 0.0 or ratio <= 0.0 or end > self.size:
            return False
        limit = self.peak * ratio
        for part_end, level in reversed(self.levels):
            if part_end <= begin:
                break
            if part_end <= end and level > limit:
                return False
        return True


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
        pre_roll: seconds of audio before start-of-speech to include (more
            if the event's ``at`` metadata says speech began earlier, up to
            2 s).
        quiet_ratio: audio below this fraction of the utterance's loudest part
            counts as quiet; 0 turns pauses off.
        pause: seconds of quiet audio that make a pause: the speech so far
            is recognized at once, and the final reuses that result if
            nothing but quiet audio followed. Keep it below the voice
            activity detector's ``silence_to_end``.
        final_recognizer: an optional second recognizer (another instance,
            so that both can run at once on two cores) for pauses and end of
            speech, so the final never waits for a partial in flight. It
            costs a second model in memory (about 320 MB for Moonshine).
        role: the role of the transcription parts.
    """

    recognizer: Recognizer | AsyncRecognizer
    partial_every: float = attrs.field(default=1.0, kw_only=True, validator=positive)
    max_segment: float = attrs.field(default=7.0, kw_only=True, validator=positive)
    pre_roll: float = attrs.field(default=0.5, kw_only=True, validator=non_negative)
    quiet_ratio: float = attrs.field(default=0.05, kw_only=True, validator=non_negative)
    pause: float = attrs.field(default=0.1, kw_only=True, validator=positive)
    final_recognizer: Recognizer | AsyncRecognizer | None = attrs.field(default=None, kw_only=True)
    role: str = attrs.field(default="user", kw_only=True)
    # Stream time of the audio sent on so far (counted before each send).
    _passed: float = attrs.field(init=False, default=0.0, repr=False)
    _lanes: list[tuple[Recognizer | AsyncRecognizer, bool]] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        recognizers = [self.recognizer]
        if self.final_recognizer is not None:
            recognizers.append(self.final_recognizer)
        self._lanes = [(r, inspect.iscoroutinefunction(r.transcribe)) for r in recognizers]

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
        self._passed = 0.0
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
        # Audio heard outside speech: (rate, pcm, level, stream time at its end).
        recent: collections.deque[tuple[int, bytes, float, float]] = collections.deque()
        position = 0.0  # stream time: seconds of audio seen
        keep = max(self.pre_roll, _LOOK_BACK)
        try:
            async for part in inbox:
                if is_audio(part):
                    self._passed += _seconds(part)
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
                    position += len(pcm16) / 2 / rate
                    if current is not None:
                        current.rate = rate
                        current.add(pcm16, level)
                        continue
                    # Keep the last seconds for the next utterance's pre-roll.
                    recent.append((rate, pcm16, level, position))
                    while recent and recent[0][3] <= position - keep:
                        recent.popleft()
                elif is_start_of_speech(part):
                    if current is not None:
                        current.ended = current.end_sent = True
                        current.wakeup.set()
                    current = _Utterance()
                    begin = position - self.pre_roll
                    at = part.metadata.get("at")
                    if isinstance(at, int | float) and (
                        at < begin or part.metadata.get("echo_before")
                    ):
                        # Before a start decided under the echo guard is the
                        # model's echo: the utterance starts at ``at``, no earlier.
                        begin = max(at, position - keep)
                    current.begin = position
                    for rate, pcm16, level, end in recent:
                        if end > begin + 1e-9 and current.rate in (None, rate):
                            current.rate = rate
                            current.add(pcm16, level)
                            current.begin = min(current.begin, end - len(pcm16) / 2 / rate)
                    recent.clear()
                    await utterances.send(current)
                    await outbox.send(part)
                elif is_end_of_speech(part) and current is not None:
                    current.ended = True
                    at = part.metadata.get("at")
                    ends = isinstance(at, int | float) and current.begin < at < position
                    current.end = float(at) if ends and at is not None else position
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
        # Starts recognitions (at most one per lane) and sends the final.
        # Lane 0 takes partials; a pause or end of speech takes any free lane,
        # the last one first (the final recognizer, when there is one).
        running: dict[int, int] = {}  # lane -> end offset of its recognition
        last_lane = len(self._lanes) - 1

        def covers(offset: int) -> bool:
            # Nothing but quiet audio came after ``offset``.
            return offset >= utterance.size or utterance.quiet_since(offset, self.quiet_ratio)

        def free_lane() -> int | None:
            lanes = [lane for lane in range(last_lane, -1, -1) if lane not in running]
            return lanes[0] if lanes else None

        async with trio.open_nursery() as nursery:
            while True:
                rate = utterance.rate or 16000
                lane: int | None = None
                in_flight = any(covers(end) for end in running.values())
                if utterance.end_sent:
                    if covers(utterance.covered):
                        text = _join([*utterance.committed, utterance.text])
                        if text:
                            await outbox.send(self._final(text, utterance))
                        # A partial still running is of no use any more.
                        nursery.cancel_scope.cancel()
                        return
                    if not in_flight:
                        lane = free_lane()
                else:
                    pause_bytes = int(self.pause * rate) * 2
                    pause = bool(utterance.levels) and utterance.quiet_since(
                        utterance.size - pause_bytes, self.quiet_ratio
                    )
                    newest = max([utterance.covered, *running.values()])
                    if pause and not covers(utterance.covered) and not in_flight:
                        lane = free_lane()
                    elif 0 not in running and (
                        utterance.size - newest >= self.partial_every * rate * 2
                    ):
                        lane = 0
                if lane is None:
                    utterance.wakeup = trio.Event()
                    await utterance.wakeup.wait()
                    continue
                running[lane] = utterance.size
                nursery.start_soon(self._recognize, lane, utterance, running, outbox)

    async def _recognize(
        self,
        lane: int,
        utterance: _Utterance,
        running: dict[int, int],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        # Recognize the uncommitted audio as it is now, cutting whole segments
        # off while it is longer than max_segment. The result is kept only if
        # no other recognition got further (or committed segments) meanwhile.
        rate = utterance.rate or 16000
        base = utterance.base
        pcm16 = bytes(utterance.pcm)
        end = utterance.size
        max_bytes = int(self.max_segment * rate) * 2
        committed: list[str] = []
        cut_total = 0
        text = ""
        failure: LiveError | None = None
        try:
            while len(pcm16) > max_bytes:
                cut = _cut_point(pcm16[:max_bytes], rate, max_bytes, max_bytes // 2)
                committed.append(await self._call(lane, pcm16[:cut], rate))
                cut_total += cut
                pcm16 = pcm16[cut:]
            text = await self._call(lane, pcm16, rate) if pcm16 else ""
            # A long stretch that ends in a pause (heard before or after it)
            # is a segment already.
            pause_bytes = int(self.pause * rate) * 2
            pause = utterance.quiet_between(
                end - pause_bytes, end, self.quiet_ratio
            ) or utterance.quiet_between(end, end + pause_bytes, self.quiet_ratio)
            if pause and len(pcm16) >= max_bytes // 2:
                committed.append(text)
                cut_total += len(pcm16)
                text = ""
        except LiveError as error:
            failure = error
            committed, cut_total, text = [], 0, ""
        finally:
            del running[lane]
            utterance.wakeup.set()
        if utterance.base == base and end > utterance.covered:
            utterance.committed.extend(committed)
            del utterance.pcm[:cut_total]
            utterance.base += cut_total
            utterance.text = text
            utterance.covered = end
            shown = _join([*utterance.committed, utterance.text])
            if failure is None and shown and shown != utterance.shown and not utterance.ended:
                utterance.shown = shown
                await outbox.send(transcription(shown, final=False, role=self.role))
        if failure is not None:
            await outbox.send(error_part(failure))

    def _final(self, text: str, utterance: _Utterance) -> Part:
        # Where the speech lies in the audio sent before this part: seconds
        # back from here to its start and to its end (see `SPEECH_KEY`).
        end = utterance.end if utterance.end is not None else self._passed
        back = (round(self._passed - utterance.begin, 4), round(max(0.0, self._passed - end), 4))
        return transcription(text, final=True, role=self.role).with_metadata(**{SPEECH_KEY: back})

    async def _call(self, lane: int, pcm16: bytes, rate: int) -> str:
        recognizer, is_async = self._lanes[lane]
        if is_async:
            return await cast("AsyncRecognizer", recognizer).transcribe(pcm16, rate)
        return await trio.to_thread.run_sync(
            cast("Recognizer", recognizer).transcribe, pcm16, rate, abandon_on_cancel=True
        )
