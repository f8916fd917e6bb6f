"""Tools to test live conversations on trio's mock clock.

`ScriptedModel` is a turn model that answers from a script with configurable
latencies and records every prompt it was given; `play_timeline` feeds parts
into a session at given (virtual) times and collects what comes out. With
pytest-trio's ``autojump_clock`` a whole conversation runs in milliseconds and
every time is exact.
"""

from __future__ import annotations

from ._scripted import RecordedPrompt, ScriptedModel
from ._timeline import play_timeline

__all__ = ["RecordedPrompt", "ScriptedModel", "play_timeline"]
