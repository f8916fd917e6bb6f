"""The turn policy's vocabulary: its options, states and the actions it returns.

`trio_live._policy` holds the machine that decides; this module holds only
the values it speaks in, so that the machine's file is its rules. Everything
here is a frozen value or an enum; nothing here decides anything.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from ._checks import to_enum
from ._parts import INTERRUPTED_MIMETYPE, Part


class TriggerMode(enum.Enum):
    """What makes the model take its turn (besides an explicit end-of-turn)."""

    #: The voice activity detector's end of speech: the lowest latency, right
    #: for models that listen to audio.
    END_OF_SPEECH = "end_of_speech"
    #: A final transcription: right for text models, which need the words.
    FINAL_TRANSCRIPTION = "final_transcription"


class EndOfInput(enum.Enum):
    """Whether the session answers once more when its input ends."""

    #: Answer only if user input arrived since the last trigger (text, images,
    #: final transcriptions or detected speech; bare audio does not count).
    IF_UNANSWERED = "if_unanswered"
    #: Always answer once more (what genai-processors does).
    ALWAYS = "always"
    #: Never answer once more.
    NEVER = "never"


def trigger_mode(value: object) -> TriggerMode:
    """The ``trigger`` option, from a `TriggerMode` or its value."""
    return to_enum(TriggerMode, "trigger", value)


def end_of_input_mode(value: object) -> EndOfInput:
    """The ``end_of_input`` option, from an `EndOfInput` or its value."""
    return to_enum(EndOfInput, "end_of_input", value)


class State(enum.Enum):
    """Where the conversation is."""

    LISTENING = "listening"
    ANSWERING = "answering"
    PLAYING = "playing"
    CLOSING = "closing"
    CLOSED = "closed"
    #: The policy was misused (see `PolicyError`); it takes no more calls.
    ERROR = "error"


class Activity(enum.Enum):
    """What the conversation visibly does, for a badge or a log line."""

    #: No answer is due: the user has the floor.
    LISTENING = "listening"
    #: A turn was triggered and its answer has not started yet.
    THINKING = "thinking"
    #: The answer is coming out (or, with playback tracking, still playing).
    SPEAKING = "speaking"


# --- actions ----------------------------------------------------------------


@attrs.frozen
class Emit:
    """Send ``part`` to the session's output."""

    part: Part


@attrs.frozen
class AddToPrompt:
    """Add ``part`` to the rolling prompt (and so to the open prompt)."""

    part: Part


@attrs.frozen
class Stash:
    """Keep ``part`` aside until the running generation ends."""

    part: Part


class Control(enum.Enum):
    """Actions that carry no data."""

    #: Cancel the running generation (a newer turn supersedes it) and wait
    #: until it has exited.
    CANCEL = "cancel"
    #: The user started speaking over the model: cancel as for `CANCEL`.
    BARGE_IN = "barge_in"
    #: Close the open prompt and release the pre-started generation's output.
    TRIGGER = "trigger"
    #: Wait for the running generation to finish by itself.
    AWAIT = "await"
    #: The user speaks over the answer's playback: keep the answer only as
    #: far as it was heard (the policy emits its ``interrupted`` and
    #: ``turn_complete`` markers next).
    STOP_PLAYBACK = "stop_playback"
    #: The answer's playback is over (or no longer tracked): keep all of it
    #: (the policy emits its ``turn_complete`` marker next).
    FINISH_PLAYBACK = "finish_playback"
    #: Cancel the pre-started generation that no turn will release.
    DROP_PENDING = "drop_pending"
    #: End the input, as `LiveSession.close_input` does (the idle user).
    CLOSE_INPUT = "close_input"


CANCEL: Final = Control.CANCEL
BARGE_IN: Final = Control.BARGE_IN
TRIGGER: Final = Control.TRIGGER
AWAIT: Final = Control.AWAIT
STOP_PLAYBACK: Final = Control.STOP_PLAYBACK
FINISH_PLAYBACK: Final = Control.FINISH_PLAYBACK
DROP_PENDING: Final = Control.DROP_PENDING
CLOSE_INPUT: Final = Control.CLOSE_INPUT

#: What the driver must await: output to send, a generation to handle.
Effect = Emit | Control
#: Everything the policy may decide; `AddToPrompt` and `Stash` are carried
#: out synchronously.
Action = AddToPrompt | Stash | Effect
NOTHING: Final[tuple[Effect, ...]] = ()


class Keep(enum.Enum):
    """How much of an ended generation's answer joins the history."""

    #: Everything it delivered.
    ALL = "all"
    #: As far as the listener heard it (playback tracking, answer cut short).
    HEARD = "heard"
    #: Nothing yet: it is still being played (`State.PLAYING`); it joins when
    #: the playback is finished or stopped.
    LATER = "later"


@attrs.frozen
class TurnEnd:
    """The policy's verdict on a generation that has exited.

    Attributes:
        keep: how much of the answer joins the history now.
        markers: the turn's closing markers for the output, in order
            (``answer_complete``, ``interrupted`` if it was cut short, then
            ``turn_complete``, then an activity report if that changed), each
            tagged with the turn. With `Keep.LATER` only ``answer_complete``
            (and an activity report): the turn is over once its playback is.
            A model error, if the driver reports one, goes before them.
    """

    keep: Keep
    markers: tuple[Part, ...]

    @property
    def interrupted(self) -> bool:
        """True if the turn was cut short (its markers hold ``interrupted``)."""
        return any(marker.mimetype == INTERRUPTED_MIMETYPE for marker in self.markers)
