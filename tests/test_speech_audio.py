"""What each model takes: text-only models get no audio, audio models get speech only.

Every test runs the real adapters against the loopback model server and
checks the request bodies it recorded.
"""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any

import pytest
import trio
from model_server import Reply, open_model_server, run_turn
from test_stt import AsyncWordRecognizer, chunks, run_stage, silence, tone

from trio_live import Part, audio_part, end_of_speech, start_of_speech, text_part, transcription
from trio_live._errors import BadRequestError
from trio_live.models import GeminiModel, LocalModel, OpenAIChatModel
from trio_live.models._content import SPEECH_KEY, select_content
from trio_live.voice import SpeechToText, _stt

RATE = 16000


def final(text: str, start: float, end: float) -> Part:
    # As the prompt holds it: text with ``final`` metadata.
    return text_part(text).with_metadata(final=True, **{SPEECH_KEY: (start, end)})


def wav_seconds(data: str) -> float:
    with wave.open(io.BytesIO(base64.b64decode(data))) as reader:
        return reader.getnframes() / reader.getframerate()


def gemini_audio(body: Any) -> list[list[float]]:
    """Per content, the seconds of each audio blob."""
    return [
        [wav_seconds(p["inlineData"]["data"]) for p in c["parts"] if "inlineData" in p]
        for c in body["contents"]
    ]


# Two spoken turns: 2 s of silence, 1 s of speech, 0.5 s of silence, the final;
# the model answered the first.
def conversation() -> list[Part]:
    turn = [*chunks(silence(2.0)), *chunks(tone(3000, 1.0)), *chunks(silence(0.5))]
    return [
        *turn,
        final("first question", 1.6, 0.4),
        text_part("An answer.", role="model"),
        *turn,
        final("second question", 1.6, 0.4),
    ]


async def test_a_text_model_gets_the_transcripts_and_no_audio() -> None:
    async with open_model_server([Reply(text=["ok"])]) as server:
        model = OpenAIChatModel(model="m", base_url=server.openai_url, api_key=None)
        async with model:
            assert await run_turn(model, conversation()) == ["ok"]
    [request] = server.requests
    messages = request.body["messages"]
    assert [m["content"] for m in messages] == ["first question", "An answer.", "second question"]
    assert "input_audio" not in json.dumps(request.body)


async def test_audio_alone_for_a_text_model_is_a_clear_error() -> None:
    async with open_model_server() as server:
        model = OpenAIChatModel(model="m", base_url=server.openai_url, api_key=None)
        async with model:
            with pytest.raises(BadRequestError, match=r"only audio.*audio_input=True"):
                await run_turn(model, [audio_part(bytes(640))])
    assert server.requests == []


async def test_an_audio_model_gets_the_current_turns_speech_only() -> None:
    async with open_model_server([Reply(text=["ok"])]) as server:
        model = GeminiModel(model="m", base_url=server.gemini_url, api_key="k")
        async with model:
            await run_turn(model, conversation())
    [request] = server.requests
    # Earlier turns by their transcripts; the current one: 1.2 s (speech and
    # its pre-roll), not the 3.5 s of microphone audio.
    assert gemini_audio(request.body) == [[], [], [pytest.approx(1.2, abs=0.001)]]
    texts = [p.get("text") for c in request.body["contents"] for p in c["parts"]]
    assert texts == ["first question", "An answer.", None, "second question"]


async def test_audio_history_keeps_earlier_speech_within_its_budget() -> None:
    async with open_model_server([Reply(text=["ok"])]) as server:
        for history in (1.0, 2.0):
            model = GeminiModel(model="m", base_url=server.gemini_url, audio_history=history)
            async with model:
                await run_turn(model, conversation())
    few, more = (gemini_audio(r.body) for r in server.requests)
    assert few == [[], [], [pytest.approx(1.2, abs=0.001)]]  # 1.2 s do not fit in 1 s
    assert more[0] == [pytest.approx(1.2, abs=0.001)]


async def test_the_audio_of_speech_is_exactly_the_span_the_transcription_names() -> None:
    speech = tone(3000, 0.5)
    parts = [*chunks(silence(1.0) + speech + silence(0.3)), final("hi", 0.8, 0.3)]
    [*_, kept, _text] = select_content(parts, {"text", "audio"})
    joined = b"".join(p.data for p in select_content(parts, {"text", "audio"}) if p.content != "hi")
    assert kept.mimetype.startswith("audio/l16")
    assert joined == speech


async def test_without_transcriptions_the_current_turns_audio_goes_as_it_is() -> None:
    parts = [
        audio_part(bytes(640)),
        text_part("Hm.", role="model"),
        audio_part(b"\1\0" * 320),
        audio_part(b"\2\0" * 320),
    ]
    chosen = select_content(parts, {"text", "audio"})
    assert [p.data for p in chosen[1:]] == [b"\1\0" * 320, b"\2\0" * 320]


def test_models_say_what_they_take() -> None:
    assert OpenAIChatModel(model="m").accepts == {"text", "image"}
    assert OpenAIChatModel(model="m", audio_input=True).accepts == {"text", "image", "audio"}
    assert GeminiModel(model="m").accepts == {"text", "image", "audio"}
    assert GeminiModel(model="m", accepts={"text"}).accepts == {"text"}
    assert LocalModel.accepts == {"text"}
    with pytest.raises(ValueError, match="accepts takes audio, image, text, got video"):
        GeminiModel(model="m", accepts={"text", "video"})
    with pytest.raises(ValueError, match="audio_history"):
        GeminiModel(model="m", audio_history=-1.0)


async def test_speech_to_text_says_where_the_speech_lies(autojump_clock: trio.abc.Clock) -> None:
    assert _stt.SPEECH_KEY == SPEECH_KEY
    stage = SpeechToText(AsyncWordRecognizer(), pre_roll=0.2)
    script: list[Part | float] = [
        *chunks(silence(1.0)),
        start_of_speech().with_metadata(at=0.9),
        *chunks(tone(4000, 0.4) + silence(0.4)),
        end_of_speech().with_metadata(at=1.5),
        *chunks(silence(0.3)),
    ]
    output = await run_stage(stage, script)
    parts = [p for _, p in output]
    [heard] = [p for p in parts if p.metadata.get("final")]
    before = sum(len(p.data) for p in parts[: parts.index(heard)] if p.mimetype.startswith("audio"))
    start, end = heard.metadata[SPEECH_KEY]
    # The utterance starts 0.2 s before the event (pre-roll) and ends at its ``at``.
    assert before / 2 / RATE - start == pytest.approx(0.8, abs=0.021)
    assert before / 2 / RATE - end == pytest.approx(1.5, abs=0.001)
    assert heard.text == "w4"
    assert transcription("x", final=True).metadata.get(SPEECH_KEY) is None
