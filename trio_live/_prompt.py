"""The rolling prompt: the conversation so far, cut to a window.

Pure bookkeeping: no I/O, no clock (every time is an argument), no event loop.
The trio side (`trio_live._model.PromptStream`) wraps a `Cursor` to wait for new parts.

Invariants:

* History is one append-only list of parts with a parallel array of the times
  they joined it. ``_base`` is the absolute index of ``_parts[0]``; ``_start``
  the absolute index where the kept history begins. Cutting only moves
  ``_start``; the list is compacted (a fresh list, never an in-place delete)
  once more than half of it is dead, so adding a part is amortized O(1).
* An *exchange* is a run of user parts followed by the model's answer. A new
  exchange starts at the first non-model part added after a model part; the
  absolute indexes where exchanges start are kept in ``_exchanges``. Cuts land
  on those boundaries, so a question is never kept without its answer or the
  answer without its question. The one exception: when the exchange still in
  progress alone holds more than ``max_parts`` parts, its oldest parts go.
* Exactly one cursor is open: the pending prompt. It reads the history from
  ``_start`` and then every part added until `RollingPrompt.finalize`. At
  finalize it is detached: it keeps a reference to the list it was reading
  and a fixed end, which compaction never touches, so handing a prompt to a
  model copies nothing.
"""

from __future__ import annotations

import collections
import math
from array import array
from collections.abc import Callable

import attrs

from ._checks import finite_non_negative
from ._parts import Part

DEFAULT_WINDOW = 600.0
# 600 s of 20 ms audio chunks is 30,000 parts; leave room for text and video.
DEFAULT_MAX_PARTS = 100_000


@attrs.define(eq=False)
class Cursor:
    """A reader over one prompt: the history, then parts as they are added.

    A cursor never waits; `trio_live.PromptStream` adds waiting on top.
    """

    _prompt: RollingPrompt | None
    _pos: int
    _first: int = attrs.field(init=False)
    _parts: list[Part] = attrs.field(factory=list)
    _base: int = 0
    _end: int | None = None
    #: Called once, then cleared, when parts are added or the prompt is finalized.
    waker: Callable[[], None] | None = None
    #: False: the waker is called only when the prompt is finalized.
    wake_on_add: bool = True
    #: Called (at most once per wait) with the latest time a reader waiting
    #: on audio it was not woken for should wake up by itself.
    on_defer: Callable[[float], None] | None = None
    #: Until when new audio does not wake the reader (see `RollingPrompt`).
    quiet_until: float = -math.inf
    #: True while audio was added that the waiting reader was not woken for.
    deferred: bool = False

    @property
    def position(self) -> int:
        """The absolute index of the next part to read."""
        return self._pos

    @property
    def size(self) -> int:
        """How many parts the prompt holds in all, read or not (once finalized)."""
        if self._end is None:
            raise RuntimeError("the prompt is still open")
        return self._end - self._first

    @property
    def finalized(self) -> bool:
        """True once the prompt was closed: no part will be added to it."""
        return self._prompt is None

    @property
    def coalescing(self) -> bool:
        """True if new audio may wait for a later wake (the open prompt's interval is > 0)."""
        prompt = self._prompt
        return prompt is not None and prompt.audio_wake_interval > 0

    @property
    def exhausted(self) -> bool:
        """True once the prompt is finalized and every part was read."""
        return self._end is not None and self._pos >= self._end

    def __attrs_post_init__(self) -> None:
        self._first = self._pos

    def available(self) -> int:
        """How many parts can be read now without waiting."""
        prompt = self._prompt
        if prompt is None:
            assert self._end is not None
            return self._end - self._pos
        return prompt._base + len(prompt._parts) - self._pos

    def next(self) -> Part | None:
        """The next part if one is ready, else None."""
        prompt = self._prompt
        if prompt is None:
            if self._pos >= self._end:  # type: ignore[operator]
                return None
            part = self._parts[self._pos - self._base]
        else:
            index = self._pos - prompt._base
            parts = prompt._parts
            if index >= len(parts):
                return None
            part = parts[index]
        self._pos += 1
        return part

    def take(self) -> list[Part]:
        """Every part ready now (possibly none), in order."""
        prompt = self._prompt
        if prompt is None:
            assert self._end is not None
            parts, base, end = self._parts, self._base, self._end
        else:
            parts, base = prompt._parts, prompt._base
            end = base + len(parts)
        taken = parts[self._pos - base : end - base]
        self._pos = end
        return taken

    def _detach(self, parts: list[Part], base: int, end: int) -> None:
        self._prompt = None
        self._parts, self._base, self._end = parts, base, end
        self._wake()

    def _wake(self) -> None:
        waker = self.waker
        if waker is not None:
            self.waker = None
            self.on_defer = None
            self.deferred = False
            waker()


def _check_window(instance: RollingPrompt, attribute: object, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"window must be > 0 or None, got {value!r}")


def _check_max_parts(instance: RollingPrompt, attribute: object, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"max_parts must be >= 1 or None, got {value!r}")


@attrs.define(eq=False)
class RollingPrompt:
    """The conversation history, the stash, and the open (pending) prompt.

    Args:
        window: seconds of conversation to keep; an exchange is dropped once
            its newest part is older than this. None keeps everything.
        max_parts: the most parts to keep; whole exchanges are dropped, oldest
            first, to stay under it. None means no cap.
        audio_wake_interval: a reader waiting on the open prompt is woken
            for new audio at most once per this many seconds; audio added in
            between waits for the next wake, which comes with the next part
            that is not audio, the next audio after the interval, the
            finalize, or at the latest (through the cursor's ``on_defer``)
            one more interval later. Any other part wakes it at once. 0
            wakes it for every part.
    """

    window: float | None = attrs.field(default=DEFAULT_WINDOW, validator=_check_window)
    max_parts: int | None = attrs.field(default=DEFAULT_MAX_PARTS, validator=_check_max_parts)
    audio_wake_interval: float = attrs.field(default=0.0, validator=finite_non_negative)
    _parts: list[Part] = attrs.field(init=False, factory=list)
    _times: array[float] = attrs.field(init=False, factory=lambda: array("d"))
    _base: int = attrs.field(init=False, default=0)
    _start: int = attrs.field(init=False, default=0)
    _exchanges: collections.deque[int] = attrs.field(init=False, factory=collections.deque)
    _in_answer: bool = attrs.field(init=False, default=False)
    _stash: list[Part] = attrs.field(init=False, factory=list)
    _cursor: Cursor = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._cursor = Cursor(self, 0)

    # -- adding --------------------------------------------------------------

    def add(self, part: Part, now: float) -> None:
        """Add ``part`` to the history and the open prompt, at time ``now``."""
        index = self._base + len(self._parts)
        if part.role == "model":
            self._in_answer = True
        elif self._in_answer:
            self._in_answer = False
            self._exchanges.append(index)
        self._parts.append(part)
        self._times.append(now)
        cap = self.max_parts
        if cap is not None and index + 1 - self._start > cap:
            self._cut(now)
            self._compact()
        cursor = self._cursor
        if cursor.waker is not None and cursor.wake_on_add:
            # (Within a microsecond of the end of the rest counts as after
            # it: a clock's sums of frame times are not exact.)
            if now < cursor.quiet_until - 1e-6 and part.mimetype.startswith("audio/"):
                # Coalesced: the reader takes it with the next wake.
                if not cursor.deferred:
                    cursor.deferred = True
                    if cursor.on_defer is not None:
                        cursor.on_defer(cursor.quiet_until + self.audio_wake_interval)
            else:
                cursor.quiet_until = now + self.audio_wake_interval
                cursor._wake()

    def stash(self, part: Part) -> None:
        """Keep ``part`` aside until `apply_stash` (used while the model answers)."""
        self._stash.append(part)

    def apply_stash(self, now: float) -> int:
        """Add every stashed part, in the order stashed; return how many."""
        stash, self._stash = self._stash, []
        for part in stash:
            self.add(part, now)
        return len(stash)

    @property
    def stashed(self) -> tuple[Part, ...]:
        """The parts waiting in the stash."""
        return tuple(self._stash)

    # -- prompts -------------------------------------------------------------

    def pending(self) -> Cursor:
        """The open prompt's cursor (the same one until `finalize`)."""
        return self._cursor

    def finalize(self, now: float) -> Cursor:
        """Close the open prompt, cut the history, open the next prompt.

        Returns the cursor of the prompt just closed: it ends after the last
        part added so far.
        """
        closed = self._cursor
        end = self._base + len(self._parts)
        closed._detach(self._parts, self._base, end)
        self._cut(now)
        self._cursor = Cursor(self, self._start)
        self._compact()
        return closed

    # -- reading -------------------------------------------------------------

    def history(self) -> list[Part]:
        """The kept history, oldest first (a copy)."""
        return self._parts[self._start - self._base :]

    def timed_history(self) -> list[tuple[float, Part]]:
        """The kept history with the time each part joined it."""
        offset = self._start - self._base
        return list(zip(self._times[offset:], self._parts[offset:], strict=True))

    def __len__(self) -> int:
        return self._base + len(self._parts) - self._start

    # -- cutting -------------------------------------------------------------

    def _time_at(self, index: int) -> float:
        return self._times[index - self._base]

    def _cut(self, now: float) -> None:
        end = self._base + len(self._parts)
        exchanges = self._exchanges
        window = self.window
        if window is not None:
            oldest_kept = now - window
            # An exchange goes once its newest part (the one before the next
            # exchange starts) is older than the window.
            while exchanges and self._time_at(exchanges[0] - 1) < oldest_kept:
                self._start = exchanges.popleft()
        cap = self.max_parts
        if cap is not None and end - self._start > cap:
            while exchanges and end - self._start > cap:
                self._start = exchanges.popleft()
            if end - self._start > cap:
                self._start = end - cap

    def _compact(self) -> None:
        dead = min(self._start, self._cursor._pos) - self._base
        if dead > 64 and dead * 2 > len(self._parts):
            self._parts = self._parts[dead:]
            self._times = self._times[dead:]
            self._base += dead
