"""The OpenAI-compatible model against httpx.MockTransport, and the shared HTTP layer."""

from __future__ import annotations

import argparse
import base64
import gc
import io
import json
import logging
import urllib.parse
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
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
    ModelTimeoutError,
    Part,
    RateLimitedError,
    ServerError,
    audio_part,
    image_part,
    interrupted,
    json_part,
    start_of_speech,
    status_part,
    text_part,
    transcription,
)
from trio_live.models import (
    GeminiModel,
    LocalModel,
    OpenAIChatModel,
    add_model_arguments,
    model_from_args,
    model_from_spec,
)

KEY = "sk-test-SECRET-0123456789"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def sse(*payloads: Any, newline: str = "\n") -> bytes:
    lines = [f"data: {p if isinstance(p, str) else json.dumps(p)}" for p in payloads]
    return "".join(line + newline * 2 for line in lines).encode()


def delta(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


STOP = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def answer(*texts: str) -> bytes:
    return sse({"choices": [{"delta": {"role": "assistant"}}]}, *map(delta, texts), STOP, "[DONE]")


def events(body: bytes, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, headers={"content-type": "text/event-stream", **headers}, content=body
    )


class Server:
    """A MockTransport handler answering from a list, recording each request."""

    def __init__(self, *replies: httpx.Response | Handler | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(trio.current_time())
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return await reply(request)
        return reply

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def openai(server: Server, **options: Any) -> OpenAIChatModel:
    settings: dict[str, Any] = {"model": "m", "base_url": "http://test/v1", "api_key": KEY}
    settings.update(options)
    return OpenAIChatModel(transport=httpx.MockTransport(server), **settings)


async def messages_for(parts: list[Part], **options: Any) -> list[dict[str, Any]]:
    server = Server(events(answer("ok")))
    async with openai(server, **options) as model:
        assert await run_turn(model, parts) == ["ok"]
    [body] = server.bodies
    assert body["stream"] is True
    assert body["model"] == "m"
    result: list[dict[str, Any]] = body["messages"]
    return result


def pcm(samples: int, value: int = 1) -> bytes:
    return value.to_bytes(2, "little", signed=True) * samples


# --- the request ------------------------------------------------------------


async def test_request_url_headers_and_body() -> None:
    server = Server(events(answer("Hi")))
    async with openai(server, options={"temperature": 0.2, "max_tokens": 9}) as model:
        await run_turn(model, [text_part("hello")])
    [request] = server.requests
    assert request.method == "POST"
    assert str(request.url) == "http://test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert server.bodies == [
        {
            "temperature": 0.2,
            "max_tokens": 9,
            "model": "m",
            "messages": [{"role": "user", "content": "hello"}],
            "stream": True,
        }
    ]


async def test_roles_are_mapped_and_runs_of_one_role_merged() -> None:
    parts = [
        text_part("be brief", role="system"),
        text_part("hello"),
        text_part("are you there?", role=""),
        Part(content="", role="user"),  # empty: left out
        start_of_speech(),  # markers: left out
        text_part("Yes", role="model"),
        text_part(", I am", role="model"),
        interrupted(),
        text_part(" here.", role="model"),
        transcription("tell me more", final=True).replace(substream=""),
        json_part({"k": 1}, role="user"),
        status_part({"ignored": True}),  # reserved substream: left out
    ]
    assert await messages_for(parts, system_instruction="You are kind.") == [
        {"role": "system", "content": "You are kind."},
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello\nare you there?"},
        {"role": "assistant", "content": "Yes, I am here."},
        {"role": "user", "content": 'tell me more\n{"k": 1}'},
    ]


async def test_images_are_data_urls_next_to_the_text() -> None:
    png, jpeg = b"\x89PNG fake", b"\xff\xd8 fake"
    parts = [
        text_part("what is this?"),
        image_part(png),
        image_part(jpeg, mimetype="image/jpeg"),
        text_part("thanks"),
    ]
    [message] = await messages_for(parts)
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
            },
            {
                "type": "image_url",
                "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()},
            },
            {"type": "text", "text": "thanks"},
        ],
    }


async def test_audio_needs_the_option_and_names_it() -> None:
    server = Server(events(answer("ok")))
    async with openai(server) as model:
        with pytest.raises(BadRequestError, match="audio_input=True"):
            await run_turn(model, [audio_part(pcm(10))])
    assert server.requests == []


async def test_pcm_chunks_become_one_wav_input_audio() -> None:
    parts = [
        text_part("listen"),
        audio_part(pcm(160, 1), rate=8000),
        audio_part(pcm(160, 2), rate=8000),
        audio_part(pcm(80, 3), rate=16000),
        Part(content=b"RIFF....WAVE", mimetype="audio/wav", role="user"),
        Part(content=b"ID3 mp3", mimetype="audio/mpeg", role="user"),
    ]
    [message] = await messages_for(parts, audio_input=True)
    text, first, second, wav, mp3 = message["content"]
    assert text == {"type": "text", "text": "listen"}
    for item, rate, frames in (
        (first, 8000, pcm(160, 1) + pcm(160, 2)),
        (second, 16000, pcm(80, 3)),
    ):
        assert item["type"] == "input_audio"
        assert item["input_audio"]["format"] == "wav"
        with wave.open(io.BytesIO(base64.b64decode(item["input_audio"]["data"]))) as reader:
            assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
            assert reader.getframerate() == rate
            assert reader.readframes(10_000) == frames
    assert wav["input_audio"] == {
        "data": base64.b64encode(b"RIFF....WAVE").decode(),
        "format": "wav",
    }
    assert mp3["input_audio"] == {"data": base64.b64encode(b"ID3 mp3").decode(), "format": "mp3"}


@pytest.mark.parametrize(
    ("part", "match"),
    [
        (Part(content=b"OggS", mimetype="audio/ogg", role="user"), "WAV or MP3"),
        (Part(content=b"%PDF", mimetype="application/pdf", role="user"), "application/pdf"),
        (image_part(b"png", role="model"), "only text from the assistant"),
        (Part(content=b"\0", mimetype="audio/l16", role="user"), "no valid rate"),
    ],
)
async def test_content_the_api_cannot_take_is_a_clear_error(part: Part, match: str) -> None:
    server = Server(events(answer("ok")))
    async with openai(server, audio_input=True) as model:
        with pytest.raises(ModelError, match=match):
            await run_turn(model, [text_part("hi"), part])
    assert server.requests == []


async def test_an_empty_prompt_sends_nothing() -> None:
    server = Server(events(answer("ok")))
    async with openai(server, system_instruction="sys") as model:
        assert await run_turn(model, [start_of_speech(), Part(content="")]) == []
    assert server.requests == []


async def test_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = Server(events(answer("ok")))
    async with OpenAIChatModel(
        model="llama3.2",
        base_url="http://localhost:11434/v1/",
        transport=httpx.MockTransport(server),
    ) as model:
        await run_turn(model, [text_part("hi")])
    assert "authorization" not in server.requests[0].headers
    assert str(server.requests[0].url) == "http://localhost:11434/v1/chat/completions"


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_API_KEY", KEY + "-g")
    assert OpenAIChatModel(model="m").api_key == KEY
    assert GeminiModel(model="m").api_key == KEY + "-g"
    assert OpenAIChatModel(model="m", api_key=None).api_key is None


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"options": {"stream": False}}, "options must not set stream"),
        ({"base_url": "ftp://x"}, "base_url must be an http"),
        ({"idle_timeout": 0}, "idle_timeout must be > 0"),
        ({"max_retries": -1}, "max_retries must be an int >= 0"),
        ({"retry_backoff": float("nan")}, "retry_backoff must be a finite"),
    ],
)
def test_bad_settings(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OpenAIChatModel(model="m", **settings)


# --- the streamed answer ----------------------------------------------------


async def test_each_delta_is_a_model_part() -> None:
    server = Server(events(answer("Hel", "", "lo", " world")))
    output = Collector()
    async with openai(server) as model:
        assert await run_turn(model, [text_part("hi")], output) == ["Hel", "lo", " world"]
    assert all(part.role == "model" and part.mimetype == "text/plain" for part in output.parts)


async def test_chunk_boundaries_anywhere() -> None:
    body = answer("été ", "😀", "!").replace(b"\n\n", b"\r\n\r\n")

    async def one_byte_at_a_time(request: httpx.Request) -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(len(body)):
                yield body[index : index + 1]

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())

    async with openai(Server(one_byte_at_a_time)) as model:
        assert await run_turn(model, [text_part("hi")]) == ["été ", "😀", "!"]


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (sse(delta("a"), "{not json"), MalformedStreamError, "not JSON"),
        (sse(delta("a"), "[1, 2]"), MalformedStreamError, "JSON object"),
        (sse(delta("a"), delta("b")), MalformedStreamError, "ended before the answer"),
        (b"", MalformedStreamError, "ended before the answer"),
        (sse({"error": {"message": "overloaded", "type": "server_error"}}), ServerError, "overl"),
        (
            sse({"error": {"message": "slow down", "type": "rate_limit_error"}}),
            RateLimitedError,
            "slow",
        ),
        (sse({"error": {"message": "nope", "code": 401}}), AuthenticationError, "nope"),
        (
            sse({"error": {"message": "bad", "type": "invalid_request_error"}}),
            BadRequestError,
            "bad",
        ),
    ],
)
async def test_broken_streams(body: bytes, error: type[ModelError], match: str) -> None:
    server = Server(events(body))
    async with openai(server, max_retries=0) as model:
        with pytest.raises(error, match=match):
            await run_turn(model, [text_part("hi")])


async def test_a_json_body_instead_of_events_is_malformed() -> None:
    server = Server(httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]}))
    async with openai(server) as model:
        with pytest.raises(MalformedStreamError, match="expected an event stream"):
            await run_turn(model, [text_part("hi")])


async def test_done_without_trailing_blank_line_still_ends_the_answer() -> None:
    server = Server(events(sse(delta("a")) + b"data: [DONE]\n"))
    async with openai(server) as model:
        assert await run_turn(model, [text_part("hi")]) == ["a"]


# --- error statuses and retries --------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, BadRequestError),
        (408, ServerError),
        (409, BadRequestError),
        (413, BadRequestError),
        (422, BadRequestError),
        (429, RateLimitedError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
async def test_every_error_status(status: int, error: type[ModelError]) -> None:
    body = {"error": {"message": f"server says {status}", "type": "x"}}
    server = Server(httpx.Response(status, json=body))
    async with openai(server, max_retries=0) as model:
        with pytest.raises(error) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.status == status
    assert caught.value.message == f"server says {status}"
    assert str(caught.value) == f"server says {status} (status {status})"


async def test_error_message_from_a_plain_body_or_the_reason() -> None:
    server = Server(httpx.Response(502, text="Bad gateway, sorry"), httpx.Response(500))
    async with openai(server, max_retries=0) as model:
        with pytest.raises(ServerError, match="Bad gateway, sorry"):
            await run_turn(model, [text_part("hi")])
        with pytest.raises(ServerError, match="Internal Server Error"):
            await run_turn(model, [text_part("hi")])


async def test_retries_back_off_with_jitter(autojump_clock: trio.abc.Clock) -> None:
    server = Server(httpx.Response(503), httpx.Response(502), events(answer("ok")))
    async with openai(server, retry_backoff=1.0) as model:
        assert await run_turn(model, [text_part("hi")]) == ["ok"]
    first, second, third = server.times
    assert 0.5 <= second - first <= 1.0
    assert 1.0 <= third - second <= 2.0
    assert len({json.dumps(body) for body in server.bodies}) == 1


async def test_backoff_jitter_spreads_the_waits(autojump_clock: trio.abc.Clock) -> None:
    # Twelve turns, each failing once: without jitter every wait would be
    # exactly retry_backoff; with it they spread over [0.5, 1] x backoff.
    turns = 12
    replies: list[httpx.Response] = []
    for _ in range(turns):
        replies += [httpx.Response(503), events(answer("ok"))]
    server = Server(*replies)
    async with openai(server, retry_backoff=2.0) as model:
        model._random.seed(16)
        for _ in range(turns):
            assert await run_turn(model, [text_part("hi")]) == ["ok"]
    waits = [server.times[i + 1] - server.times[i] for i in range(0, 2 * turns, 2)]
    assert all(1.0 <= wait <= 2.0 for wait in waits)
    assert len(set(waits)) == turns
    assert max(waits) - min(waits) > 0.5


async def test_retries_give_up_after_max_retries(autojump_clock: trio.abc.Clock) -> None:
    server = Server(httpx.Response(500, json={"error": {"message": "down"}}))
    async with openai(server, max_retries=3) as model:
        with pytest.raises(ServerError, match="down"):
            await run_turn(model, [text_part("hi")])
    assert len(server.requests) == 4


async def test_client_errors_are_not_retried(autojump_clock: trio.abc.Clock) -> None:
    server = Server(httpx.Response(400), events(answer("ok")))
    async with openai(server) as model:
        with pytest.raises(BadRequestError):
            await run_turn(model, [text_part("hi")])
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        (
            {
                "retry-after": "Wed, 21 Oct 2015 07:28:12 GMT",
                "date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            12.0,
        ),
    ],
)
async def test_retry_after_is_honoured(
    autojump_clock: trio.abc.Clock, headers: dict[str, str], wait: float
) -> None:
    server = Server(httpx.Response(429, headers=headers), events(answer("ok")))
    async with openai(server) as model:
        assert await run_turn(model, [text_part("hi")]) == ["ok"]
    assert server.times[1] - server.times[0] == pytest.approx(wait)


async def test_retry_after_longer_than_allowed_raises_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    body = {"error": {"message": "quota"}}
    server = Server(httpx.Response(429, headers={"retry-after": "120"}, json=body))
    async with openai(server, max_retry_wait=60) as model:
        with pytest.raises(RateLimitedError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.retry_after == 120.0
    assert len(server.requests) == 1


async def test_connection_errors_are_retried(autojump_clock: trio.abc.Clock) -> None:
    server = Server(httpx.ConnectError("refused"), httpx.ReadError("reset"), events(answer("ok")))
    async with openai(server) as model:
        assert await run_turn(model, [text_part("hi")]) == ["ok"]
    assert len(server.requests) == 3


async def test_a_request_that_cannot_be_written_is_not_retried(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = Server(httpx.LocalProtocolError("Illegal header value b'x'"))
    async with openai(server) as model:
        with pytest.raises(BadRequestError, match="could not be sent") as caught:
            await run_turn(model, [text_part("hi")])
    assert isinstance(caught.value.__cause__, httpx.LocalProtocolError)
    assert len(server.requests) == 1


async def test_connect_timeout(autojump_clock: trio.abc.Clock) -> None:
    server = Server(httpx.ConnectTimeout("slow"))
    async with openai(server, max_retries=1, connect_timeout=3) as model:
        with pytest.raises(ModelTimeoutError, match="no connection within 3") as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.phase == "connect"
    assert len(server.requests) == 2


async def test_a_failure_after_a_delivered_part_is_not_retried(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def fails_midway(request: httpx.Request) -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield sse(delta("Hello"))
            raise httpx.ReadError("connection reset")

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())

    server = Server(fails_midway, events(answer("never")))
    output = Collector()
    async with openai(server) as model:
        with pytest.raises(ServerError, match="connection reset"):
            await run_turn(model, [text_part("hi")], output)
    assert output.texts == ["Hello"]
    assert len(server.requests) == 1


async def test_a_failure_before_any_part_is_retried(autojump_clock: trio.abc.Clock) -> None:
    server = Server(
        events(sse({"choices": [{"delta": {"role": "assistant"}}]}, {"error": {"message": "x"}})),
        events(answer("ok")),
    )
    async with openai(server) as model:
        assert await run_turn(model, [text_part("hi")]) == ["ok"]
    assert len(server.requests) == 2


# --- timeouts ---------------------------------------------------------------


def slow(first: float, *chunks: tuple[float, bytes]) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(first)

        async def body() -> AsyncIterator[bytes]:
            for delay, chunk in chunks:
                await trio.sleep(delay)
                yield chunk

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return handler


@pytest.mark.parametrize(
    ("handler", "phase", "at"),
    [
        (slow(100), "first_byte", 5.0),  # no headers
        (slow(2, (100, answer("x"))), "first_byte", 5.0),  # headers, then nothing
        (slow(0, (1, sse(delta("a"))), (100, answer("b"))), "idle", 3.0),
        (slow(0, (1, b": keep-alive\n\n"), (100, answer("b"))), "idle", 3.0),
    ],
)
async def test_timeouts_have_a_phase_and_fire_on_time(
    autojump_clock: trio.abc.Clock, handler: Handler, phase: str, at: float
) -> None:
    server = Server(handler)
    start = trio.current_time()
    async with openai(server, first_byte_timeout=5, idle_timeout=2, max_retries=0) as model:
        with pytest.raises(ModelTimeoutError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.phase == phase
    assert trio.current_time() - start == pytest.approx(at)


async def test_keep_alives_reset_the_idle_timer(autojump_clock: trio.abc.Clock) -> None:
    pings = [(1.5, b": ping\n\n")] * 6
    server = Server(slow(0, *pings, (1.5, answer("late"))))
    async with openai(server, first_byte_timeout=5, idle_timeout=2) as model:
        assert await run_turn(model, [text_part("hi")]) == ["late"]


# --- cancellation -----------------------------------------------------------


async def test_cancel_closes_the_response_at_once(autojump_clock: trio.abc.Clock) -> None:
    closed_at: list[float] = []

    async def endless(request: httpx.Request) -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield sse(delta("more "))
                    await trio.sleep(1)
            finally:
                closed_at.append(trio.current_time())

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())

    output = Collector()
    async with openai(Server(endless)) as model:
        with trio.move_on_after(3.5) as scope:
            await run_turn(model, [text_part("hi")], output)
    assert scope.cancelled_caught
    assert output.texts == ["more "] * 4
    assert closed_at == [scope.deadline]
    gc.collect()  # an abandoned generator would warn here


# --- secrets ----------------------------------------------------------------


async def test_the_key_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}."}}
    server = Server(httpx.Response(503, json=echo), httpx.Response(401, json=echo))
    async with openai(server, retry_backoff=0) as model:
        assert KEY not in repr(model)
        with pytest.raises(AuthenticationError) as caught:
            await run_turn(model, [text_part("hi")])
    error = caught.value
    assert "Incorrect API key provided: ***." in str(error)
    for text in (str(error), repr(error), error.message, caplog.text):
        assert KEY not in text
    assert "retrying" in caplog.text


BAD_KEYS = [
    pytest.param(KEY + "\n", "a line break", id="trailing-newline"),
    pytest.param(KEY + "\r\n", "a line break", id="trailing-crlf"),
    pytest.param(" " + KEY, "whitespace at position 1", id="leading-space"),
    pytest.param(KEY[:5] + "\t" + KEY[5:], "whitespace at position 6", id="tab"),
    pytest.param(KEY + "\x00", "a control character", id="nul"),
    pytest.param(KEY + "\x7f", "a control character", id="del"),
    pytest.param(KEY + "é", "a non-ASCII character", id="non-ascii"),
    pytest.param(KEY + "\u00a0", "whitespace", id="nbsp"),
]


@pytest.mark.parametrize(("key", "match"), BAD_KEYS)
def test_a_key_that_cannot_be_a_header_is_refused_when_built(
    key: str, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pasted newline used to reach h11, whose error showed the key escaped
    # (past the mask) and was retried as a connection failure; a non-ASCII
    # character gave an untyped UnicodeEncodeError holding the key.
    builders: list[Callable[[], object]] = [
        lambda: OpenAIChatModel(model="m", api_key=key),
        lambda: GeminiModel(model="m", api_key=key),
        lambda: model_from_spec("openai", "m", api_key=key),
        lambda: model_from_spec("gemini", "m", api_key=key),
    ]
    for build in builders:
        with pytest.raises(ValueError, match=rf"^api_key holds {match}") as caught:
            build()
        assert KEY not in str(caught.value)
        assert key not in repr(caught.value)
    if "\x00" in key:
        return  # the environment cannot hold a NUL
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("GEMINI_API_KEY", key)
    for build in (lambda: OpenAIChatModel(model="m"), lambda: GeminiModel(model="m")):
        with pytest.raises(ValueError, match="api_key holds") as caught:
            build()
        assert KEY not in str(caught.value)
    model = OpenAIChatModel(model="m", api_key=KEY)
    with pytest.raises(ValueError, match="api_key holds"):
        model.api_key = key  # checked on assignment too
    assert model.api_key == KEY


async def test_escaped_forms_of_the_key_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = "sk-proj/AbC+dEf=="  # base64-like keys hold characters that get escaped
    forms = [key, "sk-proj%2FAbC%2BdEf%3D%3D", "sk-proj/AbC%2BdEf%3D%3D"]
    echo = {"error": {"message": "keys: " + " | ".join(forms)}}
    server = Server(httpx.Response(503, json=echo), httpx.Response(401, json=echo))
    async with openai(server, api_key=key, retry_backoff=0) as model:
        with pytest.raises(AuthenticationError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.message == "keys: *** | *** | ***"
    for text in (str(caught.value), repr(caught.value), caplog.text):
        for form in forms:
            assert form not in text
        assert "AbC" not in text


def test_mask_secret_covers_repr_json_and_url_escapes() -> None:
    from trio_live._httpclient import mask_secret

    secret = "k'e\\y\"%/+="
    texts = [
        secret,
        repr(secret),
        json.dumps(secret),
        repr(secret.encode()),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(secret),
    ]
    for text in texts:
        masked = mask_secret(f"<{text}>", secret)
        assert "***" in masked, text
        assert "e\\" not in masked, masked
        assert "e%5C" not in masked, masked
    assert mask_secret("nothing here", secret) == "nothing here"
    assert mask_secret("no key", None) == "no key"


# --- the client -------------------------------------------------------------


async def test_one_client_across_turns_closed_by_the_context() -> None:
    server = Server(events(answer("ok")))
    async with openai(server) as model:
        client = model._client
        await run_turn(model, [text_part("1")])
        await run_turn(model, [text_part("2")])
        assert model._client is client
    assert client is not None
    assert client.is_closed


async def test_without_context_the_client_is_lazy_and_aclose_closes_it() -> None:
    server = Server(events(answer("ok")))
    model = openai(server)
    assert model._client is None
    assert await run_turn(model, [text_part("1")]) == ["ok"]
    client = model._client
    assert client is not None
    await model.aclose()
    assert client.is_closed
    assert await run_turn(model, [text_part("2")]) == ["ok"]  # a new client
    await model.aclose()
    await model.aclose()


# --- choosing a model from the command line ---------------------------------


def test_model_from_spec_picks_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "o")
    monkeypatch.setenv("GEMINI_API_KEY", "g")
    gemini = model_from_spec("https://generativelanguage.googleapis.com", "gemini-2.0-flash")
    assert isinstance(gemini, GeminiModel)
    assert (gemini.base_url, gemini.api_key) == (
        "https://generativelanguage.googleapis.com/v1beta",
        "g",
    )
    assert isinstance(model_from_spec("gemini", "g1"), GeminiModel)
    compat = model_from_spec("https://generativelanguage.googleapis.com/v1beta/openai/", "g1")
    assert isinstance(compat, OpenAIChatModel)
    assert compat.base_url == "https://generativelanguage.googleapis.com/v1beta/openai"
    ollama = model_from_spec("http://localhost:11434", "llama3.2", api_key="k")
    assert isinstance(ollama, OpenAIChatModel)
    assert (ollama.base_url, ollama.api_key) == ("http://localhost:11434/v1", "k")
    full = model_from_spec("http://h:8080/v1/chat/completions", "x", system_instruction="s")
    assert isinstance(full, OpenAIChatModel)
    assert (full.base_url, full.system_instruction) == ("http://h:8080/v1", "s")
    official = model_from_spec("openai", "gpt-4o-mini")
    assert isinstance(official, OpenAIChatModel)
    assert (official.base_url, official.api_key) == ("https://api.openai.com/v1", "o")
    forced = model_from_spec("http://proxy.local/v1beta", "g1", provider="gemini")
    assert isinstance(forced, GeminiModel)


@pytest.mark.parametrize(
    ("url", "name", "provider", "match"),
    [
        ("http://h", None, None, "needs a model name"),
        (None, "x", None, "needs a server URL"),
        ("ftp://h", "x", None, "http"),
        ("http://h", "x", "claude", "provider must be"),
    ],
)
def test_model_from_spec_errors(
    url: str | None, name: str | None, provider: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        model_from_spec(url, name, provider=provider)


def test_no_url_gives_the_local_model() -> None:
    model = model_from_spec(None, system_instruction="Be brief.")
    assert isinstance(model, LocalModel)
    assert model.system_instruction == "Be brief."


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(
        ["--model", "http://localhost:8000/v1", "--model-name", "qwen", "--system", "be brief"]
    )
    model = model_from_args(args)
    assert isinstance(model, OpenAIChatModel)
    assert (model.base_url, model.model, model.system_instruction) == (
        "http://localhost:8000/v1",
        "qwen",
        "be brief",
    )
    args = parser.parse_args(["--model", "http://x", "--model-name", "g", "--provider", "gemini"])
    assert isinstance(model_from_args(args), GeminiModel)
