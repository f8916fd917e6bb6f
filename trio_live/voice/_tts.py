"""Text to speech with espeak-ng, sentence by sentence (the first piece early).

`EspeakTts` is a stage for a session's output side. Two tasks share it:

* the reader takes parts from the inbox. Model text passes through at once
  (a terminal shows it as it streams) and is cut into sentences, which go on
  a queue as soon as each is complete. The start of each answer
  does not wait for its first full sentence: its first clause (ended by a
  comma, a semicolon, a colon or a dash) or its first ``first_words`` words
  go at once, so the reply starts sounding a few tokens after the model
  starts. Turn markers go on the queue
  too, so a turn's ``answer_complete`` (which flushes its last sentence) and
  ``turn_complete`` come out after the turn's audio. Other
  parts (status, user text, audio) pass through at once.
* the speaker takes sentences off the queue and runs espeak-ng on each (a
  new process per sentence, about 15 ms here), reads the PCM from its WAV
  output, resamples it and sends it as audio parts.

On the interrupted marker the reader bumps an epoch and cancels the running
espeak-ng; the speaker drops every queued sentence from an older epoch, so
nothing more of the cut turn is spoken, and the marker itself follows the
audio already sent.

The reader never waits for the speaker: the queue between them has no bound.
A marker arrives behind the text sent before it, so a reader that waited for
room in the queue (a long answer, a slow synthesis under load) left the
marker unread in the inbox while the speaker went on speaking the cut turn
(``benchmarks/tts_inbox.py`` measured up to 0.5 s and 77 chunks). What the
queue holds is the answer's text, which the session holds in its history
anyway; the model's own limits bound it.

Alignment: each audio part carries ``turn`` and ``spoken_chars``, the number
of characters of that turn's model text spoken once the part has played.
Inside a sentence the count grows with the audio, rounded down to the end of
the last whole word, so a player that reports how far it got never claims a
word the listener did not hear.
"""

from __future__ import annotations

import math
import re
import shutil
from typing import Final

import attrs
import trio

from .._errors import AudioFormatError, SpeechError
from .._parts import (
    Part,
    audio_part,
    error_part,
    is_answer_complete,
    is_interrupted,
    is_reserved,
    is_text,
    is_turn_complete,
)
from ._audio import DEFAULT_RATE, check_rate, parse_wav, resample

# A sentence ends at . ! ? (with closing quotes or brackets) before white
# space, or at a line break.
_SENTENCE_END: Final = re.compile(r"[.!?]+[\"')\]]*\s+|\n+")
# A whole word: followed by white space.
_WORD: Final = re.compile(r"(\S+)\s+")
_CLAUSE_END: Final = (",", ";", ":", "-", "\u2013", "\u2014")
# A clause must hold this many words to be spoken on its own.
_CLAUSE_WORDS: Final = 2


@attrs.frozen(kw_only=True)
class _Sentence:
    turn: int | None
    text: str
    start: int  # characters of the turn's text before this sentence
    epoch: int


@attrs.frozen(kw_only=True)
class TtsStatistics:
    """What an `EspeakTts` stage has done.

    Attributes:
        sentences: sentences spoken to the end.
        dropped: sentences dropped or cut short by an interruption.
        audio_seconds: seconds of audio produced.
        failures: sentences espeak-ng failed on (reported as error parts).
    """

    sentences: int
    dropped: int
    audio_seconds: float
    failures: int


def split_sentences(text: str) -> tuple[list[str], str]:
    """Cut ``text`` into complete sentences (each with its trailing space) and the rest."""
    sentences = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            sentences.append(text[start : match.end()])
            start = match.end()
    return sentences, text[start:]


def first_piece(text: str, words: int) -> int:
    """Where the start of an answer may be cut off to be spoken early.

    Args:
        text: the start of the answer, before its first sentence ends.
        words: cut after this many whole words if no clause ended before.

    Returns:
        The length of the piece: up to the white space after the first
        clause of at least two words (ended by ``,`` ``;`` ``:`` or a dash)
        or after ``words`` whole words; 0 if neither is there yet (or
        ``words`` is 0).
    """
    if words <= 0:
        return 0
    for count, match in enumerate(_WORD.finditer(text), start=1):
        clause = match.group(1).rstrip("\"')]").endswith(_CLAUSE_END)
        if (clause and count >= _CLAUSE_WORDS) or count >= words:
            return match.end()
    return 0


def _spoken_chars(sentence: _Sentence, fraction: float) -> int:
    # Characters of the turn spoken after ``fraction`` of the sentence played,
    # rounded down to the end of the last whole word.
    text = sentence.text
    if fraction >= 1.0:
        return sentence.start + len(text)
    position = int(len(text) * fraction)
    space = text.rfind(" ", 0, position + 1)
    return sentence.start + (space + 1 if space >= 0 else 0)


def _is_speakable(part: Part) -> bool:
    return part.role == "model" and is_text(part) and not part.substream and not is_reserved(part)


@attrs.define(eq=False)
class EspeakTts:
    """Speaks the model's text with espeak-ng.

    Args:
        voice: the espeak-ng voice (``espeak-ng --voices`` lists them).
        words_per_minute: the speaking speed.
        rate: the sample rate of the audio parts sent.
        chunk_duration: seconds of audio per part.
        executable: the espeak-ng program.
        first_words: the start of each answer is spoken without waiting for
            its first sentence to end: as soon as a clause of two words or
            more ends (``,`` ``;`` ``:`` or a dash), or once this many words
            arrived. 0 waits for the first full sentence.
    """

    voice: str = "en-us"
    words_per_minute: int = attrs.field(default=175, validator=attrs.validators.in_(range(80, 451)))
    rate: int = attrs.field(default=DEFAULT_RATE)
    chunk_duration: float = attrs.field(default=0.2, validator=attrs.validators.gt(0.0))
    executable: str = "espeak-ng"
    first_words: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    _epoch: int = attrs.field(init=False, default=0)
    _speaking: trio.CancelScope | None = attrs.field(init=False, default=None)
    _sentences: int = attrs.field(init=False, default=0)
    _dropped: int = attrs.field(init=False, default=0)
    _samples: int = attrs.field(init=False, default=0)
    _failures: int = attrs.field(init=False, default=0)

    @rate.validator
    def _check_rate(self, attribute: attrs.Attribute[int], value: int) -> None:
        try:
            check_rate(value)
        except AudioFormatError as error:
            raise ValueError(str(error)) from None

    def statistics(self) -> TtsStatistics:
        """A snapshot of the stage's counters."""
        return TtsStatistics(
            sentences=self._sentences,
            dropped=self._dropped,
            audio_seconds=self._samples / self.rate,
            failures=self._failures,
        )

    async def synthesize(self, text: str) -> bytes:
        """Speak ``text``: PCM16 at `rate`.

        Cancellation kills the espeak-ng process.

        Raises:
            SpeechError: if espeak-ng is missing or fails.
        """
        command = [self.executable, "--stdout", "-v", self.voice, "-s", str(self.words_per_minute)]
        try:
            result = await trio.run_process(
                command,
                stdin=text.encode(),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        except OSError as error:
            raise SpeechError(f"cannot run {self.executable}: {error}") from error
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip()[:200]
            raise SpeechError(f"{self.executable} exited with {result.returncode}: {message}")
        try:
            pcm, rate = parse_wav(result.stdout)
        except AudioFormatError as error:
            raise SpeechError(f"{self.executable} wrote unexpected audio: {error}") from error
        return resample(pcm, rate, self.rate)

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        """Pass ``inbox`` to ``outbox`` with the model's text spoken as audio parts.

        Returns when the inbox has ended and every queued sentence is spoken;
        closes both channels. Cancellation kills a running espeak-ng.

        Raises:
            SpeechError: if espeak-ng is not installed.
        """
        with inbox, outbox:
            if shutil.which(self.executable) is None:
                raise SpeechError(f"{self.executable} not found; install the espeak-ng package")
            await self._read_and_speak(inbox, outbox)

    async def _read_and_speak(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        # Unbounded: the reader must never wait for the speaker (see the
        # module docstring).
        send_queue, receive_queue = trio.open_memory_channel[_Sentence | Part](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._speak, receive_queue, outbox)
            with send_queue:
                await self._read(inbox, send_queue, outbox)

    async def _read(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        queue: trio.MemorySendChannel[_Sentence | Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        turn: int | None = None
        pending = ""  # text of the turn not yet cut into sentences
        consumed = 0  # characters of the turn already queued as sentences

        async def queue_sentences(final: bool) -> None:
            nonlocal pending, consumed
            sentences, rest = split_sentences(pending)
            if not consumed and not sentences and not final:
                cut = first_piece(rest, self.first_words)
                if cut:
                    sentences, rest = [rest[:cut]], rest[cut:]
            if final and rest.strip():
                sentences.append(rest)
                rest = ""
            elif final:
                rest = ""
            pending = rest
            for text in sentences:
                sentence = _Sentence(turn=turn, text=text, start=consumed, epoch=self._epoch)
                consumed += len(text)
                if text.strip():
                    await queue.send(sentence)

        async for part in inbox:
            if _is_speakable(part):
                part_turn = part.metadata.get("turn")
                if part_turn != turn:
                    await queue_sentences(final=True)
                    turn, pending, consumed = part_turn, "", 0
                await outbox.send(part)
                pending += part.text
                await queue_sentences(final=False)
            elif is_interrupted(part):
                self._epoch += 1
                if self._speaking is not None:
                    self._speaking.cancel()
                if pending.strip():
                    self._dropped += 1
                pending = ""
                await queue.send(part)
            elif is_answer_complete(part) or is_turn_complete(part):
                # The answer's text is all here: speak its last sentence.
                await queue_sentences(final=True)
                await queue.send(part)
            else:
                await outbox.send(part)
        await queue_sentences(final=True)

    async def _speak(
        self,
        queue: trio.MemoryReceiveChannel[_Sentence | Part],
        outbox: trio.MemorySendChannel[Part],
    ) -> None:
        with queue:
            async for item in queue:
                if isinstance(item, Part):
                    await outbox.send(item)
                elif item.epoch != self._epoch:
                    self._dropped += 1
                else:
                    await self._speak_sentence(item, outbox)

    async def _speak_sentence(
        self, sentence: _Sentence, outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with trio.CancelScope() as scope:
            self._speaking = scope
            try:
                pcm = await self.synthesize(sentence.text)
            except SpeechError as error:
                self._failures += 1
                await outbox.send(error_part(error))
                return
            finally:
                self._speaking = None
            chunk = max(1, round(self.chunk_duration * self.rate)) * 2
            total = len(pcm)
            for offset in range(0, total, chunk):
                if sentence.epoch != self._epoch:
                    break
                piece = pcm[offset : offset + chunk]
                metadata: dict[str, object] = {
                    "spoken_chars": _spoken_chars(sentence, (offset + len(piece)) / total)
                }
                if sentence.turn is not None:
                    metadata["turn"] = sentence.turn
                part = audio_part(piece, rate=self.rate, role="model").with_metadata(**metadata)
                await outbox.send(part)
                self._samples += len(piece) // 2
            else:
                self._sentences += 1
                return
        self._dropped += 1
