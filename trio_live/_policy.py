"""The rules of turn-taking, as a pure state machine.

Parts and times go in, actions come out; the machine never awaits, never reads
a clock and never imports trio. `trio_live._session` carries the actions out.

States::

    LISTENING --trigger--> ANSWERING --generation ended--> LISTENING
        |                      |      \
        |                      |       +--(playback tracked)--> PLAYING
        |                      |                                   |
        |                      |   LISTENING <--played / barge-in--+
        +----input ended-------+----> CLOSING --> CLOSED

PLAYING exists only with ``track_playback``: the answer has been generated
but the listener is still hearing it. The answer joins the history when the
playback is reported finished, or, on a barge-in, as far as it was heard.

Invariants:

* At most one triggered generation runs: a trigger while ANSWERING is always
  preceded by `CANCEL` (and the driver waits for the cancelled generation to
  exit before it triggers the next one).
* While ANSWERING or PLAYING, user input is stashed, never added: the history
  shows the model's answer before anything the user said during it.
* A user part goes to the prompt or the stash at most once, and a part is
  shown on the output at most once.
* In the actions for one part, `AddToPrompt` and `Stash` come before any
  action that may wait (emitting, cancelling, triggering). They were decided
  for the current state, and the driver carries them out before that state
  can change (a generation ending flushes the stash).

The rules, one line each, are in `TurnPolicy.receive`, `TurnPolicy.tick`
and `TurnPolicy.input_ended`. Time is an argument: the one timed rule (a
held final transcription triggers after `end_of_speech_timeout`) shows as
`TurnPolicy.deadline`, and the driver calls `tick` once it has passed.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from ._parts import (
    EMPTY_METADATA,
    END_OF_SPEECH_MIMETYPE,
    END_OF_TURN_KEY,
    MARKER_MIMETYPES,
    RESERVED_SUBSTREAMS,
    START_OF_SPEECH_MIMETYPE,
    TRANSCRIPTION_SUBSTREAM,
    Part,
    is_audio,
    is_end_of_turn,
    is_final_transcription,
)


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


class State(enum.Enum):
    """Where the conversation is."""

    LISTENING = "listening"
    ANSWERING = "answering"
    PLAYING = "playing"
    CLOSING = "closing"
    CLOSED = "closed"


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
    #: The user speaks over the answer's playback: stop it (interrupted
    #: marker) and keep the answer only as far as it was heard.
    STOP_PLAYBACK = "stop_playback"
    #: The answer's playback is over (or no longer tracked): keep all of it.
    FINISH_PLAYBACK = "finish_playback"
    #: Cancel the pre-started generation that no turn will release.
    DROP_PENDING = "drop_pending"


CANCEL: Final = Control.CANCEL
BARGE_IN: Final = Control.BARGE_IN
TRIGGER: Final = Control.TRIGGER
AWAIT: Final = Control.AWAIT
STOP_PLAYBACK: Final = Control.STOP_PLAYBACK
FINISH_PLAYBACK: Final = Control.FINISH_PLAYBACK
DROP_PENDING: Final = Control.DROP_PENDING

Action = Emit | AddToPrompt | Stash | Control
NOTHING: Final[tuple[Action, ...]] = ()


class PolicyError(RuntimeError):
    """The driver called the policy in a state where that call makes no sense."""


# --- the machine ------------------------------------------------------------


def _check_timeout(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


@attrs.define(eq=False)
class TurnPolicy:
    """Decides what each input part does to the conversation.

    Args:
        trigger: what, besides an explicit end-of-turn, triggers a turn.
        wait_for_end_of_speech: in final-transcription mode, hold a final
            transcription that arrives while the user is still speaking until
            the end of speech.
        end_of_input: whether to answer once more when the input ends.
        end_of_speech_timeout: seconds a held final transcription waits for
            the end of speech before it triggers anyway (a voice activity
            detector that misses an end must not stall the conversation);
            None waits as long as it takes.
        track_playback: the listener reports how far it heard each answer;
            an answer joins the history only once heard (see `PLAYING`).
    """

    trigger: TriggerMode = TriggerMode.FINAL_TRANSCRIPTION
    wait_for_end_of_speech: bool = True
    end_of_input: EndOfInput = EndOfInput.IF_UNANSWERED
    track_playback: bool = False
    end_of_speech_timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    state: State = attrs.field(init=False, default=State.LISTENING)
    #: Between start and end of speech.
    user_speaking: bool = attrs.field(init=False, default=False)
    #: A trigger is held until the end of speech.
    trigger_deferred: bool = attrs.field(init=False, default=False)
    #: When a held trigger fires anyway (see `end_of_speech_timeout`).
    deadline: float | None = attrs.field(init=False, default=None)
    #: User input arrived since the last trigger.
    unanswered: bool = attrs.field(init=False, default=False)
    #: How many turns were triggered (the number of the latest one).
    turn: int = attrs.field(init=False, default=0)

    def receive(self, part: Part, now: float) -> tuple[Action, ...]:
        """The actions for one input part arriving at time ``now``."""
        state = self.state
        if state is State.CLOSING or state is State.CLOSED:
            raise PolicyError(f"input after the input ended (state {state.value})")
        substream = part.substream
        mimetype = part.mimetype
        if not substream and part.metadata is EMPTY_METADATA and mimetype not in MARKER_MIMETYPES:
            # The common case (audio chunks, text): rule 6 without detours.
            if not self.unanswered and not mimetype.startswith("audio/"):
                self.unanswered = True
            if state is State.LISTENING:
                return (AddToPrompt(part),)
            return (Stash(part),)
        if substream:
            if substream in RESERVED_SUBSTREAMS:
                # Rule 1: reserved substreams pass straight through.
                return (Emit(part),)
            if substream == TRANSCRIPTION_SUBSTREAM:
                return self._transcription(part, now)
        if mimetype == START_OF_SPEECH_MIMETYPE:
            # Rule 3: the user talks over the model: barge-in.
            self.user_speaking = True
            self.unanswered = True
            if self.state is State.ANSWERING:
                return (BARGE_IN,)
            if self.state is State.PLAYING:
                self.state = State.LISTENING
                return (STOP_PLAYBACK,)
            return NOTHING
        if mimetype == END_OF_SPEECH_MIMETYPE:
            self.user_speaking = False
            # Rule 4 (and rule 10's release of a held final transcription).
            if self.trigger is TriggerMode.END_OF_SPEECH or self.trigger_deferred:
                return self._trigger()
            return NOTHING
        if part.metadata and is_end_of_turn(part):
            # Rule 5: an explicit end of turn; its content (if any) is input.
            content = part.without_metadata(END_OF_TURN_KEY)
            if content.content:
                return (self._user_input(content), *self._trigger())
            return self._trigger()
        # Rule 6: anything else is user input.
        if not is_audio(part):
            self.unanswered = True
        return (self._user_input(part),)

    def _transcription(self, part: Part, now: float) -> tuple[Action, ...]:
        # Rule 2: transcriptions are shown; only final ones join the prompt.
        shown = Emit(part.replace(substream=""))
        if not is_final_transcription(part):
            return (shown,)
        self.unanswered = True
        said = self._user_input(shown.part)
        if self.trigger is not TriggerMode.FINAL_TRANSCRIPTION:
            return (said, shown)
        if self.user_speaking and self.wait_for_end_of_speech:
            # Rule 10: the user is still speaking; trigger at end of speech
            # (or once the timeout has passed, if there is one).
            if not self.trigger_deferred and self.end_of_speech_timeout is not None:
                self.deadline = now + self.end_of_speech_timeout
            self.trigger_deferred = True
            return (said, shown)
        return (said, shown, *self._trigger())

    def _user_input(self, part: Part) -> Action:
        if self.state is State.ANSWERING or self.state is State.PLAYING:
            return Stash(part)
        return AddToPrompt(part)

    def _trigger(self) -> tuple[Action, ...]:
        before = self.state
        self.state = State.ANSWERING
        self.turn += 1
        self.trigger_deferred = False
        self.deadline = None
        self.unanswered = False
        if before is State.ANSWERING:
            return (CANCEL, TRIGGER)
        if before is State.PLAYING:
            return (FINISH_PLAYBACK, TRIGGER)
        return (TRIGGER,)

    def tick(self, now: float) -> tuple[Action, ...]:
        """The actions due at time ``now`` (call it once `deadline` has passed)."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return NOTHING
        # Rule 10's bound: no end of speech came in time; answer now.
        return self._trigger()

    def generation_ended(self, turn: int, *, cancelled: bool = False) -> bool:
        """The generation of turn number ``turn`` has exited.

        Returns True if its answer is now being played (`PLAYING`): it joins
        the history later, when `playback_finished` or a barge-in says how
        much was heard. A generation superseded by a newer turn changes
        nothing.
        """
        if turn > self.turn or turn < 1:
            raise PolicyError(f"turn {turn} was never triggered (latest: {self.turn})")
        if turn < self.turn:
            return False
        if self.state is State.ANSWERING:
            if self.track_playback and not cancelled:
                self.state = State.PLAYING
                return True
            self.state = State.LISTENING
        elif self.state is not State.CLOSING:
            raise PolicyError(f"no generation was running (state {self.state.value})")
        return False

    def playback_finished(self, turn: int) -> tuple[Action, ...]:
        """The listener has heard all of turn ``turn``'s answer."""
        if self.state is State.PLAYING and turn == self.turn:
            self.state = State.LISTENING
            return (FINISH_PLAYBACK,)
        return NOTHING

    def input_ended(self) -> tuple[Action, ...]:
        """The actions when the input ends: finish, maybe answer once more, close."""
        if self.state is State.CLOSING or self.state is State.CLOSED:
            raise PolicyError("the input already ended")
        # Rule 11: a running answer finishes; it is not cancelled.
        actions: tuple[Action, ...] = NOTHING
        if self.state is State.ANSWERING:
            actions = (AWAIT,)
        elif self.state is State.PLAYING:
            actions = (FINISH_PLAYBACK,)
        policy = self.end_of_input
        answer = policy is EndOfInput.ALWAYS or (
            policy is EndOfInput.IF_UNANSWERED and self.unanswered
        )
        if answer:
            self._trigger()
            actions = (*actions, TRIGGER, AWAIT)
        else:
            actions = (*actions, DROP_PENDING)
        self.deadline = None
        self.state = State.CLOSING
        return actions

    def closed(self) -> None:
        """The session has closed its output."""
        self.state = State.CLOSED
