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
* While ``model_speaking`` is set, the echo threshold and echo minimum speech
  apply instead (the model's own voice from the speakers must not barge in).
  The start is then decided late, but its ``at`` reaches back (at most
  ``echo_lookback`` seconds) to where the sound began by the ordinary
  thresholds, so that speech to text hears the user's first words too.
"""

from __future__ import annotations

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
        echo_threshold: the threshold while the model is speaking.
        echo_min_speech: the minimum speech while the model is speaking.
        echo_lookback: while the model is speaking, the most seconds a
            start's ``at`` reaches back before the frames that passed the
            echo threshold, to where the sound began by the ordinary
            thresholds (the user's first words, often quieter).
    """

    threshold: float = attrs.field(default=0.5, validator=_check_fraction)
    hysteresis: float = attrs.field(default=0.15, validator=finite_non_negative)
    min_speech: float = attrs.field(default=0.2, validator=finite_non_negative)
    silence_to_end: float = attrs.field(default=0.3, validator=finite_non_negative)
    padding: float = attrs.field(default=0.1, validator=finite_non_negative)
    echo_threshold: float = attrs.field(default=0.85, validator=_check_fraction)
    echo_min_speech: float = attrs.field(default=0.5, validator=finite_non_negative)
    echo_lookback: float = attrs.field(default=1.0, validator=finite_non_negative)


@attrs.frozen(kw_only=True)
class SpeechEvent:
    """A start or an end of speech.

    Attributes:
        kind: ``"start"`` or ``"end"``.
        at: where speech starts or ends in the stream (seconds, padded).
        detected_at: the stream time at which the machine decided.
    """

    kind: Literal["start", "end"]
    at: float
    detected_at: float


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
    """

    config: VadConfig = attrs.field(factory=VadConfig)
    model_speaking: bool = False
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

    def push(self, probability: float, start: float, end: float) -> list[SpeechEvent]:
        """Feed one frame; return the events it causes (none, or one).

        Args:
            probability: the back end's speech probability for the frame.
            start: the frame's start in the stream, in seconds.
            end: the frame's end in the stream, in seconds.

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
        self._now = end
        config = self.config
        self._follow_sound(probability, start, end)
        if self.model_speaking:
            threshold, min_speech = config.echo_threshold, config.echo_min_speech
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
