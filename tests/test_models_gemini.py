"""The Gemini model against httpx.MockTransport."""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any

import httpx
import pytest
import trio
from model_server import Collector, run_turn

from trio_live import (
    AuthenticationError,
    BadRequestError,
    MalformedStreamError,
    ModelError,
    Part,
    RateLimitedError,
    ServerError,
    audio_part,
    image_part,
    interrupted,
    start_of_speech,
    text_part,
)
from trio_live.models import GeminiModel

KEY = "AIza-test-SECRET-0123456789"


def sse(*payloads: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\r\n\r\n" for p in payloads)


def chunk(*texts: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text} for text in texts]},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **extra}


def answer(*texts: str) -> bytes:
    return sse(*(chunk(text) for text in texts), chunk(finish="STOP", usageMetadata={}))


class Server:
    def __init__(self, *replies: httpx.Response) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        await trio.lowlevel.checkpoint()
        return self.replies[min(len(self.requests), len(self.replies)) - 1]

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def events(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def gemini(server: Server, **options: Any) -> GeminiModel:
    settings: dict[str, Any] = {"model": "gemini-2.0-flash", "api_key": KEY}
    settings.update(options)
    return GeminiModel(transport=httpx.MockTransport(server), **settings)


async def body_for(parts: list[Part], **options: Any) -> dict[str, Any]:
    server = Server(events(answer("ok")))
    async with gemini(server, **options) as model:
        assert await run_turn(model, parts) == ["ok"]
    [body] = server.bodies
    result: dict[str, Any] = body
    return result


def pcm(samples: int, value: int = 1) -> bytes:
    return value.to_bytes(2, "little", signed=True) * samples


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the request ------------------------------------------------------------


async def test_url_and_key_header() -> None:
    server = Server(events(answer("Hi")))
    async with gemini(server) as model:
        await run_turn(model, [text_part("hello")])
    [request] = server.requests
    assert str(request.url) == (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert KEY not in str(request.url)
    assert server.bodies == [{"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}]


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        ({"model": "models/gemini-pro"}, "https://g.test/v1beta/models/gemini-pro"),
        ({"model": "tunedModels/mine"}, "https://g.test/v1beta/tunedModels/mine"),
        ({"base_url": "http://127.0.0.1:9/v1alpha/"}, "http://127.0.0.1:9/v1alpha/models/m"),
    ],
)
async def test_model_names_and_base_urls(settings: dict[str, Any], url: str) -> None:
    server = Server(events(answer("Hi")))
    options = {"model": "m", "base_url": "https://g.test", **settings}
    async with gemini(server, **options) as model:
        await run_turn(model, [text_part("hello")])
    assert str(server.requests[0].url) == url + ":streamGenerateContent?alt=sse"


def test_bad_model_name() -> None:
    with pytest.raises(ValueError, match="model must be"):
        GeminiModel(model="gemini:streamGenerateContent?x", api_key=None)


async def test_roles_system_instruction_and_generation_config() -> None:
    parts = [
        text_part("be brief", role="system"),
        text_part("hello"),
        text_part("anyone?", role=""),
        text_part("Yes", role="model"),
        interrupted(),
        text_part(", here.", role="model"),
        start_of_speech(),
        text_part("good"),
    ]
    body = await body_for(
        parts, system_instruction="You are kind.", options={"temperature": 0.1, "topK": 3}
    )
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "hello\nanyone?"}]},
            {"role": "model", "parts": [{"text": "Yes, here."}]},
            {"role": "user", "parts": [{"text": "good"}]},
        ],
        "systemInstruction": {"parts": [{"text": "You are kind."}, {"text": "be brief"}]},
        "generationConfig": {"temperature": 0.1, "topK": 3},
    }


async def test_images_and_audio_are_inline_data() -> None:
    png = b"\x89PNG fake"
    parts = [
        text_part("what do you see and hear?"),
        image_part(png),
        audio_part(pcm(100, 5), rate=24000),
        audio_part(pcm(50, 6), rate=24000),
        Part(content=b"fLaC", mimetype="audio/flac", role="user"),
    ]
    [content] = (await body_for(parts))["contents"]
    text, image, wav, flac = content["parts"]
    assert text == {"text": "what do you see and hear?"}
    assert image == {"inlineData": {"mimeType": "image/png", "data": b64(png)}}
    assert wav["inlineData"]["mimeType"] == "audio/wav"
    with wave.open(io.BytesIO(base64.b64decode(wav["inlineData"]["data"]))) as reader:
        assert reader.getframerate() == 24000
        assert reader.readframes(1000) == pcm(100, 5) + pcm(50, 6)
    assert flac == {"inlineData": {"mimeType": "audio/flac", "data": b64(b"fLaC")}}


async def test_system_content_must_be_text() -> None:
    server = Server(events(answer("ok")))
    async with gemini(server) as model:
        with pytest.raises(BadRequestError, match="system instruction must be text"):
            await run_turn(model, [image_part(b"x", role="system"), text_part("hi")])
    assert server.requests == []


async def test_only_a_system_instruction_sends_nothing() -> None:
    server = Server(events(answer("ok")))
    async with gemini(server, system_instruction="sys") as model:
        assert await run_turn(model, [text_part("rules", role="system")]) == []
    assert server.requests == []


# --- the streamed answer ----------------------------------------------------


async def test_text_parts_stream_out_and_thoughts_are_skipped() -> None:
    thought = {"candidates": [{"content": {"parts": [{"text": "hmm", "thought": True}]}}]}
    body = sse(
        thought,
        chunk("Hello", " there"),
        {"usageMetadata": {}},  # no candidates: nothing to say
        [chunk("!")],  # some proxies wrap a chunk in a list
        chunk("", finish="STOP"),
    )
    output = Collector()
    async with gemini(Server(events(body))) as model:
        assert await run_turn(model, [text_part("hi")], output) == ["Hello", " there", "!"]
    assert {part.role for part in output.parts} == {"model"}


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (sse({"promptFeedback": {"blockReason": "SAFETY"}}), BadRequestError, "blocked: SAFETY"),
        (
            sse(chunk("a"), {"error": {"code": 503, "message": "overloaded"}}),
            ServerError,
            "overloaded",
        ),
        (
            sse({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}),
            RateLimitedError,
            "quota",
        ),
        (sse(chunk("a")), MalformedStreamError, "ended before the answer"),
        (sse({"candidates": ["nonsense"]}), MalformedStreamError, "candidate"),
        (b"data: <html>\r\n\r\n", MalformedStreamError, "not JSON"),
    ],
)
async def test_broken_or_refused_streams(body: bytes, error: type[ModelError], match: str) -> None:
    async with gemini(Server(events(body)), max_retries=0) as model:
        with pytest.raises(error, match=match):
            await run_turn(model, [text_part("hi")])


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (403, AuthenticationError),
        (429, RateLimitedError),
        (500, ServerError),
    ],
)
async def test_error_bodies_in_gemini_shape(status: int, error: type[ModelError]) -> None:
    # Gemini's REST errors; the streaming endpoint sometimes wraps them in a list.
    body = [{"error": {"code": status, "message": f"gemini says {status}", "status": "X"}}]
    server = Server(httpx.Response(status, json=body))
    async with gemini(server, max_retries=0) as model:
        with pytest.raises(error) as caught:
            await run_turn(model, [text_part("hi")])
    assert (caught.value.status, caught.value.message) == (status, f"gemini says {status}")


async def test_the_key_never_shows() -> None:
    echo = {"error": {"code": 400, "message": f"API key not valid: {KEY}"}}
    async with gemini(Server(httpx.Response(400, json=echo))) as model:
        assert KEY not in repr(model)
        with pytest.raises(BadRequestError) as caught:
            await run_turn(model, [text_part("hi")])
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)
    assert "API key not valid: ***" in caught.value.message
