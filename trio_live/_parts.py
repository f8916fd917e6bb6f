"""Parts: the unit of everything that flows through a live session.

A `Part` is an immutable value: some content (text or bytes), the mimetype that
says how to read it, who said it (`role`), which substream it travels on and a
read-only metadata mapping. Changing a part (`Part.replace`) builds a new one;
nothing a caller hands in is ever mutated.

The vocabulary of a conversation is made of parts too:

* end of turn: any part whose metadata carries ``end_of_turn=True`` (usually an
  empty text part, or the last text of a typed message);
* speech events from voice activity detection: start and end of speech;
* output markers, each tagged with its turn, in one order: answer complete
  (the answer's last output part is out: what text to speech flushes on and
  what a player reports playback finished after), interrupted (the turn was
  cut short, if it was) and turn complete (the turn is over for the
  listener; always last). `is_marker` tells markers from content, and
  `is_answer` picks the answer's content out of a session's output;
* transcriptions: text on the ``transcription`` substream with a ``final``
  flag in the metadata (absent means partial); the session shows them on its
  output on the main stream, marked with ``metadata["transcription"] = True``
  (`is_transcription` and `is_final_transcription` recognise both);
* reserved substreams (``status``, ``debug``) pass through a session
  untouched and never enter the prompt.

Parts are cheap on purpose: a 20 ms audio chunk costs one small slotted object
beside its payload, and building it does no parsing or copying.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._errors import AudioFormatError

ROLES: Final = frozenset({"user", "model", "system", ""})

STATUS_SUBSTREAM: Final = "status"
DEBUG_SUBSTREAM: Final = "debug"
TRANSCRIPTION_SUBSTREAM: Final = "transcription"
RESERVED_SUBSTREAMS: Final = frozenset({STATUS_SUBSTREAM, DEBUG_SUBSTREAM})

TEXT_MIMETYPE: Final = "text/plain"
JSON_MIMETYPE: Final = "application/json"
START_OF_SPEECH_MIMETYPE: Final = "application/x.trio-live.start-of-speech"
END_OF_SPEECH_MIMETYPE: Final = "application/x.trio-live.end-of-speech"
ANSWER_COMPLETE_MIMETYPE: Final = "application/x.trio-live.answer-complete"
TURN_COMPLETE_MIMETYPE: Final = "application/x.trio-live.turn-complete"
INTERRUPTED_MIMETYPE: Final = "application/x.trio-live.interrupted"
ERROR_MIMETYPE: Final = "application/x.trio-live.error+json"
TURN_STATS_MIMETYPE: Final = "application/x.trio-live.turn-stats+json"
ACTIVITY_MIMETYPE: Final = "application/x.trio-live.activity+json"
TOOL_CALL_MIMETYPE: Final = "application/x.trio-live.tool-call+json"
TOOL_RESULT_MIMETYPE: Final = "application/x.trio-live.tool-result+json"
TOOL_STATUS_MIMETYPE: Final = "application/x.trio-live.tool-status+json"
#: The outcomes a tool result can have.
TOOL_OUTCOMES: Final = frozenset({"result", "error", "cancelled"})

MARKER_MIMETYPES: Final = frozenset(
    {
        START_OF_SPEECH_MIMETYPE,
        END_OF_SPEECH_MIMETYPE,
        ANSWER_COMPLETE_MIMETYPE,
        TURN_COMPLETE_MIMETYPE,
        INTERRUPTED_MIMETYPE,
    }
)

END_OF_TURN_KEY: Final = "end_of_turn"
FINAL_KEY: Final = "final"
#: Set (True) on a transcription the session shows on its output, where its
#: substream is cleared.
TRANSCRIPTION_KEY: Final = "transcription"

EMPTY_METADATA: Final[Mapping[str, Any]] = types.MappingProxyType({})


def _freeze_metadata(value: Mapping[str, Any]) -> Mapping[str, Any]:
    # The shared empty mapping and mappings we froze ourselves are kept as they
    # are; anything else is copied so later changes by the caller cannot leak in.
    if value is EMPTY_METADATA or type(value) is types.MappingProxyType:
        return value
    if not value:
        return EMPTY_METADATA
    return types.MappingProxyType(dict(value))


def _check_role(instance: Part, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ROLES:
        raise ValueError(f"role must be one of 'user', 'model', 'system' or '', got {value!r}")


@attrs.frozen(kw_only=True)
class Part:
    """One piece of a conversation.

    Attributes:
        content: the payload, text (`str`) or raw bytes.
        mimetype: how to read `content`, for example ``text/plain`` or
            ``audio/l16;rate=16000``.
        role: ``"user"``, ``"model"``, ``"system"`` or ``""`` when unknown.
        substream: the name of the substream the part travels on; ``""`` is
            the main stream.
        metadata: read-only extra facts about the part.
    """

    content: str | bytes = ""
    mimetype: str = TEXT_MIMETYPE
    role: str = attrs.field(default="", validator=_check_role)
    substream: str = ""
    metadata: Mapping[str, Any] = attrs.field(default=EMPTY_METADATA, converter=_freeze_metadata)

    @property
    def text(self) -> str:
        """The content as text; raises `TypeError` if the content is bytes."""
        if isinstance(self.content, str):
            return self.content
        raise TypeError(f"part with mimetype {self.mimetype!r} holds bytes, not text")

    @property
    def data(self) -> bytes:
        """The content as bytes (text is encoded as UTF-8)."""
        if isinstance(self.content, bytes):
            return self.content
        return self.content.encode()

    def replace(self, **changes: Any) -> Part:
        """Return a copy of this part with the given fields changed."""
        return attrs.evolve(self, **changes)

    def with_metadata(self, **values: Any) -> Part:
        """Return a copy with ``values`` merged into the metadata."""
        return attrs.evolve(self, metadata={**self.metadata, **values})

    def without_metadata(self, *keys: str) -> Part:
        """Return a copy whose metadata lacks ``keys``."""
        kept = {k: v for k, v in self.metadata.items() if k not in keys}
        return attrs.evolve(self, metadata=kept)


# --- constructors -----------------------------------------------------------

_AUDIO_MIMETYPES: dict[int, str] = {}


def audio_mimetype(rate: int) -> str:
    """The mimetype of 16-bit mono PCM at ``rate`` Hz, e.g. ``audio/l16;rate=16000``."""
    try:
        return _AUDIO_MIMETYPES[rate]
    except KeyError:
        if not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"rate must be a positive int, got {rate!r}") from None
        mimetype = _AUDIO_MIMETYPES[rate] = f"audio/l16;rate={rate}"
        return mimetype


def text_part(text: str, *, role: str = "user", **metadata: Any) -> Part:
    """A text part."""
    return Part(content=text, mimetype=TEXT_MIMETYPE, role=role, metadata=metadata)


def audio_part(pcm: bytes, *, rate: int = 16000, role: str = "user") -> Part:
    """A chunk of 16-bit little-endian mono PCM audio sampled at ``rate`` Hz.

    Raises:
        AudioFormatError: if ``pcm`` holds an odd number of bytes.
    """
    if len(pcm) & 1:
        raise AudioFormatError(f"PCM16 audio needs an even number of bytes, got {len(pcm)}")
    return Part(content=pcm, mimetype=audio_mimetype(rate), role=role)


def image_part(data: bytes, *, mimetype: str = "image/png", role: str = "user") -> Part:
    """An image, encoded as ``mimetype`` (``image/png``, ``image/jpeg``...)."""
    if not mimetype.startswith("image/"):
        raise ValueError(f"mimetype must start with 'image/', got {mimetype!r}")
    return Part(content=data, mimetype=mimetype, role=role)


def json_part(
    value: Any, *, mimetype: str = JSON_MIMETYPE, role: str = "", substream: str = ""
) -> Part:
    """A JSON event: ``value`` serialized as text."""
    return Part(content=json.dumps(value), mimetype=mimetype, role=role, substream=substream)


def end_of_turn(text: str = "", *, role: str = "user") -> Part:
    """An explicit end of the user's turn, optionally carrying the turn's last text."""
    return Part(content=text, role=role, metadata={END_OF_TURN_KEY: True})


def start_of_speech() -> Part:
    """The user started speaking (from voice activity detection)."""
    return _START_OF_SPEECH


def end_of_speech() -> Part:
    """The user stopped speaking (from voice activity detection)."""
    return _END_OF_SPEECH


def answer_complete() -> Part:
    """Output marker: the answer's output has ended (no more parts of it follow).

    The session sends it (tagged with the turn) right after the last part a
    generation delivered, whether it finished or was cut short: text to
    speech flushes the turn's last sentence on it, and a player reports the
    playback finished once it has played the audio before it.
    """
    return _ANSWER_COMPLETE


def turn_complete() -> Part:
    """Output marker: the turn is over for the listener (always its last marker).

    Without playback tracking it follows ``answer_complete`` at once; with
    it, it comes once the playback is reported finished, or is stopped
    (after ``interrupted``), or the input ends.
    """
    return _TURN_COMPLETE


def interrupted() -> Part:
    """Output marker: the turn was cut short (before its ``turn_complete``)."""
    return _INTERRUPTED


def transcription(text: str, *, final: bool, role: str = "user") -> Part:
    """Speech-to-text output on the transcription substream."""
    return Part(
        content=text,
        role=role,
        substream=TRANSCRIPTION_SUBSTREAM,
        metadata={FINAL_KEY: final},
    )


def status_part(value: Any, *, mimetype: str = JSON_MIMETYPE) -> Part:
    """A JSON status event on the reserved ``status`` substream."""
    return json_part(value, mimetype=mimetype, substream=STATUS_SUBSTREAM)


def activity_part(activity: str, *, turn: int) -> Part:
    """What the conversation visibly does now, on the ``status`` substream.

    ``activity`` is ``"listening"``, ``"thinking"`` or ``"speaking"``; ``turn``
    is the latest turn's number (0 before the first).
    """
    return status_part({"activity": activity, "turn": turn}, mimetype=ACTIVITY_MIMETYPE)


def error_part(error: BaseException) -> Part:
    """Report ``error`` on the ``status`` substream (its type and message, no traceback)."""
    return status_part(
        {"error": type(error).__name__, "message": str(error)}, mimetype=ERROR_MIMETYPE
    )


@attrs.frozen(kw_only=True)
class ToolCall:
    """What a tool-call part says: the model asks for ``name(**arguments)``.

    Attributes:
        id: the call's id (unique in the session; ``""`` until the session
            assigns one to a call whose model gave none).
        name: the tool's name.
        arguments: the arguments as the model wrote them: JSON text, which
            may be invalid (the call then gets an error outcome).
    """

    id: str
    name: str
    arguments: str


@attrs.frozen(kw_only=True)
class ToolResult:
    """What a tool-result part says: the one outcome of call ``id``.

    Attributes:
        id: the call's id.
        name: the tool's name.
        outcome: ``"result"``, ``"error"`` or ``"cancelled"``.
        content: the tool's return value (any JSON value) for a result, the
            message for an error or a cancellation.
    """

    id: str
    name: str
    outcome: str
    content: Any


def tool_call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, call_id: str = ""
) -> Part:
    """A model's call of tool ``name``; ``arguments`` as a mapping or as JSON text.

    A model that gives no ``call_id`` gets one from the session.
    """
    if arguments is None:
        arguments = {}
    text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
    value = {"id": call_id, "name": name, "arguments": text}
    return Part(content=json.dumps(value), mimetype=TOOL_CALL_MIMETYPE, role="model")


def tool_result(call_id: str, name: str, outcome: str, content: Any = None) -> Part:
    """The outcome of tool call ``call_id`` (see `ToolResult`), in the model's history."""
    if outcome not in TOOL_OUTCOMES:
        raise ValueError(f"outcome must be 'result', 'error' or 'cancelled', got {outcome!r}")
    value = {"id": call_id, "name": name, "outcome": outcome, "content": content}
    return Part(content=json.dumps(value), mimetype=TOOL_RESULT_MIMETYPE, role="model")


def read_tool_call(part: Part) -> ToolCall:
    """The `ToolCall` a tool-call part holds."""
    value = json.loads(part.content)
    return ToolCall(id=value["id"], name=value["name"], arguments=value["arguments"])


def read_tool_result(part: Part) -> ToolResult:
    """The `ToolResult` a tool-result part holds."""
    value = json.loads(part.content)
    return ToolResult(
        id=value["id"], name=value["name"], outcome=value["outcome"], content=value["content"]
    )


_START_OF_SPEECH: Final = Part(mimetype=START_OF_SPEECH_MIMETYPE, role="user")
_END_OF_SPEECH: Final = Part(mimetype=END_OF_SPEECH_MIMETYPE, role="user")
_ANSWER_COMPLETE: Final = Part(mimetype=ANSWER_COMPLETE_MIMETYPE, role="model")
_TURN_COMPLETE: Final = Part(mimetype=TURN_COMPLETE_MIMETYPE, role="model")
_INTERRUPTED: Final = Part(mimetype=INTERRUPTED_MIMETYPE, role="model")


# --- predicates -------------------------------------------------------------


def is_text(part: Part) -> bool:
    """True for text content (``text/*``)."""
    return part.mimetype.startswith("text/")


def is_audio(part: Part) -> bool:
    """True for audio content (``audio/*``)."""
    return part.mimetype.startswith("audio/")


def is_image(part: Part) -> bool:
    """True for image content (``image/*``)."""
    return part.mimetype.startswith("image/")


def is_marker(part: Part) -> bool:
    """True for speech events and output markers (they carry no content)."""
    return part.mimetype in MARKER_MIMETYPES


def is_answer(part: Part) -> bool:
    """True for the model's answer itself: its text, speech or other content.

    Markers carry ``role="model"`` too (and the turn's tag), so filtering a
    session's output by role alone picks them up; this keeps only content
    of the main stream: ``[p for p in output if is_answer(p)]``.
    """
    return part.role == "model" and not part.substream and part.mimetype not in MARKER_MIMETYPES


def is_plain(part: Part) -> bool:
    """True for plain input: content on the main stream with no metadata.

    Audio chunks and text are plain; speech events, end-of-turn parts,
    transcriptions and reserved substreams are not. Plain input only ever
    joins the prompt (or the stash): it cannot change the turn's state.
    """
    return (
        not part.substream
        and part.metadata is EMPTY_METADATA
        and part.mimetype not in MARKER_MIMETYPES
    )


def is_end_of_turn(part: Part) -> bool:
    """True if the part ends the user's turn."""
    return part.metadata.get(END_OF_TURN_KEY) is True


def is_start_of_speech(part: Part) -> bool:
    """True for the start-of-speech event."""
    return part.mimetype == START_OF_SPEECH_MIMETYPE


def is_end_of_speech(part: Part) -> bool:
    """True for the end-of-speech event."""
    return part.mimetype == END_OF_SPEECH_MIMETYPE


def is_answer_complete(part: Part) -> bool:
    """True for the answer-complete output marker."""
    return part.mimetype == ANSWER_COMPLETE_MIMETYPE


def is_turn_complete(part: Part) -> bool:
    """True for the turn-complete output marker."""
    return part.mimetype == TURN_COMPLETE_MIMETYPE


def is_interrupted(part: Part) -> bool:
    """True for the interrupted output marker."""
    return part.mimetype == INTERRUPTED_MIMETYPE


def is_transcription(part: Part) -> bool:
    """True for a transcription: on the transcription substream, or shown by a session.

    A session shows transcriptions on its output's main stream, marked with
    ``metadata["transcription"] = True``.
    """
    return part.substream == TRANSCRIPTION_SUBSTREAM or (
        not part.substream and part.metadata.get(TRANSCRIPTION_KEY) is True
    )


def is_final_transcription(part: Part) -> bool:
    """True for a final transcription (a missing flag means partial), wherever shown."""
    return is_transcription(part) and part.metadata.get(FINAL_KEY) is True


def is_reserved(part: Part) -> bool:
    """True for a part on a reserved substream (``status``, ``debug``)."""
    return part.substream in RESERVED_SUBSTREAMS


def is_activity(part: Part) -> bool:
    """True for an activity report made by `activity_part`."""
    return part.mimetype == ACTIVITY_MIMETYPE


def is_error(part: Part) -> bool:
    """True for an error report made by `error_part`."""
    return part.mimetype == ERROR_MIMETYPE


def is_tool_call(part: Part) -> bool:
    """True for a tool call made by `tool_call`."""
    return part.mimetype == TOOL_CALL_MIMETYPE


def is_tool_result(part: Part) -> bool:
    """True for a tool result made by `tool_result`."""
    return part.mimetype == TOOL_RESULT_MIMETYPE


def audio_rate(part: Part) -> int:
    """The sample rate of a ``audio/l16;rate=N`` part.

    Raises:
        AudioFormatError: if the part is not PCM16 audio with a rate.
    """
    mimetype = part.mimetype
    base, _, params = mimetype.partition(";")
    if base.strip().lower() != "audio/l16":
        raise AudioFormatError(f"expected audio/l16 PCM, got mimetype {mimetype!r}")
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "rate":
            try:
                rate = int(value)
            except ValueError:
                break
            if rate > 0:
                return rate
            break
    raise AudioFormatError(f"audio mimetype {mimetype!r} has no valid rate")
