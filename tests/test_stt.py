from __future__ import annotations

import array
import itertools
import math
import threading
import wave
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import trio

from trio_live._errors import SpeechError
from trio_live._parts import (
    Part,
    audio_part,
    end_of_speech,
    is_end_of_speech,
    is_error,
    is_final_transcription,
    is_start_of_speech,
    is_transcription,
    start_of_speech,
    text_part,
)
from trio_live.voice._stt import SpeechToText
from trio_live.voice._stt_backends import MoonshineRecognizer

RATE = 16000
CHUNK = 320  # samples: 20 ms
DATA = Path(__file__).parent / "data"


def tone(amplitude: int, seconds: float) -> bytes:
    # A square wave: every sample is +/- amplitude, so its RMS is amplitude.
    count = round(seconds * RATE)
    return array.array("h", (amplitude if i % 2 else -amplitude for i in range(count))).tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * round(seconds * RATE))


def words(*amplitudes: int, gap: float = 0.1, length: float = 0.2) -> bytes:
    return b"".join(tone(a, length) + silence(gap) for a in amplitudes)


def chunks(pcm: bytes, rate: int = RATE) -> list[Part]:
    size = 2 * CHUNK
    return [audio_part(pcm[i : i + size], rate=rate) for i in range(0, len(pcm), size)]


def hear(pcm16: bytes) -> str:
    # Each loud run of samples is a word ``w<amplitude // 1000>``.
    heard: list[str] = []
    loud = 0
    for sample in array.array("h", pcm16):
        if abs(sample) > 100:
            loud = abs(sample)
        elif loud:
            heard.append(f"w{loud // 1000}")
            loud = 0
    if loud:
        heard.append(f"w{loud // 1000}")
    return " ".join(heard)


class WordRecognizer:
    """A synchronous fake recognizer (runs in the stage's worker thread)."""

    def __init__(self, fail: Callable[[bytes], bool] = lambda pcm: False) -> None:
        self.clips: list[float] = []
        self.fail = fail
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0

    def transcribe(self, pcm16: bytes, rate: int) -> str:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            self.clips.append(len(pcm16) / 2 / rate)
            if self.fail(pcm16):
                raise SpeechError("the fake recognizer failed")
            return hear(pcm16)
        finally:
            with self._lock:
                self._active -= 1


class AsyncWordRecognizer:
    """An async fake recognizer that takes ``delay`` seconds of (virtual) time."""

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self.calls: list[tuple[float, float]] = []  # (start time, clip seconds)
        self.active = 0
        self.max_active = 0

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        self.calls.append((trio.current_time(), len(pcm16) / 2 / rate))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await trio.sleep(self.delay)
        finally:
            self.active -= 1
        return hear(pcm16)


async def run_stage(
    stage: SpeechToText,
    script: Iterable[Part | float],
    *,
    wait_for: Callable[[list[Part]], bool] | None = None,
) -> list[tuple[float, Part]]:
    """Feed ``script`` (parts; a float sleeps) to ``stage``; return its timed output.

    Before each end-of-speech, if ``wait_for`` is given, wait until it is true
    of the output so far.
    """
    send_in, receive_in = trio.open_memory_channel[Part](0)
    send_out, receive_out = trio.open_memory_channel[Part](0)
    output: list[tuple[float, Part]] = []
    changed = trio.Event()
    start = trio.current_time()

    async def collect() -> None:
        nonlocal changed
        async for part in receive_out:
            output.append((trio.current_time() - start, part))
            changed.set()
            changed = trio.Event()

    async def wait() -> None:
        while wait_for is not None and not wait_for([p for _, p in output]):
            await changed.wait()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stage.run, receive_in, send_out)
            nursery.start_soon(collect)
            with send_in:
                for item in script:
                    if isinstance(item, float):
                        await trio.sleep(item)
                        continue
                    if is_end_of_speech(item):
                        await wait()
                    await send_in.send(item)
    return output


def paced(pcm: bytes) -> list[Part | float]:
    script: list[Part | float] = []
    for part in chunks(pcm):
        script += [part, CHUNK / RATE]
    return script


def parts(output: list[tuple[float, Part]]) -> list[Part]:
    return [part for _, part in output]


def transcriptions(output: list[tuple[float, Part]]) -> list[tuple[str, bool]]:
    return [(p.text, is_final_transcription(p)) for _, p in output if is_transcription(p)]


def has_partial(output: list[Part]) -> bool:
    return any(is_transcription(p) and not is_final_transcription(p) for p in output)


def time_of(output: list[tuple[float, Part]], test: Callable[[Part], bool]) -> float:
    return next(at for at, part in output if test(part))


# --- on the mock clock, with an async fake recognizer -----------------------


async def test_partials_during_speech_and_one_final_after(autojump_clock: trio.abc.Clock) -> None:
    recognizer = AsyncWordRecognizer(delay=0.2)
    stage = SpeechToText(recognizer, partial_every=0.5)
    speech = words(1000, 2000, 3000, 4000, 5000, 6000)  # 1.8 s
    script = [
        *paced(silence(0.2)),
        start_of_speech(),
        *paced(speech),
        end_of_speech(),
        *paced(silence(0.2)),
    ]
    output = await run_stage(stage, script)
    got = parts(output)

    # Everything that went in comes out, in order.
    assert [p for p in got if not is_transcription(p)] == [p for p in script if isinstance(p, Part)]
    start = next(i for i, p in enumerate(got) if is_start_of_speech(p))
    end = next(i for i, p in enumerate(got) if is_end_of_speech(p))
    partials = [i for i, p in enumerate(got) if is_transcription(p) and not p.metadata["final"]]
    finals = [i for i, p in enumerate(got) if is_final_transcription(p)]
    assert len(partials) >= 2
    assert all(start < i < end for i in partials)
    assert len(finals) == 1
    assert finals[0] > end
    assert got[finals[0]].text == "w1 w2 w3 w4 w5 w6"
    assert got[finals[0]].role == "user"
    # Each partial is a prefix of the final; none repeats the previous one.
    texts = [got[i].text for i in partials]
    assert all("w1 w2 w3 w4 w5 w6".startswith(t) for t in texts)
    assert len(set(texts)) == len(texts)
    assert recognizer.max_active == 1
    # The pause before end of speech was already being recognized: the final
    # comes less than one recognition after end of speech.
    latency = time_of(output, is_final_transcription) - time_of(output, is_end_of_speech)
    assert 0 <= latency < 0.2


async def test_final_needs_one_recognition_after_speech_without_pause(
    autojump_clock: trio.abc.Clock,
) -> None:
    recognizer = AsyncWordRecognizer(delay=0.3)
    stage = SpeechToText(recognizer, partial_every=10.0)
    script = [start_of_speech(), *paced(tone(3000, 0.6)), end_of_speech()]
    output = await run_stage(stage, script)
    assert transcriptions(output) == [("w3", True)]
    latency = time_of(output, is_final_transcription) - time_of(output, is_end_of_speech)
    assert latency == pytest.approx(0.3)


async def test_final_reuses_recognition_that_covered_the_speech(
    autojump_clock: trio.abc.Clock,
) -> None:
    recognizer = AsyncWordRecognizer(delay=0.2)
    stage = SpeechToText(recognizer, partial_every=10.0)
    script = [start_of_speech(), *paced(tone(3000, 0.4) + silence(0.4)), end_of_speech()]
    # The pause after the word starts a recognition at once; at end of speech
    # only silence is new, so the final needs no second recognition.
    output = await run_stage(stage, script)
    assert transcriptions(output) == [("w3", False), ("w3", True)]
    assert len(recognizer.calls) == 1
    assert time_of(output, is_final_transcription) == time_of(output, is_end_of_speech)


@pytest.mark.parametrize("pause", [0.1, 0.3])
async def test_pause_starts_a_recognition_after_pause_seconds_of_quiet(
    autojump_clock: trio.abc.Clock, pause: float
) -> None:
    recognizer = AsyncWordRecognizer(delay=0.1)
    stage = SpeechToText(recognizer, partial_every=10.0, pause=pause)
    script = [start_of_speech(), *paced(tone(3000, 0.4) + silence(0.6)), end_of_speech()]
    output = await run_stage(stage, script)
    assert transcriptions(output) == [("w3", False), ("w3", True)]
    # Chunk k arrives at 0.02 * k: the chunk that completes the pause at 0.38 + pause.
    assert [at for at, _ in recognizer.calls] == [pytest.approx(0.38 + pause)]


async def test_final_recognizer_does_not_wait_for_a_partial_in_flight(
    autojump_clock: trio.abc.Clock,
) -> None:
    script = [
        start_of_speech(),
        *paced(tone(3000, 1.1) + silence(0.34)),
        end_of_speech(),
        *paced(silence(0.2)),
    ]
    # A slow partial starts at 0.48 s (when 0.5 s of audio is in) and runs
    # until 1.48 s; speech stops at 1.1 s, the pause is heard at 1.18 s, end
    # of speech comes at 1.44 s.
    slow = AsyncWordRecognizer(delay=1.0)
    start = trio.current_time()
    alone = await run_stage(SpeechToText(slow, partial_every=0.5), script)
    assert [round(at - start, 2) for at, _ in slow.calls] == [0.48, 1.48]
    latency = time_of(alone, is_final_transcription) - time_of(alone, is_end_of_speech)
    assert latency == pytest.approx(1.04)  # waited for the partial, then recognized again

    slow, fast = AsyncWordRecognizer(delay=1.0), AsyncWordRecognizer(delay=0.2)
    stage = SpeechToText(slow, partial_every=0.5, final_recognizer=fast)
    start = trio.current_time()
    output = await run_stage(stage, script)
    # The pause went to the free final recognizer at once (done at 1.38 s):
    # the final is ready at end of speech; the partial still running is dropped.
    assert transcriptions(output) == [("w3", False), ("w3", True)]
    assert time_of(output, is_final_transcription) == time_of(output, is_end_of_speech)
    assert [round(at - start, 2) for at, _ in slow.calls] == [0.48]
    assert [round(at - start, 2) for at, _ in fast.calls] == [1.18]
    assert slow.active == 0  # cancelled, not left running


async def test_final_recognizer_partials_stay_on_the_main_recognizer(
    autojump_clock: trio.abc.Clock,
) -> None:
    main, final = AsyncWordRecognizer(delay=0.2), AsyncWordRecognizer(delay=0.2)
    stage = SpeechToText(main, partial_every=0.5, final_recognizer=final)
    speech = words(1000, 2000, 3000, 4000, 5000, gap=0.05)  # 1.25 s
    script = [start_of_speech(), *paced(speech + silence(0.4)), end_of_speech()]
    start = trio.current_time()
    output = await run_stage(stage, script)
    assert transcriptions(output)[-1] == ("w1 w2 w3 w4 w5", True)
    assert [round(at - start, 2) for at, _ in main.calls] == [0.48, 0.98]  # the partials
    assert [round(at - start, 2) for at, _ in final.calls] == [1.28]  # the pause at the end
    assert main.max_active == final.max_active == 1


async def test_slow_recognition_skips_partials(autojump_clock: trio.abc.Clock) -> None:
    recognizer = AsyncWordRecognizer(delay=0.7)
    stage = SpeechToText(recognizer, partial_every=0.2)
    script = [start_of_speech(), *paced(words(*range(1000, 10000, 1000))), end_of_speech()]
    output = await run_stage(stage, script)
    assert recognizer.max_active == 1
    # 2.7 s of speech: one recognition every 0.7 s, not every 0.2 s.
    starts = [at for at, _ in recognizer.calls]
    assert all(b - a >= 0.7 - 1e-9 for a, b in itertools.pairwise(starts))
    assert len(starts) <= 6
    assert transcriptions(output)[-1] == ("w1 w2 w3 w4 w5 w6 w7 w8 w9", True)


async def test_speech_end_speech_gives_two_finals_in_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    recognizer = AsyncWordRecognizer(delay=0.5)
    stage = SpeechToText(recognizer, partial_every=0.3)
    script = [
        start_of_speech(),
        *paced(words(1000, 2000)),
        end_of_speech(),
        *paced(silence(0.1)),
        start_of_speech(),
        *paced(words(7000, 8000)),
        end_of_speech(),
    ]
    output = await run_stage(stage, script)
    got = parts(output)
    finals = [(i, p.text) for i, p in enumerate(got) if is_final_transcription(p)]
    assert [text for _, text in finals] == ["w1 w2", "w7 w8"]
    ends = [i for i, p in enumerate(got) if is_end_of_speech(p)]
    assert finals[0][0] > ends[0]
    assert finals[1][0] > ends[1]
    # Nothing about the second utterance comes before the first final.
    second = [i for i, p in enumerate(got) if is_transcription(p) and "w7" in p.text]
    assert min(second) > finals[0][0]
    # The second start of speech was not held back for the first final.
    starts = [at for at, p in output if is_start_of_speech(p)]
    assert starts[1] == pytest.approx(0.7)


async def test_pre_roll_includes_audio_before_start_of_speech(
    autojump_clock: trio.abc.Clock,
) -> None:
    stage = SpeechToText(AsyncWordRecognizer(), pre_roll=0.35)
    script = [
        *chunks(tone(8000, 0.2) + silence(0.3) + tone(9000, 0.2) + silence(0.1)),
        start_of_speech(),
        *chunks(tone(4000, 0.2)),
        end_of_speech(),
    ]
    output = await run_stage(stage, script)
    # 0.35 s before the event hold the 9000 word but not the 8000 one.
    assert transcriptions(output)[-1] == ("w9 w4", True)


@pytest.mark.parametrize(
    ("at", "heard"),
    [
        (None, "w9 w4"),  # pre_roll only
        (1.95, "w9 w4"),  # later than pre_roll: pre_roll
        (1.3, "w8 w9 w4"),  # earlier: from there
        (0.0, "w8 w9 w4"),  # at most 2 s before the event
    ],
)
async def test_pre_roll_reaches_back_to_the_events_at(
    autojump_clock: trio.abc.Clock, at: float | None, heard: str
) -> None:
    stage = SpeechToText(AsyncWordRecognizer(), pre_roll=0.35)
    # Words at 0-0.2 (w7), 1.4-1.6 (w8), 1.9-2.1 (w9); the event comes at 2.2 s.
    before = tone(7000, 0.2) + silence(1.2) + tone(8000, 0.2) + silence(0.3)
    before += tone(9000, 0.2) + silence(0.1)
    event = start_of_speech() if at is None else start_of_speech().with_metadata(at=at)
    script = [*chunks(before), event, *chunks(tone(4000, 0.2)), end_of_speech()]
    output = await run_stage(stage, script)
    assert transcriptions(output)[-1] == (heard, True)


async def test_long_speech_is_cut_into_segments_between_words(
    autojump_clock: trio.abc.Clock,
) -> None:
    recognizer = AsyncWordRecognizer(delay=0.1)
    stage = SpeechToText(recognizer, max_segment=1.0, partial_every=0.5)
    amplitudes = [1000 * (i % 9 + 1) for i in range(12)]  # 12 words, 3.6 s
    script = [start_of_speech(), *paced(words(*amplitudes)), end_of_speech()]
    output = await run_stage(stage, script)
    expected = " ".join(f"w{a // 1000}" for a in amplitudes)
    assert transcriptions(output)[-1] == (expected, True)
    # No clip is longer than max_segment: committed segments are not
    # recognized again, and no cut fell inside a word (that would hear two).
    assert max(seconds for _, seconds in recognizer.calls) <= 1.0


async def test_pause_after_half_a_segment_commits_it(autojump_clock: trio.abc.Clock) -> None:
    recognizer = AsyncWordRecognizer(delay=0.05)
    stage = SpeechToText(recognizer, max_segment=1.0, partial_every=10.0)
    script = [start_of_speech(), *paced(words(1000, 2000, 3000, 4000, gap=0.4)), end_of_speech()]
    output = await run_stage(stage, script)
    assert transcriptions(output)[-1] == ("w1 w2 w3 w4", True)
    # Pauses after 0.5 s of audio end a segment: from then on, each stretch
    # of audio is recognized once (first pause, 0.1 s after the first word,
    # at 0.3 s: too early).
    clips = [round(seconds, 2) for _, seconds in recognizer.calls]
    assert clips == [0.3, 0.9, 0.6, 0.6]


async def test_recognition_that_ends_where_a_pause_begins_is_a_segment(
    autojump_clock: trio.abc.Clock,
) -> None:
    recognizer = AsyncWordRecognizer(delay=0.2)
    stage = SpeechToText(recognizer, max_segment=1.0, partial_every=0.5)
    speech = tone(3000, 0.5) + silence(0.4) + tone(4000, 0.5) + silence(0.4)
    script = [start_of_speech(), *paced(speech), end_of_speech()]
    output = await run_stage(stage, script)
    assert transcriptions(output)[-1] == ("w3 w4", True)
    # The partial over the first word ended just as the pause began; the
    # pause heard after it made it a segment: the first word is never
    # recognized again (without that: 0.5, 1.0, 1.5).
    clips = [round(seconds, 2) for _, seconds in recognizer.calls]
    assert clips == [0.5, 0.5, 1.0]


async def test_empty_final_emits_nothing(autojump_clock: trio.abc.Clock) -> None:
    stage = SpeechToText(AsyncWordRecognizer())
    script = [start_of_speech(), *paced(silence(1.0)), end_of_speech(), text_part("hi")]
    output = await run_stage(stage, script)
    assert transcriptions(output) == []
    assert parts(output)[-1] == text_part("hi")


async def test_input_end_inside_speech_gives_final(autojump_clock: trio.abc.Clock) -> None:
    stage = SpeechToText(AsyncWordRecognizer())
    output = await run_stage(stage, [start_of_speech(), *chunks(words(5000))])
    assert transcriptions(output)[-1] == ("w5", True)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Part(content=b"\x00\x01\x02", mimetype="audio/l16;rate=16000"), "even number"),
        (Part(content=b"RIFF....", mimetype="audio/wav"), "expected audio/l16"),
        (Part(content=b"\x00\x00", mimetype="audio/l16"), "no valid rate"),
        (audio_part(tone(9000, 0.1), rate=8000), "rate changed"),
    ],
)
async def test_bad_audio_reports_error_and_goes_on(
    autojump_clock: trio.abc.Clock, bad: Part, message: str
) -> None:
    stage = SpeechToText(AsyncWordRecognizer())
    script = [start_of_speech(), *chunks(words(2000)), bad, *chunks(words(3000)), end_of_speech()]
    output = parts(await run_stage(stage, script))
    errors = [p for p in output if is_error(p)]
    assert len(errors) == 1
    assert errors[0].substream == "status"
    assert "AudioFormatError" in errors[0].text
    assert message in errors[0].text
    assert bad in output  # passed through all the same
    assert [p for p in output if is_final_transcription(p)][-1].text == "w2 w3"


async def test_passes_through_without_speech_events(autojump_clock: trio.abc.Clock) -> None:
    stage = SpeechToText(AsyncWordRecognizer())
    script = [*chunks(words(3000)), end_of_speech(), text_part("typed")]
    assert parts(await run_stage(stage, script)) == script


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("partial_every", 0.0),
        ("max_segment", -1.0),
        ("pre_roll", -0.1),
        ("quiet_ratio", math.nan),
        ("pause", 0.0),
    ],
)
def test_config_is_validated(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SpeechToText(WordRecognizer(), **{field: value})  # type: ignore[arg-type]


# --- real clock: a synchronous recognizer in worker threads -----------------


async def test_thread_recognizer_partials_and_final() -> None:
    recognizer = WordRecognizer()
    stage = SpeechToText(recognizer, partial_every=0.5)
    script = [start_of_speech(), *chunks(words(1000, 2000, 3000, 4000)), end_of_speech()]
    output = await run_stage(stage, script, wait_for=has_partial)
    got = parts(output)
    end = next(i for i, p in enumerate(got) if is_end_of_speech(p))
    assert any(is_transcription(p) and not is_final_transcription(p) for p in got[:end])
    assert [p.text for p in got[end:] if is_transcription(p)] == ["w1 w2 w3 w4"]
    assert recognizer.max_active == 1


async def test_recognizer_error_reports_and_goes_on() -> None:
    # The recognizer fails on any clip that holds the loud word.
    recognizer = WordRecognizer(fail=lambda pcm: max(array.array("h", pcm), default=0) > 8000)
    stage = SpeechToText(recognizer)
    script = [
        start_of_speech(),
        *chunks(words(9000)),
        end_of_speech(),
        # The worker thread recognizes the first utterance (and fails) before
        # the second starts; fed at once, the second could supersede it.
        0.5,
        start_of_speech(),
        *chunks(words(4000)),
        end_of_speech(),
    ]
    output = parts(await run_stage(stage, script))
    errors = [p for p in output if is_error(p)]
    assert errors
    assert all("SpeechError" in p.text for p in errors)
    assert [p.text for p in output if is_final_transcription(p)] == ["w4"]


async def test_one_recognition_at_a_time_with_slow_recognizer() -> None:
    # The recognizer blocks its thread until the test lets it go.
    release = threading.Event()

    class Slow(WordRecognizer):
        def transcribe(self, pcm16: bytes, rate: int) -> str:
            release.wait(10)
            return super().transcribe(pcm16, rate)

    recognizer = Slow()
    stage = SpeechToText(recognizer, partial_every=0.1)

    async def let_go() -> None:
        await trio.sleep(0.1)
        release.set()

    script = [start_of_speech(), *chunks(words(*range(1000, 10000, 1000))), end_of_speech()]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(let_go)
        output = await run_stage(stage, script)
    assert recognizer.max_active == 1
    # Partials that would have waited were merged: far fewer calls than
    # 0.1 s steps in 2.7 s of audio.
    assert len(recognizer.clips) < 10
    assert transcriptions(output)[-1] == ("w1 w2 w3 w4 w5 w6 w7 w8 w9", True)


# --- real audio, real recognizer -------------------------------------------


def read_wav(name: str) -> bytes:
    with wave.open(str(DATA / name)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        return bytes(wav.readframes(wav.getnframes()))


@pytest.fixture(scope="module")
def moonshine() -> MoonshineRecognizer:
    return MoonshineRecognizer()


async def test_moonshine_stage_on_speech_longer_than_a_segment(
    moonshine: MoonshineRecognizer,
) -> None:
    # Real clock: recognition takes real time in its thread. 7.9 s of speech,
    # more than one recognition may take (7 s): cut at the pause.
    pcm = read_wav("stt_stop.wav") + read_wav("stt_weather.wav")
    stage = SpeechToText(moonshine, partial_every=math.inf)
    script = [start_of_speech(), *chunks(pcm), end_of_speech()]
    output = await run_stage(stage, script)
    final = [text for text, final in transcriptions(output) if final]
    assert len(final) == 1
    heard = final[0].lower()
    for word in ("stop", "story", "dragon", "weather", "paris", "today"):
        assert word in heard
