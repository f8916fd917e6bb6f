from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_live._errors import ResponseTooLargeError
from trio_live.models._sse import ServerSentEvent, SSEDecoder


def parse(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


def data(*chunks: bytes) -> list[str]:
    return [event.data for event in parse(*chunks)]


def test_single_event() -> None:
    assert parse(b"data: hello\n\n") == [ServerSentEvent(data="hello")]


def test_multi_line_data_is_joined_by_lf() -> None:
    assert data(b"data: one\ndata: two\ndata:\ndata: four\n\n") == ["one\ntwo\n\nfour"]


def test_only_one_space_after_the_colon_is_dropped() -> None:
    assert data(b"data:  two spaces\n\ndata:none\n\n") == [" two spaces", "none"]


def test_comments_and_keep_alives_are_ignored() -> None:
    stream = b": keep-alive\n\n:\n\ndata: a\n: in the middle\ndata: b\n\n: ping\n\n"
    assert data(stream) == ["a\nb"]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert parse(b"\n\n\r\n\revent: lonely\n\n") == []


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline: bytes) -> None:
    stream = newline.join([b"event: delta", b"data: x", b"data: y", b"", b"data: [DONE]", b"", b""])
    assert parse(stream) == [
        ServerSentEvent(event="delta", data="x\ny"),
        ServerSentEvent(data="[DONE]"),
    ]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    # If the LF after a chunk-ending CR counted as a second line end, the first
    # event would be dispatched early and "b" would be an event of its own.
    assert data(b"data: a\r", b"\ndata: b\r\n\r\n") == ["a\nb"]


def test_event_id_and_retry() -> None:
    events = parse(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid\nretry: x\ndata: c\n\n")
    assert events == [
        ServerSentEvent(data="a", id="7", retry=1500),
        ServerSentEvent(data="b", id="7"),
        ServerSentEvent(data="c", id=""),
    ]


def test_id_with_nul_is_ignored() -> None:
    assert parse(b"id: 1\n\nid: a\0b\ndata: x\n\n") == [ServerSentEvent(data="x", id="1")]


def test_unknown_fields_and_lines_without_colon() -> None:
    assert parse(b"foo: bar\ndata\nevent\n\n") == [ServerSentEvent(data="")]


def test_leading_bom_is_dropped_once() -> None:
    assert data(b"\xef\xbb", b"\xbfdata: x\n\n") == ["x"]
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []  # a second BOM is a field name


def test_utf8_split_inside_a_character() -> None:
    text = "données ✓ 😀".encode()
    stream = b"data: " + text + b"\n\n"
    assert data(*(stream[i : i + 1] for i in range(len(stream)))) == ["données ✓ 😀"]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert data(b"data: a\xffb\n\n") == ["a\ufffdb"]


def test_unterminated_last_event_is_dispatched_at_close() -> None:
    assert data(b"data: a\n\ndata: [DONE]") == ["a", "[DONE]"]
    assert data(b"data: a\n\ndata: [DONE]\n") == ["a", "[DONE]"]


def test_feed_after_close_is_an_error() -> None:
    decoder = SSEDecoder()
    decoder.close()
    assert decoder.close() == []
    with pytest.raises(RuntimeError):
        decoder.feed(b"data: x\n\n")


STREAM = (
    b": hello\r\n\r\n"
    b'data: {"choices": [{"delta": {"content": "Hi"}}]}\r\n\r\n'
    b"event: update\ndata: multi\ndata: line\n\n"
    b"id: 3\rdata: after cr\r\r"
    b": keep-alive\n\n"
    b"data: \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\n\n"
    b"data: [DONE]\n\n"
)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert parse(*chunks) == parse(STREAM)
    assert [event.data for event in parse(STREAM)] == [
        '{"choices": [{"delta": {"content": "Hi"}}]}',
        "multi\nline",
        "after cr",
        "été 😀",
        "[DONE]",
    ]


def test_a_line_over_the_limit_raises_in_the_feed_that_crossed_it() -> None:
    decoder = SSEDecoder(max_line_length=20)
    assert decoder.feed(b"data: " + b"x" * 14 + b"\n\n") == [
        ServerSentEvent(data="x" * 14)
    ]  # exactly 20 characters is allowed
    decoder.feed(b"data: " + b"y" * 10)
    with pytest.raises(ResponseTooLargeError, match="max_line_length=20") as caught:
        decoder.feed(b"y" * 5)
    assert caught.value.limit == "max_line_length"
    with pytest.raises(ResponseTooLargeError):
        SSEDecoder(max_line_length=5).feed(b"data: long line\n\n")


def test_an_event_over_the_limit_raises() -> None:
    decoder = SSEDecoder(max_event_length=9)
    assert decoder.feed(b"data: abcd\ndata: efgh\n\n") == [ServerSentEvent(data="abcd\nefgh")]
    decoder.feed(b"data: abcd\ndata: efgh\n")
    with pytest.raises(ResponseTooLargeError, match="max_event_length=9") as caught:
        decoder.feed(b"data: i\n")
    assert caught.value.limit == "max_event_length"


def test_a_long_line_fed_byte_by_byte_is_not_quadratic() -> None:
    # One-byte feeds: appending to one str would copy the line each time.
    decoder = SSEDecoder(max_line_length=300_000)
    for _ in range(100_000):
        decoder.feed(b"x")
    assert decoder.close() == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, "9"])
def test_limits_must_be_positive_ints(bad: object) -> None:
    with pytest.raises(ValueError, match="max_line_length must be an int > 0 or None"):
        SSEDecoder(max_line_length=bad)  # type: ignore[arg-type]
