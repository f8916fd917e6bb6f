"""Test doubles shared by several test files."""

from __future__ import annotations

import attrs
import trio


@attrs.define(eq=False)
class SpeakingRecorder:
    """Stands for a voice activity stage: records each ``model_speaking`` set, with the time."""

    history: list[tuple[bool, float]] = attrs.field(factory=list)
    _speaking: bool = False

    @property
    def model_speaking(self) -> bool:
        return self._speaking

    @model_speaking.setter
    def model_speaking(self, value: bool) -> None:
        self._speaking = value
        self.history.append((value, trio.current_time()))
