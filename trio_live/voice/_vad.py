"""Voice activity detection: the decision machine, pure.

Frames go in, each with the speech probability a back end gave it and its
place in the stream (start and end, in seconds of audio since the stream
began); start-of-speech and end-of-speech events come out. The machine never
reads a clock, never awaits and never imports trio, so the same audio gives
the same events on the mock clock and in real time.

States::

    SILENCE --p >= threshold--> ONSET --speech >= min_speech--> SPEECH
       ^                          |                               |
       +------p < low threshold---+                        p < low threshold
       |                                                          v
       +------------silence >= silence_to_end---------------- TRAILING
                                                       (p >= threshold: SPEECH)

Invariants:

* Events alternate, starting with a start: never two starts in a row.
* A start is emitted only after ``min_speech`` seconds of frames at or above
  the threshold (a cough or a click does not barge in); a frame below the
  low threshold during the onset throws the onset away.
* An end is emitted only after ``silence_to_end`` seconds below the low
  threshold; frames between the two thresholds keep the current state.
* ``at`` (where speech starts or ends, widened by ``padding`` and kept inside
  the audio heard so far) is never after ``detected_at`` (the end of the frame
  that made the decision); both are stream times.
* While ``model_speaking`` is set (the echo guard), the model's own voice
  from the speakers must not barge in. A speech detector hears that echo as
  speech however quiet it is (Silero gives a -12 dB echo 0.99), so when the
  frames' levels are known (`push` with ``level``; `VadStage` always gives
  them) the guard compares loudness: the echo is what the microphone hears
  under the guard, and a start needs ``echo_min_loud`` seconds of frames at
  or above the echo threshold *and* ``echo_margin`` times louder than the
  loudest echo frame of the last ``echo_window`` seconds, within
  ``echo_onset_window`` seconds of the first. For the first ``echo_settle``
  seconds of the guard nothing starts (the echo is on its way; it is being
  measured). Without levels, or when the guard heard no sound to compare
  with, the strict rule applies: ``echo_min_speech`` seconds of frames at or
  above the echo threshold.
* While ``answer_playing`` is set and the guard is not (a headset: the
  answer plays, the microphone cannot hear it), a start is a barge-in and
  needs only ``barge_in_min_speech`` seconds of speech frames: the user is
  heard sooner over the answer. Noise the detector does not take for speech
  (a click, a noise burst) still never starts; a cough that it does, the
  session's minimum-interruption rules dismiss.
* Under the guard a start's ``at`` reaches back (at most ``echo_lookback``
  seconds) to where the sound began by the ordinary thresholds, so that
  speech to text hears the user's first words too.
"""

from __future__ import annotations

import collections
import enum
from typing import Final, Literal

import attrs

from .._checks import finite_non_negative


def _check_fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class VadConfig:
    """The tunables of voice activity detection.

    Attributes:
        threshold: a frame with a probability at or above this is speech.
        hysteresis: speech ends only below ``threshold - hysteresis``.
        min_speech: seconds of speech frames before a start is emitted.
        silence_to_end: seconds of silence before an end is emitted.
        padding: seconds added before a start and after an end (``at``).
        barge_in_min_speech: the minimum speech while an answer plays
            without the echo guard (``answer_playing``, a headset).
        echo_threshold: the threshold while the model is speaking.
        echo_min_speech: the minimum speech while the model is speaking.
        echo_lookback: while the model is speaking, the most seconds a
            start's ``at`` reaches back before the frames that passed the
            echo threshold, to where the sound began by the ordinary
            thresholds (the user's first words, often quieter).
        echo_margin: with frame levels, how many times louder than the echo
            a frame must be to count towards a start under the guard.
        echo_min_loud: with frame levels, seconds of such loud frames
            before a start under the guard.
        echo_onset_window: with frame levels, the loud frames must come
            within this many seconds of the first (else it was the echo).
        echo_window: with frame levels, the seconds of echo whose loudest
            frame is the echo's level.
        echo_settle: with frame levels, the seconds at the start of the
            guard in which nothing starts (the echo arrives and is measured).
    """

    threshold: float = attrs.field(default=0.5, validator=_check_fraction)
    hysteresis: float = attrs.field(default=0.15, validator=finite_non_negative)
    min_speech: float = attrs.field(default=0.2, validator=finite_non_negative)
    silence_to_end: float = attrs.field(default=0.3, validator=finite_non_negative)
    padding: float = attrs.field(default=0.1, validator=finite_non_negative)
    barge_in_min_speech: float = attrs.field(default=0.1, validator=finite_non_negative)
    echo_threshold: float = attrs.field(default=0.85, validator=_check_fraction)
    echo_min_speech: float = attrs.field(default=0.5, validator=finite_non_negative)
    echo_lookback: float = attrs.field(default=0.15, validator=finite_non_negative)
    echo_margin: float = attrs.field(default=1.5, validator=finite_non_negative)
    echo_min_loud: float = attrs.field(default=0.06, validator=finite_non_negative)
    echo_onset_window: float = attrs.field(default=0.3, validator=finite_non_negative)
    echo_window: float = attrs.field(default=2.0, validator=finite_non_negative)
    echo_settle: float = attrs.field(default=0.4, validator=finite_non_negative)


@attrs.frozen(kw_only=True)
class SpeechEvent:
    """A start or an end of speech.

    Attributes:
        kind: ``"start"`` or ``"end"``.
        at: where speech starts or ends in the stream (seconds, padded).
        detected_at: the stream time at which the machine decided.
        guarded: a start decided by loudness under the echo guard: the
            audio before ``at`` is the model's echo (speech to text leaves
            it out).
    """

    kind: Literal["start", "end"]
    at: float
    detected_at: float
    guarded: bool = False


class VadState(enum.Enum):
    """Where the machine is."""

    SILENCE = "silence"
    ONSET = "onset"
    SPEECH = "speech"
    TRAILING = "trailing"


_NO_EVENTS: Final[list[SpeechEvent]] = []


@attrs.define(eq=False)
class VadMachine:
    """Turns per-frame speech probabilities into speech events.

    Args:
        config: the tunables.

    Attributes:
        model_speaking: set while the model's voice plays (the echo guard).
        answer_playing: set while an answer plays (a start is a barge-in).
    """

    config: VadConfig = attrs.field(factory=VadConfig)
    _model_speaking: bool = attrs.field(default=False, alias="model_speaking")
    answer_playing: bool = attrs.field(default=False, kw_only=True)
    _state: VadState = attrs.field(init=False, default=VadState.SILENCE)
    _now: float = attrs.field(init=False, default=0.0)
    _onset_at: float = attrs.field(init=False, default=0.0)
    _onset_speech: float = attrs.field(init=False, default=0.0)
    _silence_at: float = attrs.field(init=False, default=0.0)
    _last_end: float = attrs.field(init=False, default=0.0)
    # Where sound began by the ordinary thresholds (None: silence), and where
    # it last went quiet (None: not quiet); used for ``at`` under the echo guard.
    _sound_at: float | None = attrs.field(init=False, default=None)
    _sound_quiet_at: float | None = attrs.field(init=False, default=None)
    # The echo guard with levels: when it came on (None: at the next frame),
    # the (end, level) of the sound frames heard under it, the frames of the
    # onset in progress (echo, should it fail), and whether the onset in
    # progress is judged by loudness.
    _guard_since: float | None = attrs.field(init=False, default=None)
    _echo: collections.deque[tuple[float, float]] = attrs.field(
        init=False, factory=collections.deque
    )
    _pending: list[tuple[float, float]] = attrs.field(init=False, factory=list)
    _loud_onset: bool = attrs.field(init=False, default=False)

    @property
    def model_speaking(self) -> bool:
        """The echo guard: set while the model's voice plays."""
        return self._model_speaking

    @model_speaking.setter
    def model_speaking(self, value: bool) -> None:
        if value and not self._model_speaking:
            self._guard_since = None
            self._echo.clear()
        if not value:
            self._loud_onset = False
            self._pending = []
        self._model_speaking = value

    @property
    def state(self) -> VadState:
        """The current state."""
        return self._state

    @property
    def speaking(self) -> bool:
        """True between a start and its end."""
        return self._state in (VadState.SPEECH, VadState.TRAILING)

    @property
    def now(self) -> float:
        """The stream time of the end of the last frame."""
        return self._now

    def push(
        self, probability: float, start: float, end: float, level: float | None = None
    ) -> list[SpeechEvent]:
        """Feed one frame; return the events it causes (none, or one).

        Args:
            probability: the back end's speech probability for the frame.
            start: the frame's start in the stream, in seconds.
            end: the frame's end in the stream, in seconds.
            level: the frame's loudness (RMS, any scale used throughout), if
                known: under the echo guard it tells the user from the echo.

        Raises:
            ValueError: for a probability outside [0, 1], a frame that ends
                before it starts, or one that starts before the last ended
                (the machine is unchanged).
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability!r}")
        if not start <= end:
            raise ValueError(f"frame must not end before it starts, got {start!r} to {end!r}")
        if start < self._now - 1e-9:
            raise ValueError(f"frames must come in stream order, got {start!r} after {self._now!r}")
        if level is not None and not level >= 0.0:
            raise ValueError(f"level must be a non-negative number, got {level!r}")
        self._now = end
        config = self.config
        self._follow_sound(probability, start, end)
        if self._model_speaking and level is not None:
            if self._guard_since is None:
                self._guard_since = start
            if self._state is VadState.SILENCE or (
                self._state is VadState.ONSET and self._loud_onset
            ):
                events = self._guarded(probability, start, end, level)
                if events is not None:
                    return events
        if self._model_speaking:
            threshold, min_speech = config.echo_threshold, config.echo_min_speech
        elif self.answer_playing:
            threshold, min_speech = config.threshold, config.barge_in_min_speech
        else:
            threshold, min_speech = config.threshold, config.min_speech
        low = threshold - config.hysteresis
        state = self._state
        if state is VadState.SILENCE:
            if probability >= threshold:
                self._state = VadState.ONSET
                self._onset_at = start
                self._onset_speech = 0.0
                return self._onset(end - start, end, min_speech)
        elif state is VadState.ONSET:
            if probability >= threshold:
                return self._onset(end - start, end, min_speech)
            if probability < low:
                self._state = VadState.SILENCE
        elif state is VadState.SPEECH:
            if probability < low:
                self._state = VadState.TRAILING
                self._silence_at = start
                return self._trailing(end)
        elif state is VadState.TRAILING:
            if probability >= threshold:
                self._state = VadState.SPEECH
            elif probability < low:
                return self._trailing(end)
        return _NO_EVENTS

    def finish(self, at: float | None = None) -> list[SpeechEvent]:
        """The stream ended (at ``at``, default the last frame's end).

        Returns an end event if speech was going on; the machine is then
        back in silence.
        """
        at = self._now if at is None else max(at, self._now)
        state = self._state
        self._state = VadState.SILENCE
        if state is VadState.SPEECH:
            return [SpeechEvent(kind="end", at=at, detected_at=at)]
        if state is VadState.TRAILING:
            ended = min(self._silence_at + self.config.padding, at)
            return [SpeechEvent(kind="end", at=ended, detected_at=at)]
        return _NO_EVENTS

    def reset(self) -> None:
        """Forget everything: back to silence at stream time 0."""
        self._state = VadState.SILENCE
        self._now = self._last_end = 0.0
        self._sound_at = self._sound_quiet_at = None
        self._guard_since = None
        self._echo.clear()
        self._pending = []
        self._loud_onset = False

    def _guarded(
        self, probability: float, start: float, end: float, level: float
    ) -> list[SpeechEvent] | None:
        # The echo guard with levels, in silence or in an onset judged by
        # loudness; None: the strict rule decides (no echo heard to compare).
        config = self.config
        echo = self._echo
        while echo and echo[0][0] < end - config.echo_window - 1e-9:
            echo.popleft()
        heard = (end, level)
        if self._state is VadState.ONSET:
            window = max(config.echo_onset_window, config.echo_min_loud)
            if (
                end - self._onset_at > window + 1e-9
                or probability < config.threshold - config.hysteresis
            ):
                # Not loud for long enough: it was the echo after all.
                echo.extend(self._pending)
                self._pending = []
                self._state = VadState.SILENCE
                self._loud_onset = False
                if probability >= config.threshold:
                    echo.append(heard)
                return _NO_EVENTS
            self._pending.append(heard)
            if self._loud(probability, level):
                return self._loud_speech(end - start, end)
            return _NO_EVENTS
        assert self._guard_since is not None
        settled = start - self._guard_since >= config.echo_settle - 1e-9
        if settled and not echo:
            return None
        if settled and self._loud(probability, level):
            self._state = VadState.ONSET
            self._loud_onset = True
            self._onset_at = start
            self._onset_speech = 0.0
            self._pending = [heard]
            return self._loud_speech(end - start, end)
        if probability >= config.threshold:
            echo.append(heard)
        return _NO_EVENTS

    def _loud(self, probability: float, level: float) -> bool:
        # Louder than the echo by the margin, and likely speech.
        config = self.config
        reference = max((heard for _, heard in self._echo), default=0.0)
        return probability >= config.echo_threshold and level >= config.echo_margin * reference

    def _loud_speech(self, speech: float, end: float) -> list[SpeechEvent]:
        events = self._onset(speech, end, self.config.echo_min_loud)
        if events:
            self._loud_onset = False
            self._pending = []
            return [attrs.evolve(event, guarded=True) for event in events]
        return events

    def _follow_sound(self, probability: float, start: float, end: float) -> None:
        # What an ordinary (no echo guard) machine would call the start of
        # the current stretch of sound, gaps shorter than silence_to_end included.
        config = self.config
        if probability >= config.threshold:
            if self._sound_at is None:
                self._sound_at = start
            self._sound_quiet_at = None
        elif probability < config.threshold - config.hysteresis and self._sound_at is not None:
            if self._sound_quiet_at is None:
                self._sound_quiet_at = start
            if end - self._sound_quiet_at >= config.silence_to_end - 1e-9:
                self._sound_at = self._sound_quiet_at = None

    def _onset(self, speech: float, end: float, min_speech: float) -> list[SpeechEvent]:
        self._onset_speech += speech
        if self._onset_speech < min_speech - 1e-9:
            return _NO_EVENTS
        self._state = VadState.SPEECH
        at = self._onset_at
        if self.model_speaking and self._sound_at is not None:
            at = max(min(at, self._sound_at), at - self.config.echo_lookback)
        # Padding never reaches back into the previous utterance.
        at = max(at - self.config.padding, self._last_end, 0.0)
        return [SpeechEvent(kind="start", at=at, detected_at=end)]

    def _trailing(self, end: float) -> list[SpeechEvent]:
        if end - self._silence_at < self.config.silence_to_end - 1e-9:
            return _NO_EVENTS
        self._state = VadState.SILENCE
        at = min(self._silence_at + self.config.padding, end)
        self._last_end = at
        return [SpeechEvent(kind="end", at=at, detected_at=end)]
