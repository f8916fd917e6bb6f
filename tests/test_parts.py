from __future__ import annotations

import json
import sys

import attrs
import pytest

from trio_live import (
    AudioFormatError,
    Part,
    _parts,
    answer_complete,
    audio_mimetype,
    audio_part,
    audio_rate,
    end_of_speech,
    end_of_turn,
    error_part,
    image_part,
    interrupted,
    is_answer,
    is_answer_complete,
    is_audio,
    is_end_of_speech,
    is_end_of_turn,
    is_error,
    is_final_transcription,
    is_image,
    is_interrupted,
    is_marker,
    is_reserved,
    is_start_of_speech,
    is_text,
    is_transcription,
    is_turn_complete,
    json_part,
    read_tool_result,
    start_of_speech,
    status_part,
    text_part,
    tool_call,
    tool_result,
    transcription,
    turn_complete,
)
from trio_live._parts import activity_part


def test_text_part_defaults() -> None:
    part = text_part("hi")
    assert part.text == "hi"
    assert part.role == "user"
    assert part.mimetype == "text/plain"
    assert part.substream == ""
    assert dict(part.metadata) == {}
    assert is_text(part)
    assert not is_audio(part)


def test_parts_are_immutable_and_replace_returns_new() -> None:
    part = text_part("a")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        part.content = "b"  # type: ignore[misc]
    other = part.replace(content="b")
    assert part.text == "a"
    assert other.text == "b"


def test_metadata_is_copied_and_read_only() -> None:
    given = {"k": 1}
    part = Part(content="x", metadata=given)
    given["k"] = 2
    assert part.metadata["k"] == 1
    with pytest.raises(TypeError):
        part.metadata["k"] = 3  # type: ignore[index]
    merged = part.with_metadata(j=2)
    assert dict(merged.metadata) == {"k": 1, "j": 2}
    assert dict(part.metadata) == {"k": 1}
    assert dict(merged.without_metadata("k").metadata) == {"j": 2}


def test_bad_role_is_rejected_with_the_value() -> None:
    with pytest.raises(ValueError, match="'robot'"):
        Part(content="x", role="robot")


def test_audio_part() -> None:
    part = audio_part(b"\x00\x01" * 320, rate=16000)
    assert part.mimetype == "audio/l16;rate=16000"
    assert audio_rate(part) == 16000
    assert is_audio(part)
    assert part.data == b"\x00\x01" * 320
    with pytest.raises(AudioFormatError, match="even"):
        audio_part(b"\x00" * 3)
    with pytest.raises(ValueError, match="rate"):
        audio_mimetype(0)


def test_audio_part_is_small() -> None:
    pcm = bytes(640)
    part = audio_part(pcm)
    overhead = sys.getsizeof(part)
    assert overhead < 0.5 * len(pcm)


@pytest.mark.parametrize(
    "mimetype",
    ["audio/wav", "audio/l16", "audio/l16;rate=abc", "audio/l16;rate=-5", "text/plain"],
)
def test_audio_rate_rejects(mimetype: str) -> None:
    with pytest.raises(AudioFormatError):
        audio_rate(Part(content=b"", mimetype=mimetype))


def test_audio_rate_parses_parameters_in_any_order() -> None:
    assert audio_rate(Part(content=b"", mimetype="audio/L16; channels=1; rate=24000")) == 24000


def test_image_and_json_parts() -> None:
    image = image_part(b"\x89PNG", mimetype="image/png")
    assert is_image(image)
    with pytest.raises(ValueError, match="image/"):
        image_part(b"", mimetype="text/plain")
    event = json_part({"a": [1, 2]})
    assert json.loads(event.text) == {"a": [1, 2]}
    status = status_part({"ok": True})
    assert is_reserved(status)


def test_markers_and_predicates() -> None:
    assert is_start_of_speech(start_of_speech())
    assert is_end_of_speech(end_of_speech())
    assert is_turn_complete(turn_complete())
    assert is_interrupted(interrupted())
    for marker in (start_of_speech(), end_of_speech(), turn_complete(), interrupted()):
        assert is_marker(marker)
        assert not is_text(marker)
    assert not is_marker(text_part("x"))
    eot = end_of_turn("bye")
    assert is_end_of_turn(eot)
    assert eot.text == "bye"
    assert not is_end_of_turn(text_part("x"))


def test_transcriptions() -> None:
    partial = transcription("hel", final=False)
    final = transcription("hello", final=True)
    assert is_transcription(partial)
    assert not is_final_transcription(partial)
    assert is_final_transcription(final)
    # A transcription part without the flag is partial, not an error.
    assert not is_final_transcription(Part(content="x", substream="transcription"))


def test_error_part_holds_type_and_message() -> None:
    part = error_part(ValueError("boom"))
    assert is_error(part)
    assert is_reserved(part)
    assert json.loads(part.text) == {"error": "ValueError", "message": "boom"}


def test_text_of_bytes_raises() -> None:
    with pytest.raises(TypeError):
        _ = audio_part(b"\x00\x00").text


def test_markers_and_shown_transcriptions_are_recognised_by_predicates() -> None:
    tag = {"turn": 1}
    markers = [
        answer_complete().with_metadata(**tag),
        interrupted().with_metadata(**tag),
        turn_complete().with_metadata(**tag),
    ]
    assert all(m.role == "model" and is_marker(m) and not is_answer(m) for m in markers)
    assert is_answer_complete(markers[0])
    assert not is_answer_complete(markers[2])
    answer = [text_part("hi", role="model"), audio_part(b"\0\0", role="model")]
    assert all(is_answer(p) for p in answer)
    assert not is_answer(text_part("hi"))  # the user's
    assert not is_answer(status_part({"x": 1}))
    # A transcription shown on a session's output (main stream, marked).
    shown = text_part("hello", final=True, transcription=True)
    assert is_transcription(shown)
    assert is_final_transcription(shown)
    assert not is_final_transcription(shown.with_metadata(final=False))
    assert not is_transcription(text_part("hello", final=True))
    assert not is_transcription(shown.replace(substream="debug"))


# --- found by mutation testing (docs/testing.md) ------------------------------


def test_replace_keeps_the_frozen_metadata_instead_of_copying_it() -> None:
    part = text_part("a", turn=3)
    assert part.replace(content="b").metadata is part.metadata
    assert Part(content="c", metadata=part.metadata).metadata is part.metadata


def test_audio_mimetype_of_a_new_rate_and_its_bounds() -> None:
    # Made, not taken from the memo of rates already seen (an earlier test in
    # the same process, or a mutation run's clean run, may have filled it).
    for rate in (12345, 1):
        _parts._AUDIO_MIMETYPES.pop(rate, None)
    assert audio_mimetype(12345) == "audio/l16;rate=12345"
    assert audio_mimetype(12345) == "audio/l16;rate=12345"
    assert audio_mimetype(1) == "audio/l16;rate=1"
    with pytest.raises(ValueError, match=r"positive int, got 7999\.5"):
        audio_mimetype(7999.5)  # type: ignore[arg-type]
    assert audio_part(b"").mimetype == "audio/l16;rate=16000"


@pytest.mark.parametrize(
    ("mimetype", "rate"),
    [("audio/l16;channels=1;rate=8000", 8000), ("audio/l16;rate=1", 1)],
)
def test_audio_rate_reads_the_rate_parameter(mimetype: str, rate: int) -> None:
    assert audio_rate(Part(content=b"", mimetype=mimetype)) == rate


@pytest.mark.parametrize(
    ("mimetype", "message"),
    [
        ("audio/l16;rate=0", "no valid rate"),
        # A malformed rate is an error, even with a good one after it.
        ("audio/l16;rate=1=2;rate=8000", "no valid rate"),
        ("audio/ogg;rate=8000", "expected audio/l16 PCM, got mimetype 'audio/ogg;rate=8000'"),
    ],
)
def test_audio_rate_errors_say_what_was_wrong(mimetype: str, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        audio_rate(Part(content=b"", mimetype=mimetype))


def test_json_part_keeps_its_role_on_the_main_stream() -> None:
    part = json_part({"a": 1}, role="user")
    assert part.role == "user"
    assert part.substream == ""


def test_activity_part_holds_the_activity_and_the_turn() -> None:
    part = activity_part("speaking", turn=3)
    assert json.loads(part.text) == {"activity": "speaking", "turn": 3}


def test_tool_parts_belong_to_the_model_and_read_back() -> None:
    call = tool_call("clock", {"zone": "UTC"}, call_id="c1")
    result = tool_result("c1", "clock", "result", {"time": "12:00"})
    assert call.role == "model"
    assert result.role == "model"
    read = read_tool_result(result)
    assert (read.id, read.name, read.outcome, read.content) == (
        "c1",
        "clock",
        "result",
        {"time": "12:00"},
    )
    with pytest.raises(ValueError, match=r"outcome must be .*, got 'maybe'"):
        tool_result("c1", "clock", "maybe")
