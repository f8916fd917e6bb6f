"""The tool-call contract over random interleavings (hypothesis).

Barge-ins, end-of-turns, model failures, tool latencies and failures,
duplicate call ids, shielded and interruptible tools, late results that ask
for an answer or not: whatever happens, every call in the history (and in
every request) has exactly one outcome, no call runs twice, a shielded call
runs to its end with its real result, an interruptible one cut off is
recorded as cancelled, and nothing of a cancelled answer follows its
``interrupted`` marker.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_live import (
    LiveSession,
    Part,
    end_of_turn,
    is_interrupted,
    is_tool_call,
    is_tool_result,
    is_turn_complete,
    read_tool_call,
    read_tool_result,
    start_of_speech,
    text_part,
    tool,
    tool_call,
)
from trio_live.testing import ScriptedModel, play_timeline

INPUT = ["eot", "sos", "sos", "text"]
TOOLS = ["fast", "slow", "shielded", "late", "broken", "unknown"]


def make_input(kind: str, n: int) -> Part:
    if kind == "eot":
        return end_of_turn(f"u{n}")
    if kind == "sos":
        return start_of_speech()
    return text_part(f"u{n}")


def check_pairs(parts: list[Part]) -> dict[str, str]:
    """Every call has exactly one outcome after it, and every outcome a call before it."""
    calls: list[str] = []
    outcomes: dict[str, str] = {}
    for part in parts:
        if is_tool_call(part):
            call = read_tool_call(part)
            assert call.id not in calls
            calls.append(call.id)
        elif is_tool_result(part):
            result = read_tool_result(part)
            assert result.id in calls, "a result without its call"
            assert result.id not in outcomes, "two outcomes for one call"
            outcomes[result.id] = result.outcome
    assert set(calls) == set(outcomes), "a call without an outcome"
    return outcomes


events = st.lists(
    st.tuples(st.sampled_from([0.0, 0.01, 0.1, 0.3, 0.5, 2.0]), st.sampled_from(INPUT)), max_size=8
)
items = st.one_of(
    st.just("a"),
    st.tuples(st.sampled_from(TOOLS), st.sampled_from(["", "", "dup1", "dup2"])),
)
replies = st.lists(st.lists(items, max_size=3), min_size=1, max_size=4)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=events,
    replies=replies,
    first_delay=st.sampled_from([0.0, 0.05, 0.3]),
    latency=st.sampled_from([0.0, 0.05, 0.4, 1.5]),
    failing=st.sets(st.integers(0, 6), max_size=2),
    track=st.booleans(),
    rounds=st.sampled_from([0, 1, 4]),
)
def test_tool_contract(
    events: list[tuple[float, str]],
    replies: list[list[Any]],
    first_delay: float,
    latency: float,
    failing: set[int],
    track: bool,
    rounds: int,
) -> None:
    runs: Counter[str] = Counter()
    finished: list[str] = []

    async def body(name: str, seconds: float) -> str:
        runs[name] += 1
        await trio.sleep(seconds)
        finished.append(name)
        return name

    @tool
    async def fast() -> str:
        """Fast."""
        return await body("fast", 0.0)

    @tool
    async def slow() -> str:
        """Slow."""
        return await body("slow", latency * 3)

    @tool(interruptible=False)
    async def shielded() -> str:
        """Shielded."""
        return await body("shielded", latency * 2)

    @tool(interruptible=False, answer_late=True)
    async def late() -> str:
        """Late."""
        return await body("late", latency * 3)

    @tool
    async def broken() -> str:
        """Broken."""
        await trio.sleep(latency / 2)
        raise RuntimeError("broken")

    script = [
        [item if isinstance(item, str) else tool_call(item[0], {}, call_id=item[1]) for item in r]
        for r in replies
    ]
    # The first turn always starts at once; the rest is random.
    timeline: list[tuple[float, Part]] = [(0.0, end_of_turn("go"))]
    now = 0.0
    for n, (dt, kind) in enumerate(events):
        now += dt
        timeline.append((now, make_input(kind, n)))
    model = ScriptedModel(
        script,
        first_part_delay=first_delay,
        part_delay=0.01,
        errors={call: RuntimeError(f"fail {call}") for call in failing},
    )
    session = LiveSession(
        model,
        tools=[fast, slow, shielded, late, broken],
        max_tool_rounds=rounds,
        model_errors="report",
        track_playback=track,
        window=None,
        max_parts=None,
        emit_stats=True,
    )
    tasks: list[int] = []

    async def main() -> list[tuple[float, Part]]:
        tasks.append(trio.lowlevel.current_statistics().tasks_living)
        with trio.fail_after(10_000):
            out = await play_timeline(session, timeline)
        tasks.append(trio.lowlevel.current_statistics().tasks_living)
        return out

    out = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    history = session.history()
    # 1. Exactly one outcome per call, in the history and in every request.
    outcomes = check_pairs(history)
    for prompt in model.prompts:
        check_pairs(prompt)
    calls = {read_tool_call(p).id: read_tool_call(p).name for p in history if is_tool_call(p)}
    # 2. No call runs twice: each tool ran at most once per call that reached it.
    ran_calls = Counter(calls.values())
    for name, count in runs.items():
        assert count <= ran_calls[name]
    # 3. A shielded call ran to its end: its real result, never cancelled.
    for call_id, name in calls.items():
        if name in ("shielded", "late"):
            assert outcomes[call_id] in ("result", "error")
        if outcomes[call_id] == "cancelled":
            assert name in ("slow", "broken", "fast")
    assert finished.count("shielded") == runs["shielded"]
    assert finished.count("late") == runs["late"]
    # 4. Nothing of a cancelled answer after its interrupted marker; one
    #    turn-complete per turn, last.
    closed: set[int] = set()
    cut: set[int] = set()
    for _, part in out:
        turn = part.metadata.get("turn")
        if turn is None:
            continue
        if is_interrupted(part) and track:
            cut.add(turn)
            continue
        assert turn not in closed
        if is_turn_complete(part):
            closed.add(turn)
        elif is_interrupted(part):
            cut.add(turn)
        else:
            assert turn not in cut
    # 5. No task is left once the session has closed.
    assert tasks[1] == tasks[0]
    assert session.statistics().state == "closed"
