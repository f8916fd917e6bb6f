"""A bounded queue that drops the oldest audio and never drops control messages.

This is the stated policy for a client (or a pipeline) that is too slow:

* audio items are put without waiting; when the queue already holds
  ``max_audio`` of them, the oldest audio item is removed and counted in
  ``dropped``, so what is kept is the most recent audio;
* control items are never dropped: when ``max_control`` of them wait, `put`
  blocks until the consumer takes one (backpressure on the producer), and
  `put_nowait` raises `trio.WouldBlock` (the producer decides what to do);
* items come out in the order they went in.
"""

from __future__ import annotations

import collections
from typing import Generic, TypeVar

import attrs
import trio

T = TypeVar("T")


@attrs.define(eq=False)
class DropOldQueue(Generic[T]):
    """A FIFO of control items (kept) and audio items (oldest dropped).

    Args:
        max_audio: the most audio items held before the oldest is dropped.
        max_control: the most control items held before `put` waits.
    """

    max_audio: int
    max_control: int
    dropped: int = attrs.field(init=False, default=0)
    _items: collections.deque[tuple[T, bool]] = attrs.field(init=False, factory=collections.deque)
    _audio: int = attrs.field(init=False, default=0)
    _closed: bool = attrs.field(init=False, default=False)
    _readers: trio.lowlevel.ParkingLot = attrs.field(init=False, factory=trio.lowlevel.ParkingLot)
    _writers: trio.lowlevel.ParkingLot = attrs.field(init=False, factory=trio.lowlevel.ParkingLot)

    def __attrs_post_init__(self) -> None:
        for name in ("max_audio", "max_control"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")

    def __len__(self) -> int:
        return len(self._items)

    def put_audio(self, item: T) -> None:
        """Add an audio item now, dropping the oldest audio item if full."""
        if self._closed:
            raise trio.ClosedResourceError("the queue is closed")
        if self._audio >= self.max_audio:
            for index, (_, audio) in enumerate(self._items):
                if audio:
                    del self._items[index]
                    self._audio -= 1
                    self.dropped += 1
                    break
        self._items.append((item, True))
        self._audio += 1
        self._readers.unpark()

    def put_nowait(self, item: T) -> None:
        """Add a control item now.

        Raises:
            trio.WouldBlock: ``max_control`` control items are already queued.
            trio.ClosedResourceError: the queue is closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("the queue is closed")
        if len(self._items) - self._audio >= self.max_control:
            raise trio.WouldBlock
        self._items.append((item, False))
        self._readers.unpark()

    async def put(self, item: T) -> None:
        """Add a control item, waiting while ``max_control`` of them are queued.

        If cancelled, the item was not added.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while len(self._items) - self._audio >= self.max_control and not self._closed:
            await self._writers.park()
        if self._closed:
            raise trio.ClosedResourceError("the queue is closed")
        self._items.append((item, False))
        self._readers.unpark()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def get(self) -> T:
        """Take the oldest item; raises `trio.EndOfChannel` once closed and empty.

        If cancelled, nothing was taken.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._items:
            if self._closed:
                raise trio.EndOfChannel
            await self._readers.park()
        item, audio = self._items.popleft()
        if audio:
            self._audio -= 1
        else:
            self._writers.unpark()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return item

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    def close(self, last: T | None = None) -> None:
        """Refuse new items; `get` returns what is left (then ``last``), then ends.

        ``last`` (a control item) is added whatever the limit: a final word,
        such as the reason for closing.
        """
        if last is not None and not self._closed:
            self._items.append((last, False))
        self._closed = True
        self._readers.unpark_all()
        self._writers.unpark_all()
