"""Playback of the model's speech: what the listener heard, and the echo guard.

Whoever plays the model's speech (a browser behind the websocket bridge, the
demo's player) tells a `PlaybackTracker` three things:

* speech audio of a turn went out to be played (`audio_sent`, or `part_sent`
  with the TTS part itself): ``seconds`` of it, played one chunk after the
  other;
* how far the listener heard a turn (`report`: the ``spoken_chars`` of the
  last chunk played to its end), or that it heard all of it
  (``finished=True``, once the turn's ``answer_complete`` marker has come
  and the audio before it has played: with ``track_playback=True`` the
  turn's ``turn_complete`` waits for this report);
* a turn was ``interrupted`` (its playback stops at once).

The tracker passes the reports on to the `LiveSession`
(`LiveSession.report_playback`: with ``track_playback=True`` an interrupted
answer joins the history only as far as it was heard), and drives the echo
guard: the voice activity stages it is given (anything with a writable
``model_speaking`` attribute, such as a `VadStage`) get ``model_speaking =
True`` from the first speech audio of a turn until the first of:

* that turn's playback is reported finished (or a later turn's);
* the turn is interrupted (or a later one);
* the audio sent so far has had time to play, plus ``tail`` seconds: a
  listener that never reports does not leave the guard on (`run` clears it).

Times come only from `trio.current_time`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs
import trio

from ._checks import non_negative
from ._parts import Part, audio_rate, is_audio
from ._session import LiveSession


@runtime_checkable
class _Guarded(Protocol):
    model_speaking: bool


@attrs.define(eq=False)
class PlaybackTracker:
    """Follows the playback of one conversation's speech.

    Args:
        session: told how far each answer was heard.
        stages: the stages whose ``model_speaking`` the echo guard drives
            (those without the attribute are ignored).
        tail: seconds after the audio sent has had time to play before the
            guard turns off by itself.
    """

    session: LiveSession
    stages: Sequence[object] = attrs.field(default=(), kw_only=True)
    tail: float = attrs.field(default=0.5, kw_only=True, validator=non_negative)
    _targets: list[_Guarded] = attrs.field(init=False, factory=list)
    _turn: int | None = attrs.field(init=False, default=None)
    _played_until: float = attrs.field(init=False, default=-math.inf)
    _heard: tuple[int, int] = attrs.field(init=False, default=(-1, 0))
    _changed: trio.Event = attrs.field(init=False, factory=trio.Event)
    _guarding: bool = attrs.field(init=False, default=True)

    def __attrs_post_init__(self) -> None:
        self._targets = [stage for stage in self.stages if isinstance(stage, _Guarded)]

    @property
    def active(self) -> bool:
        """True while the echo guard is on (never without a stage to drive)."""
        return self._turn is not None

    @property
    def echo_guard(self) -> bool:
        """Whether the tracker drives the echo guard (False: a headset, say).

        Turned off, the guard goes off at once and stays off; turned on, it
        comes on with the next speech audio sent.
        """
        return self._guarding

    @echo_guard.setter
    def echo_guard(self, value: bool) -> None:
        self._guarding = value
        if not value and self.active:
            self._clear()

    def heard(self, turn: int) -> int:
        """The most characters of ``turn`` reported heard (0 for none, or an older turn)."""
        last, chars = self._heard
        return chars if turn == last else 0

    def audio_sent(self, turn: int, seconds: float) -> None:
        """Speech audio of ``turn`` lasting ``seconds`` went out to be played."""
        if not self._targets or not self._guarding:
            return
        if self._turn is None or turn > self._turn:
            self._turn = turn
            self._set(True)
        # Chunks play one after the other: each extends the expected end.
        self._played_until = max(self._played_until, trio.current_time()) + seconds
        self._changed.set()

    def part_sent(self, part: Part) -> None:
        """`audio_sent` for a speech audio part (its ``turn`` from the metadata).

        Parts that are not audio, or carry no ``turn``, are ignored.
        """
        turn = part.metadata.get("turn")
        if is_audio(part) and isinstance(turn, int):
            self.audio_sent(turn, len(part.data) / 2 / audio_rate(part))

    def report(self, turn: int, chars: int, *, finished: bool = False) -> None:
        """The listener heard ``chars`` characters of ``turn`` (``finished``: all of it).

        Raises:
            ValueError: ``chars`` is negative.
        """
        self.session.report_playback(turn, chars, finished=finished)
        last, most = self._heard
        self._heard = (turn, max(most, chars) if turn == last else chars)
        if finished and self._turn is not None and turn >= self._turn:
            self._clear()

    def interrupted(self, turn: int | None) -> None:
        """``turn`` (None: whatever plays) was cut short: its playback stops now."""
        if self._turn is not None and (turn is None or turn >= self._turn):
            self._clear()

    async def run(self) -> None:
        """Turn the guard off once the audio sent has had time to play; runs until cancelled."""
        while True:
            self._changed = trio.Event()
            with trio.move_on_at(self._deadline()):
                await self._changed.wait()
                continue
            # What else woke at this very time goes first: a chunk that starts
            # playing as the last one ends keeps the guard on.
            await trio.lowlevel.checkpoint()
            if trio.current_time() >= self._deadline():
                self._clear()

    def _deadline(self) -> float:
        return self._played_until + self.tail if self.active else math.inf

    def _clear(self) -> None:
        self._turn = None
        self._played_until = -math.inf
        self._set(False)
        self._changed.set()

    def _set(self, value: bool) -> None:
        for stage in self._targets:
            stage.model_speaking = value
        # A replay of the whole voice pipeline sets the guard as it was. (A
        # stand-in for the session, in a test, may have no recorder.)
        recorder = getattr(self.session, "recorder", None)
        if recorder is not None:
            recorder.echo_guard(value)
