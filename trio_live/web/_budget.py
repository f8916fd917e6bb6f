"""What one client may send, over time: the input budgets (sans-IO).

The message limits (`Limits`) bound each message; the budgets bound how much
valid input a client sends over time, so that one client cannot fill the
server's memory by sending as fast as it can:

* audio: at most ``audio_speed`` seconds of audio per second (1.5 x real
  time by default), measured over a sliding window of ``audio_window``
  seconds, so a client may catch up after a stall but not flood;
* text: at most ``text_bytes_per_minute`` bytes (UTF-8) of typed text in any
  sliding minute;
* the open exchange (typed parts sent with ``end_of_turn: false``, held until
  the turn is asked for): at most ``open_parts`` parts and ``open_bytes``
  bytes; a turn request (``end_of_turn``, or a ``text`` with it) starts over.

`InputMeter.take` is told each message with the time it arrived (the caller
reads the clock) and raises `OverBudget` when one is exceeded; the bridge
then sends an ``over_budget`` error and closes with 1008 (policy violation).
"""

from __future__ import annotations

import collections

import attrs

from .._checks import positive
from ._protocol import SAMPLE_RATE, AudioFrame, ClientMessage, EndOfTurn, OverBudget, TextInput


@attrs.frozen(kw_only=True)
class Budgets:
    """How much input one client may send over time (see the module docs).

    Attributes:
        audio_speed: seconds of audio per second, over ``audio_window``.
        audio_window: seconds of the sliding window the audio is measured on.
        text_bytes_per_minute: bytes of typed text in any sliding minute.
        open_parts: typed parts held in the open exchange.
        open_bytes: bytes of typed text held in the open exchange.
    """

    audio_speed: float = attrs.field(default=1.5, validator=positive)
    audio_window: float = attrs.field(default=10.0, validator=positive)
    text_bytes_per_minute: int = attrs.field(default=64 * 1024, validator=positive)
    open_parts: int = attrs.field(default=256, validator=positive)
    open_bytes: int = attrs.field(default=256 * 1024, validator=positive)


@attrs.define(eq=False)
class SlidingWindow:
    """The sum of the amounts added in the last ``seconds`` (sans-IO)."""

    seconds: float
    total: float = attrs.field(init=False, default=0.0)
    _entries: collections.deque[tuple[float, float]] = attrs.field(
        init=False, factory=collections.deque
    )

    def add(self, amount: float, now: float) -> float:
        """Add ``amount`` at time ``now``; the sum over the window, this included."""
        entries = self._entries
        while entries and entries[0][0] <= now - self.seconds:
            self.total -= entries.popleft()[1]
        if not entries:
            self.total = 0.0  # no rounding error carried over
        entries.append((now, amount))
        self.total += amount
        return self.total


@attrs.define(eq=False)
class InputMeter:
    """Measures one client's input against its `Budgets`."""

    budgets: Budgets
    _audio: SlidingWindow = attrs.field(init=False)
    _text: SlidingWindow = attrs.field(init=False)
    _open_parts: int = attrs.field(init=False, default=0)
    _open_bytes: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._audio = SlidingWindow(self.budgets.audio_window)
        self._text = SlidingWindow(60.0)

    def take(self, message: ClientMessage, now: float) -> None:
        """Count ``message``, arrived at ``now``.

        Raises:
            OverBudget: the message goes over a budget.
        """
        budgets = self.budgets
        if isinstance(message, AudioFrame):
            seconds = len(message.pcm) / (2 * SAMPLE_RATE)
            allowed = budgets.audio_speed * budgets.audio_window
            if self._audio.add(seconds, now) > allowed:
                raise OverBudget(
                    f"audio faster than {budgets.audio_speed:g} x real time "
                    f"(over {budgets.audio_window:g} s)"
                )
        elif isinstance(message, TextInput):
            size = len(message.text.encode("utf-8", "surrogatepass"))
            if self._text.add(size, now) > budgets.text_bytes_per_minute:
                raise OverBudget(
                    f"more than {budgets.text_bytes_per_minute} bytes of text a minute"
                )
            if message.end_of_turn:
                self._open_parts = self._open_bytes = 0
                return
            self._open_parts += 1
            self._open_bytes += size
            if self._open_parts > budgets.open_parts or self._open_bytes > budgets.open_bytes:
                raise OverBudget(
                    f"the open turn holds at most {budgets.open_parts} parts and "
                    f"{budgets.open_bytes} bytes: send end_of_turn"
                )
        elif isinstance(message, EndOfTurn):
            self._open_parts = self._open_bytes = 0
