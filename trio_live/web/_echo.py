"""The echo guard: the voice activity stages hear that the client plays speech.

While the client plays the model's speech, its microphone may pick it up.
Voice activity stages (a `VadStage`, or anything with a writable
``model_speaking`` attribute) in the pipeline's ``before`` stages get
``model_speaking = True`` from the first speech audio of a turn sent to the
client until the first of:

* the client reports that turn's playback finished (``playback`` with
  ``finished: true``), or a later turn's;
* the turn is ``interrupted`` (the client stops its playback at once);
* the audio sent so far has had time to play, plus ``tail`` seconds: a
  client that never reports does not leave the guard on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import trio


@attrs.define(eq=False)
class EchoGuard:
    """Drives ``model_speaking`` on the voice activity stages of one connection.

    Args:
        stages: the stages to drive (those without ``model_speaking`` are ignored).
        tail: seconds added to the audio's duration before the fallback clears.
    """

    stages: Sequence[object]
    tail: float
    _targets: list[object] = attrs.field(init=False, factory=list)
    _turn: int | None = attrs.field(init=False, default=None)
    _played_until: float = attrs.field(init=False, default=-math.inf)
    _changed: trio.Event = attrs.field(init=False, factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._targets = [s for s in self.stages if hasattr(s, "model_speaking")]

    @property
    def active(self) -> bool:
        """True while the guard is on."""
        return self._turn is not None

    def audio_sent(self, turn: int, seconds: float) -> None:
        """Speech audio of ``turn`` lasting ``seconds`` went to the client."""
        if not self._targets:
            return
        if self._turn is None or turn > self._turn:
            self._turn = turn
            self._set(True)
        # Chunks play one after the other: each extends the expected end.
        now = trio.current_time()
        self._played_until = max(self._played_until, now) + seconds
        self._wake()

    def playback_finished(self, turn: int) -> None:
        """The client reports that it finished playing ``turn``."""
        if self._turn is not None and turn >= self._turn:
            self._clear()

    def interrupted(self, turn: int | None) -> None:
        """``turn`` was cut short: the client stops its playback now."""
        if self._turn is not None and (turn is None or turn >= self._turn):
            self._clear()

    async def run(self) -> None:
        """Clear the guard when the audio sent has had time to play; runs until cancelled."""
        while True:
            changed = self._changed = trio.Event()
            deadline = self._played_until + self.tail if self.active else math.inf
            with trio.move_on_at(deadline):
                await changed.wait()
                continue
            self._clear()

    def _clear(self) -> None:
        self._turn = None
        self._played_until = -math.inf
        self._set(False)
        self._wake()

    def _set(self, value: bool) -> None:
        for stage in self._targets:
            stage.model_speaking = value  # type: ignore[attr-defined]

    def _wake(self) -> None:
        self._changed.set()
