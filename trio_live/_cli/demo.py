"""The voice demo: a recorded conversation through the whole offline pipeline.

The bundled conversation (``examples/conversation``: espeak-ng WAV files and
``conversation.txt``, which says when each line starts) is laid on one
microphone track and played, paced like a microphone, through::

    microphone -> VAD -> speech to text -> LiveSession -> text to speech -> player

The terminal shows what was heard (partial and final transcriptions), the
model's text as it streams, interruptions, and per turn the latencies from
end of speech to the final transcription, to the first model text and to the
first reply audio.

The player plays the reply audio on a clock (real or virtual; nothing goes to
a sound card), reports playback to the session (``report_playback``, so a
barge-in keeps in the history only what was heard), and sets the VAD's echo
guard while the model speaks. ``--out`` writes the whole conversation as heard
(user and model voices mixed) to a WAV file, and ``--record`` the session
(what reached it, the model calls, what it said) to a log that
``trio-live replay`` reads.

``--fast`` runs on a virtual clock that jumps whenever every task waits, and
is held still while speech is recognized, the model computes or espeak-ng
runs: the silences go by at once, the work takes no virtual time, so the
conversation is the one an infinitely fast machine would have (latencies
then show pipeline waits only).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import trio

from .. import (
    LiveError,
    LiveSession,
    Part,
    PromptStream,
    Recorder,
    RollingPrompt,
    TriggerMode,
    TurnModel,
    is_answer_complete,
    is_audio,
    is_interrupted,
    run_chain,
    text_part,
)
from .._groups import raise_single
from .._playback import PlaybackTracker
from ..models import add_model_arguments
from ..testing import WorkClock
from ..voice import (
    DEFAULT_RATE,
    EspeakTts,
    PiperTts,
    SpeechToText,
    TurnDetector,
    VadConfig,
    VadStage,
    duration,
    load_recognizer,
    pcm_to_float,
    piper_available,
    read_wav,
    send_paced,
    smart_turn_available,
    write_wav,
)
from ._checks import UsageError, check_folder, check_model, check_stt, check_writable
from ._defaults import voice_model
from ._demo_log import DemoLog, quality_summary, summary, write_stdout

#: Where the bundled conversation lives, in a source checkout.
CONVERSATION_DIR = Path(__file__).resolve().parents[2] / "examples" / "conversation"
#: Seconds of microphone silence after the last line (time for the answer).
TAIL = 8.0
#: The interruption rules the demo runs with by default (README rules 15, 16
#: and 18): speech over the answer cuts it once it has lasted 0.5 s and
#: yielded a word that is no backchannel; speech without words for 1 s (a
#: cough) lets it go on.
QUALITY: Mapping[str, Any] = {
    "min_interruption_duration": 0.5,
    "min_interruption_words": 1,
    "false_interruption_timeout": 1.0,
}
#: ``--no-quality``: the library's defaults (rule 3, barge-in at once).
PLAIN: Mapping[str, Any] = {
    "min_interruption_duration": 0.0,
    "min_interruption_words": 0,
    "false_interruption_timeout": None,
}


@attrs.frozen(kw_only=True)
class Line:
    """One line of the recorded conversation.

    Attributes:
        start: when it starts on the microphone track, in seconds.
        path: its WAV file.
        words: what it says ("" for a noise, such as a cough).
        pieces: the words between its pauses (one piece without a pause,
            none for a noise).
    """

    start: float
    path: Path
    words: str
    pieces: tuple[str, ...] = ()


def load_conversation(directory: Path = CONVERSATION_DIR) -> list[Line]:
    """The lines listed in ``directory/conversation.txt``, in order.

    In a line's words ``...`` is a pause mid-sentence, and ``-`` alone says
    the file holds a noise (a cough) with no words.
    """
    lines = []
    for text in (directory / "conversation.txt").read_text().splitlines():
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        start, name, said = text.split(maxsplit=2)
        pieces = () if said == "-" else tuple(p.strip() for p in said.split("...") if p.strip())
        lines.append(
            Line(start=float(start), path=directory / name, words=" ".join(pieces), pieces=pieces)
        )
    return lines


def spoken_spans(lines: Sequence[Line]) -> list[tuple[float, float]]:
    """Where each line with words starts and ends on the microphone track, in seconds."""
    spans = []
    for line in lines:
        if line.pieces:
            pcm, _ = read_wav(line.path)
            spans.append((line.start, line.start + duration(pcm, DEFAULT_RATE)))
    return spans


def microphone_track(lines: Sequence[Line], *, tail: float = TAIL) -> bytes:
    """Every line at its start on one 16 kHz track, silence in between."""
    placed = []
    end = 0
    for line in lines:
        pcm, rate = read_wav(line.path)
        if rate != DEFAULT_RATE:
            raise ValueError(f"{line.path} must be {DEFAULT_RATE} Hz, got {rate}")
        offset = round(line.start * DEFAULT_RATE) * 2
        placed.append((offset, pcm))
        end = max(end, offset + len(pcm))
    track = bytearray(end + round(tail * DEFAULT_RATE) * 2)
    for offset, pcm in placed:
        track[offset : offset + len(pcm)] = pcm
    return bytes(track)


@attrs.define(eq=False)
class _Tap:
    """A stage that shows the user side and passes everything on."""

    log: DemoLog

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for part in inbox:
                self.log.user_part(part)
                await outbox.send(part)


@attrs.define(eq=False)
class Player:
    """Plays the reply audio on the clock and reports playback to the session.

    The reports and the echo guard go through a `PlaybackTracker`: the VAD's
    ``model_speaking`` is on from the first chunk of a turn that plays until
    the turn has played to its end, is interrupted, or nothing plays.

    Args:
        session: told how far each answer was heard.
        vad: its echo guard is set while the model speaks (may be None).
        log: shows what comes out.
    """

    session: LiveSession
    vad: VadStage | None
    log: DemoLog
    played: list[tuple[float, bytes]] = attrs.field(factory=list)
    playback: PlaybackTracker = attrs.field(init=False)
    _queue: collections.deque[Part] = attrs.field(factory=collections.deque)
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _playing: tuple[int, trio.CancelScope] | None = None
    _ended: bool = False

    def __attrs_post_init__(self) -> None:
        # tail=0: the player knows when a chunk ends; nothing plays after it.
        stages = [self.vad] if self.vad is not None else ()
        self.playback = PlaybackTracker(self.session, stages=stages, tail=0.0)

    async def run(self, outputs: trio.MemoryReceiveChannel[Part]) -> None:
        """Show and play ``outputs`` until it ends and the last audio has played."""
        async with trio.open_nursery() as tracking:
            tracking.start_soon(self.playback.run)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._play)
                with outputs:
                    async for part in outputs:
                        self.log.model_part(part)
                        if is_interrupted(part):
                            self._cut(part.metadata.get("turn"))
                        elif (is_audio(part) and part.role == "model") or is_answer_complete(part):
                            self._queue.append(part)
                            self._wake.set()
                self._ended = True
                self._wake.set()
            tracking.cancel_scope.cancel()

    def _cut(self, turn: int | None) -> None:
        kept = [p for p in self._queue if p.metadata.get("turn") != turn]
        self._queue.clear()
        self._queue.extend(kept)
        self.playback.interrupted(turn)
        if self._playing is not None and self._playing[0] == turn:
            self._playing[1].cancel()

    async def _play(self) -> None:
        playback = self.playback
        while True:
            if not self._queue:
                if self._ended:
                    return
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            part = self._queue.popleft()
            turn = part.metadata.get("turn", 0)
            if is_answer_complete(part):
                # Its audio has played: the turn is heard (with playback
                # tracking, its ``turn_complete`` waits for this report).
                playback.report(turn, playback.heard(turn), finished=True)
                continue
            started = trio.current_time()
            playback.part_sent(part)
            with trio.CancelScope() as scope:
                self._playing = (turn, scope)
                await trio.sleep(duration(part.data, DEFAULT_RATE))
            self._playing = None
            played = trio.current_time() - started
            samples = min(len(part.data) // 2, round(played * DEFAULT_RATE))
            self.played.append((started - self.log.start, part.data[: samples * 2]))
            if not scope.cancelled_caught:
                playback.report(turn, part.metadata.get("spoken_chars", 0))


def mix(user: bytes, model: Sequence[tuple[float, bytes]]) -> bytes:
    """The user's track with the model's voice added at the times it played."""
    ends = [round(at * DEFAULT_RATE) + len(pcm) // 2 for at, pcm in model]
    length = max([len(user) // 2, *ends])
    out = np.zeros(length, dtype=np.float64)
    out[: len(user) // 2] += pcm_to_float(user)
    for at, pcm in model:
        begin = round(at * DEFAULT_RATE)
        out[begin : begin + len(pcm) // 2] += pcm_to_float(pcm)
    scaled = np.round(np.clip(out, -1.0, 32767 / 32768) * 32768).astype("<i2")
    return scaled.tobytes()


@attrs.define(eq=False)
class DemoResult:
    """What a demo run produced."""

    log: DemoLog
    history: list[Part]
    conversation: bytes
    #: Where each spoken line starts and ends (see `spoken_spans`).
    spans: list[tuple[float, float]] = attrs.field(factory=list)


async def run_demo(
    model: TurnModel,
    stt: Any,
    *,
    tts: EspeakTts | None = None,
    vad: VadStage | None = None,
    lines: Sequence[Line] | None = None,
    realtime: bool = True,
    write: Callable[[str], None] | None = None,
    turn_detector: TurnDetector | None = None,
    session_options: Mapping[str, Any] | None = None,
    recorder: Recorder | None = None,
) -> DemoResult:
    """Play the conversation through VAD, ``stt``, a session on ``model`` and TTS.

    Args:
        model: the turn model.
        stt: the speech-to-text stage (``SpeechToText`` or a fake).
        tts: the text-to-speech stage (default: `EspeakTts`).
        vad: the voice activity stage (default: `VadStage` with Silero).
        lines: the conversation (default: the bundled one).
        realtime: pace the microphone (False: as fast as the pipeline takes it).
        write: where the terminal text goes.
        turn_detector: a semantic end-of-turn stage after the VAD (rule 19).
        session_options: more `LiveSession` options (the conversation rules).
        recorder: records the session (its input, model calls and output)
            for `trio_live.testing.replay`.
    """
    lines = load_conversation() if lines is None else lines
    vad = VadStage() if vad is None else vad
    tts = EspeakTts() if tts is None else tts
    track = microphone_track(lines)
    log = DemoLog(write=write or write_stdout, start=trio.current_time())
    session = LiveSession(
        model,
        trigger=TriggerMode.FINAL_TRANSCRIPTION,
        track_playback=True,
        model_errors="report",
        recorder=recorder,
        **(session_options or {}),
    )
    # Recording, the microphone is logged before the voice stages (a replay
    # of the whole pipeline feeds it to them again).
    head = [] if recorder is None else [recorder.microphone()]
    player = Player(session=session, vad=vad, log=log)
    send_mic, receive_mic = trio.open_memory_channel[Part](16)
    send_out, receive_out = trio.open_memory_channel[Part](64)

    async def microphone() -> None:
        with send_mic:
            await send_paced(send_mic, track, start=log.start, realtime=realtime)

    turn = [] if turn_detector is None else [turn_detector]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(microphone)
        nursery.start_soon(
            run_chain, [*head, vad, *turn, stt, _Tap(log), session, tts], receive_mic, send_out
        )
        nursery.start_soon(player.run, receive_out)
    log.line("conversation over")
    return DemoResult(
        log=log,
        history=session.history(),
        conversation=mix(track, player.played),
        spans=spoken_spans(lines),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser``."""
    parser.add_argument(
        "--out", metavar="WAV", help="write the conversation as heard to a WAV file"
    )
    parser.add_argument(
        "--fast", action="store_true", help="run as fast as possible on a virtual clock"
    )
    parser.add_argument(
        "--record",
        metavar="LOG",
        help="record the session to a log for 'trio-live replay' (holds the user's voice)",
    )
    parser.add_argument(
        "--stt", default="auto", help="speech to text: auto, moonshine or pocketsphinx"
    )
    parser.add_argument("--conversation", metavar="DIR", help="another recorded conversation")
    quality = parser.add_argument_group(
        "conversation quality (README rules 15-20; on by default, --no-quality: all off)"
    )
    quality.add_argument(
        "--quality",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the demo's defaults for the options below (--no-quality: the library's)",
    )
    quality.add_argument(
        "--turn-detect",
        action="store_true",
        default=None,
        help="semantic end of turn with Smart Turn v3.2 (needs the turn extra;"
        " with --quality on whenever it is installed)",
    )
    quality.add_argument(
        "--min-interruption-duration",
        type=float,
        metavar="S",
        help=f"default {QUALITY['min_interruption_duration']} (--no-quality: 0)",
    )
    quality.add_argument(
        "--min-interruption-words",
        type=int,
        metavar="N",
        help=f"default {QUALITY['min_interruption_words']} (--no-quality: 0)",
    )
    quality.add_argument(
        "--false-interruption-timeout",
        type=float,
        metavar="S",
        help=f"default {QUALITY['false_interruption_timeout']} (--no-quality: none)",
    )
    quality.add_argument("--user-idle-timeout", type=float, metavar="S")
    quality.add_argument("--user-idle-prompt", metavar="TEXT")
    quality.add_argument(
        "--tts", choices=["espeak", "piper"], default="espeak", help="the voice (piper: GPL extra)"
    )
    add_model_arguments(parser)


def session_options(args: argparse.Namespace) -> dict[str, Any]:
    """The conversation-rule options of the demo's `LiveSession`.

    Each interruption option not given on the command line is the demo's
    (`QUALITY`), or with ``--no-quality`` the library's default (rule 3:
    any speech over the answer cuts it at once).
    """
    defaults = QUALITY if getattr(args, "quality", True) else PLAIN
    options = {}
    for name, default in defaults.items():
        value = getattr(args, name, None)
        options[name] = default if value is None else value
    return {
        **options,
        "user_idle_timeout": getattr(args, "user_idle_timeout", None),
        "user_idle_prompt": getattr(args, "user_idle_prompt", None),
    }


def wants_turn_detector(args: argparse.Namespace) -> bool:
    """True if the demo runs `TurnDetector`: ``--turn-detect``, or ``--quality`` and installed."""
    explicit = getattr(args, "turn_detect", None)
    if explicit is not None:
        return bool(explicit)
    return getattr(args, "quality", True) and smart_turn_available()


def check(args: argparse.Namespace) -> None:
    """Find mistakes in the options before any work starts.

    Raises:
        UsageError: an unwritable ``--out``, a missing ``--conversation``
            folder, an unknown ``--stt`` back end, or bad ``--model`` options.
    """
    if args.out:
        check_writable(args.out)
    if getattr(args, "record", None):
        check_writable(args.record, "--record")
    if args.conversation:
        check_folder(args.conversation, "conversation.txt", "--conversation")
    check_stt(args.stt)
    check_model(args)
    try:
        LiveSession(_no_model, **session_options(args))
    except ValueError as error:
        raise UsageError(str(error).replace("_", "-")) from None
    if getattr(args, "turn_detect", None) and not smart_turn_available():
        raise UsageError("--turn-detect needs the turn extra: see .ci/setup.d/35-turn.sh")
    if getattr(args, "tts", "espeak") == "piper" and not piper_available():
        raise UsageError("--tts piper needs the piper extra: pip install 'trio-live[piper]'")


def _rules_line(options: Mapping[str, Any], turn_detect: bool) -> str:
    """The conversation rules in effect, one line."""
    end = "Smart Turn v3.2 (a pause it hears unfinished waits)" if turn_detect else "VAD silence"
    rules = []
    if options["min_interruption_duration"]:
        rules.append(f"once it lasted {options['min_interruption_duration']} s")
    if options["min_interruption_words"]:
        rules.append(f"once it said {options['min_interruption_words']} word(s)")
    if options["false_interruption_timeout"] is not None:
        rules.append(f"not if no words came in {options['false_interruption_timeout']} s")
    cut = ", ".join(rules) if rules else "at once"
    return f"end of turn: {end}; speech over an answer cuts it {cut}\n"


async def _no_model(prompt: Any, output: Any) -> None:
    """Never called: lets `check` build a session to validate its options."""


_model = voice_model


async def warm_up(model: TurnModel, greeting: str = "Hello.") -> None:
    """Run ``model`` on a one-line prompt until its first output, then stop it.

    The first turn of a freshly loaded local model is slow (its first
    computation, and the system instruction read from scratch); afterwards
    llama.cpp keeps the system instruction in its cache, since every prompt
    starts with it. A model error here is left for the real turns to report.
    """
    rolling = RollingPrompt()
    rolling.add(text_part(greeting, role="user"), trio.current_time())
    prompt = PromptStream(rolling.finalize(trio.current_time()))
    send, receive = trio.open_memory_channel[Part](1)

    async def answer() -> None:
        with send, contextlib.suppress(LiveError):
            await model(prompt, send)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        with receive:
            async for _ in receive:
                break
        nursery.cancel_scope.cancel()


@attrs.define(eq=False)
class _HeldTts(EspeakTts):
    """Espeak-ng's synthesis (a process) as work that takes no time on ``--fast``'s clock."""

    hold: WorkClock | None = None

    async def synthesize(self, text: str) -> bytes:
        assert self.hold is not None
        with self.hold.working():
            return await super().synthesize(text)


async def prepare(args: argparse.Namespace) -> tuple[TurnModel, Any]:
    """Load what the demo needs: the model and the speech-to-text stage.

    Two recognizers are loaded in worker threads (the second one while the
    model loads), so the final transcript never waits for a partial one
    still running; a local model is warmed up.

    Raises:
        SpeechError: no speech-to-text back end is installed.
        ModelError: the local model cannot be loaded.
    """
    model = _model(args)
    # The first one alone: a missing back end fails here, plainly.
    first: Any = await trio.to_thread.run_sync(load_recognizer, args.stt)
    second: list[Any] = []

    async def load_second() -> None:
        second.append(await trio.to_thread.run_sync(load_recognizer, args.stt))

    load = getattr(model, "load", None)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load_second)
            if load is not None:
                nursery.start_soon(load)
    except BaseExceptionGroup as group:
        raise_single(group)
    if load is not None:
        await warm_up(model)
    return model, SpeechToText(first, final_recognizer=second[0])


async def _main(args: argparse.Namespace) -> int:
    write = write_stdout
    write("loading the speech recognizer and the model...\n")
    model, stt = await prepare(args)
    directory = Path(args.conversation) if args.conversation else CONVERSATION_DIR
    tts: EspeakTts = PiperTts() if getattr(args, "tts", "espeak") == "piper" else EspeakTts()
    turn = TurnDetector() if wants_turn_detector(args) else None
    write(_rules_line(session_options(args), turn is not None))
    try:
        async with trio.open_nursery() as nursery:
            clock = trio.lowlevel.current_clock()
            if isinstance(clock, WorkClock):
                # The local model runs on its own limiter (see LocalModel).
                own = getattr(model, "_limiter", None)
                if own is not None:
                    clock.watch(own)
                tts = _HeldTts(hold=clock)
            result = await run_demo(
                model,
                stt,
                tts=tts,
                lines=load_conversation(directory),
                write=write,
                turn_detector=turn,
                session_options=session_options(args),
                recorder=_recorder(args),
            )
            nursery.cancel_scope.cancel()
    finally:
        aclose = getattr(model, "aclose", None)
        if aclose is not None:
            await aclose()
    write(summary(result.log.timings.values()))
    write(quality_summary(result.log.timings.values(), result.log.overlaps, result.spans))
    if turn is not None and turn.latencies and not args.fast:
        # (With --fast the clock is held still while it works: 0 ms.)
        write(
            f"Smart Turn: {turn.decisions} decisions, median"
            f" {np.median(turn.latencies) * 1000:.0f} ms each\n"
        )
    if args.out:
        write_wav(args.out, result.conversation, DEFAULT_RATE)
        write(f"wrote {args.out} ({duration(result.conversation, DEFAULT_RATE):.1f} s)\n")
    if getattr(args, "record", None):
        write(f"recorded the session to {args.record} (trio-live replay {args.record})\n")
    return 0


def _recorder(args: argparse.Namespace) -> Recorder | None:
    # What `trio-live replay` needs to rebuild the voice stages.
    if not getattr(args, "record", None):
        return None
    voice = {
        "stt": args.stt,
        "recognizers": 2,
        "turn_detect": bool(getattr(args, "turn_detect", False)),
    }
    return Recorder(args.record, voice={**voice, "vad": attrs.asdict(VadConfig())})


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed arguments; returns the exit status."""
    if args.fast:
        # Real work (threads, espeak-ng) takes no virtual time, exactly: the
        # same clock as `trio_live.testing.replay_pipeline`'s.
        return trio.run(_main, args, clock=WorkClock())
    return trio.run(_main, args)
