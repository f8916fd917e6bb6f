"""The wire codec: pure, synchronous tables."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from trio_live import (
    AudioFormatError,
    ProtocolError,
    audio_part,
    error_part,
    interrupted,
    is_end_of_speech,
    is_end_of_turn,
    is_start_of_speech,
    status_part,
    text_part,
    transcription,
    turn_complete,
)
from trio_live._parts import TOOL_STATUS_MIMETYPE, TURN_STATS_MIMETYPE
from trio_live.web import (
    PROTOCOL_VERSION,
    AudioFrame,
    BadAudioFrame,
    BadJson,
    BadOption,
    Config,
    EndOfTurn,
    Interrupt,
    Limits,
    MalformedMessage,
    MessageTooLarge,
    Options,
    Playback,
    TextInput,
    UnknownMessageType,
    UnsupportedVersion,
    WireError,
    decode_client_message,
    input_parts,
    output_events,
)
from trio_live.web._protocol import error_event, ready_event
from trio_live.web._queue import DropOldQueue


def _json(message: dict[str, Any]) -> str:
    return json.dumps(message)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"\x00\x01" * 160, AudioFrame(pcm=b"\x00\x01" * 160)),
        (_json({"type": "text", "text": "hi"}), TextInput(text="hi", end_of_turn=True)),
        (
            _json({"type": "text", "text": "hi", "end_of_turn": False}),
            TextInput(text="hi", end_of_turn=False),
        ),
        (_json({"type": "end_of_turn"}), EndOfTurn()),
        (_json({"type": "interrupt"}), Interrupt()),
        (_json({"type": "playback", "turn": 2, "chars": 17}), Playback(turn=2, chars=17)),
        (_json({"type": "options", "tts": False}), Options(tts=False)),
        (_json({"type": "options", "echo_guard": False}), Options(echo_guard=False)),
        (
            _json({"type": "options", "tts": True, "echo_guard": True}),
            Options(tts=True, echo_guard=True),
        ),
        (_json({"type": "options"}), Options()),
        (_json({"type": "config"}), Config(version=1, tts=True)),  # version 1 by default
        (
            _json({"type": "config", "version": 1, "tts": False, "sample_rate": 16000}),
            Config(version=1, tts=False),
        ),
        (_json({"type": "config", "version": 2}), Config(version=2, tts=True)),
        # The interruption rules, within their bounds; null turns a timeout off.
        (
            _json(
                {
                    "type": "options",
                    "min_interruption_duration": 0.3,
                    "min_interruption_words": 1,
                    "false_interruption_timeout": 1.5,
                }
            ),
            Options(
                policy={
                    "min_interruption_duration": 0.3,
                    "min_interruption_words": 1,
                    "false_interruption_timeout": 1.5,
                }
            ),
        ),
        (
            _json({"type": "options", "false_interruption_timeout": None, "tts": True}),
            Options(tts=True, policy={"false_interruption_timeout": None}),
        ),
        (
            _json({"type": "options", "min_interruption_duration": 2}),
            Options(policy={"min_interruption_duration": 2.0}),
        ),
        # Unknown fields are ignored, for newer clients.
        (_json({"type": "interrupt", "reason": "button"}), Interrupt()),
    ],
)
def test_decode_valid(message: str | bytes, expected: object) -> None:
    assert decode_client_message(message) == expected


@pytest.mark.parametrize(
    ("message", "error", "code"),
    [
        ("{not json", BadJson, "bad_json"),
        ("", BadJson, "bad_json"),
        ("[1, 2]", MalformedMessage, "bad_message"),
        (_json({"text": "no type"}), MalformedMessage, "bad_message"),
        (_json({"type": 3}), MalformedMessage, "bad_message"),
        (_json({"type": "shout"}), UnknownMessageType, "unknown_type"),
        (_json({"type": "text"}), MalformedMessage, "bad_message"),
        (_json({"type": "text", "text": ""}), MalformedMessage, "bad_message"),
        (_json({"type": "text", "text": 5}), MalformedMessage, "bad_message"),
        (_json({"type": "text", "text": "x", "end_of_turn": 1}), MalformedMessage, "bad_message"),
        (_json({"type": "playback", "turn": 1}), MalformedMessage, "bad_message"),
        (_json({"type": "options", "tts": 1}), MalformedMessage, "bad_message"),
        (_json({"type": "options", "echo_guard": None}), MalformedMessage, "bad_message"),
        (_json({"type": "playback", "turn": 1, "chars": -1}), MalformedMessage, "bad_message"),
        (_json({"type": "playback", "turn": True, "chars": 1}), MalformedMessage, "bad_message"),
        (_json({"type": "playback", "turn": 1.5, "chars": 1}), MalformedMessage, "bad_message"),
        (_json({"type": "config", "version": 3}), UnsupportedVersion, "unsupported_version"),
        (_json({"type": "config", "version": 0}), UnsupportedVersion, "unsupported_version"),
        # Out of bounds: no client pins the server with a huge timeout.
        (_json({"type": "options", "false_interruption_timeout": 3600}), BadOption, "bad_option"),
        (_json({"type": "options", "min_interruption_duration": 2.5}), BadOption, "bad_option"),
        (_json({"type": "options", "min_interruption_duration": -0.1}), BadOption, "bad_option"),
        (_json({"type": "options", "min_interruption_words": 6}), BadOption, "bad_option"),
        (_json({"type": "options", "false_interruption_timeout": 0}), BadOption, "bad_option"),
        ('{"type": "options", "min_interruption_duration": NaN}', BadOption, "bad_option"),
        ('{"type": "options", "false_interruption_timeout": Infinity}', BadOption, "bad_option"),
        # The wrong type, or null where off is no value.
        (
            _json({"type": "options", "min_interruption_words": 1.0}),
            MalformedMessage,
            "bad_message",
        ),
        (
            _json({"type": "options", "min_interruption_duration": None}),
            MalformedMessage,
            "bad_message",
        ),
        (
            _json({"type": "options", "min_interruption_duration": True}),
            MalformedMessage,
            "bad_message",
        ),
        (
            _json({"type": "options", "false_interruption_timeout": "1"}),
            MalformedMessage,
            "bad_message",
        ),
        (_json({"type": "config", "sample_rate": 48000}), MalformedMessage, "bad_message"),
        (_json({"type": "config", "tts": "yes"}), MalformedMessage, "bad_message"),
        (b"", BadAudioFrame, "bad_audio"),
        (b"\x00\x01\x02", BadAudioFrame, "bad_audio"),
        (b"\x00" * 32002, BadAudioFrame, "bad_audio"),
    ],
)
def test_decode_errors(message: str | bytes, error: type[WireError], code: str) -> None:
    with pytest.raises(error) as info:
        decode_client_message(message)
    assert info.value.code == code
    assert isinstance(info.value, ProtocolError)
    assert str(info.value)


def test_bad_audio_is_an_audio_format_error() -> None:
    with pytest.raises(AudioFormatError):
        decode_client_message(b"\x00")


def test_limits() -> None:
    limits = Limits(max_message_bytes=100, max_audio_frame_bytes=8, max_text_chars=3)
    assert decode_client_message(b"\x00" * 8, limits) == AudioFrame(pcm=b"\x00" * 8)
    with pytest.raises(BadAudioFrame):
        decode_client_message(b"\x00" * 10, limits)
    with pytest.raises(MessageTooLarge):
        decode_client_message(_json({"type": "text", "text": "four"}), limits)
    with pytest.raises(MessageTooLarge):
        decode_client_message(_json({"type": "interrupt", "pad": "x" * 100}), limits)
    with pytest.raises(ValueError, match="max_text_chars must be a positive int, got 0"):
        Limits(max_text_chars=0)


def test_input_parts() -> None:
    (audio,) = input_parts(AudioFrame(pcm=b"\x01\x00"))
    assert audio == audio_part(b"\x01\x00", rate=16000)
    (typed,) = input_parts(TextInput(text="hello"))
    assert is_end_of_turn(typed)
    assert typed.text == "hello"
    assert typed.role == "user"
    (partial,) = input_parts(TextInput(text="hel", end_of_turn=False))
    assert not is_end_of_turn(partial)
    (eot,) = input_parts(EndOfTurn())
    assert is_end_of_turn(eot)
    assert eot.text == ""
    start, end = input_parts(Interrupt())
    assert is_start_of_speech(start)
    assert start.metadata["interrupt"] is True  # cuts whatever the interruption rules
    assert is_end_of_speech(end)
    assert input_parts(Config()) == []
    assert input_parts(Playback(turn=1, chars=2)) == []
    assert input_parts(Options(tts=False)) == []


def _events(part: Any) -> list[dict[str, Any]]:
    return [json.loads(item.text) for item in output_events(part)]


def test_output_text_and_markers() -> None:
    part = text_part("Hel", role="model").with_metadata(turn=3)
    assert _events(part) == [{"type": "text", "turn": 3, "text": "Hel"}]
    assert _events(turn_complete().with_metadata(turn=3)) == [{"type": "turn_complete", "turn": 3}]
    assert _events(interrupted().with_metadata(turn=3)) == [{"type": "interrupted", "turn": 3}]
    (item,) = output_events(part)
    assert not item.droppable
    assert item.binary is None


def test_tool_activity_becomes_a_tool_event() -> None:
    started = {"tool": "clock", "id": "c1", "event": "started", "turn": 2}
    ended = {**started, "event": "ended", "outcome": "result", "seconds": 0.25}
    assert _events(status_part(started, mimetype=TOOL_STATUS_MIMETYPE)) == [
        {"type": "tool", **started}
    ]
    assert _events(status_part(ended, mimetype=TOOL_STATUS_MIMETYPE)) == [{"type": "tool", **ended}]


def test_output_transcripts() -> None:
    shown = transcription("hello there", final=True).replace(substream="")
    assert _events(shown) == [{"type": "transcript", "text": "hello there", "final": True}]
    partial = transcription("hel", final=False).replace(substream="")
    assert _events(partial) == [{"type": "transcript", "text": "hel", "final": False}]
    # User text that is not a transcription is not echoed.
    assert _events(text_part("typed")) == []


def test_output_audio_is_droppable_and_carries_position() -> None:
    part = (
        audio_part(b"\x01\x02" * 10, rate=22050)
        .replace(role="model")
        .with_metadata(turn=2, spoken_chars=12)
    )
    (item,) = output_events(part)
    assert item.droppable
    assert item.binary == b"\x01\x02" * 10
    assert json.loads(item.text) == {
        "type": "audio",
        "turn": 2,
        "sample_rate": 22050,
        "bytes": 20,
        "spoken_chars": 12,
    }


def test_output_status() -> None:
    (error,) = _events(error_part(ValueError("boom")).with_metadata(turn=1))
    assert error == {
        "type": "error",
        "code": "pipeline_error",
        "message": "ValueError: boom",
        "turn": 1,
    }
    stats = status_part({"turn": 1, "first_output_at": float("nan")}, mimetype=TURN_STATS_MIMETYPE)
    # NaN is not JSON: it becomes null.
    items = output_events(stats, counters={"dropped_audio_in": 4})
    assert [json.loads(i.text) for i in items] == [
        {"type": "metrics", "turn": 1, "first_output_at": None, "dropped_audio_in": 4}
    ]
    # Other status and debug parts stay on the server.
    assert _events(status_part({"vad": "ok"})) == []
    assert _events(text_part("x", role="model").replace(substream="debug")) == []


def test_ready_and_error_events() -> None:
    ready = json.loads(ready_event(session="7", limits=Limits()).text)
    assert ready["type"] == "ready"
    assert ready["version"] == PROTOCOL_VERSION == 2
    assert ready["versions"] == [1, 2]
    assert ready["session"] == "7"
    assert ready["audio"] == {"format": "pcm_s16le", "sample_rate": 16000, "channels": 1}
    assert ready["limits"]["max_audio_frame_bytes"] == 32000
    with pytest.raises(UnknownMessageType) as info:
        decode_client_message(_json({"type": "nope"}))
    assert json.loads(error_event(info.value).text) == {
        "type": "error",
        "code": "unknown_type",
        "message": "unknown message type 'nope'",
    }


# --- the drop-old queue (the slow-client policy) -----------------------------


async def test_queue_drops_oldest_audio_keeps_control() -> None:
    queue: DropOldQueue[str] = DropOldQueue(max_audio=2, max_control=2)
    queue.put_audio("a1")
    await queue.put("c1")
    queue.put_audio("a2")
    queue.put_audio("a3")  # drops a1
    queue.put_audio("a4")  # drops a2
    await queue.put("c2")
    assert queue.dropped == 2
    assert [await queue.get() for _ in range(len(queue))] == ["c1", "a3", "a4", "c2"]


async def test_queue_control_waits_for_room_and_close_ends(autojump_clock: trio.abc.Clock) -> None:
    queue: DropOldQueue[str] = DropOldQueue(max_audio=1, max_control=1)
    await queue.put("c1")
    with trio.move_on_after(0.01) as scope:
        await queue.put("c2")  # full of control: waits, never drops
    assert scope.cancelled_caught
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(queue.put, "c2")
            await trio.testing.wait_all_tasks_blocked()
            assert await queue.get() == "c1"
    assert await queue.get() == "c2"
    queue.put_audio("a")
    queue.close()
    assert await queue.get() == "a"
    with pytest.raises(trio.EndOfChannel):
        await queue.get()
    with pytest.raises(trio.ClosedResourceError):
        queue.put_audio("b")
    with pytest.raises(ValueError, match="max_audio must be >= 1, got 0"):
        DropOldQueue[str](max_audio=0, max_control=1)


async def test_queue_put_nowait_refuses_past_the_control_bound() -> None:
    queue: DropOldQueue[str] = DropOldQueue(max_audio=1, max_control=2)
    queue.put_nowait("c1")
    queue.put_audio("a1")  # audio does not count against the control bound
    queue.put_nowait("c2")
    with pytest.raises(trio.WouldBlock):
        queue.put_nowait("c3")
    assert await queue.get() == "c1"
    queue.put_nowait("c3")
    assert [await queue.get() for _ in range(len(queue))] == ["a1", "c2", "c3"]
    queue.close()
    with pytest.raises(trio.ClosedResourceError):
        queue.put_nowait("c4")


def test_web_all_is_sorted_and_complete() -> None:
    import types

    import trio_live.web

    names = trio_live.web.__all__
    assert names == sorted(names)
    public = {
        name
        for name, value in vars(trio_live.web).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(names) == public - {"annotations"}


def test_deep_nesting_and_lone_surrogates_are_typed_errors() -> None:
    with pytest.raises(BadJson):
        decode_client_message("[" * 100_000)
    with pytest.raises(BadJson):
        decode_client_message('{"a":' * 30_000 + "1" + "}" * 30_000)
    with pytest.raises(MalformedMessage, match="surrogate"):
        decode_client_message('{"type": "text", "text": "hi \\ud800"}')
    # A pair is one character, not two halves.
    assert decode_client_message('{"type": "text", "text": "\\ud83d\\ude00"}') == TextInput(
        text="\U0001f600"
    )
    # What the server sends is always valid UTF-8 JSON, even for a model's lone surrogate.
    (sent,) = output_events(text_part("\udc00!", role="model").with_metadata(turn=1))
    sent.text.encode("utf-8")
    assert json.loads(sent.text)["text"] == "\udc00!"
