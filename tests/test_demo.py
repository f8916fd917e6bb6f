from __future__ import annotations

import argparse
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from trio_live import (
    Part,
    answer_complete,
    audio_part,
    is_audio,
    is_end_of_speech,
    is_start_of_speech,
    is_text,
    text_part,
    transcription,
)
from trio_live import (
    interrupted as interrupted_part,
)
from trio_live._cli._demo_log import DemoLog, quality_summary
from trio_live._cli.demo import (
    QUALITY,
    Line,
    Player,
    add_arguments,
    load_conversation,
    microphone_track,
    prepare,
    run_demo,
    warm_up,
)
from trio_live._errors import ModelError
from trio_live._model import PromptStream
from trio_live._prompt import RollingPrompt
from trio_live.testing import ScriptedModel, WorkClock
from trio_live.voice import (
    EspeakTts,
    TurnDetector,
    VadStage,
    duration,
    read_wav,
    smart_turn_available,
)

needs_turn_model = pytest.mark.skipif(
    not smart_turn_available(), reason="the turn extra (onnxruntime, pipecat-ai weights)"
)

STORY = (
    "Once upon a time a small cat lived in a quiet house. Every morning she sat by the"
    " window. She watched the birds in the garden. One day a bird landed on the sill."
    " The cat did not move. They looked at each other for a long time. Then the bird"
    " sang a song. The cat listened until the sun went down."
)
# The third answer plays for about 4.5 s, under the cough (at 14.5 s).
DOGS = "Dogs are loyal friends. They love to run, to play and to sleep by the fire."
FLIGHT = "A flight? Sure, I can help you with that. Where would you like to go?"
SCRIPT = ["Paris is the capital of France.", STORY, DOGS, FLIGHT, "Booked. Goodbye!"]


def words(reply: str) -> list[str]:
    parts = reply.split(" ")
    return [parts[0], *(" " + word for word in parts[1:])]


@attrs.define(eq=False)
class KnownWords:
    """Speech to text that knows the script: the words under each speech.

    Like a streaming recognizer it sends a partial transcription (the first
    word) once 0.4 s of speech has come, and the final one right after the
    end of speech. A line with a pause has one speech per piece (the VAD
    ends speech in the pause): the n-th speech in a line gets its n-th
    piece. A cough gets no words.
    """

    lines: list[Line]
    _ends: dict[float, int] = attrs.field(factory=dict)
    _piece: str | None = None
    _heard: float | None = None

    def _line(self, at: float) -> Line:
        return max((x for x in self.lines if x.start < at), key=lambda x: x.start)

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for part in inbox:
                await outbox.send(part)
                if is_start_of_speech(part):
                    line = self._line(part.metadata["at"] + 0.2)
                    piece = self._ends.get(line.start, 0)
                    self._piece = line.pieces[piece] if piece < len(line.pieces) else None
                    self._heard = 0.0
                elif is_audio(part) and self._heard is not None:
                    self._heard += duration(part.data, 16000)
                    if self._heard >= 0.4 and self._piece is not None:
                        await outbox.send(transcription(self._piece.split()[0], final=False))
                        self._heard = None
                elif is_end_of_speech(part):
                    line = self._line(part.metadata["at"])
                    piece = self._ends.get(line.start, 0)
                    self._ends[line.start] = piece + 1
                    self._heard = None
                    if piece < len(line.pieces):
                        await outbox.send(transcription(line.pieces[piece], final=True))


@attrs.define(eq=False)
class SilentTts(EspeakTts):
    """Text to speech without a process: 60 ms of silence per character."""

    async def synthesize(self, text: str) -> bytes:
        await trio.sleep(0.005)
        return bytes(round(len(text) * 0.06 * self.rate) * 2)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


async def run_once(
    **options: Any,
) -> tuple[list[tuple[str, Any]], dict[int, Any], list[Part], str, str]:
    lines = load_conversation()
    model = ScriptedModel([words(reply) for reply in SCRIPT], first_part_delay=0.2, part_delay=0.02)
    printed: list[str] = []
    result = await run_demo(
        model,
        KnownWords(lines),
        tts=SilentTts(),
        lines=lines,
        write=printed.append,
        **options,
    )
    timings = {
        t.turn: (_ms(t.final), _ms(t.first_text), _ms(t.first_audio), t.interrupted)
        for t in result.log.timings.values()
    }
    report = quality_summary(result.log.timings.values(), result.log.overlaps, result.spans)
    return result.log.events, timings, result.history, "".join(printed), report


def said(events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [e for e in events if e[0] in ("heard", "interrupted", "turn complete")]


async def test_the_demo_conversation_runs_the_same_way_every_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The library's rules (the demo's --no-quality): VAD silence ends a turn,
    # any speech over an answer cuts it at once.
    with trio.fail_after(600):
        first = await run_once()
        second = await run_once()
    events, timings, history, printed, report = first
    assert first[:3] == second[:3]
    assert said(events) == [
        ("heard", "Hi there, what is the capital of France?"),
        ("turn complete", 1),
        ("heard", "Tell me a short story about a cat."),
        # The text was all sent, its audio still playing: the turn ends at the cut.
        ("interrupted", 2),
        ("turn complete", 2),
        ("heard", "Wait, tell me about dogs."),
        # The cough cuts the answer about dogs.
        ("interrupted", 3),
        ("turn complete", 3),
        # The pause mid-sentence ends a turn: answered on half a sentence,
        # then cut by the rest of it.
        ("heard", "Thank you. Now I need a flight to"),
        ("interrupted", 4),
        ("turn complete", 4),
        ("heard", "Paris for tomorrow."),
        ("turn complete", 5),
    ]
    assert report == (
        "premature turns (answered before the user's line was over): 1\n"
        "speech over an answer: 3 (cut it: 2 with words, 1 without words; let it go on: 0)\n"
    )
    assert set(timings) == {1, 2, 3, 4, 5}
    for turn, (final, first_text, first_audio, interrupted) in timings.items():
        assert final == 0.0  # KnownWords sends the final right after end of speech
        assert first_text == pytest.approx(0.2, abs=0.05)  # the model's first-part delay
        assert first_audio is not None
        assert first_text <= first_audio < first_text + 0.3  # first sentence complete
        assert interrupted == (turn in (2, 3, 4))
    # Barge-in on what was heard: the story is kept only as far as it played.
    model_texts = [p.text for p in history if p.role == "model" and is_text(p)]
    told = "".join(model_texts)
    assert "Once upon a time" in told
    assert "the sun went down" not in told
    assert "turn 2 interrupted" in printed
    assert "end of speech -> heard 0 ms -> first text 2" in printed


@pytest.fixture
def work_clock() -> WorkClock:
    """The clock of ``demo --fast``: still while a worker thread runs (pytest-trio uses it)."""
    return WorkClock()


@needs_turn_model
async def test_with_the_quality_rules_the_pause_and_the_cough_change_nothing(
    work_clock: WorkClock,
) -> None:
    # The demo's defaults: Smart Turn hears the sentence unfinished at its
    # pause (rule 19), and the cough yields no words (rules 15, 16, 18).
    # Smart Turn runs in a worker thread: the clock stands still meanwhile,
    # as with --fast.
    detector = TurnDetector()
    with trio.fail_after(600):
        events, _, history, printed, report = await run_once(
            session_options=QUALITY, turn_detector=detector
        )
    assert said(events) == [
        ("heard", "Hi there, what is the capital of France?"),
        ("turn complete", 1),
        ("heard", "Tell me a short story about a cat."),
        ("interrupted", 2),
        ("turn complete", 2),
        ("heard", "Wait, tell me about dogs."),
        ("turn complete", 3),  # the cough did not cut it
        ("heard", "Thank you. Now I need a flight to"),
        ("heard", "Paris for tomorrow."),
        ("turn complete", 4),  # one turn for the sentence with a pause
    ]
    assert report == (
        "premature turns (answered before the user's line was over): 0\n"
        "speech over an answer: 2 (cut it: 1 with words, 0 without words; let it go on: 1)\n"
    )
    assert detector.decisions == 6  # four lines, the cough, the pause
    told = [p.text for p in history if p.role == "model" and is_text(p)]
    assert "".join(told).endswith(FLIGHT)
    assert DOGS in "".join(told)  # heard whole, over the cough
    assert "turn 3 interrupted" not in printed


def test_microphone_track_places_each_line() -> None:
    lines = load_conversation()
    assert [(len(line.pieces), bool(line.words)) for line in lines] == [
        (1, True),
        (1, True),
        (1, True),
        (0, False),  # the cough
        (2, True),  # the pause
    ]
    track = microphone_track(lines, tail=1.0)
    last = lines[-1]
    pcm, _ = read_wav(last.path)
    assert duration(track, 16000) == pytest.approx(
        last.start + duration(pcm, 16000) + 1.0, abs=1e-3
    )
    offset = round(last.start * 16000) * 2
    assert track[offset : offset + len(pcm)] == pcm


def test_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--fast", "--out", "x.wav", "--model", "http://127.0.0.1:1", "--model-name", "m"]
    )
    assert (args.fast, args.out, args.model_url, args.model_name) == (
        True,
        "x.wav",
        "http://127.0.0.1:1",
        "m",
    )


async def test_warm_up_stops_the_model_after_its_first_output(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[list[str]] = []
    sent: list[int] = []

    async def model(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        seen.append([p.text for p in await prompt.collect()])
        for n in range(100):
            await trio.sleep(0.1)
            await output.send(text_part(f"word{n} ", role="model"))
            sent.append(n)

    async def failing(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        raise ModelError("no model file")

    with trio.fail_after(5):
        await warm_up(model)
        await warm_up(failing)  # left for the real turns to report
    assert seen == [["Hello."]]
    assert len(sent) <= 2
    assert trio.current_time() < 1.0


def test_the_demo_uses_the_local_model_with_short_english_answers() -> None:
    from trio_live._cli._defaults import REPEAT_PENALTY, SYSTEM
    from trio_live._cli.demo import _model
    from trio_live.models.local import LocalModel

    args = argparse.Namespace(model_url=None, system_instruction=None)
    model = _model(args)
    assert isinstance(model, LocalModel)
    assert (model.system_instruction, model.repeat_penalty) == (SYSTEM, REPEAT_PENALTY)
    assert "English" in SYSTEM
    assert "short" in SYSTEM
    assert model.max_tokens <= 60
    args.system_instruction = "Be terse."
    assert getattr(_model(args), "system_instruction", None) == "Be terse."


async def test_local_model_passes_the_repeat_penalty_to_llama() -> None:
    from trio_live.models.local import LocalModel

    class Llama:
        options: dict[str, Any] = {}  # noqa: RUF012

        def n_ctx(self) -> int:
            return 512

        def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
            return list(text)

        def detokenize(self, tokens: list[int]) -> bytes:
            return bytes(tokens)

        def create_chat_completion(self, messages: Any, **options: Any) -> Any:
            Llama.options = options
            return iter([{"choices": [{"delta": {"content": "Hi."}}]}])

    model = LocalModel(llama=Llama(), repeat_penalty=1.2, max_tokens=8)
    send, receive = trio.open_memory_channel[Part](10)
    rolling = RollingPrompt()
    rolling.add(text_part("Hello.", role="user"), 0.0)
    with trio.fail_after(10):
        await model(PromptStream(rolling.finalize(0.0)), send)
    assert receive.receive_nowait().text == "Hi."
    assert Llama.options["repeat_penalty"] == 1.2
    with pytest.raises(ValueError, match="repeat_penalty"):
        LocalModel(repeat_penalty=0.0)


async def test_prepare_loads_two_recognizers() -> None:
    from trio_live.voice import PocketSphinxRecognizer

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--stt", "pocketsphinx", "--model", "http://127.0.0.1:9", "--model-name", "m"]
    )
    with trio.fail_after(60):
        model, stt = await prepare(args)
    assert isinstance(stt.recognizer, PocketSphinxRecognizer)
    assert isinstance(stt.final_recognizer, PocketSphinxRecognizer)
    assert stt.final_recognizer is not stt.recognizer
    aclose = getattr(model, "aclose", None)
    if aclose is not None:
        await aclose()
    args = parser.parse_args(
        ["--stt", "nonesuch", "--model", "http://127.0.0.1:9", "--model-name", "m"]
    )
    with pytest.raises(ValueError, match="nonesuch"):
        await prepare(args)


def test_serve_uses_the_demos_short_english_answers_for_the_local_model() -> None:
    from trio_live._cli import build_parser
    from trio_live._cli._defaults import REPEAT_PENALTY, SYSTEM, voice_model
    from trio_live.models.local import LocalModel

    args = build_parser("serve").parse_args(["serve"])
    model = voice_model(args)
    assert isinstance(model, LocalModel)
    assert (model.system_instruction, model.repeat_penalty) == (SYSTEM, REPEAT_PENALTY)


# --- the player: playback reports and the echo guard -------------------------


@attrs.define(eq=False)
class Reports:
    """Stands in for the session: records the playback reports."""

    seen: list[tuple[int, int, bool]] = attrs.field(factory=list)

    def report_playback(self, turn: int, chars: int, *, finished: bool = False) -> None:
        self.seen.append((turn, chars, finished))


def speech(seconds: float, *, turn: int, spoken_chars: int) -> Part:
    pcm = bytes(round(seconds * 16000) * 2)
    part = audio_part(pcm, rate=16000).replace(role="model")
    return part.with_metadata(turn=turn, spoken_chars=spoken_chars)


async def test_the_player_sets_the_echo_guard_while_it_plays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reports = Reports()
    vad = VadStage()
    player = Player(session=reports, vad=vad, log=DemoLog(write=lambda text: None))  # type: ignore[arg-type]
    send, receive = trio.open_memory_channel[Part](16)
    guard: list[tuple[float, bool]] = []

    async def watch() -> None:
        # Looks between the chunk boundaries (whole seconds), never on one.
        await trio.sleep(0.4)
        for _ in range(8):
            guard.append((round(trio.current_time() - start, 6), vad.model_speaking))
            await trio.sleep(0.5)

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(player.run, receive)
        nursery.start_soon(watch)
        async with send:
            await send.send(speech(1.0, turn=1, spoken_chars=5))
            await send.send(speech(1.0, turn=1, spoken_chars=12))
            await send.send(answer_complete().with_metadata(turn=1))
            await trio.sleep(2.75)
            await send.send(speech(1.0, turn=2, spoken_chars=4))
            await trio.sleep(0.5)
            await send.send(interrupted_part().with_metadata(turn=2))
            await trio.sleep(0.01)
            assert vad.model_speaking is False  # at once on interrupted
    assert guard == [
        (0.4, True),
        (0.9, True),
        (1.4, True),  # the second chunk of turn 1
        (1.9, True),
        (2.4, False),  # turn 1 played to its end at 2.0
        (2.9, True),  # turn 2 plays from 2.75
        (3.4, False),  # interrupted at 3.25
        (3.9, False),
    ]
    assert reports.seen == [(1, 5, False), (1, 12, False), (1, 12, True)]
