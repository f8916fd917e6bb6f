"""The prompt as API messages: runs of one role, merged, with binary content.

Both HTTP models send a conversation as a list of messages, one per run of
parts from one role. This module does the grouping once; each model only
spells the result in its API's JSON.

What a model takes comes first (`select_content`): each model says the
mimetype families it accepts (``accepts``: ``"text"``, ``"image"``,
``"audio"``). Content of a family it does not take is left out, so a
text-only model never receives the microphone's audio (the transcriptions
carry the words). A model that takes audio receives the audio of speech only:

* a final transcription from `trio_live.voice.SpeechToText` says where its
  speech lies in the audio before it (``speech_before`` metadata, seconds
  back to its start, pre-roll included, and to its end); only those
  stretches are sent, the silences around them never are;
* by default only the current user turn (the parts after the model's last
  answer) keeps its audio; earlier turns are sent by their transcriptions.
  ``audio_history`` keeps, besides, the newest earlier speech up to that
  many seconds. A request's size so does not grow with the conversation's
  audio;
* without transcriptions that locate speech (no speech to text), the audio
  of the current user turn is sent as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs

from .._errors import AudioFormatError, BadRequestError
from .._parts import (
    JSON_MIMETYPE,
    Part,
    ToolCall,
    ToolResult,
    audio_rate,
    is_marker,
    is_reserved,
    is_text,
    is_tool_call,
    is_tool_result,
    read_tool_call,
    read_tool_result,
)
from .._wav import wav_from_pcm

__all__ = [
    "ALL_FAMILIES",
    "SPEECH_KEY",
    "Blob",
    "Message",
    "check_accepts",
    "family",
    "group_messages",
    "paired_tool_parts",
    "result_object",
    "result_text",
    "select_content",
]

#: The mimetype families a model can say it accepts.
ALL_FAMILIES: Final = frozenset({"text", "image", "audio"})
#: A final transcription's metadata: ``(start, end)`` seconds back from it, in
#: the audio before it, to where its speech starts and ends (set by
#: ``trio_live.voice.SpeechToText``).
SPEECH_KEY: Final = "speech_before"


def family(part: Part) -> str:
    """The mimetype family of a part: ``"text"`` (JSON too), ``"image"``, ``"audio"``..."""
    if part.mimetype == JSON_MIMETYPE:
        return "text"
    return part.mimetype.partition("/")[0].strip().lower()


def check_accepts(value: Iterable[str]) -> frozenset[str]:
    """``value`` as a frozenset of families, checked.

    Raises:
        ValueError: a family is not one of `ALL_FAMILIES`, or ``"text"`` is missing.
    """
    accepts = frozenset([value] if isinstance(value, str) else value)
    unknown = sorted(accepts - ALL_FAMILIES)
    if unknown:
        raise ValueError(
            f"accepts takes {', '.join(sorted(ALL_FAMILIES))}, got {', '.join(unknown)}"
        )
    if "text" not in accepts:
        raise ValueError("accepts must include 'text'")
    return accepts


@attrs.frozen
class _Piece:
    # Part ``index`` of the prompt, from ``start`` to ``end`` (bytes).
    index: int
    start: int
    end: int
    seconds: float


def _pcm_seconds(part: Part) -> float | None:
    if not _is_pcm(part.mimetype):
        return None
    try:
        return len(part.data) // 2 / audio_rate(part)
    except AudioFormatError:
        return None


def _speech_span(part: Part) -> tuple[float, float] | None:
    value = part.metadata.get(SPEECH_KEY)
    # In the prompt a final transcription is text with ``final`` metadata.
    if not is_text(part) or not isinstance(value, tuple | list) or len(value) != 2:
        return None
    start, end = value
    if not (isinstance(start, int | float) and isinstance(end, int | float)) or start < end:
        return None
    return float(start), float(end)


def select_content(
    parts: Sequence[Part], accepts: Iterable[str] | None = None, *, audio_history: float = 0.0
) -> list[Part]:
    """The parts a model that takes ``accepts`` receives (see the module docstring).

    Args:
        parts: the prompt, oldest first.
        accepts: the families the model takes; None takes everything as it is.
        audio_history: seconds of earlier turns' speech audio to keep as well.
    """
    if accepts is None:
        return list(parts)
    accepts = frozenset(accepts)
    kept = [
        part
        for part in parts
        if part.role == "model" or family(part) not in ("audio", "image") or family(part) in accepts
    ]
    if "audio" not in accepts:
        return kept
    # User audio parts: the timeline of PCM seconds, and the turn of each part.
    turn = 0
    turns: list[int] = []
    timeline: list[tuple[int, float, float]] = []  # (index, start, seconds) of PCM parts
    spans: list[tuple[int, float, float]] = []  # (turn, start, end) on the timeline
    clock = 0.0
    for index, part in enumerate(kept):
        if part.role == "model" and part.content:
            turn += 1
        turns.append(turn)
        if part.role == "model" or family(part) != "audio":
            span = _speech_span(part)
            if span is not None:
                spans.append((turn, max(0.0, clock - span[0]), max(0.0, clock - span[1])))
            continue
        seconds = _pcm_seconds(part)
        if seconds is not None:
            timeline.append((index, clock, seconds))
            clock += seconds
    # The audio to keep, as pieces of parts, grouped by segment, newest first.
    segments: list[tuple[int, list[_Piece]]] = []
    if spans:
        for span_turn, begin, end in spans:
            pieces = []
            for index, start, seconds in timeline:
                low, high = max(begin, start), min(end, start + seconds)
                if high <= low:
                    continue
                rate = audio_rate(kept[index])
                first = round((low - start) * rate) * 2
                last = min(len(kept[index].data), round((high - start) * rate) * 2)
                if last > first:
                    pieces.append(_Piece(index, first, last, (last - first) / 2 / rate))
            segments.append((span_turn, pieces))
    else:
        for index, _start, seconds in timeline:
            segments.append((turns[index], [_Piece(index, 0, len(kept[index].data), seconds)]))
    budget = audio_history
    chosen: dict[int, list[_Piece]] = {}
    for segment_turn, pieces in reversed(segments):
        if segment_turn != turn:
            seconds = sum(piece.seconds for piece in pieces)
            if seconds > budget:
                break
            budget -= seconds
        for piece in pieces:
            chosen.setdefault(piece.index, []).append(piece)
    selected: list[Part] = []
    for index, part in enumerate(kept):
        if part.role == "model" or family(part) != "audio":
            selected.append(part)
        elif _pcm_seconds(part) is None:
            # Audio of another format (a WAV or MP3 file): whole, in the current turn only.
            if turns[index] == turn:
                selected.append(part)
        else:
            pieces = sorted(chosen.get(index, ()), key=lambda p: p.start)
            selected.extend(part.replace(content=part.data[p.start : p.end]) for p in pieces)
    return selected


@attrs.frozen(kw_only=True)
class Blob:
    """Binary content of a message: an image or a sound, with its mimetype."""

    mimetype: str
    data: bytes


@attrs.frozen(kw_only=True)
class Message:
    """A run of prompt parts from one role, merged.

    Attributes:
        role: ``"user"``, ``"model"`` or ``"system"`` (an unknown role is the
            user), or ``"tool"`` for a run of tool results (`ToolResult`
            items; the model's runs hold its `ToolCall` items).
        items: text and binary content in order; adjacent texts are merged
            (the model's deltas as they are, other roles' texts one per line)
            and adjacent PCM chunks of one rate are joined into one WAV blob.
    """

    role: str
    items: tuple[str | Blob | ToolCall | ToolResult, ...]


def paired_tool_parts(parts: Sequence[Part]) -> list[Part]:
    """``parts`` without tool calls that lack a result or results that lack a call.

    The session keeps each call with its one outcome; this makes sure no
    request can hold a dangling call id, whatever the history holds (a cut
    window, a hand-made prompt). A second call or result with one id goes too.
    """
    calls: set[str] = set()
    results: set[str] = set()
    for part in parts:
        if is_tool_call(part):
            calls.add(read_tool_call(part).id)
        elif is_tool_result(part):
            call_id = read_tool_result(part).id
            if call_id in calls:
                results.add(call_id)
    kept: list[Part] = []
    seen: set[str] = set()
    for part in parts:
        if is_tool_call(part) or is_tool_result(part):
            call_id = (read_tool_call(part) if is_tool_call(part) else read_tool_result(part)).id
            key = f"{'c' if is_tool_call(part) else 'r'}{call_id}"
            if call_id not in results or key in seen:
                continue
            seen.add(key)
        kept.append(part)
    return kept


def result_text(result: ToolResult) -> str:
    """A tool result as text for the model (a string result as it is, else JSON)."""
    if result.outcome == "result":
        content = result.content
        return content if isinstance(content, str) else json.dumps(content)
    return json.dumps(result_object(result))


def result_object(result: ToolResult) -> dict[str, Any]:
    """A tool result as a JSON object for the model."""
    if result.outcome == "result":
        return {"result": result.content}
    if result.outcome == "cancelled":
        return {"error": str(result.content), "cancelled": True}
    return {"error": str(result.content)}


def _is_pcm(mimetype: str) -> bool:
    return mimetype.partition(";")[0].strip().lower() == "audio/l16"


def group_messages(
    parts: Iterable[Part],
    accepts: Iterable[str] | None = None,
    *,
    audio_history: float = 0.0,
    hint: str = "",
) -> list[Message]:
    """Turn a prompt into messages: one per run of parts of the same role.

    Markers, reserved substreams and empty parts are left out, and so is
    content the model does not take (`select_content`).

    Raises:
        BadRequestError: the prompt holds content, but none the model takes
            (``hint`` is added to the message).
    """
    every = [p for p in parts if not (is_marker(p) or is_reserved(p) or not p.content)]
    every = paired_tool_parts(every)
    chosen = select_content(every, accepts, audio_history=audio_history)
    if every and not chosen:
        families = sorted({family(part) for part in every})
        raise BadRequestError(
            f"the prompt holds only {' and '.join(families)}, which this model does not take"
            f"{hint}; transcribe the speech first (SpeechToText)"
        )
    runs: list[tuple[str, list[str | Blob | ToolCall | ToolResult]]] = []
    for part in chosen:
        if is_marker(part) or is_reserved(part) or not part.content:
            continue
        role = part.role or "user"
        item: str | Blob | ToolCall | ToolResult
        if is_tool_call(part):
            item, role = read_tool_call(part), "model"
        elif is_tool_result(part):
            # Results are their own run: a ``tool`` message, or a user turn.
            item, role = read_tool_result(part), "tool"
        elif is_text(part) or part.mimetype == JSON_MIMETYPE:
            item = (
                part.content
                if isinstance(part.content, str)
                else part.data.decode(errors="replace")
            )
        else:
            if _is_pcm(part.mimetype):
                try:
                    audio_rate(part)
                except AudioFormatError as error:
                    raise BadRequestError(str(error)) from error
            item = Blob(mimetype=part.mimetype, data=part.data)
        if not runs or runs[-1][0] != role:
            runs.append((role, []))
        items = runs[-1][1]
        last = items[-1] if items else None
        if isinstance(item, str) and isinstance(last, str):
            items[-1] = last + ("" if role == "model" else "\n") + item
        elif (
            isinstance(item, Blob)
            and isinstance(last, Blob)
            and last.mimetype == item.mimetype
            and _is_pcm(item.mimetype)
        ):
            items[-1] = Blob(mimetype=item.mimetype, data=last.data + item.data)
        else:
            items.append(item)
    messages = []
    for role, items in runs:
        for index, item in enumerate(items):
            if isinstance(item, Blob) and _is_pcm(item.mimetype):
                rate = audio_rate(Part(content=b"", mimetype=item.mimetype))
                items[index] = Blob(mimetype="audio/wav", data=wav_from_pcm(item.data, rate))
        messages.append(Message(role=role, items=tuple(items)))
    return messages
