"""The turn-taking policy and its vocabulary, for drivers of its own.

`TurnPolicy` is a pure state machine (no trio, no clock): `LiveSession`
drives one, and an application may drive one itself, the way a server
drives h11's connection. Its calls return actions:

* `AddToPrompt` and `Stash`: carry out synchronously, before anything else;
* `Emit`: send the part to the output;
* the `Control` members (`TRIGGER`, `CANCEL`, `BARGE_IN`, `AWAIT`,
  `STOP_PLAYBACK`, `FINISH_PLAYBACK`, `DROP_PENDING`): act on the running or
  pre-started generation; `CLOSE_INPUT`: end the input (the idle user);

and `TurnPolicy.generation_ended` returns a `TurnEnd` verdict: how much of
the answer to keep (`Keep`) and the turn's closing markers. Misuse raises
`PolicyError` and leaves the policy in `State.ERROR`.
"""

from __future__ import annotations

from ._actions import (
    AWAIT,
    BARGE_IN,
    CANCEL,
    CLOSE_INPUT,
    DROP_PENDING,
    FINISH_PLAYBACK,
    STOP_PLAYBACK,
    TRIGGER,
    Action,
    Activity,
    AddToPrompt,
    Control,
    Effect,
    Emit,
    EndOfInput,
    Keep,
    Stash,
    State,
    TriggerMode,
    TurnEnd,
)
from ._errors import PolicyError
from ._policy import DEFAULT_BACKCHANNELS, TurnPolicy

__all__ = [
    "AWAIT",
    "Action",
    "Activity",
    "AddToPrompt",
    "BARGE_IN",
    "CANCEL",
    "CLOSE_INPUT",
    "Control",
    "DEFAULT_BACKCHANNELS",
    "DROP_PENDING",
    "Effect",
    "Emit",
    "EndOfInput",
    "FINISH_PLAYBACK",
    "Keep",
    "PolicyError",
    "STOP_PLAYBACK",
    "Stash",
    "State",
    "TRIGGER",
    "TriggerMode",
    "TurnEnd",
    "TurnPolicy",
]
