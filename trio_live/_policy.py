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

import attrs

from ._actions import (
    AWAIT,
    BARGE_IN,
    CANCEL,
    DROP_PENDING,
    FINISH_PLAYBACK,
    NOTHING,
    STOP_PLAYBACK,
    TRIGGER,
    Action,
    Activity,
    AddToPrompt,
    Effect,
    Emit,
    EndOfInput,
    Keep,
    Stash,
    State,
    TriggerMode,
    TurnEnd,
    end_of_input_mode,
    trigger_mode,
)
from ._errors import PolicyError
from ._parts import (
    END_OF_SPEECH_MIMETYPE,
    END_OF_TURN_KEY,
    INTERRUPTED_MIMETYPE,
    RESERVED_SUBSTREAMS,
    START_OF_SPEECH_MIMETYPE,
    TRANSCRIPTION_SUBSTREAM,
    TURN_COMPLETE_MIMETYPE,
    Part,
    activity_part,
    is_audio,
    is_end_of_turn,
    is_final_transcription,
    is_plain,
)

# --- the machine ------------------------------------------------------------


def _check_timeout(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


@attrs.define(eq=False)
class TurnPolicy:
    """Decides what each input part does to the conversation.

    Misuse (input after the input ended, a generation that was never
    triggered) raises `PolicyError` and leaves the machine in `State.ERROR`,
    where every further call raises `PolicyError` too.

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
        emit_activity: report every change of `activity` as an `Emit` of an
            activity part (see `trio_live.activity_part`).
    """

    trigger: TriggerMode = attrs.field(
        default=TriggerMode.FINAL_TRANSCRIPTION, converter=trigger_mode
    )
    wait_for_end_of_speech: bool = True
    end_of_input: EndOfInput = attrs.field(
        default=EndOfInput.IF_UNANSWERED, converter=end_of_input_mode
    )
    track_playback: bool = False
    end_of_speech_timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    emit_activity: bool = False
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
    # The latest turn that is over for the listener, and the latest one that
    # has started to speak: together they give `activity`.
    _done_turn: int = attrs.field(init=False, default=0)
    _spoken_turn: int = attrs.field(init=False, default=0)
    _shown: Activity = attrs.field(init=False, default=Activity.LISTENING)

    @property
    def activity(self) -> Activity:
        """What the conversation visibly does now (listening, thinking, speaking)."""
        if self.turn <= self._done_turn or self.state is State.ERROR:
            return Activity.LISTENING
        if self._spoken_turn >= self.turn:
            return Activity.SPEAKING
        return Activity.THINKING

    def _shown_change(self) -> tuple[Effect, ...]:
        activity = self.activity
        if activity is self._shown:
            return NOTHING
        self._shown = activity
        if not self.emit_activity:
            return NOTHING
        return (Emit(activity_part(activity.value, turn=self.turn)),)

    def _misuse(self, message: str) -> PolicyError:
        self.state = State.ERROR
        return PolicyError(message)

    def _check_open(self) -> None:
        state = self.state
        if state is State.CLOSING or state is State.CLOSED or state is State.ERROR:
            raise self._misuse(f"input after the input ended (state {state.value})")

    def receive(self, part: Part, now: float) -> tuple[Action, ...]:
        """The actions for one input part arriving at time ``now``."""
        state = self.state
        if state is State.CLOSING or state is State.CLOSED or state is State.ERROR:
            raise self._misuse(f"input after the input ended (state {state.value})")
        if is_plain(part):
            return (self._plain(part),)
        substream = part.substream
        mimetype = part.mimetype
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
                self._done_turn = self.turn
                return (BARGE_IN, *self._shown_change())
            if self.state is State.PLAYING:
                # Rule 13: speech over the answer's playback stops it.
                self.state = State.LISTENING
                self._done_turn = self.turn
                stopped = Part(
                    mimetype=INTERRUPTED_MIMETYPE, role="model", metadata={"turn": self.turn}
                )
                return (STOP_PLAYBACK, Emit(stopped), *self._shown_change())
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

    def take_plain(self, part: Part) -> AddToPrompt | Stash:
        """The one action for a part that `is_plain` (what `receive` would return)."""
        self._check_open()
        return self._plain(part)

    def _plain(self, part: Part) -> AddToPrompt | Stash:
        # The common case (audio chunks, text): rule 6 without detours.
        if not self.unanswered and not part.mimetype.startswith("audio/"):
            self.unanswered = True
        if self.state is State.LISTENING:
            return AddToPrompt(part)
        return Stash(part)

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

    def _start_turn(self) -> State:
        before = self.state
        self.state = State.ANSWERING
        self.turn += 1
        self.trigger_deferred = False
        self.deadline = None
        self.unanswered = False
        return before

    def _trigger(self) -> tuple[Effect, ...]:
        before = self._start_turn()
        if before is State.ANSWERING:
            return (CANCEL, TRIGGER, *self._shown_change())
        if before is State.PLAYING:
            return (FINISH_PLAYBACK, TRIGGER, *self._shown_change())
        return (TRIGGER, *self._shown_change())

    def tick(self, now: float) -> tuple[Effect, ...]:
        """The actions due at time ``now`` (call it once `deadline` has passed)."""
        self._check_open()
        deadline = self.deadline
        if deadline is None or now < deadline:
            return NOTHING
        # Rule 10's bound: no end of speech came in time; answer now.
        return self._trigger()

    def output_started(self, turn: int) -> tuple[Effect, ...]:
        """Turn ``turn``'s answer has started to reach the output."""
        if turn > self._spoken_turn:
            self._spoken_turn = turn
        return self._shown_change()

    def generation_ended(
        self, turn: int, *, cancelled: bool = False, finished: bool = True
    ) -> TurnEnd:
        """The verdict on turn ``turn``'s generation, which has exited.

        Args:
            turn: the turn the generation answered.
            cancelled: the driver cancelled it (barge-in or a newer turn).
            finished: the model's call ended by itself (returned or failed),
                rather than by a cancellation.

        A generation superseded by a newer turn changes no state. Rule 8
        lives here: a turn cut short gets ``interrupted`` before its
        ``turn_complete``; with playback tracking, an answer the driver
        cancelled is cut where the listener stopped hearing it, even if the
        model had just finished (the listener's playback stops at the
        ``interrupted`` marker), and an answer that ended by itself is
        played before it joins the history.
        """
        if turn > self.turn or turn < 1:
            raise self._misuse(f"turn {turn} was never triggered (latest: {self.turn})")
        interrupted = cancelled and (self.track_playback or not finished)
        keep = Keep.HEARD if interrupted and self.track_playback else Keep.ALL
        if turn == self.turn:
            if self.state is State.ANSWERING:
                if self.track_playback and not cancelled:
                    self.state = State.PLAYING
                    keep = Keep.LATER
                else:
                    self.state = State.LISTENING
            elif self.state is not State.CLOSING:
                raise self._misuse(f"no generation was running (state {self.state.value})")
            if keep is not Keep.LATER:
                self._done_turn = turn
        tag = {"turn": turn}
        markers = [Part(mimetype=TURN_COMPLETE_MIMETYPE, role="model", metadata=tag)]
        if interrupted:
            markers.insert(0, Part(mimetype=INTERRUPTED_MIMETYPE, role="model", metadata=tag))
        markers.extend(action.part for action in self._shown_change() if isinstance(action, Emit))
        return TurnEnd(keep=keep, markers=tuple(markers))

    def playback_finished(self, turn: int) -> tuple[Effect, ...]:
        """The listener has heard all of turn ``turn``'s answer."""
        if self.state is State.PLAYING and turn == self.turn:
            self.state = State.LISTENING
            self._done_turn = turn
            return (FINISH_PLAYBACK, *self._shown_change())
        return NOTHING

    def input_ended(self) -> tuple[Effect, ...]:
        """The actions when the input ends: finish, maybe answer once more, close."""
        self._check_open()
        # Rule 11: a running answer finishes; it is not cancelled.
        actions: tuple[Effect, ...] = NOTHING
        if self.state is State.ANSWERING:
            actions = (AWAIT,)
        elif self.state is State.PLAYING:
            self._done_turn = self.turn
            actions = (FINISH_PLAYBACK, *self._shown_change())
        policy = self.end_of_input
        answer = policy is EndOfInput.ALWAYS or (
            policy is EndOfInput.IF_UNANSWERED and self.unanswered
        )
        if answer:
            # What runs or plays is finished above, not cancelled.
            self._start_turn()
            actions = (*actions, TRIGGER, *self._shown_change(), AWAIT)
        else:
            actions = (*actions, DROP_PENDING)
        self.deadline = None
        self.state = State.CLOSING
        return actions

    def closed(self) -> None:
        """The session has closed its output."""
        if self.state is not State.ERROR:
            self.state = State.CLOSED
