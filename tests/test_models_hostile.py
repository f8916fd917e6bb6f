"""The HTTP adapters against hostile servers: echoed keys, giant or endless
bodies, wrong JSON types.

The unit tests use `httpx.MockTransport`; the ``loopback`` tests use the real
server of `model_server` (its hostile modes), on the real clock, each under a
`trio.fail_after` bound.
"""

from __future__ import annotations

import functools
import gc
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from model_server import ModelServer, Reply, open_model_server, run_turn

from trio_live import (
    LiveSession,
    MalformedStreamError,
    ModelError,
    ServerError,
    end_of_turn,
    is_error,
    is_marker,
    is_turn_complete,
    text_part,
)
from trio_live._errors import ResponseTooLargeError
from trio_live.models import GeminiModel, HTTPTurnModel, OpenAIChatModel
from trio_live.models._sse import ServerSentEvent
from trio_live.voice._stt_http import HttpRecognizer

KEY = "sk-hostile-SECRET-0123456789abcdef"
HALVES = (KEY[: len(KEY) // 2], KEY[len(KEY) // 2 :])


def sse(*payloads: Any) -> bytes:
    return b"".join(
        f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n".encode() for p in payloads
    )


def reply(status: int, body: bytes, kind: str = "text/event-stream") -> httpx.Response:
    return httpx.Response(status, headers={"content-type": kind}, content=body)


def reply_stream(chunks: AsyncIterator[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks)


def build(dialect: str, response: Callable[[], httpx.Response], **options: Any) -> HTTPTurnModel:
    transport = httpx.MockTransport(lambda request: response())
    settings: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "transport": transport}
    settings.update(options)
    if dialect == "openai":
        return OpenAIChatModel(model="m", base_url="http://test/v1", **settings)
    return GeminiModel(model="m", base_url="http://test/v1beta", **settings)


def assert_no_key(error: BaseException) -> None:
    for text in (str(error), repr(error), getattr(error, "message", "")):
        for half in HALVES:
            assert half not in text, text


# --- 5: the key is masked before any cut ----------------------------------

# Where the old code cut: 500 characters (error bodies, error events), 200
# (event data shown in a parse error), 300 (the recognizer).
CUTS = (200, 300, 500)
# The key starts this many characters before a cut, so the cut falls inside it.
INSIDE = (9, len(KEY) // 2, len(KEY) - 1)


def straddling(prefix_length: int) -> str:
    return "x" * prefix_length + KEY + " was refused"


SHAPES: dict[str, Callable[[str], httpx.Response]] = {
    "error body (JSON)": lambda text: httpx.Response(401, json={"error": {"message": text}}),
    "error body (plain)": lambda text: httpx.Response(500, text=text),
    "error body (bare string)": lambda text: httpx.Response(400, json={"error": text}),
    "error event": lambda text: reply(200, sse({"error": {"message": text, "code": 503}})),
    "error event (not an object)": lambda text: reply(200, sse({"error": [text]})),
    "data not JSON": lambda text: reply(200, f"data: {{{text}\n\n".encode()),
    "data not an object": lambda text: reply(200, sse([text, text])),
    "not an event stream": lambda text: reply(200, text.encode(), "text/html"),
}


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_an_echoed_key_straddling_a_cut_is_masked_whole(dialect: str, shape: str) -> None:
    for cut in CUTS:
        for inside in INSIDE:
            text = straddling(cut - inside)
            model = build(dialect, lambda text=text: SHAPES[shape](text))
            async with model:
                with pytest.raises(ModelError) as caught:
                    await run_turn(model, [text_part("hi")])
            assert_no_key(caught.value)
            assert len(caught.value.message) <= 500


async def test_the_recognizer_masks_before_its_cut() -> None:
    pcm = bytes(3200)
    for cut in CUTS:
        for inside in INSIDE:
            for status, text in ((401, straddling(cut - inside)), (200, straddling(cut - inside))):
                response = httpx.Response(status, text=text)
                stt = HttpRecognizer(
                    "http://stt.test/v1",
                    api_key=KEY,
                    transport=httpx.MockTransport(lambda request, r=response: r),
                )
                async with stt:
                    with pytest.raises(ModelError) as caught:
                        await stt.transcribe(pcm, 16000)
                assert_no_key(caught.value)
                assert len(caught.value.message) <= 300
    await trio.lowlevel.checkpoint()


# --- 7: read limits -----------------------------------------------------------

# httpx reads the socket 64 KiB at a time: a limit is crossed within one read.
READ = 64 * 1024


class Counting(httpx.AsyncBaseTransport):
    """A real HTTP transport that counts the body bytes the client read."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.read = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CountedStream(self, response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CountedStream(httpx.AsyncByteStream):
    def __init__(self, counter: Counting, stream: Any) -> None:
        self.counter = counter
        self.stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            self.counter.read += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


def loopback(dialect: str, server: ModelServer, **options: Any) -> tuple[HTTPTurnModel, Counting]:
    counting = Counting()
    settings: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "transport": counting}
    settings.update(options)
    if dialect == "openai":
        return OpenAIChatModel(model="m", base_url=server.openai_url, **settings), counting
    return GeminiModel(model="m", base_url=server.gemini_url, **settings), counting


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    yield
    gc.collect()  # an unclosed socket or generator would warn (and fail) here


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
@pytest.mark.parametrize(
    ("reply", "options", "error", "limit"),
    [
        pytest.param(
            Reply(status=500, error_body="endless"),
            {"max_error_body": 100_000},
            ServerError,
            100_000,
            id="endless-error-body",
        ),
        pytest.param(
            Reply(after=1, end="endless_line"),
            {"max_line_length": 200_000},
            ResponseTooLargeError,
            200_000,
            id="endless-line",
        ),
        pytest.param(
            Reply(after=1, end="endless_event"),
            {"max_event_length": 300_000},
            ResponseTooLargeError,
            300_000,
            id="endless-event",
        ),
        pytest.param(
            Reply(after=1, end="endless_line"),
            {},
            ResponseTooLargeError,
            1024 * 1024,
            id="endless-line-default-limit",
        ),
        pytest.param(
            Reply(status=503, error_body="endless"),
            {},
            ServerError,
            64 * 1024,
            id="endless-error-body-default-limit",
        ),
    ],
)
async def test_an_endless_answer_ends_in_a_typed_error_having_read_about_the_limit(
    dialect: str, reply: Reply, options: dict[str, Any], error: type[ModelError], limit: int
) -> None:
    # The old code read all of it: an endless 500 body grew by gigabytes.
    with trio.fail_after(10):
        async with open_model_server([reply]) as server:
            model, counting = loopback(dialect, server, **options)
            async with model:
                with pytest.raises(error) as caught:
                    await run_turn(model, [text_part("hi")])
            [request] = server.requests
            await request.ended.wait()
    assert limit <= counting.read <= limit + 2 * READ
    assert request.disconnected_at is not None  # the connection was dropped, not drained
    if isinstance(caught.value, ResponseTooLargeError):
        assert caught.value.limit in options or not options
        assert isinstance(caught.value, MalformedStreamError)
    else:
        assert caught.value.status == reply.status
    assert_no_key(caught.value)


async def test_a_giant_error_body_is_read_up_to_the_limit_and_still_typed() -> None:
    giant = json.dumps({"error": {"message": "m" * 5_000_000}}).encode()
    with trio.fail_after(10):
        async with open_model_server([Reply(status=429, error_body=giant)]) as server:
            model, counting = loopback("openai", server)
            async with model:
                with pytest.raises(ModelError) as caught:
                    await run_turn(model, [text_part("hi")])
    assert caught.value.status == 429
    assert len(caught.value.message) <= 500
    assert counting.read <= 64 * 1024 + 2 * READ


async def test_endless_keep_alives_stop_at_max_response_bytes() -> None:
    # Bytes keep coming, so no idle timeout fires: the total is what stops it.
    async def comments() -> AsyncIterator[bytes]:
        yield b"data: " + json.dumps({"choices": [{"delta": {"content": "a"}}]}).encode() + b"\n\n"
        while True:
            await trio.lowlevel.checkpoint()
            yield b": keep-alive\n\n" * 1000

    def respond() -> httpx.Response:
        return reply_stream(comments())

    model = build("openai", respond, max_response_bytes=500_000)
    with trio.fail_after(10):
        async with model:
            with pytest.raises(ResponseTooLargeError, match="max_response_bytes=500000") as caught:
                await run_turn(model, [text_part("hi")])
    assert caught.value.limit == "max_response_bytes"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_error_body": 0}, "max_error_body must be an int > 0"),
        ({"max_line_length": -1}, "max_line_length must be an int > 0"),
        ({"max_event_length": 1.5}, "max_event_length must be an int > 0"),
        ({"max_response_bytes": True}, "max_response_bytes must be an int > 0"),
    ],
)
def test_limits_are_checked(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OpenAIChatModel(model="m", **options)
    with pytest.raises(ValueError, match=match):
        GeminiModel(model="m", **options)


async def test_the_recognizer_reads_at_most_max_response_bytes() -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            await trio.lowlevel.checkpoint()
            yield b"x" * 10_000

    for status, error in ((200, ResponseTooLargeError), (500, ServerError)):
        transport = httpx.MockTransport(
            lambda request, status=status: httpx.Response(status, content=endless())
        )
        stt = HttpRecognizer("http://stt.test/v1", transport=transport, max_response_bytes=50_000)
        with trio.fail_after(10):
            async with stt:
                with pytest.raises(error):
                    await stt.transcribe(bytes(3200), 16000)
    with pytest.raises(ValueError, match="max_response_bytes must be an int > 0"):
        HttpRecognizer("http://stt.test/v1", max_response_bytes=0)


# --- after a failure or a hang, the session goes on -------------------------


async def until_turn_complete(session: LiveSession) -> list[Any]:
    parts = []
    async for part in session:
        parts.append(part)
        if is_turn_complete(part):
            break
    return parts


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
async def test_the_next_turn_works_after_each_hostile_answer(dialect: str) -> None:
    replies = [
        Reply(status=500, error_body="endless"),
        Reply(after=1, end="endless_line"),
        Reply(after=1, end="endless_event"),
        Reply(payloads=[{"choices": 5, "candidates": 5}]),
        Reply(after=1, end="hang"),
        Reply(status=401, echo_key=490),
        Reply(text=["all", " good"]),
    ]
    options = {
        "max_error_body": 10_000,
        "max_line_length": 10_000,
        "max_event_length": 10_000,
        "idle_timeout": 0.2,
    }
    with trio.fail_after(10):
        async with open_model_server(replies) as server:
            model, _ = loopback(dialect, server, **options)
            async with model, LiveSession(model, model_errors="report") as session:
                turns = []
                for index in range(len(replies)):
                    await session.send(end_of_turn(f"q{index}"))
                    turns.append(await until_turn_complete(session))
                session.close_input()
    *failed, last = turns
    for parts in failed:
        [error] = [p for p in parts if is_error(p)]
        for half in HALVES:
            assert half not in error.text
    kinds = [json.loads(next(p for p in t if is_error(p)).text)["error"] for t in failed]
    assert kinds == [
        "ServerError",
        "ResponseTooLargeError",
        "ResponseTooLargeError",
        "MalformedStreamError",
        "ModelTimeoutError",
        "AuthenticationError",
    ]
    assert "".join(p.text for p in last if p.role == "model" and not is_marker(p)) == "all good"


# --- 12: a payload of the wrong shape is a MalformedStreamError --------------

_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
)
# Two levels of lists and objects, written out: hypothesis's recursive()
# sometimes warns that such an extend "can't recurse", which -W error fails.
_LEVEL = (
    _LEAVES
    | st.lists(_LEAVES, max_size=3)
    | st.dictionaries(st.text(max_size=5), _LEAVES, max_size=3)
)
JSON = (
    _LEAVES
    | st.lists(_LEVEL, max_size=3)
    | st.dictionaries(st.text(max_size=5), _LEVEL, max_size=3)
)
KINDS: dict[type, Callable[[Any], bool]] = {
    dict: lambda v: isinstance(v, dict),
    list: lambda v: isinstance(v, list),
    str: lambda v: isinstance(v, str),
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
}

OPENAI_TEMPLATE = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
OPENAI_FIELDS: list[tuple[tuple[Any, ...], type]] = [
    (("choices",), list),
    (("choices", 0), dict),
    (("choices", 0, "index"), int),
    (("choices", 0, "delta"), dict),
    (("choices", 0, "delta", "content"), str),
    (("choices", 0, "finish_reason"), str),
]
GEMINI_TEMPLATE = {
    "candidates": [{"content": {"parts": [{"text": "hi", "thought": False}]}, "finishReason": None}]
}
GEMINI_FIELDS: list[tuple[tuple[Any, ...], type]] = [
    (("candidates",), list),
    (("candidates", 0), dict),
    (("candidates", 0, "content"), dict),
    (("candidates", 0, "content", "parts"), list),
    (("candidates", 0, "content", "parts", 0), dict),
    (("candidates", 0, "content", "parts", 0, "text"), str),
    (("candidates", 0, "content", "parts", 0, "thought"), bool),
    (("candidates", 0, "finishReason"), str),
]
GEMINI_FEEDBACK: list[tuple[tuple[Any, ...], type]] = [
    (("promptFeedback",), dict),
    (("promptFeedback", "blockReason"), str),
]
CASES = (
    [("openai", OPENAI_TEMPLATE, path, kind) for path, kind in OPENAI_FIELDS]
    + [("gemini", GEMINI_TEMPLATE, path, kind) for path, kind in GEMINI_FIELDS]
    + [
        ("gemini", {"promptFeedback": {"blockReason": None}}, path, kind)
        for path, kind in GEMINI_FEEDBACK
    ]
)


def replaced(template: Any, path: tuple[Any, ...], value: Any) -> Any:
    payload = json.loads(json.dumps(template))
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return payload


@functools.cache
def parser(dialect: str) -> HTTPTurnModel:
    return build(dialect, lambda: httpx.Response(500))


def parse(dialect: str, payload: Any) -> tuple[Any, bool]:
    model = parser(dialect)
    texts, finished = model._event(ServerSentEvent(data=json.dumps(payload)))
    return list(texts), finished


@pytest.mark.parametrize(("dialect", "template", "path", "kind"), CASES)
@settings(max_examples=40, deadline=None)
@given(value=JSON)
def test_a_field_of_the_wrong_json_type_is_malformed(
    dialect: str, template: Any, path: tuple[Any, ...], kind: type, value: Any
) -> None:
    payload = replaced(template, path, value)
    if value is None or KINDS[kind](value):
        try:
            texts, finished = parse(dialect, payload)
        except ModelError:
            return  # a right type may still be refused (an error inside, a block...)
        assert all(isinstance(text, str) for text in texts)
        assert isinstance(finished, bool)
        return
    with pytest.raises(MalformedStreamError, match="must be") as caught:
        parse(dialect, payload)
    assert str(path[-1]) in str(caught.value)  # the message names the field


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
@settings(max_examples=200, deadline=None)
@given(payload=JSON)
def test_any_json_event_parses_or_is_a_model_error(dialect: str, payload: Any) -> None:
    try:
        texts, finished = parse(dialect, payload)
    except ModelError:
        return
    assert all(isinstance(text, str) for text in texts)
    assert isinstance(finished, bool)


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
@pytest.mark.parametrize(
    "data",
    [
        "[" * 100_000,
        '{"choices": ' * 50_000,
        json.dumps({"error": [[["deep"]]]}),
        json.dumps({"error": None}),
        "1" * 10_000,
    ],
    ids=["deep-array", "deep-object", "odd-error", "null-error", "huge-int"],
)
def test_hostile_json_text_is_a_model_error(dialect: str, data: str) -> None:
    model = build(dialect, lambda: httpx.Response(500))
    with pytest.raises(ModelError):
        model._event(ServerSentEvent(data=data))
