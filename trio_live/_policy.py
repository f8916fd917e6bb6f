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
and `TurnPolicy.input_ended`. Time is an argument: each timed rule keeps its
own timer (a held final transcription's bound, a pending interruption's
minimum duration and its false-interruption bound, an incomplete turn's
pause, the idle user's timeout); the earliest one shows as
`TurnPolicy.deadline`, and the driver calls `tick` once it has passed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Final

import attrs

from ._actions import (
    AWAIT,
    BARGE_IN,
    CANCEL,
    CLOSE_INPUT,
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
    ANSWER_COMPLETE_MIMETYPE,
    END_OF_SPEECH_MIMETYPE,
    END_OF_TURN_KEY,
    INTERRUPTED_MIMETYPE,
    RESERVED_SUBSTREAMS,
    START_OF_SPEECH_MIMETYPE,
    TRANSCRIPTION_KEY,
    TRANSCRIPTION_SUBSTREAM,
    TURN_COMPLETE_MIMETYPE,
    Part,
    activity_part,
    is_audio,
    is_end_of_turn,
    is_final_transcription,
    is_plain,
    status_part,
    text_part,
)

#: Said over an answer, these do not interrupt it (`TurnPolicy.backchannels`).
DEFAULT_BACKCHANNELS: Final = frozenset(
    {
        "mm",
        "mmm",
        "mm-hm",
        "mm-hmm",
        "mhm",
        "hm",
        "hmm",
        "uh-huh",
        "uh huh",
        "aha",
        "ah",
        "oh",
        "yeah",
        "yep",
        "yes",
        "right",
        "okay",
        "ok",
        "sure",
        "i see",
        "got it",
        "cool",
    }
)

_WORDS: Final = re.compile(r"[\w'-]+")


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def backchannel_set(value: object) -> frozenset[str]:
    """The ``backchannels`` option: words or short phrases, normalised."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"backchannels must be a collection of strings, got {value!r}")
    phrases = set()
    for item in value:
        if not isinstance(item, str) or not _words(item):
            raise ValueError(f"backchannels must hold words, got {item!r}")
        phrases.add(" ".join(_words(item)))
    return frozenset(phrases)


def backchannel_tuple(value: object) -> tuple[str, ...]:
    """The ``backchannels`` option as a sorted tuple (how `LiveSession` keeps it)."""
    return tuple(sorted(backchannel_set(value)))


# --- the machine ------------------------------------------------------------


def _check_timeout(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


def _check_duration(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{attribute.name} must be a number of seconds >= 0, got {value!r}")
    if math.isinf(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


def _check_positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{attribute.name} must be a number of seconds > 0, got {value!r}")


def _check_count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    minimum = 1 if attribute.name == "user_idle_retries" else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")


def _check_prompt(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{attribute.name} must be a non-empty string or None, got {value!r}")


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
        min_interruption_duration: seconds speech over an answer must last
            before it interrupts (0: at its start).
        min_interruption_words: words (backchannels not counted) speech over
            an answer must yield, in a partial or final transcription, before
            it interrupts (0: none needed).
        false_interruption_timeout: seconds after its start that speech over
            an answer has to yield words; speech without words by then (a
            cough, a noise) is no interruption and the answer goes on. Setting
            it makes interruptions wait for at least one word. None: no bound.
        backchannels: words and short phrases ("mm-hm", "yeah") that, said
            over an answer, never interrupt it; they join the history as what
            the user said.
        incomplete_turn_timeout: seconds an end of speech that an end-of-turn
            detector marked incomplete (``metadata["turn_complete"] is False``)
            waits for more speech before it counts as the end of the turn.
        user_idle_timeout: seconds without user input after an answer before
            the user counts as idle (a status part ``{"user_idle": n, ...}``);
            None never does.
        user_idle_prompt: if set, each idle event adds this text (role
            ``system``) to the prompt and triggers a turn the model answers.
        user_idle_retries: how many idle events (each with its prompt) before
            the policy gives up on the user (a last status part).
        user_idle_end: on giving up, end the input (the session closes).
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
    min_interruption_duration: float = attrs.field(default=0.0, validator=_check_duration)
    min_interruption_words: int = attrs.field(default=0, validator=_check_count)
    false_interruption_timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    backchannels: frozenset[str] = attrs.field(
        default=DEFAULT_BACKCHANNELS, converter=backchannel_set
    )
    incomplete_turn_timeout: float = attrs.field(default=2.0, validator=_check_positive)
    user_idle_timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    user_idle_prompt: str | None = attrs.field(default=None, validator=_check_prompt)
    user_idle_retries: int = attrs.field(default=1, validator=_check_count)
    user_idle_end: bool = False
    state: State = attrs.field(init=False, default=State.LISTENING)
    #: Between start and end of speech.
    user_speaking: bool = attrs.field(init=False, default=False)
    #: A trigger is held until the end of speech.
    trigger_deferred: bool = attrs.field(init=False, default=False)
    # The timers (None: not running); `deadline` is the earliest.
    #: When a held trigger fires anyway (see `end_of_speech_timeout`).
    _held_until: float | None = attrs.field(init=False, default=None)
    #: When pending speech has lasted `min_interruption_duration`.
    _long_at: float | None = attrs.field(init=False, default=None)
    #: When pending speech without words is dismissed.
    _dismiss_at: float | None = attrs.field(init=False, default=None)
    #: When an end of speech marked incomplete ends the turn anyway.
    _pause_until: float | None = attrs.field(init=False, default=None)
    #: When the user counts as idle.
    _idle_at: float | None = attrs.field(init=False, default=None)
    # A pending interruption: speech over turn `_pending_turn`'s answer that
    # has not yet lasted long enough (`_long`) or yielded words (`_worded`);
    # `_held_trigger`: a trigger it held (fires if it interrupts).
    _pending_turn: int = attrs.field(init=False, default=0)
    _long: bool = attrs.field(init=False, default=False)
    _worded: bool = attrs.field(init=False, default=False)
    _held_trigger: bool = attrs.field(init=False, default=False)
    # ``_backchannel``: its latest partial transcription was only a
    # backchannel (no interruption yet, and no noise either); ``_pending_final``:
    # its final transcription has come.
    _backchannel: bool = attrs.field(init=False, default=False)
    _pending_final: bool = attrs.field(init=False, default=False)
    # Rule 19's continuation: speech after a pause, while a final
    # transcription is held, has not been transcribed yet (``_awaiting_final``);
    # ``_final_bound``: `_pause_until` now bounds the wait for that final
    # (after the speech ended) rather than a pause.
    _awaiting_final: bool = attrs.field(init=False, default=False)
    _final_bound: bool = attrs.field(init=False, default=False)
    #: Speech over this turn's answer was dismissed; its final transcription,
    #: when it comes, is what the user said, not a trigger.
    _dismissed_turn: int = attrs.field(init=False, default=0)
    # The idle user: the latest answered turn the timer was armed after, and
    # the idle events since the user last said something.
    _idle_turn: int = attrs.field(init=False, default=0)
    _idle_count: int = attrs.field(init=False, default=0)
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
    def deadline(self) -> float | None:
        """When `tick` is due next: the earliest running timer (None: none).

        Minus infinity when a timer is due to start (the idle timer once an
        answer is over): the driver calls `tick` at once, which starts it.
        """
        if self._idle_due_to_arm():
            return -math.inf
        earliest: float | None = None
        for timer in (
            self._held_until,
            self._long_at,
            self._dismiss_at,
            self._pause_until,
            self._idle_at,
        ):
            if timer is not None and (earliest is None or timer < earliest):
                earliest = timer
        return earliest

    @property
    def barge_in_at_once(self) -> bool:
        """True if a start of speech over an answer interrupts it at once (rule 3)."""
        return self.min_interruption_duration == 0 and self._words_needed == 0

    @property
    def _words_needed(self) -> int:
        if self.false_interruption_timeout is not None:
            return max(1, self.min_interruption_words)
        return self.min_interruption_words

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
            self.user_speaking = True
            self._user_heard()
            if self._pause_until is not None and self.trigger_deferred and not self._final_bound:
                # Rule 19: speech after a pause marked incomplete goes on the
                # turn; the held final transcription now waits for this
                # speech's own.
                self._awaiting_final = self.trigger is TriggerMode.FINAL_TRANSCRIPTION
            self._pause_until = None
            self._final_bound = False
            explicit = part.metadata.get("interrupt") is True  # a button, not a voice
            if self._over_answer() and not self.barge_in_at_once and not explicit:
                # Rules 15, 16 and 18: the interruption waits (duration,
                # words); speech that is no interruption leaves nothing
                # unanswered.
                return self._hold_interruption(now)
            self.unanswered = True
            # Rule 3: the user talks over the model: barge-in.
            return self._interrupt()
        if mimetype == END_OF_SPEECH_MIMETYPE:
            self.user_speaking = False
            if self._pending_live():
                if not self._long:
                    # Rule 15: speech shorter than the minimum: no interruption
                    # (its final transcription, unless it came already, is
                    # what the user said).
                    self._dismiss(final_due=not self._pending_final)
                elif self.trigger is TriggerMode.END_OF_SPEECH:
                    # Long enough; its words decide (its trigger waits with it).
                    self._held_trigger = True
                return NOTHING
            if self._dismissed_turn == self.turn and self._over_answer():
                # The end of speech that was no interruption triggers nothing.
                return NOTHING
            if part.metadata.get("turn_complete") is False:
                # Rule 19: the end-of-turn detector heard an unfinished turn:
                # a pause; the turn ends if no speech follows in time.
                self._pause_until = now + self.incomplete_turn_timeout
                return NOTHING
            if self._awaiting_final and self.trigger_deferred:
                # Rule 19: the speech after the pause is over, its words not
                # yet known: its final transcription triggers the turn (or,
                # if none comes, the bound does), not this end of speech.
                self._pause_until = now + self.incomplete_turn_timeout
                self._final_bound = True
                return NOTHING
            # Rule 4 (and rule 10's release of a held final transcription).
            if self.trigger is TriggerMode.END_OF_SPEECH or self.trigger_deferred:
                return self._trigger()
            return NOTHING
        if part.metadata and is_end_of_turn(part):
            # Rule 5: an explicit end of turn; its content (if any) is input.
            self._user_heard()
            content = part.without_metadata(END_OF_TURN_KEY)
            if content.content:
                return (self._user_input(content), *self._trigger())
            return self._trigger()
        # Rule 6: anything else is user input.
        if not is_audio(part):
            self.unanswered = True
            self._user_heard()
        return (self._user_input(part),)

    def take_plain(self, part: Part) -> AddToPrompt | Stash:
        """The one action for a part that `is_plain` (what `receive` would return)."""
        self._check_open()
        return self._plain(part)

    def _plain(self, part: Part) -> AddToPrompt | Stash:
        # The common case (audio chunks, text): rule 6 without detours.
        if not self.unanswered and not part.mimetype.startswith("audio/"):
            self.unanswered = True
        if (self._idle_count or self._idle_at is not None) and not part.mimetype.startswith(
            "audio/"
        ):
            self._user_heard()
        if self.state is State.LISTENING:
            return AddToPrompt(part)
        return Stash(part)

    def _transcription(self, part: Part, now: float) -> tuple[Action, ...]:
        # Rule 2: transcriptions are shown (marked as such on the main
        # stream); only final ones join the prompt.
        shown = Emit(
            part.replace(substream="", metadata={**part.metadata, TRANSCRIPTION_KEY: True})
        )
        text = part.text if isinstance(part.content, str) else ""
        if not is_final_transcription(part):
            if not self._pending_live():
                return (shown,)
            if self._is_backchannel(text):
                # Rule 17: so far a backchannel: no interruption yet, and no
                # noise either (rule 18's bound no longer applies); more words
                # or the final transcription decide.
                self._backchannel = True
                self._dismiss_at = None
                return (shown,)
            if self._says_enough(text):
                # Rule 16: the words came while the user still speaks.
                self._backchannel = False
                self._worded = True
                return (*self._confirm(), shown)
            self._backchannel = False
            return (shown,)
        self._user_heard()
        if self._awaiting_final:
            # Rule 19: the continuation's words have come (see receive).
            self._awaiting_final = False
            if self._final_bound:
                self._final_bound = False
                self._pause_until = None
        backchannel = self._is_backchannel(text)
        over_answer = self._over_answer()
        if not (backchannel and over_answer):
            self.unanswered = True
        said = self._user_input(shown.part)
        if over_answer:
            if self._pending_live():
                self._pending_final = True
                self._backchannel = False
                if not self._says_enough(text):
                    # Rules 16 and 17: too few words, or a backchannel: what
                    # the user said, over the answer, which goes on.
                    self._dismiss(final_due=False)
                    return (said, shown)
                self._worded = True
                if self.trigger is TriggerMode.FINAL_TRANSCRIPTION:
                    self._held_trigger = True
                return (said, *self._confirm(), shown)
            if self._dismissed_turn == self.turn:
                # The words of speech that was no interruption (rule 15 or 18).
                self._dismissed_turn = 0
                return (said, shown)
            if backchannel or len(_words(text)) < self.min_interruption_words:
                # Rule 17 (and 16, without a start of speech): no trigger.
                return (said, shown)
        if self.trigger is not TriggerMode.FINAL_TRANSCRIPTION:
            return (said, shown)
        if self.wait_for_end_of_speech and (self.user_speaking or self._pause_until is not None):
            # Rule 10: the user is still speaking (or pausing mid-turn, rule
            # 19); trigger at end of speech (or once the timeout has passed,
            # if there is one).
            if not self.trigger_deferred and self.end_of_speech_timeout is not None:
                self._held_until = now + self.end_of_speech_timeout
            self.trigger_deferred = True
            return (said, shown)
        return (said, shown, *self._trigger())

    def _user_input(self, part: Part) -> Action:
        if self.state is State.ANSWERING or self.state is State.PLAYING:
            return Stash(part)
        return AddToPrompt(part)

    # -- interruptions (rules 3, 13, 15-18) ---------------------------------

    def _over_answer(self) -> bool:
        return self.state is State.ANSWERING or self.state is State.PLAYING

    def _pending_live(self) -> bool:
        return self._pending_turn != 0 and self._pending_turn == self.turn and self._over_answer()

    def _is_backchannel(self, text: str) -> bool:
        words = _words(text)
        if not words:
            return False
        backchannels = self.backchannels
        return " ".join(words) in backchannels or all(word in backchannels for word in words)

    def _says_enough(self, text: str) -> bool:
        # Rule 16's count; a backchannel (rule 17) counts no words.
        words = _words(text)
        if not words or self._is_backchannel(text):
            return False
        return len(words) >= self._words_needed

    def _interrupt(self) -> tuple[Effect, ...]:
        self._end_pending()
        self.unanswered = True
        if self.state is State.ANSWERING:
            self._done_turn = self.turn
            return (BARGE_IN, *self._shown_change())
        if self.state is State.PLAYING:
            # Rule 13: speech over the answer's playback stops it.
            self.state = State.LISTENING
            self._done_turn = self.turn
            # Rule 8: the turn was complete as an answer; now it is over.
            return (STOP_PLAYBACK, *self._turn_over(self.turn, cut=True), *self._shown_change())
        return NOTHING

    def _hold_interruption(self, now: float) -> tuple[Effect, ...]:
        self._pending_turn = self.turn
        self._dismissed_turn = 0
        self._long = self.min_interruption_duration == 0
        self._worded = self._words_needed == 0
        self._held_trigger = False
        self._backchannel = False
        self._pending_final = False
        self._long_at = None if self._long else now + self.min_interruption_duration
        timeout = self.false_interruption_timeout
        self._dismiss_at = None if timeout is None else now + timeout
        return NOTHING

    def _confirm(self) -> tuple[Effect, ...]:
        # A pending interruption that has met its conditions interrupts; the
        # trigger it held fires (at the end of speech, if the user speaks).
        if not (self._long and self._worded) or self._backchannel:
            return NOTHING
        held = self._held_trigger
        effects = self._interrupt()
        if not held:
            return effects
        if self.user_speaking and self.wait_for_end_of_speech:
            self.trigger_deferred = True
            return effects
        return (*effects, *self._trigger())

    def _dismiss(self, *, final_due: bool) -> None:
        # The speech was no interruption: the answer goes on.
        self._dismissed_turn = self.turn if final_due else 0
        self._end_pending()

    def _end_pending(self) -> None:
        self._pending_turn = 0
        self._held_trigger = False
        self._long_at = None
        self._dismiss_at = None

    # -- the idle user (rule 20) ---------------------------------------------

    def _user_heard(self) -> None:
        # The user said something: the idle timer starts again once the
        # conversation is back with the user.
        self._idle_at = None
        self._idle_count = 0
        self._idle_turn = 0

    def _idle_due_to_arm(self) -> bool:
        return (
            self.user_idle_timeout is not None
            and self._idle_at is None
            and self.state is State.LISTENING
            and self.turn > self._idle_turn
            and self._done_turn == self.turn
            and not self.user_speaking
            and self._pause_until is None
            and self._idle_count <= self.user_idle_retries
        )

    def _idle(self, now: float) -> tuple[Action, ...]:
        self._idle_at = None
        self._idle_count += 1
        count = self._idle_count
        gave_up = count > self.user_idle_retries
        prompt = self.user_idle_prompt
        report = {
            "user_idle": count,
            "idle_seconds": self.user_idle_timeout,
            "prompted": prompt is not None and not gave_up,
            "gave_up": gave_up,
        }
        shown = Emit(status_part(report))
        if gave_up:
            if self.user_idle_end:
                return (shown, CLOSE_INPUT)
            return (shown,)
        if prompt is None:
            # Armed again only after the next answer, or after user input.
            # No prompt: the next report (or the last) after another timeout.
            assert self.user_idle_timeout is not None
            self._idle_at = now + self.user_idle_timeout
            return (shown,)
        asked = AddToPrompt(text_part(prompt, role="system", user_idle=count))
        return (asked, shown, *self._trigger())

    # -- turns ---------------------------------------------------------------

    def _start_turn(self) -> State:
        before = self.state
        self.state = State.ANSWERING
        self.turn += 1
        self.trigger_deferred = False
        self._held_until = None
        self._pause_until = None
        self._awaiting_final = self._final_bound = False
        self._idle_at = None
        self._end_pending()
        self._dismissed_turn = 0
        self.unanswered = False
        return before

    def _turn_over(self, turn: int, *, cut: bool = False) -> tuple[Emit, ...]:
        # Rule 8's last markers: ``interrupted`` if the turn was cut short,
        # then ``turn_complete``.
        tag = {"turn": turn}
        over = Emit(Part(mimetype=TURN_COMPLETE_MIMETYPE, role="model", metadata=tag))
        if not cut:
            return (over,)
        return (Emit(Part(mimetype=INTERRUPTED_MIMETYPE, role="model", metadata=tag)), over)

    def _trigger(self) -> tuple[Effect, ...]:
        playing = self.turn if self.state is State.PLAYING else 0
        before = self._start_turn()
        if before is State.ANSWERING:
            return (CANCEL, TRIGGER, *self._shown_change())
        if before is State.PLAYING:
            # A new turn ends the one still playing: it was heard whole.
            return (FINISH_PLAYBACK, *self._turn_over(playing), TRIGGER, *self._shown_change())
        return (TRIGGER, *self._shown_change())

    def tick(self, now: float) -> tuple[Action, ...]:
        """The actions due at time ``now`` (call it once `deadline` has passed)."""
        self._check_open()
        if self._idle_due_to_arm():
            # Rule 20: an answer is over; the idle timer starts now.
            assert self.user_idle_timeout is not None
            self._idle_turn = self.turn
            self._idle_at = now + self.user_idle_timeout
        actions: tuple[Action, ...] = NOTHING
        if self._long_at is not None and now >= self._long_at:
            self._long_at = None
            if self._pending_live():
                # Rule 15: the speech over the answer has lasted long enough.
                self._long = True
                actions = self._confirm()
        if self._dismiss_at is not None and now >= self._dismiss_at:
            self._dismiss_at = None
            if self._pending_live() and not self._worded:
                # Rule 18: no words in time: a false interruption.
                self._dismiss(final_due=True)
        if self._pause_until is not None and now >= self._pause_until:
            self._pause_until = None
            # Rule 19's bound: no more speech came; the turn is over.
            if self.trigger is TriggerMode.END_OF_SPEECH or self.trigger_deferred:
                actions = (*actions, *self._trigger())
        if self._held_until is not None and now >= self._held_until:
            # Rule 10's bound: no end of speech came in time; answer now.
            actions = (*actions, *self._trigger())
        if self._idle_at is not None and now >= self._idle_at:
            actions = (*actions, *self._idle(now))
        return actions

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
        lives here: the answer's output ends with ``answer_complete``; a
        turn cut short gets ``interrupted`` after it, and every turn ends
        with ``turn_complete``. With playback tracking, an answer the driver
        cancelled is cut where the listener stopped hearing it, even if the
        model had just finished (the listener's playback stops at the
        ``interrupted`` marker), and an answer that ended by itself is
        played before it joins the history: its verdict holds only
        ``answer_complete``, and ``turn_complete`` comes once the playback
        is over (`playback_finished`, speech over it, a new turn, the end of
        the input).
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
        markers = [Part(mimetype=ANSWER_COMPLETE_MIMETYPE, role="model", metadata={"turn": turn})]
        if keep is not Keep.LATER:
            markers.extend(emit.part for emit in self._turn_over(turn, cut=interrupted))
        markers.extend(action.part for action in self._shown_change() if isinstance(action, Emit))
        return TurnEnd(keep=keep, markers=tuple(markers))

    def playback_finished(self, turn: int) -> tuple[Effect, ...]:
        """The listener has heard all of turn ``turn``'s answer."""
        if self.state is State.PLAYING and turn == self.turn:
            self.state = State.LISTENING
            self._done_turn = turn
            return (FINISH_PLAYBACK, *self._turn_over(turn), *self._shown_change())
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
            actions = (FINISH_PLAYBACK, *self._turn_over(self.turn), *self._shown_change())
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
        self._held_until = self._pause_until = self._idle_at = None
        self._awaiting_final = self._final_bound = False
        self._end_pending()
        self.state = State.CLOSING
        return actions

    def closed(self) -> None:
        """The session has closed its output."""
        if self.state is not State.ERROR:
            self.state = State.CLOSED
