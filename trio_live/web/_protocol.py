"""The wire protocol between a browser (or app) and ``trio-live serve``: a sans-IO codec.

Websocket messages go in, typed values come out, and back: this module never
does I/O, never reads a clock and never imports trio, so its tests are plain
synchronous tables. ``docs/protocol.md`` is the reference for clients.

Invariants:

* A message the client sends decodes to exactly one `ClientMessage` or raises
  exactly one `WireError` (with a stable ``code``); nothing is half-applied, so
  the server can report the error and go on.
* Every server event is one JSON text message with a ``type``; TTS audio is an
  ``audio`` event immediately followed by one binary message, and the pair
  travels as one `Outgoing` value so it can only be dropped whole.
* Only audio is ever marked droppable; control events never are.
* Unknown fields are ignored (newer clients may add some); unknown types and
  wrong field types are errors. The version is negotiated once, by the
  ``ready`` event (the versions the server speaks) and the optional
  ``config`` message (the one the client speaks; 1 without it).
* An option a client may change (`Options`) is checked against its bounds
  here (`POLICY_OPTIONS`), so no client can set a timeout that pins the
  server's resources.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

import attrs

from .._errors import AudioFormatError, ProtocolError
from .._parts import (
    EMPTY_METADATA,
    ERROR_MIMETYPE,
    FINAL_KEY,
    STATUS_SUBSTREAM,
    TOOL_STATUS_MIMETYPE,
    TURN_STATS_MIMETYPE,
    Part,
    audio_part,
    audio_rate,
    end_of_speech,
    end_of_turn,
    is_answer_complete,
    is_audio,
    is_interrupted,
    is_text,
    is_transcription,
    is_turn_complete,
    start_of_speech,
    text_part,
)

PROTOCOL_VERSION: Final = 2
#: The versions this server speaks (a client names its own in ``config``).
PROTOCOL_VERSIONS: Final = (1, 2)
SUBPROTOCOL: Final = "trio-live.v1"
SAMPLE_RATE: Final = 16000


class WireError(ProtocolError):
    """A client message that the server cannot take; the session goes on.

    Attributes:
        code: a stable machine-readable name, sent in the ``error`` event.
    """

    code = "bad_message"


class MalformedMessage(WireError):
    """Not JSON, not an object, or a field of the wrong type."""

    code = "bad_message"


class BadJson(MalformedMessage):
    """The text message is not valid JSON."""

    code = "bad_json"


class UnknownMessageType(WireError):
    """The message's ``type`` is not one this protocol version knows."""

    code = "unknown_type"


class UnsupportedVersion(WireError):
    """The client asked for a protocol version the server does not speak."""

    code = "unsupported_version"


class BadAudioFrame(WireError, AudioFormatError):
    """A binary frame that is not PCM16 audio of an accepted size."""

    code = "bad_audio"


class BadOption(WireError):
    """An ``options`` value of the right type outside its bounds (`POLICY_OPTIONS`)."""

    code = "bad_option"


class MessageTooLarge(WireError):
    """A message above the server's size limit."""

    code = "too_large"


class OverBudget(WireError):
    """Input beyond the client's budgets (`Budgets`): the server closes with 1008."""

    code = "over_budget"


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive int, got {value!r}")


@attrs.frozen(kw_only=True)
class Limits:
    """What the server accepts from one client.

    Attributes:
        max_message_bytes: the largest websocket message; a larger one closes
            the connection with code 1009 (it is never read whole).
        max_audio_frame_bytes: the largest binary audio frame (default: one
            second of 16 kHz PCM16); larger frames get a ``bad_audio`` error.
        max_text_chars: the longest typed text.
    """

    max_message_bytes: int = attrs.field(default=256 * 1024, validator=_positive)
    max_audio_frame_bytes: int = attrs.field(default=2 * SAMPLE_RATE, validator=_positive)
    max_text_chars: int = attrs.field(default=8000, validator=_positive)


# --- client -> server ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class AudioFrame:
    """A binary frame of 16 kHz mono PCM16 (little-endian) microphone audio."""

    pcm: bytes


@attrs.frozen(kw_only=True)
class Config:
    """The optional first message: what the client wants from this session.

    Attributes:
        version: the protocol version the client speaks (1 for a client
            that sends no ``config``): from 2 on, the client reports the end
            of each turn's playback.
        tts: whether the server should send synthesized speech.
    """

    version: int = 1
    tts: bool = True


@attrs.frozen(kw_only=True)
class TextInput:
    """A typed message; ``end_of_turn`` asks the model to answer it."""

    text: str
    end_of_turn: bool = True


@attrs.frozen(kw_only=True)
class EndOfTurn:
    """The user's turn is over (push-to-talk released, for example)."""


@attrs.frozen(kw_only=True)
class Interrupt:
    """Stop the model's current answer, as if the user had started speaking."""


@attrs.frozen(kw_only=True)
class Playback:
    """How far the client has played the model's speech for ``turn``.

    Attributes:
        turn: the turn, as in the ``audio`` events' ``turn``.
        chars: characters of the turn's text heard so far (the
            ``spoken_chars`` of the last chunk played to its end).
        finished: the turn's speech has been played to its end.
    """

    turn: int
    chars: int
    finished: bool = False


@attrs.frozen(kw_only=True)
class Options:
    """Settings the client changes during the session (None: unchanged).

    Attributes:
        tts: send synthesized speech (False: drop it; the answer's text,
            shown, then counts as heard).
        echo_guard: False for a headset: the model's voice cannot reach the
            microphone, so its playback does not raise the barge-in bar.
        policy: the session's interruption options to change, by name (only
            those the message holds; a value None turns the option off), for
            `LiveSession.update_policy`; each within `POLICY_OPTIONS`.
    """

    tts: bool | None = None
    echo_guard: bool | None = None
    policy: Mapping[str, float | int | None] = attrs.field(factory=dict, hash=False)


#: The session options a client may change with ``options``: for each, its
#: type, its bounds (inclusive) and whether null (off) is allowed. A timeout
#: of null is off; a set one is at least a hundredth of a second.
POLICY_OPTIONS: Final[Mapping[str, tuple[type, float, float, bool]]] = {
    "min_interruption_duration": (float, 0.0, 2.0, False),
    "min_interruption_words": (int, 0, 5, False),
    "false_interruption_timeout": (float, 0.01, 5.0, True),
}


def _policy_options(obj: Mapping[str, Any]) -> dict[str, float | int | None]:
    options: dict[str, float | int | None] = {}
    for name, (kind, low, high, nullable) in POLICY_OPTIONS.items():
        if name not in obj:
            continue
        value = obj[name]
        if value is None and nullable:
            options[name] = None
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (kind is int and not isinstance(value, int)):
            wanted = "an integer" if kind is int else "a number"
            off = " or null" if nullable else ""
            raise MalformedMessage(f"field {name!r} must be {wanted}{off}, got {value!r}")
        if not low <= value <= high:
            raise BadOption(f"option {name!r} must be from {low:g} to {high:g}, got {value!r}")
        options[name] = float(value) if kind is float else value
    return options


ClientMessage: TypeAlias = (
    AudioFrame | Config | TextInput | EndOfTurn | Interrupt | Playback | Options
)


def _field(obj: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = obj.get(name, default)
    # bool is an int in Python; JSON keeps them apart, and so do we.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedMessage(f"field {name!r} must be {kind.__name__}, got {value!r}")
    return value


def _count(obj: Mapping[str, Any], name: str) -> int:
    if name not in obj:
        raise MalformedMessage(f"field {name!r} is required")
    value: int = _field(obj, name, int, None)
    if value < 0:
        raise MalformedMessage(f"field {name!r} must be >= 0, got {value!r}")
    return value


def decode_client_message(message: str | bytes, limits: Limits = Limits()) -> ClientMessage:
    """Decode one websocket message from a client.

    Raises:
        WireError: the message is malformed; its ``code`` says how.
    """
    if isinstance(message, bytes):
        size = len(message)
        if size == 0 or size & 1:
            raise BadAudioFrame(f"audio frames hold whole PCM16 samples, got {size} bytes")
        if size > limits.max_audio_frame_bytes:
            raise BadAudioFrame(
                f"audio frames hold at most {limits.max_audio_frame_bytes} bytes, got {size}"
            )
        return AudioFrame(pcm=message)
    if len(message) > limits.max_message_bytes:
        raise MessageTooLarge(f"messages hold at most {limits.max_message_bytes} characters")
    try:
        obj = json.loads(message)
    except (ValueError, RecursionError):
        # RecursionError: nested too deeply for the parser (valid or not).
        raise BadJson("the text message is not valid JSON (or nested too deeply)") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"a message must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise MalformedMessage("a message needs a string field 'type'")
    if kind == "text":
        if "text" not in obj:
            raise MalformedMessage("field 'text' is required")
        text: str = _field(obj, "text", str, None)
        if not text:
            raise MalformedMessage("field 'text' must not be empty")
        if len(text) > limits.max_text_chars:
            raise MessageTooLarge(f"text holds at most {limits.max_text_chars} characters")
        if not _is_unicode(text):
            raise MalformedMessage("field 'text' holds a lone surrogate (not Unicode text)")
        return TextInput(text=text, end_of_turn=_field(obj, "end_of_turn", bool, True))
    if kind == "end_of_turn":
        return EndOfTurn()
    if kind == "interrupt":
        return Interrupt()
    if kind == "playback":
        return Playback(
            turn=_count(obj, "turn"),
            chars=_count(obj, "chars"),
            finished=_field(obj, "finished", bool, False),
        )
    if kind == "options":
        return Options(
            tts=_field(obj, "tts", bool, None) if "tts" in obj else None,
            echo_guard=_field(obj, "echo_guard", bool, None) if "echo_guard" in obj else None,
            policy=_policy_options(obj),
        )
    if kind == "config":
        version: int = _field(obj, "version", int, 1)
        if version not in PROTOCOL_VERSIONS:
            spoken = " and ".join(str(v) for v in PROTOCOL_VERSIONS)
            raise UnsupportedVersion(
                f"this server speaks protocol versions {spoken}, not {version}"
            )
        rate: int = _field(obj, "sample_rate", int, SAMPLE_RATE)
        if rate != SAMPLE_RATE:
            raise MalformedMessage(f"audio must be sampled at {SAMPLE_RATE} Hz, got {rate}")
        return Config(version=version, tts=_field(obj, "tts", bool, True))
    raise UnknownMessageType(f"unknown message type {kind[:40]!r}")


def input_parts(message: ClientMessage) -> list[Part]:
    """The session input for a message (none for ``config``, ``playback``, ``options``)."""
    if isinstance(message, AudioFrame):
        return [audio_part(message.pcm, rate=SAMPLE_RATE)]
    if isinstance(message, TextInput):
        if message.end_of_turn:
            return [end_of_turn(message.text)]
        return [text_part(message.text)]
    if isinstance(message, EndOfTurn):
        return [end_of_turn()]
    if isinstance(message, Interrupt):
        # Explicit: it cuts at once, whatever the minimum-interruption rules.
        return [start_of_speech().with_metadata(interrupt=True), end_of_speech()]
    return []


# --- server -> client ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class Outgoing:
    """One server event: a JSON text message, maybe followed by a binary one.

    Attributes:
        text: the JSON event.
        binary: the audio that follows it, if any.
        droppable: True for audio, which a too-slow client may lose.
    """

    text: str
    binary: bytes | None = None
    droppable: bool = False


def _is_unicode(text: str) -> bool:
    # JSON's \ud800 escapes decode to lone surrogates, which UTF-8 cannot carry.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dump(value: Mapping[str, Any]) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not _is_unicode(text):
        # A lone surrogate (from a model, say): escaped, the message is still valid.
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text


def event(kind: str, **fields: Any) -> Outgoing:
    """A control event ``{"type": kind, **fields}`` (never dropped)."""
    return Outgoing(text=_dump({"type": kind, **fields}))


def ready_event(*, session: str, limits: Limits) -> Outgoing:
    """The first event of every connection: the version and the limits."""
    return event(
        "ready",
        version=PROTOCOL_VERSION,
        versions=list(PROTOCOL_VERSIONS),
        session=session,
        audio={"format": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": 1},
        limits=attrs.asdict(limits),
    )


def error_event(error: WireError | str, message: str | None = None) -> Outgoing:
    """An ``error`` event for a `WireError`, or for a code and a message."""
    if isinstance(error, WireError):
        return event("error", code=error.code, message=str(error))
    return event("error", code=error, message=message or "")


def state_event(state: str) -> Outgoing:
    """The conversation's state: ``listening``, ``thinking`` or ``speaking``."""
    return event("state", state=state)


def _clean(value: Any) -> Any:
    # JSON has no NaN: unknown numbers become null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def output_events(part: Part, *, counters: Mapping[str, int] = EMPTY_METADATA) -> list[Outgoing]:
    """The events for one part of a session's output (often none).

    ``counters`` are added to each ``metrics`` event.
    """
    turn = part.metadata.get("turn")
    if part.substream == STATUS_SUBSTREAM:
        try:
            value = json.loads(part.text)
        except (TypeError, ValueError):
            return []
        if not isinstance(value, dict):
            return []
        if part.mimetype == ERROR_MIMETYPE:
            detail = f"{value.get('error', 'Error')}: {value.get('message', '')}"
            return [event("error", code="pipeline_error", message=detail, turn=turn)]
        if part.mimetype == TURN_STATS_MIMETYPE:
            fields = {k: _clean(v) for k, v in value.items()}
            return [event("metrics", **fields, **counters)]
        if part.mimetype == TOOL_STATUS_MIMETYPE:
            # A tool call started or ended: the page says "looking that up...".
            keys = ("tool", "id", "event", "turn", "outcome", "seconds")
            return [event("tool", **{k: _clean(value[k]) for k in keys if k in value})]
        return []
    if part.substream:
        return []
    if is_answer_complete(part):
        return [event("answer_complete", turn=turn)]
    if is_turn_complete(part):
        return [event("turn_complete", turn=turn)]
    if is_interrupted(part):
        return [event("interrupted", turn=turn)]
    if (
        part.role == "user"
        and is_text(part)
        and (is_transcription(part) or FINAL_KEY in part.metadata)
    ):
        final = part.metadata.get(FINAL_KEY) is True
        return [event("transcript", text=part.text, final=final)]
    if part.role != "model":
        return []
    if is_text(part) and part.content:
        return [event("text", turn=turn, text=part.text)]
    if is_audio(part) and part.content:
        try:
            rate = audio_rate(part)
        except AudioFormatError:
            return []
        header = _dump(
            {
                "type": "audio",
                "turn": turn,
                "sample_rate": rate,
                "bytes": len(part.data),
                "spoken_chars": part.metadata.get("spoken_chars"),
            }
        )
        return [Outgoing(text=header, binary=part.data, droppable=True)]
    return []
