"""Running the model's tool calls inside a session.

`ToolRunner` belongs to one session's driver. When a generation delivers a
tool-call part, `ToolRunner.start` decides its fate at once, synchronously:

* a call whose id the session has seen already is dropped (a retried or
  re-sent stream never runs a tool twice); a call without an id gets one;
* an unknown tool, arguments that are not JSON or do not fit the schema, or
  a call past ``max_tool_rounds`` gets an error outcome without running;
* otherwise a `ToolRun` starts as a task in the session's nursery, in its
  own cancel scope (shielded for a tool that is not interruptible).

A run's outcome is written once (`ToolRun.finish`): the first of its
function's return or exception, or `ToolRun.cancel` by the driver, wins. A
run whose answer ended before it did is *orphaned*: when it ends, its call
and its result join the history together (`on_late`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import trio

from ._model import PromptStream
from ._parts import (
    TOOL_STATUS_MIMETYPE,
    Part,
    ToolCall,
    read_tool_call,
    status_part,
    tool_call,
    tool_result,
)
from ._prompt import Cursor
from ._stats import ToolTiming
from ._tools import Tool, ToolArgumentsError, parse_arguments

CANCELLED_MESSAGE = "the call was cancelled: the user interrupted"


class ToolPrompt(PromptStream):
    """A prompt that comes with the tools the model may call (``tools``)."""

    __slots__ = ("tools",)

    def __init__(self, cursor: Cursor, tools: Sequence[Tool]) -> None:
        super().__init__(cursor)
        self.tools = tuple(tools)


def prompt_tools(prompt: PromptStream) -> tuple[Tool, ...]:
    """The tools that come with ``prompt`` (none for a plain `PromptStream`)."""
    return prompt.tools if isinstance(prompt, ToolPrompt) else ()


@attrs.define(eq=False)
class ToolRun:
    """One tool call: its part, its scope, and its one outcome."""

    call: ToolCall
    part: Part
    turn: int
    interruptible: bool
    answer_late: bool
    started_at: float
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    outcome: str | None = None
    content: Any = None
    ended_at: float | None = None
    #: Its answer ended while it ran: it joins the history on its own.
    orphaned: bool = False

    def finish(self, outcome: str, content: Any) -> bool:
        """Record the outcome, unless one was recorded already; True if this one was."""
        if self.outcome is not None:
            return False
        if outcome == "result":
            try:
                json.dumps(content)
            except (TypeError, ValueError):
                outcome = "error"
                content = f"the tool returned a value that is not JSON: {type(content).__name__}"
        self.outcome, self.content = outcome, content
        self.ended_at = trio.current_time()
        self.done.set()
        return True

    def cancel(self) -> None:
        """Cancel it now: its outcome is ``cancelled`` (synchronous)."""
        self.finish("cancelled", CANCELLED_MESSAGE)
        self.scope.cancel()

    def result_part(self) -> Part:
        """Its tool-result part (once it has an outcome)."""
        assert self.outcome is not None
        return tool_result(self.call.id, self.call.name, self.outcome, self.content)

    def timing(self) -> ToolTiming:
        """Its timings, for the turn's statistics."""
        return ToolTiming(
            id=self.call.id,
            name=self.call.name,
            outcome=self.outcome,
            started_at=self.started_at,
            ended_at=self.ended_at,
        )


def _message(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@attrs.define(eq=False)
class ToolRunner:
    """Starts and tracks one session's tool calls (see the module docstring)."""

    tools: Mapping[str, Tool]
    max_rounds: int
    nursery: trio.Nursery
    #: Sends a status part (synchronously, in order if there is room).
    emit: Callable[[Part], None]
    #: Called when an orphaned run has ended.
    on_late: Callable[[ToolRun], None]
    seen: set[str] = attrs.field(factory=set)
    _count: int = attrs.field(init=False, default=0)

    def start(self, part: Part, *, turn: int, model_round: int) -> ToolRun | None:
        """Take a tool-call part delivered in turn ``turn``; None drops it (a duplicate)."""
        try:
            call = read_tool_call(part)
        except (ValueError, KeyError, TypeError):
            call = ToolCall(id="", name="", arguments="")
        if call.id in self.seen:
            return None
        if not call.id:
            self._count += 1
            call = attrs.evolve(call, id=f"call_{turn}_{self._count}")
            part = tool_call(call.name, call.arguments, call_id=call.id).replace(
                metadata=part.metadata
            )
        self.seen.add(call.id)
        found = self.tools.get(call.name)
        run = ToolRun(
            call=call,
            part=part,
            turn=turn,
            interruptible=found is None or found.interruptible,
            answer_late=found is not None and found.answer_late,
            started_at=trio.current_time(),
        )
        if found is None:
            known = ", ".join(sorted(self.tools)) or "none"
            run.finish("error", f"there is no tool named {call.name!r} (tools: {known})")
            return run
        if model_round >= self.max_rounds:
            run.finish("error", f"too many tool rounds in one answer (max {self.max_rounds})")
            return run
        try:
            arguments = parse_arguments(found, call.arguments)
        except ToolArgumentsError as error:
            run.finish("error", str(error))
            return run
        run.scope.shield = not found.interruptible
        self.nursery.start_soon(self._run, run, found, arguments, name=f"trio_live tool {call.id}")
        return run

    def _status(self, run: ToolRun, event: str) -> None:
        value: dict[str, Any] = {
            "tool": run.call.name,
            "id": run.call.id,
            "event": event,
            "turn": run.turn,
        }
        if event == "ended":
            value["outcome"] = run.outcome
            value["seconds"] = (run.ended_at or run.started_at) - run.started_at
        self.emit(status_part(value, mimetype=TOOL_STATUS_MIMETYPE))

    async def _run(self, run: ToolRun, found: Tool, arguments: dict[str, Any]) -> None:
        if run.outcome is not None:
            return  # cancelled before it started
        self._status(run, "started")
        try:
            with run.scope:
                try:
                    value = await found.function(**arguments)
                except Exception as error:
                    run.finish("error", _message(error))
                else:
                    run.finish("result", value)
        finally:
            run.finish("cancelled", CANCELLED_MESSAGE)
            self._status(run, "ended")
            if run.orphaned:
                self.on_late(run)


def settle(runs: Sequence[ToolRun]) -> None:
    """The answer around ``runs`` ended: cancel the interruptible, orphan the others."""
    for run in runs:
        if run.outcome is None:
            if run.interruptible:
                run.cancel()
            else:
                run.orphaned = True
