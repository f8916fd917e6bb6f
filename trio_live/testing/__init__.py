"""Tools to test live conversations on trio's mock clock.

`ScriptedModel` is a turn model that answers from a script with configurable
latencies and records every prompt it was given; `play_timeline` feeds parts
into a session at given (virtual) times and collects what comes out. With
pytest-trio's ``autojump_clock`` a whole conversation runs in milliseconds and
every time is exact.

`replay` (and `replay_async`) runs a conversation recorded with
`trio_live.Recorder` again, on the mock clock; `replay_pipeline` runs its
recorded microphone through the voice stages as well, on a `WorkClock`
(real work, frozen time); `assert_same_conversation` says where two
conversations diverge.
"""

from __future__ import annotations

from .._replay_view import RecordedCall, ReplayLog
from ._clock import WorkClock
from ._pipeline import replay_pipeline, replay_pipeline_async
from ._replay import (
    ReplayModel,
    assert_same_conversation,
    conversation_diff,
    read_log,
    recorded_outputs,
    replay,
    replay_async,
)
from ._scripted import RecordedPrompt, ScriptedModel
from ._timeline import play_timeline

__all__ = [
    "RecordedCall",
    "RecordedPrompt",
    "ReplayLog",
    "ReplayModel",
    "ScriptedModel",
    "WorkClock",
    "assert_same_conversation",
    "conversation_diff",
    "play_timeline",
    "read_log",
    "recorded_outputs",
    "replay",
    "replay_async",
    "replay_pipeline",
    "replay_pipeline_async",
]
