"""A virtual clock that stands still while real work runs: "real work, frozen time".

trio's `MockClock` with ``autojump_threshold=0`` jumps to the next deadline
as soon as every task waits, and a task waiting on a worker thread counts as
waiting: while speech is recognized in a thread, the clock would run on and
the microphone with it. `WorkClock` jumps only when every task waits *and*
no real work runs: no worker thread holds a token of the limiters it watches
(trio's default thread limiter, and any passed), and no `WorkClock.working`
block is open (for work that is neither, such as a subprocess). The work
then takes no virtual time, exactly: the conversation is the one an
infinitely fast machine would have, and a replay of it is the same.

The jump is made where trio asks the clock how long to sleep, so it takes no
extra task and no polling. While work runs the run loop waits for it in real
time (a worker thread's result wakes it at once). I/O that is not one of
these (a socket) is not waited for: time may jump before it is read.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from typing import Final

import trio

# How long the run loop sleeps at most, in real seconds, while work runs.
_REAL_WAIT: Final = 0.05


class WorkClock(trio.abc.Clock):
    """Virtual time that jumps whenever every task waits, except while real work runs.

    Args:
        limiters: more `trio.CapacityLimiter` objects whose worker threads
            count as work (trio's default thread limiter always does).

    Use it as ``trio.run(main, clock=WorkClock())``; it starts at 0.
    """

    def __init__(self, limiters: Iterable[trio.CapacityLimiter] = ()) -> None:
        self._now = 0.0
        self._limiters = list(limiters)
        self._busy = 0
        self._default: trio.CapacityLimiter | None = None
        self._settling: list[trio.Event] = []

    def start_clock(self) -> None:
        """Called by trio at the start of the run."""

    def current_time(self) -> float:
        """The virtual time."""
        return self._now

    def watch(self, limiter: trio.CapacityLimiter) -> None:
        """Count the worker threads of ``limiter`` as work too."""
        self._limiters.append(limiter)

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """A block of real work (not in a watched thread) during which time stands still."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    def is_working(self) -> bool:
        """True while real work runs (a watched thread, a `working` block)."""
        if self._busy:
            return True
        if self._default is None:
            self._default = trio.to_thread.current_default_thread_limiter()
        limiters = (self._default, *self._limiters)
        if any(limiter.statistics().borrowed_tokens for limiter in limiters):
            return True
        # A worker thread's result waiting to be handed back is work too.
        return trio.lowlevel.current_statistics().run_sync_soon_queue_size > 0

    async def settled(self) -> None:
        """Wait until every other task waits and no work runs; time has not moved.

        (`trio.testing.wait_all_tasks_blocked` for this clock, which would
        otherwise jump first.) If cancelled, nothing happened.
        """
        event = trio.Event()
        self._settling.append(event)
        await event.wait()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """Called by trio when every task waits: jump to ``deadline``, unless work runs."""
        if deadline <= self._now:
            return 0.0
        if self.is_working():
            return _REAL_WAIT
        if self._settling:
            # Those waiting for the others to settle go before time moves.
            waiting, self._settling = self._settling, []
            for event in waiting:
                event.set()
            return 0.0
        if math.isinf(deadline):
            # Nothing to jump to: wait for I/O, as a real clock would.
            return _REAL_WAIT
        self._now = deadline
        return 0.0
