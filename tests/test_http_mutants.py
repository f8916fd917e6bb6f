"""The shared HTTP layer (models/_http.py): what a mutation run found untested.

Each test here failed on one or more mutants of `HTTPTurnModel` that the
adapter tests let through (docs/testing.md lists the run).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
import trio
from model_server import Collector, run_turn
from test_models_openai import KEY, Server, answer, delta, events, openai, sse

from trio_live import (
    BadRequestError,
    MalformedStreamError,
    ModelTimeoutError,
    Part,
    PromptStream,
    ResponseTooLargeError,
    RollingPrompt,
    ServerError,
    is_tool_call,
    read_tool_call,
    text_part,
    tool,
)
from trio_live._toolruns import ToolPrompt
from trio_live.models import GeminiModel
from trio_live.models._http import HTTPTurnModel, ToolCallDelta
from trio_live.models._sse import ServerSentEvent


async def clock(zone: str = "UTC") -> str:
    """The time in ``zone``."""
    return "12:00"


def stalled(status: int, content_type: str, *chunks: tuple[float, bytes]) -> Any:
    # A response whose headers come at once and whose body comes late.
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for wait, chunk in chunks:
                await trio.sleep(wait)
                yield chunk

        return httpx.Response(status, headers={"content-type": content_type}, content=body())

    return handler


# --- settings ---------------------------------------------------------------


def test_a_read_limit_of_one_byte_is_allowed() -> None:
    assert openai(Server(), max_error_body=1).max_error_body == 1
    with pytest.raises(ValueError, match="max_error_body must be an int > 0, got 0"):
        openai(Server(), max_error_body=0)


class Bare(HTTPTurnModel):
    """An adapter that does not declare tools (the base class's refusal)."""

    def _url(self) -> str:
        return "http://test/bare"

    def _headers(self) -> dict[str, str]:
        return {}

    def _body(self, parts: Sequence[Part]) -> dict[str, Any] | None:
        return {"text": [part.text for part in parts]}

    def _event(self, event: ServerSentEvent) -> tuple[Sequence[str | ToolCallDelta], bool]:
        return [event.data], True


async def test_an_adapter_without_tools_refuses_them_by_its_name() -> None:
    server = Server(events(b"data: hi\n\n"))
    async with Bare(transport=httpx.MockTransport(server), tools=[tool(clock)]) as model:
        with pytest.raises(BadRequestError, match=r"^Bare does not take tools$"):
            await run_turn(model, [text_part("hi")])
    assert not server.requests
    async with Bare(transport=httpx.MockTransport(server)) as model:
        assert await run_turn(model, [text_part("hi")]) == ["hi"]


async def test_the_tools_that_come_with_the_prompt_are_declared() -> None:
    server = Server(events(answer("ok")))
    rolling = RollingPrompt(window=None, max_parts=None)
    cursor = rolling.pending()
    rolling.add(text_part("what time is it"), 0.0)
    rolling.finalize(0.0)
    prompt: PromptStream = ToolPrompt(cursor, [tool(clock)])
    async with openai(server) as model:
        await model(prompt, Collector())
    [body] = server.bodies
    assert [entry["function"]["name"] for entry in body["tools"]] == ["clock"]


# --- retries ----------------------------------------------------------------


async def test_a_retry_is_logged_with_the_error(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"error": {"message": "overloaded"}}
    server = Server(httpx.Response(503, json=body), events(answer("ok")))
    with caplog.at_level(logging.INFO, logger="trio_live.models"):
        async with openai(server) as model:
            assert await run_turn(model, [text_part("hi")]) == ["ok"]
    [record] = [r for r in caplog.records if r.getMessage().startswith("retrying")]
    assert record.getMessage().endswith("after: overloaded (status 503)")


async def test_retry_after_equal_to_the_longest_wait_is_waited(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = Server(httpx.Response(429, headers={"retry-after": "30"}), events(answer("ok")))
    async with openai(server, max_retry_wait=30) as model:
        assert await run_turn(model, [text_part("hi")]) == ["ok"]
    assert server.times[1] - server.times[0] == pytest.approx(30.0)


async def test_the_backoff_doubles_on_each_retry(autojump_clock: trio.abc.Clock) -> None:
    # Waits of [0.5, 1], [1, 2] and [2, 4] x retry_backoff: the third tells
    # doubling (at most 4) from tripling (at least 4.5).
    server = Server(*[httpx.Response(503)] * 3, events(answer("ok")))
    async with openai(server, retry_backoff=1.0, max_retries=3) as model:
        assert await run_turn(model, [text_part("hi")]) == ["ok"]
    waits = [
        later - earlier for earlier, later in zip(server.times, server.times[1:], strict=False)
    ]
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0
    assert 2.0 <= waits[2] <= 4.0


# --- errors -----------------------------------------------------------------


async def test_an_error_without_a_status_says_none() -> None:
    server = Server(events(sse(delta("a"))))
    async with openai(server, max_retries=0) as model:
        with pytest.raises(MalformedStreamError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.status is None
    assert str(caught.value) == "the stream ended before the answer did"


async def test_a_transport_error_without_a_message_is_named_by_its_type() -> None:
    server = Server(httpx.ConnectError(""))
    async with openai(server, max_retries=0) as model:
        with pytest.raises(ServerError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.message == "could not connect: ConnectError"


async def test_an_http_error_that_is_not_a_transport_error_is_a_request_failure() -> None:
    server = Server(httpx.DecodingError("bad gzip data"), events(answer("ok")))
    async with openai(server) as model:
        with pytest.raises(BadRequestError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.message == "the request failed: bad gzip data"
    assert len(server.requests) == 1  # not retried


async def test_an_error_status_without_a_reason_or_body_says_error() -> None:
    async with openai(Server(httpx.Response(599)), max_retries=0) as model:
        with pytest.raises(ServerError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.message == "error"


async def test_an_empty_body_that_is_not_an_event_stream_says_no_details() -> None:
    reply = httpx.Response(200, headers={"content-type": "application/json"}, content=b"")
    async with openai(Server(reply), max_retries=0) as model:
        with pytest.raises(MalformedStreamError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.message == "expected an event stream, got 'application/json': no details"


async def test_a_stream_without_a_content_type_is_read_as_events() -> None:
    async with openai(Server(httpx.Response(200, content=answer("ok")))) as model:
        assert await run_turn(model, [text_part("hi")]) == ["ok"]


async def test_an_error_body_is_cut_at_max_error_body() -> None:
    reply = stalled(500, "text/plain", (0, b"0123456"), (0, b"789abcdef"))
    async with openai(Server(reply), max_retries=0, max_error_body=10) as model:
        with pytest.raises(ServerError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.message == "0123456789"


@pytest.mark.parametrize(
    ("status", "content_type", "chunks", "phase", "message", "at"),
    [
        # The headers came, the body did not: still the first byte's deadline.
        (500, "text/plain", [(100, b"down")], "first_byte", "no first byte within 5", 5.0),
        (200, "application/json", [(100, b"{}")], "first_byte", "no first byte within 5", 5.0),
        # A first piece of the error body came: from then on, the idle one.
        (500, "text/plain", [(1, b"do"), (100, b"wn")], "idle", "no data for 2", 3.0),
    ],
)
async def test_a_stalled_error_body_times_out_with_its_phase(
    autojump_clock: trio.abc.Clock,
    status: int,
    content_type: str,
    chunks: list[tuple[float, bytes]],
    phase: str,
    message: str,
    at: float,
) -> None:
    server = Server(stalled(status, content_type, *chunks))
    start = trio.current_time()
    async with openai(server, first_byte_timeout=5, idle_timeout=2, max_retries=0) as model:
        with pytest.raises(ModelTimeoutError) as caught:
            await run_turn(model, [text_part("hi")])
    assert caught.value.phase == phase
    assert caught.value.message.startswith(message)
    assert trio.current_time() - start == pytest.approx(at)


# --- the stream -------------------------------------------------------------


async def test_max_response_bytes_allows_exactly_that_many() -> None:
    body = answer("ok")
    async with openai(Server(events(body)), max_response_bytes=len(body)) as model:
        assert await run_turn(model, [text_part("hi")]) == ["ok"]
    async with openai(Server(events(body)), max_response_bytes=len(body) - 1) as model:
        with pytest.raises(ResponseTooLargeError):
            await run_turn(model, [text_part("hi")])


async def test_a_last_event_without_its_blank_line_is_delivered() -> None:
    last = {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"}]}
    body = sse(delta("a")) + b"data: " + json.dumps(last).encode() + b"\n"
    async with openai(Server(events(body))) as model:
        assert await run_turn(model, [text_part("hi")]) == ["a", "b"]


async def test_streamed_calls_are_sent_when_the_answer_finishes_without_done() -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "clock", "arguments": "{}"}}
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    body = sse({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}, finish)
    output = Collector()
    async with openai(Server(events(body)), tools=[tool(clock)]) as model:
        await run_turn(model, [text_part("hi")], output)
    calls = [read_tool_call(part) for part in output.parts if is_tool_call(part)]
    assert [(c.id, c.name, c.arguments) for c in calls] == [("c1", "clock", "{}")]


async def test_whole_calls_keep_their_ids_and_all_of_an_event_is_read() -> None:
    parts = [
        {"functionCall": {"id": "g1", "name": "clock", "args": {"zone": "UTC"}}},
        {"functionCall": {"id": "g2", "name": "clock", "args": {}}},
        {"text": "Checking."},
    ]
    event = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
    reply = events(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
    output = Collector()
    model = GeminiModel(model="g", api_key=KEY, transport=httpx.MockTransport(Server(reply)))
    async with model:
        await run_turn(model, [text_part("hi")], output)
    calls = [read_tool_call(part) for part in output.parts if is_tool_call(part)]
    assert [(c.id, json.loads(c.arguments)) for c in calls] == [("g1", {"zone": "UTC"}), ("g2", {})]
    assert [part.text for part in output.parts if not is_tool_call(part)] == ["Checking."]
