"""Playback of the model's speech: what the listener heard, and the echo guard.

Whoever plays the model's speech (a browser behind the websocket bridge, the
demo's player) tells a `PlaybackTracker` four things:

* speech audio of a turn went out to be played (`audio_sent`, or `part_sent`
  with the TTS part itself): ``seconds`` of it, played one chunk after the
  other;
* how far the listener heard a turn (`report`: the ``spoken_chars`` of the
  last chunk played to its end), or that it heard all of it
  (``finished=True``, once the turn's ``answer_complete`` marker has come
  and the audio before it has played: with ``track_playback=True`` the
  turn's ``turn_complete`` waits for this report);
* a turn's answer is complete (`answer_complete`: its marker went out);
* a turn was ``interrupted`` (its playback stops at once).

The tracker passes the reports on to the `LiveSession`
(`LiveSession.report_playback`: with ``track_playback=True`` an interrupted
answer joins the history only as far as it was heard), and follows when the
answer is audible: from the first speech audio of a turn until the first of

* that turn's playback is reported finished (or a later turn's);
* the turn is interrupted (or a later one);
* the audio sent so far has had time to play, plus ``tail`` seconds, for a
  listener that does not report (``reports=False``); for one that does
  (``reports=True``), plus ``report_timeout`` seconds: its report ends the
  playback, the guess only bounds a listener that stopped reporting (`run`
  clears it).

While the answer is audible, the stages it is given get ``model_speaking =
True`` (the echo guard: anything with a writable ``model_speaking``
attribute, such as a `VadStage`), unless `echo_guard` is off (a headset),
and ``answer_playing = True`` (anything with that attribute: a `VadStage`
then starts speech sooner, a barge-in). A listener that does not report
(``reports=False``) is taken to have heard a complete answer once its audio
had time to play: the tracker reports the playback finished itself.

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


@runtime_checkable
class _Hurried(Protocol):
    answer_playing: bool


@attrs.define(eq=False)
class PlaybackTracker:
    """Follows the playback of one conversation's speech.

    Args:
        session: told how far each answer was heard.
        stages: the stages whose ``model_speaking`` (the echo guard) and
            ``answer_playing`` it drives (those without them are ignored).
        tail: seconds after the audio sent has had time to play before the
            answer counts as over, for a listener that does not report.
        reports: the listener reports the end of each turn's playback
            (``report(..., finished=True)``), which then ends it; False: the
            guessed end does (plus ``tail``), and the tracker reports a
            complete answer finished itself.
        report_timeout: with ``reports``, seconds after the guessed end
            before the answer counts as over without a report.
    """

    session: LiveSession
    stages: Sequence[object] = attrs.field(default=(), kw_only=True)
    tail: float = attrs.field(default=0.5, kw_only=True, validator=non_negative)
    reports: bool = attrs.field(default=False, kw_only=True)
    report_timeout: float = attrs.field(default=5.0, kw_only=True, validator=non_negative)
    _guarded: list[_Guarded] = attrs.field(init=False, factory=list)
    _hurried: list[_Hurried] = attrs.field(init=False, factory=list)
    # The turn whose speech is audible (None: none), until when it plays by
    # the guess, and what the stages were last told.
    _turn: int | None = attrs.field(init=False, default=None)
    _played_until: float = attrs.field(init=False, default=-math.inf)
    _shown: tuple[bool, bool] = attrs.field(init=False, default=(False, False))
    _heard: tuple[int, int] = attrs.field(init=False, default=(-1, 0))
    # The latest turn whose answer is complete, and the latest one over.
    _complete: int = attrs.field(init=False, default=0)
    _over: int = attrs.field(init=False, default=0)
    _changed: trio.Event = attrs.field(init=False, factory=trio.Event)
    _guarding: bool = attrs.field(init=False, default=True)

    def __attrs_post_init__(self) -> None:
        self._guarded = [stage for stage in self.stages if isinstance(stage, _Guarded)]
        self._hurried = [stage for stage in self.stages if isinstance(stage, _Hurried)]

    @property
    def active(self) -> bool:
        """True while the echo guard is on (never without a stage to drive)."""
        return self._shown[0]

    @property
    def playing(self) -> bool:
        """True while an answer is audible (as reported, or by the guess)."""
        return self._turn is not None

    @property
    def echo_guard(self) -> bool:
        """Whether the tracker drives the echo guard (False: a headset, say).

        Turned off, the guard goes off at once and stays off; turned on, it
        comes on at once if speech is audible, else with the next speech sent.
        """
        return self._guarding

    @echo_guard.setter
    def echo_guard(self, value: bool) -> None:
        self._guarding = value
        self._show()

    def heard(self, turn: int) -> int:
        """The most characters of ``turn`` reported heard (0 for none, or an older turn)."""
        last, chars = self._heard
        return chars if turn == last else 0

    def audio_sent(self, turn: int, seconds: float) -> None:
        """Speech audio of ``turn`` lasting ``seconds`` went out to be played."""
        if turn <= self._over:
            return  # interrupted or over: its playback has stopped
        if self._turn is None or turn > self._turn:
            self._turn = turn
            self._show()
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
        if finished:
            self._over = max(self._over, turn)
            if self._turn is not None and turn >= self._turn:
                self._clear()

    def answer_complete(self, turn: int) -> None:
        """Turn ``turn``'s answer is complete: no more of its speech follows.

        Without ``reports``, the tracker reports its playback finished once
        its audio has had time to play (at once if none is playing).
        """
        self._complete = max(self._complete, turn)
        self._finish_unreported()

    def interrupted(self, turn: int | None) -> None:
        """``turn`` (None: whatever plays) was cut short: its playback stops now."""
        if turn is not None:
            self._over = max(self._over, turn)
        if self._turn is not None and (turn is None or turn >= self._turn):
            self._over = max(self._over, self._turn)
            self._clear()

    async def run(self) -> None:
        """End the answer's playback once its audio has had time to play; runs until cancelled."""
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
                self._finish_unreported()

    def _deadline(self) -> float:
        if self._turn is None:
            return math.inf
        return self._played_until + (self.report_timeout if self.reports else self.tail)

    def _finish_unreported(self) -> None:
        # A listener that does not report heard a complete answer once its
        # audio had time to play.
        turn = self._complete
        if self.reports or turn <= self._over or self._turn == turn:
            return
        self.report(turn, self.heard(turn), finished=True)

    def _clear(self) -> None:
        self._turn = None
        self._played_until = -math.inf
        self._show()
        self._changed.set()

    def _show(self) -> None:
        playing = self._turn is not None
        speaking = playing and self._guarding and bool(self._guarded)
        before_speaking, before_playing = self._shown
        self._shown = (speaking, playing)
        if speaking != before_speaking:
            for guarded in self._guarded:
                guarded.model_speaking = speaking
            # A replay of the whole voice pipeline sets the guard as it was. (A
            # stand-in for the session, in a test, may have no recorder.)
            recorder = getattr(self.session, "recorder", None)
            if recorder is not None:
                recorder.echo_guard(speaking)
        if playing != before_playing:
            for hurried in self._hurried:
                hurried.answer_playing = playing
