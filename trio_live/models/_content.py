"""The prompt as API messages: runs of one role, merged, with binary content.

Both HTTP models send a conversation as a list of messages, one per run of
parts from one role. This module does the grouping once; each model only
spells the result in its API's JSON.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .._errors import AudioFormatError, BadRequestError
from .._parts import JSON_MIMETYPE, Part, audio_rate, is_marker, is_reserved, is_text
from .._wav import wav_from_pcm

__all__ = ["Blob", "Message", "group_messages"]


@attrs.frozen(kw_only=True)
class Blob:
    """Binary content of a message: an image or a sound, with its mimetype."""

    mimetype: str
    data: bytes


@attrs.frozen(kw_only=True)
class Message:
    """A run of prompt parts from one role, merged.

    Attributes:
        role: ``"user"``, ``"model"`` or ``"system"`` (an unknown role is the user).
        items: text and binary content in order; adjacent texts are merged
            (the model's deltas as they are, other roles' texts one per line)
            and adjacent PCM chunks of one rate are joined into one WAV blob.
    """

    role: str
    items: tuple[str | Blob, ...]


def _is_pcm(mimetype: str) -> bool:
    return mimetype.partition(";")[0].strip().lower() == "audio/l16"


def group_messages(parts: Iterable[Part]) -> list[Message]:
    """Turn a prompt into messages: one per run of parts of the same role.

    Markers, reserved substreams and empty parts are left out.
    """
    runs: list[tuple[str, list[str | Blob]]] = []
    for part in parts:
        if is_marker(part) or is_reserved(part) or not part.content:
            continue
        role = part.role or "user"
        item: str | Blob
        if is_text(part) or part.mimetype == JSON_MIMETYPE:
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
