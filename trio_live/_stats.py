"""Statistics: frozen snapshots, one documented field each."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class TurnStats:
    """What happened in one triggered generation.

    Times are `trio.current_time` values (subtract
    `SessionStatistics.started_at` for times since the session started).

    Attributes:
        turn: the turn's number in the session, from 1 (output parts and
            markers of the turn carry it as ``metadata["turn"]``).
        triggered_at: when the turn was triggered.
        first_output_at: when its first output part was delivered (None if none).
        ended_at: when its closing markers had been sent.
        cancelled: True if it was cut short (barge-in or a newer turn).
        barge_in_at: when the start of speech that cancelled it arrived.
        stopped_at: when the model's call had ended (returned, failed, or
            cancelled), before its closing markers were sent.
        prompt_parts: how many parts the model's prompt held.
        output_parts: how many output parts were delivered.
        tools: the turn's tool calls with their timings (`ToolTiming`).
    """

    turn: int
    triggered_at: float
    first_output_at: float | None
    ended_at: float
    cancelled: bool
    barge_in_at: float | None
    prompt_parts: int
    output_parts: int
    stopped_at: float | None = None
    tools: tuple[ToolTiming, ...] = ()

    @property
    def time_to_first_output(self) -> float | None:
        """Seconds from the trigger to the first output part."""
        if self.first_output_at is None:
            return None
        return self.first_output_at - self.triggered_at

    @property
    def barge_in_latency(self) -> float | None:
        """Seconds from the start of speech to the generation's cancel taking effect.

        That is, until the model's call had ended: waits on a full output
        channel for the closing markers are not counted.
        """
        if self.barge_in_at is None:
            return None
        stopped = self.ended_at if self.stopped_at is None else self.stopped_at
        return stopped - self.barge_in_at

    def as_dict(self) -> dict[str, Any]:
        """The fields and the two derived latencies, as plain JSON values."""
        values = attrs.asdict(self)
        values["time_to_first_output"] = self.time_to_first_output
        values["barge_in_latency"] = self.barge_in_latency
        return values


@attrs.frozen(kw_only=True)
class SessionStatistics:
    """A snapshot of a `LiveSession`.

    Attributes:
        turns: triggered generations that have ended.
        interrupted_turns: how many of them were cancelled.
        history_parts: parts kept in the rolling prompt.
        stashed_parts: parts waiting for the running answer to end.
        state: the turn-taking state (``listening``, ``answering``,
            ``playing``, ``closing``, ``closed``, or ``error`` after misuse).
        activity: what the conversation visibly does (``listening``,
            ``thinking``, ``speaking``).
        recent_turns: the last turns' statistics, oldest first.
        started_at: when the session started (`trio.current_time`; None
            before it ran).
    """

    turns: int
    interrupted_turns: int
    history_parts: int
    stashed_parts: int
    state: str
    activity: str
    recent_turns: tuple[TurnStats, ...]
    started_at: float | None = None


@attrs.frozen(kw_only=True)
class ToolTiming:
    """One tool call of a turn.

    Attributes:
        id: the call's id.
        name: the tool's name.
        outcome: ``"result"``, ``"error"`` or ``"cancelled"``; None while a
            shielded call still runs after its turn ended.
        started_at: when the call started.
        ended_at: when its outcome was known (None while it runs).
    """

    id: str
    name: str
    outcome: str | None
    started_at: float
    ended_at: float | None
