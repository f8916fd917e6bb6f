"""Tool calls in a live session: the declaration, the vocabulary and the contract."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
import trio

from trio_live import (
    LiveSession,
    Part,
    Tool,
    ToolArgumentsError,
    ToolError,
    end_of_turn,
    is_interrupted,
    is_tool_call,
    is_tool_result,
    read_tool_call,
    read_tool_result,
    start_of_speech,
    text_part,
    tool,
    tool_call,
)
from trio_live._tools import parse_arguments
from trio_live.testing import ScriptedModel, play_timeline

TOOL_STATUS = "application/x.trio-live.tool-status+json"


def outcomes(history: list[Part]) -> dict[str, list[tuple[str, Any]]]:
    found: dict[str, list[tuple[str, Any]]] = {}
    for part in history:
        if is_tool_call(part):
            found.setdefault(read_tool_call(part).id, [])
        if is_tool_result(part):
            result = read_tool_result(part)
            found.setdefault(result.id, []).append((result.outcome, result.content))
    return found


def shape(history: list[Part]) -> list[Any]:
    out: list[Any] = []
    for part in history:
        if is_tool_call(part):
            call = read_tool_call(part)
            out.append(("call", call.name, call.arguments))
        elif is_tool_result(part):
            result = read_tool_result(part)
            out.append((result.outcome, result.content))
        elif part.content:
            out.append((part.role, part.content))
    return out


# -- declaring -----------------------------------------------------------------


def test_schema_from_type_hints() -> None:
    async def find(
        city: str,
        days: int,
        units: Literal["c", "f"] = "c",
        tags: list[str] | None = None,
        ratio: float = 1.0,
        exact: bool = False,
    ) -> str:
        """Find the weather."""
        return city

    made = tool(find)
    assert made.name == "find"
    assert made.description == "Find the weather."
    assert made.interruptible
    assert made.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "units": {"type": "string", "enum": ["c", "f"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "ratio": {"type": "number"},
            "exact": {"type": "boolean"},
        },
        "required": ["city", "days"],
    }


def test_explicit_schema_and_decorator_options() -> None:
    schema = {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}

    @tool(name="send_note", description="Send a note.", parameters=schema, interruptible=False)
    async def send(**kwargs: Any) -> str:
        return "sent"

    assert isinstance(send, Tool)
    assert (send.name, send.interruptible, send.parameters) == ("send_note", False, schema)


def test_bad_declarations_raise_tool_error() -> None:
    async def odd(x: dict[str, int]) -> None: ...

    def sync(x: int) -> None: ...

    with pytest.raises(ToolError, match="cannot derive"):
        tool(odd)
    with pytest.raises(ToolError, match="async"):
        tool(sync)
    with pytest.raises(ToolError, match="two tools"):
        LiveSession(ScriptedModel(), tools=[tool(clock), tool(clock)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"days": 1}', "required argument 'city'"),
        ('{"city": 3, "days": 1}', "type string"),
        ('{"city": "x", "days": 1, "zone": 1}', "unknown argument 'zone'"),
        ('{"city": "x", "days": true}', "type integer"),
        ('{"city": "x", "days": 1, "units": "k"}', "one of"),
    ],
)
def test_bad_arguments(text: str, message: str) -> None:
    async def find(city: str, days: int, units: Literal["c", "f"] = "c") -> str:
        return city

    with pytest.raises(ToolArgumentsError, match=message):
        parse_arguments(tool(find), text)
    assert parse_arguments(tool(find), '{"city": "x", "days": 2}') == {"city": "x", "days": 2}


# -- running -----------------------------------------------------------------


async def clock() -> str:
    """The time."""
    return f"{trio.current_time():.1f}"


async def test_tool_round_in_one_turn(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel(
        [["Let me look.", tool_call("clock", {})], ["It is", " noon."]], first_part_delay=0.1
    )
    session = LiveSession(model, tools=[tool(clock)], emit_stats=True)
    out = await play_timeline(session, [(1.0, end_of_turn("time?"))])
    assert shape(session.history()) == [
        ("user", "time?"),
        ("model", "Let me look."),
        ("call", "clock", "{}"),
        ("result", "1.1"),
        ("model", "It is"),
        ("model", " noon."),
    ]
    # The second call saw the call and its result, in the same turn.
    assert shape(model.prompts[1])[-2:] == [("call", "clock", "{}"), ("result", "1.1")]
    assert {p.metadata.get("turn") for _, p in out if p.role == "model"} == {1}
    statuses = [(t, json.loads(p.content)) for t, p in out if p.mimetype == TOOL_STATUS]
    assert [(t, s["event"], s["tool"]) for t, s in statuses] == [
        (1.1, "started", "clock"),
        (1.1, "ended", "clock"),
    ]
    [stats] = session.statistics().recent_turns
    [timing] = stats.tools
    assert (timing.name, timing.outcome, timing.started_at, timing.ended_at) == (
        "clock",
        "result",
        pytest.approx(1.1),
        pytest.approx(1.1),
    )
    assert stats.ended_at == pytest.approx(1.2)


async def test_errors_become_outcomes(autojump_clock: trio.abc.Clock) -> None:
    async def broken(city: str) -> str:
        raise ValueError(f"no weather for {city}")

    model = ScriptedModel(
        [
            [
                tool_call("broken", {"city": "Oz"}),
                tool_call("broken", "{oops"),
                tool_call("broken", {"town": "Oz"}),
                tool_call("nothing", {}),
            ],
            "Sorry.",
        ]
    )
    session = LiveSession(model, tools=[tool(broken)])
    await play_timeline(session, [(0.0, end_of_turn("weather?"))])
    found = outcomes(session.history())
    assert [v[0][0] for v in found.values()] == ["error"] * 4
    messages = [v[0][1] for v in found.values()]
    assert messages[0] == "ValueError: no weather for Oz"
    assert "not JSON" in messages[1]
    assert "required argument 'city'" in messages[2]
    assert "no tool named 'nothing'" in messages[3]
    assert "Traceback" not in "".join(messages)
    assert shape(session.history())[-1] == ("model", "Sorry.")


async def test_duplicate_ids_run_once(autojump_clock: trio.abc.Clock) -> None:
    runs: list[float] = []

    async def count() -> int:
        runs.append(trio.current_time())
        return len(runs)

    again = tool_call("count", {}, call_id="c1")
    model = ScriptedModel([[again, again], [again, "done"]])
    session = LiveSession(model, tools=[tool(count)])
    await play_timeline(session, [(0.0, end_of_turn("go"))])
    assert len(runs) == 1
    assert outcomes(session.history()) == {"c1": [("result", 1)]}


async def test_barge_in_cancels_an_interruptible_tool(autojump_clock: trio.abc.Clock) -> None:
    cancelled_at: list[float] = []

    async def search(query: str) -> str:
        try:
            await trio.sleep(10)
        finally:
            cancelled_at.append(trio.current_time())
        return "found"

    model = ScriptedModel([["Searching.", tool_call("search", {"query": "x"})], "Found it."])
    session = LiveSession(model, tools=[tool(search)])
    out = await play_timeline(session, [(0.0, end_of_turn("find x")), (2.0, start_of_speech())])
    assert cancelled_at == [2.0]
    assert outcomes(session.history()) == {
        "call_1_1": [("cancelled", "the call was cancelled: the user interrupted")]
    }
    # The next request (the answer owed at the end of input) carries the outcome.
    assert shape(model.prompts[1])[-1][0] == "cancelled"
    marker = next(t for t, p in out if is_interrupted(p))
    assert marker == 2.0
    assert not [
        p
        for t, p in out
        if p.role == "model" and t > marker and not p.mimetype.endswith("turn-complete")
    ]


async def test_shielded_tool_runs_to_its_end(autojump_clock: trio.abc.Clock) -> None:
    sent: list[float] = []

    @tool(interruptible=False)
    async def send_note(text: str) -> str:
        """Send a note (it cannot be unsent)."""
        await trio.sleep(3)
        sent.append(trio.current_time())
        return f"sent {text!r}"

    model = ScriptedModel([["Sending.", tool_call("send_note", {"text": "hi"})], "Sent."])
    session = LiveSession(model, tools=[send_note])
    out = await play_timeline(
        session,
        [(0.0, end_of_turn("note hi")), (1.0, start_of_speech()), (1.5, end_of_turn("wait"))],
        end_at=10.0,
    )
    assert sent == [3.0]
    history = session.history()
    assert outcomes(history) == {"call_1_1": [("result", "sent 'hi'")]}
    # The answer was cut at 1.0; the new turn got its own answer ("Sent." is
    # the next reply of the script) and the late call joined after, with its result.
    assert shape(history) == [
        ("user", "note hi"),
        ("model", "Sending."),
        ("user", "wait"),
        ("model", "Sent."),
        ("call", "send_note", '{"text": "hi"}'),
        ("result", "sent 'hi'"),
    ]
    # No answer started for the late result.
    assert len(model.prompts) == 2
    late = [json.loads(p.content) for t, p in out if p.mimetype == TOOL_STATUS and t == 3.0]
    assert late == [
        {
            "tool": "send_note",
            "id": "call_1_1",
            "event": "ended",
            "turn": 1,
            "outcome": "result",
            "seconds": 3.0,
        }
    ]


async def test_late_result_may_ask_for_an_answer(autojump_clock: trio.abc.Clock) -> None:
    @tool(interruptible=False, answer_late=True)
    async def book() -> str:
        """Book a table."""
        await trio.sleep(3)
        return "booked"

    model = ScriptedModel([["Booking.", tool_call("book")], "It is booked."])
    session = LiveSession(model, tools=[book])
    out = await play_timeline(
        session, [(0.0, end_of_turn("book")), (1.0, start_of_speech())], end_at=10.0
    )
    assert shape(session.history())[-3:] == [
        ("call", "book", "{}"),
        ("result", "booked"),
        ("model", "It is booked."),
    ]
    answer = [t for t, p in out if p.role == "model" and p.content == "It is booked."]
    assert answer == [3.0]


async def test_tool_rounds_are_limited(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([[tool_call("clock")]])
    session = LiveSession(model, tools=[tool(clock)], max_tool_rounds=2)
    await play_timeline(session, [(0.0, end_of_turn("loop"))])
    found = list(outcomes(session.history()).values())
    assert [v[0][0] for v in found] == ["result", "result", "error"]
    assert "too many tool rounds" in found[-1][0][1]
    assert len(model.prompts) == 3


async def test_a_model_that_cannot_call_tools_refuses_them() -> None:
    class NoTools(ScriptedModel):
        supports_tools = False

    with pytest.raises(ToolError, match="NoTools cannot call tools"):
        LiveSession(NoTools(), tools=[tool(clock)])


async def test_tools_from_the_model(autojump_clock: trio.abc.Clock) -> None:
    class WithTools(ScriptedModel):
        tools = (tool(clock),)

    model = WithTools([[tool_call("clock")], "ok"])
    session = LiveSession(model)
    await play_timeline(session, [(0.0, end_of_turn("t"))])
    assert list(outcomes(session.history()).values()) == [[("result", "0.0")]]
    assert text_part("x").role == "user"


def test_the_local_model_refuses_tools() -> None:
    from trio_live.models import LocalModel

    with pytest.raises(ToolError, match="LocalModel cannot call tools: use a model that can"):
        LiveSession(LocalModel(), tools=[tool(clock)])


# -- the adapters, on httpx.MockTransport ---------------------------------------


def sse(events: list[Any]) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )


def mock(body: bytes, seen: list[Any]) -> Any:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx.MockTransport(handler)


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> Any:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def test_openai_streamed_calls_are_joined_by_index() -> None:
    from tests.model_server import Collector, run_turn
    from trio_live.models import OpenAIChatModel

    events = [
        openai_chunk({"content": "Hm."}),
        openai_chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "clock"}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "find"}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        openai_chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oz"}'}}]}),
        openai_chunk({}, "tool_calls"),
        "[DONE]",
    ]
    seen: list[Any] = []
    transport = mock(sse(events), seen)
    model = OpenAIChatModel(model="m", api_key=None, transport=transport, tools=[tool(clock)])
    output = Collector()
    async with model:
        await run_turn(model, [text_part("hi")], output)
    calls = [read_tool_call(p) for p in output.parts if is_tool_call(p)]
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("a", "find", '{"city": "Oz"}'),
        ("b", "clock", "{}"),
    ]
    assert seen[0]["tools"][0]["function"]["name"] == "clock"


async def test_gemini_function_calls_and_odd_shapes() -> None:
    from tests.model_server import Collector, run_turn
    from trio_live import MalformedStreamError
    from trio_live.models import GeminiModel

    call = {"functionCall": {"name": "clock", "args": {"zone": "UTC"}}}
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hm."}, call]}}]},
        {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]},
    ]
    seen: list[Any] = []
    model = GeminiModel(model="g", api_key="k", transport=mock(sse(events), seen))
    output = Collector()
    async with model:
        await run_turn(model, [text_part("hi")], output)
    [found] = [read_tool_call(p) for p in output.parts if is_tool_call(p)]
    assert (found.id, found.name, json.loads(found.arguments)) == ("", "clock", {"zone": "UTC"})
    assert "tools" not in seen[0]
    bad = [{"candidates": [{"content": {"parts": [{"functionCall": {"name": 3}}]}}]}]
    model = GeminiModel(model="g", api_key="k", transport=mock(sse(bad), []))
    async with model:
        with pytest.raises(MalformedStreamError, match="functionCall"):
            await run_turn(model, [text_part("hi")])


def test_unpaired_calls_never_reach_a_request() -> None:
    from trio_live import tool_result
    from trio_live.models import OpenAIChatModel

    model = OpenAIChatModel(model="m", api_key=None)
    body = model._body(
        [
            text_part("hi"),
            tool_call("clock", {}, call_id="dangling"),
            tool_result("orphan", "clock", "result", "x"),
            tool_call("clock", {}, call_id="ok"),
            tool_result("ok", "clock", "error", "boom"),
        ]
    )
    assert body is not None
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "ok", "type": "function", "function": {"name": "clock", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "ok", "content": '{"error": "boom"}'},
    ]
