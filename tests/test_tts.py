from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from trio_live import (
    Part,
    SpeechError,
    answer_complete,
    audio_rate,
    interrupted,
    is_answer_complete,
    is_audio,
    is_error,
    is_interrupted,
    is_turn_complete,
    status_part,
    text_part,
    turn_complete,
)
from trio_live.voice import EspeakTts, duration, rms, split_sentences
from trio_live.voice._tts import first_piece

TEXT = "Hello there. The weather is sunny today, with a light breeze! Anything else?"


def model_text(text: str, turn: int = 1) -> Part:
    return text_part(text, role="model").with_metadata(turn=turn)


def with_spaces(text: str, turn: int = 1) -> list[Part]:
    words = text.split(" ")
    parts = [model_text(w if i == 0 else " " + w, turn) for i, w in enumerate(words)]
    return [*parts, turn_complete().with_metadata(turn=turn)]


async def run_tts(tts: EspeakTts, parts: Sequence[Part]) -> list[Part]:
    send_in, receive_in = trio.open_memory_channel[Part](len(parts) + 1)
    send_out, receive_out = trio.open_memory_channel[Part](1000)
    for part in parts:
        send_in.send_nowait(part)
    send_in.close()
    with trio.fail_after(30):
        await tts.run(receive_in, send_out)
    async with receive_out:
        return [part async for part in receive_out]


def test_split_sentences() -> None:
    assert split_sentences("Hi. How are you? Fine") == (["Hi. ", "How are you? "], "Fine")
    assert split_sentences('He said "no." Then\nleft') == (['He said "no." ', "Then\n"], "left")
    assert split_sentences("Version 3.5 is out") == ([], "Version 3.5 is out")
    assert split_sentences("Wait...") == ([], "Wait...")


def test_first_piece() -> None:
    assert first_piece("Paris", 5) == 0  # a word is whole once white space follows
    assert first_piece("Well, Paris is", 5) == 0  # a clause needs two words
    assert first_piece("The capital, as you know", 5) == len("The capital, ")
    assert first_piece('He said "yes," then', 5) == len('He said "yes," ')
    assert first_piece("Paris is nice - really ", 5) == len("Paris is nice - ")
    assert first_piece("A well-known city is big", 5) == 0
    assert first_piece("The capital of France is Paris", 5) == len("The capital of France is ")
    assert first_piece(" One two three", 3) == 0
    assert first_piece(" One two three ", 3) == len(" One two three ")
    assert first_piece("The capital, as you know", 0) == 0


class RecordingTts(EspeakTts):
    """Records what it is asked to say; 10 ms of silence per character."""

    said: list[str]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.said = []

    async def synthesize(self, text: str) -> bytes:
        self.said.append(text)
        await trio.lowlevel.checkpoint()
        return bytes(round(len(text) * 0.01 * self.rate) * 2)


async def test_the_first_clause_is_spoken_before_the_first_sentence_ends() -> None:
    tts = RecordingTts()
    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, receive_out = trio.open_memory_channel[Part](100)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.run, receive_in, send_out)
            for text in ["Well", " yes,", " the capital", " of"]:
                await send_in.send(model_text(text))
            received = [await receive_out.receive()]
            while not is_audio(received[-1]):  # comes before the sentence is complete
                received.append(await receive_out.receive())
            assert tts.said == ["Well yes, "]
            assert received[-1].metadata["spoken_chars"] == len("Well yes, ")
            for text in [" France is Paris.", " It is", " big, old", " and", " nice."]:
                await send_in.send(model_text(text))
            await send_in.send(turn_complete().with_metadata(turn=1))
            await send_in.send(model_text("One two three four five six.", turn=2))
            send_in.close()
            rest = [part async for part in receive_out]
    # Later pieces are whole sentences; each new answer starts early again.
    assert tts.said == [
        "Well yes, ",
        "the capital of France is Paris. ",
        "It is big, old and nice.",
        "One two three four five ",
        "six.",
    ]
    spoken = [p.metadata["spoken_chars"] for p in rest if is_audio(p) and p.metadata["turn"] == 1]
    assert spoken[-1] == len("Well yes, the capital of France is Paris. It is big, old and nice.")


async def test_first_words_zero_waits_for_the_sentence() -> None:
    tts = RecordingTts(first_words=0)
    await run_tts(tts, with_spaces("Well yes, the capital of France is Paris. It is."))
    assert tts.said == ["Well yes, the capital of France is Paris. ", "It is."]


async def test_synthesize_gives_plausible_speech() -> None:
    tts = EspeakTts()
    with trio.fail_after(10):
        pcm = await tts.synthesize("Hello there, how are you today?")
    seconds = duration(pcm, 16000)
    assert 1.0 < seconds < 4.0  # six words at 175 words per minute
    assert rms(pcm) > 0.02
    with trio.fail_after(10):
        slow = await EspeakTts(words_per_minute=100, rate=8000).synthesize("Hello there.")
        fast = await EspeakTts(words_per_minute=300, rate=8000).synthesize("Hello there.")
    assert duration(slow, 8000) > duration(fast, 8000) * 1.5


async def test_stage_speaks_sentences_with_alignment() -> None:
    out = await run_tts(EspeakTts(), with_spaces(TEXT))
    texts = [p.text for p in out if not is_audio(p) and not is_turn_complete(p)]
    assert "".join(texts) == TEXT  # text passes through
    audio = [p for p in out if is_audio(p)]
    assert all(p.role == "model" and p.metadata["turn"] == 1 for p in audio)
    assert all(audio_rate(p) == 16000 for p in audio)
    total = sum(duration(p.data, 16000) for p in audio)
    assert 3.0 < total < 8.0
    spoken = [p.metadata["spoken_chars"] for p in audio]
    assert spoken == sorted(spoken)
    assert spoken[-1] == len(TEXT)
    # Sentence ends are reached exactly; in between, counts stop after whole words.
    assert {
        len("Hello there. "),
        len("Hello there. The weather is sunny today, with a light breeze! "),
    } <= set(spoken)
    for count in spoken:
        assert count == len(TEXT) or TEXT[count - 1] == " " or count == 0
    assert is_turn_complete(out[-1])
    assert out.index(audio[-1]) < len(out) - 1


async def test_first_sentence_is_spoken_before_the_rest_arrives() -> None:
    tts = EspeakTts()
    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, receive_out = trio.open_memory_channel[Part](100)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.run, receive_in, send_out)
            await send_in.send(model_text("The first sentence is complete."))
            await send_in.send(model_text(" The second"))
            assert (await receive_out.receive()).text == "The first sentence is complete."
            assert (await receive_out.receive()).text == " The second"
            first_audio = await receive_out.receive()
            assert is_audio(first_audio)
            assert first_audio.metadata["spoken_chars"] <= len("The first sentence is complete. ")
            await send_in.send(model_text(" is here."))
            await send_in.send(turn_complete().with_metadata(turn=1))
            send_in.close()
            rest = [part async for part in receive_out]
    assert is_turn_complete(rest[-1])
    assert max(p.metadata["spoken_chars"] for p in rest if is_audio(p)) == len(
        "The first sentence is complete. The second is here."
    )


async def test_interrupted_stops_at_once_and_drops_queued_sentences() -> None:
    sentences = " ".join(f"This is sentence number {n} of a long answer." for n in range(12))
    tts = EspeakTts(chunk_duration=0.1)
    send_in, receive_in = trio.open_memory_channel[Part](1000)
    send_out, receive_out = trio.open_memory_channel[Part](0)  # one chunk in flight at most
    for part in with_spaces(sentences)[:-1]:
        send_in.send_nowait(part)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.run, receive_in, send_out)
            received: list[Part] = []
            while not any(is_audio(p) for p in received):
                received.append(await receive_out.receive())
            # The stage has read every queued text part (their sentences wait
            # in its own queue): the marker is the next part it reads. (Under
            # load it used to be still reading text, speaking meanwhile.)
            while send_in.statistics().current_buffer_used:
                await trio.testing.wait_all_tasks_blocked()
            await send_in.send(interrupted().with_metadata(turn=1))
            await send_in.send(turn_complete().with_metadata(turn=1))
            await send_in.send(model_text("Next turn.", turn=2))
            send_in.close()
            after = [part async for part in receive_out]
    audio_before_marker = []
    for part in after:
        if is_interrupted(part):
            break
        if is_audio(part):
            audio_before_marker.append(part)
    assert len(audio_before_marker) <= 1  # the chunk already on its way
    marker = after.index(next(p for p in after if is_interrupted(p)))
    assert is_turn_complete(after[marker + 1])
    late = [p for p in after[marker:] if is_audio(p)]
    assert late
    assert all(p.metadata["turn"] == 2 for p in late)
    stats = tts.statistics()
    assert stats.dropped >= 10
    assert stats.sentences == 1  # only "Next turn."


class SlowTts(EspeakTts):
    """50 ms (on trio's clock) to synthesise each piece; 10 ms of silence per character."""

    async def synthesize(self, text: str) -> bytes:
        await trio.sleep(0.05)
        return bytes(round(len(text) * 0.01 * self.rate) * 2)


async def test_interrupted_behind_a_long_answer_is_read_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 40 sentences, one part per word, then the marker, all in the inbox at
    # once: the stage must reach the marker without waiting for the speaker
    # (it used to stop reading once 32 sentences were queued, and spoke 7
    # more of the cut turn's pieces, until 0.35 s, before it saw the marker).
    sentences = " ".join(f"This is sentence number {n} of a long answer." for n in range(40))
    parts = [
        *with_spaces(sentences)[:-1],
        interrupted().with_metadata(turn=1),
        model_text("Next turn.", turn=2),
    ]
    tts = SlowTts()
    send_in, receive_in = trio.open_memory_channel[Part](len(parts))
    send_out, receive_out = trio.open_memory_channel[Part](len(parts) + 100)
    for part in parts:
        send_in.send_nowait(part)
    send_in.close()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.run, receive_in, send_out)
            async with receive_out:
                timed = [(trio.current_time(), part) async for part in receive_out]
    marker_at = next(at for at, part in timed if is_interrupted(part))
    assert marker_at == 0.0  # the first sentence's synthesis was cancelled at once
    assert not [p for _, p in timed if is_audio(p) and p.metadata["turn"] == 1]
    next_turn = [at for at, p in timed if is_audio(p) and p.metadata["turn"] == 2]
    assert next_turn[0] == pytest.approx(0.05)  # its own synthesis, nothing before it
    assert tts.statistics().sentences == 1
    # The first piece (five words) cut short, 39 queued pieces dropped, the
    # last sentence (no white space after it yet) never queued.
    assert tts.statistics().dropped == 41


async def test_other_parts_pass_through_and_are_not_spoken() -> None:
    parts = [
        text_part("user words", role="user"),
        status_part({"state": "x"}),
        text_part("thinking", role="model").replace(substream="debug"),
        model_text("Spoken."),
    ]
    out = await run_tts(EspeakTts(), parts)
    assert out[:4] == parts
    audio = [p for p in out if is_audio(p)]
    assert audio
    assert audio[-1].metadata["spoken_chars"] == len("Spoken.")


async def test_espeak_failure_is_reported_and_the_stage_goes_on() -> None:
    out = await run_tts(EspeakTts(executable="false"), with_spaces("One. Two."))
    errors = [p for p in out if is_error(p)]
    assert len(errors) == 2
    assert "SpeechError" in errors[0].text
    assert is_turn_complete(out[-1])


async def test_missing_espeak_fails_the_stage() -> None:
    with pytest.raises(SpeechError, match="not found"):
        await run_tts(EspeakTts(executable="no-such-espeak-here"), with_spaces("Hi."))


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="sample rate"):
        EspeakTts(rate=100)
    with pytest.raises(ValueError, match="words_per_minute"):
        EspeakTts(words_per_minute=5)


async def test_answer_complete_speaks_the_last_sentence_before_the_turn_is_over() -> None:
    # With playback tracking turn_complete waits for the playback: the last
    # words must be spoken on answer_complete, and the marker follows them.
    tts = RecordingTts()
    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, receive_out = trio.open_memory_channel[Part](100)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.run, receive_in, send_out)
            await send_in.send(model_text("Sure thing"))
            await send_in.send(answer_complete().with_metadata(turn=1))
            received = [await receive_out.receive()]
            while not is_answer_complete(received[-1]):
                received.append(await receive_out.receive())
            assert tts.said == ["Sure thing"]
            audio = [p for p in received if is_audio(p)]
            assert audio[-1].metadata["spoken_chars"] == len("Sure thing")
            send_in.close()
