"""Recording a session: the log's lines, and the codec's checks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import attrs
import pytest
import trio

import trio_live
from trio_live import (
    LiveSession,
    Part,
    PromptStream,
    Recorder,
    ReplayLogError,
    Stage,
    audio_part,
    end_of_turn,
    run_chain,
    start_of_speech,
    text_part,
)
from trio_live.testing import (
    ReplayLog,
    ScriptedModel,
    assert_same_conversation,
    play_timeline,
    read_log,
    replay_async,
)
from trio_live.voice import PlaybackTracker

Timeline = list[tuple[float, Part]]


async def record(
    events: Timeline, model: object | None = None, **options: object
) -> tuple[str, Timeline]:
    log = io.StringIO()
    model = model or ScriptedModel([["one", " two"]], first_part_delay=0.25, part_delay=0.5)
    session = LiveSession(model, recorder=Recorder(log), **options)  # type: ignore[arg-type]
    out = await play_timeline(session, events, end_at=5.0)
    return log.getvalue(), out


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_the_header_holds_the_versions_and_the_options(autojump_clock: object) -> None:
    text, _ = await record([(0.0, end_of_turn("hi"))], trigger="end_of_speech", window=30.0)
    header = lines(text)[0]
    assert header["format"] == "trio_live.log"
    assert header["version"] == 3
    assert header["library"] == trio_live.__version__
    options = header["options"]
    assert isinstance(options, dict)
    assert options["trigger"] == "end_of_speech"
    assert options["window"] == 30.0
    assert options["end_of_input"] == "if_unanswered"
    assert options["track_playback"] is False
    assert "model" not in options
    assert "recorder" not in options


async def test_inputs_calls_and_outputs_with_their_times(autojump_clock: object) -> None:
    text, out = await record([(0.5, text_part("hi")), (1.0, end_of_turn())])
    # (Events at the same instant come in the scheduler's order: sorted here.)
    events = sorted((e["at"], e["kind"]) for e in lines(text)[1:])
    assert events == sorted(
        [
            (0.0, "call"),
            (0.5, "input"),
            (0.5, "prompt"),
            (1.0, "input"),
            (1.0, "prompt_end"),
            # The next call starts once the answer's first part is out.
            (1.25, "call"),
            (1.25, "prompt"),
            (1.25, "output"),
            (1.25, "model"),
            (1.75, "model"),
            (1.75, "call_end"),
            (1.75, "output"),
            (1.75, "prompt"),  # the two parts of the answer, read at once: one line
            (1.75, "output"),
            (1.75, "output"),
            (5.0, "input_end"),
            (5.0, "call_end"),
            (5.0, "end"),
        ]
    )
    log = ReplayLog.parse(io.StringIO(text))
    assert log.outputs == out
    (first, second) = log.calls
    assert first.outcome == "finished"
    assert [p.text for _, p in first.prompt] == ["hi"]
    assert first.outputs == (
        (1.25, text_part("one", role="model")),
        (1.75, text_part(" two", role="model")),
    )
    # The next call read the history: the input, then the answer's parts, by reference.
    assert second.outcome == "cancelled"
    assert [p.text for _, p in second.prompt] == ["hi", "one", " two"]
    # Each read names parts already logged, by ranges of lines.
    assert all("refs" in e for e in lines(text)[1:] if e["kind"] == "prompt")


async def test_audio_round_trips_byte_exact_as_base64(autojump_clock: object) -> None:
    pcm = bytes(range(256)) * 2 + b"\x00\xff"
    chunk = audio_part(pcm, rate=24000)
    text, _ = await record([(0.02, chunk), (0.04, audio_part(b"")), (1.0, end_of_turn())])
    first = next(e for e in lines(text) if e.get("kind") == "input")
    assert first["kind"] == "input"
    part = first["part"]
    assert isinstance(part, dict)
    assert part["mimetype"] == "audio/l16;rate=24000"
    assert isinstance(part["b64"], str)
    assert pcm.hex() not in text
    log = ReplayLog.parse(io.StringIO(text))
    assert log.inputs[0] == (0.02, chunk)
    assert log.inputs[0][1].content == pcm
    assert log.inputs[1] == (0.04, audio_part(b""))
    assert log.calls[1].prompt[0][1] == chunk


class KeyedModel:
    """A model holding secrets, as a hosted model's adapter does."""

    api_key = "sk-secret-do-not-log-0123456789"
    headers = {"Authorization": f"Bearer {api_key}"}  # noqa: RUF012

    async def __call__(self, prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        await prompt.collect()
        await output.send(text_part("fine", role="model"))


async def test_the_log_never_holds_the_models_key(autojump_clock: object) -> None:
    text, out = await record([(0.0, end_of_turn("hello"))], model=KeyedModel())
    assert [p.content for _, p in out][:1] == ["fine"]
    assert KeyedModel.api_key not in text
    assert "Bearer" not in text
    assert "Authorization" not in text


async def test_a_model_error_is_recorded(autojump_clock: object) -> None:
    model = ScriptedModel(["x"], errors={0: trio_live.ServerError("down", status=503)})
    text, _ = await record([(0.0, end_of_turn("q"))], model=model, model_errors="report")
    log = ReplayLog.parse(io.StringIO(text))
    assert log.calls[0].outcome == "error"
    assert log.calls[0].error == ("ServerError", "down (status 503)")


async def test_a_path_is_written_per_line_and_closed(
    autojump_clock: object, tmp_path: Path
) -> None:
    path = tmp_path / "call.jsonl"
    recorder = Recorder(path)
    seen: list[int] = []

    async def model(prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        # While the session runs, the lines so far are on disk.
        seen.append(len(path.read_text().splitlines()))
        await prompt.collect()

    session = LiveSession(model, recorder=recorder)
    await play_timeline(session, [(1.0, end_of_turn("a"))])
    assert seen[0] == 2  # the header, the call
    assert seen[1] > 2
    assert read_log(path).end_at == 1.0
    with pytest.raises(RuntimeError, match="one session"), recorder.session(LiveSession(model)):
        pass


HEADER = '{"format":"trio_live.log","version":2,"library":"0.1.0","options":{}}\n'


CALL = '{"kind":"call","at":0,"call":0}\n'
HI = '{"kind":"input","at":0,"part":{"text":"hi"}}\n'


def parse(text: str, **kwargs: bool) -> ReplayLog:
    return ReplayLog.parse(io.StringIO(text), **kwargs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: an empty log"),
        ('{"format":"other"}\n', "line 1: not a trio_live log"),
        (
            HEADER.replace('"version":2', '"version":4'),
            "line 1: log format version 4 is newer than this trio_live reads (3)",
        ),
        (
            HEADER + '{"kind":"input","at":0.5,"part":{"text":"hi"}}\n{"kind":"en',
            "line 3: truncated line",
        ),
        (HEADER + "{not json}\n", "line 2: not a JSON line"),
        (HEADER + "[1]\n", "line 2: not a JSON object"),
        (HEADER + '{"kind":"dance","at":0}\n', "line 2: unknown event kind 'dance'"),
        (HEADER + '{"kind":"input","at":"soon","part":{"text":""}}\n', "line 2: 'at' missing"),
        (HEADER + '{"kind":"input","at":0,"ref":7}\n', "line 2: reference to line 7"),
        (HEADER + '{"kind":"input","at":0,"part":{"b64":"!!"}}\n', "line 2: bad base64"),
        (HEADER + '{"kind":"input","at":0,"part":{"text":"","role":"x"}}\n', "line 2: bad part"),
        (
            HEADER + '{"kind":"prompt","at":0,"call":0,"part":{"text":""}}\n',
            "line 2: call 0 never started",
        ),
        (HEADER + '{"kind":"call","at":0,"call":1}\n', "line 2: call 1 out of order"),
        (HEADER + CALL + '{"kind":"prompt","at":0,"call":0,"refs":[]}\n', "line 3: 'refs' must"),
        (HEADER + CALL + '{"kind":"prompt","at":0,"call":0,"refs":[[2]]}\n', "line 3: bad range"),
        (
            HEADER + CALL + '{"kind":"prompt","at":0,"call":0,"refs":[[2,2]]}\n',
            "line 3: range [2, 2] names no parts",
        ),
        (
            HEADER + HI + HI + CALL + '{"kind":"prompt","at":0,"call":0,"refs":[[3,2]]}\n',
            "line 5: range [3, 2] names no parts",
        ),
        (
            HEADER.replace('"version":2', '"version":1')
            + CALL
            + '{"kind":"prompt","at":0,"call":0,"refs":[[2,2]]}\n',
            "line 3: 'refs' in a version 1 log",
        ),
        (HEADER + '{"kind":"end","at":0}\n{"kind":"end","at":0}\n', "line 3: an event after"),
        (HEADER + '{"kind":"input","at":0,"part":{"text":"hi"}}\n', "line 3: the log stops"),
    ],
)
def test_bad_logs_are_one_line_typed_errors(text: str, message: str) -> None:
    with pytest.raises(ReplayLogError) as caught:
        parse(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, trio_live.LiveError)
    assert caught.value.line == int(message.split(":")[0].removeprefix("line "))


def test_a_partial_log_reads_when_asked() -> None:
    log = parse(HEADER + '{"kind":"input","at":0.5,"part":{"text":"hi"}}\n', partial=True)
    assert not log.complete
    assert log.inputs == [(0.5, Part(content="hi"))]
    assert log.end_at is None


async def test_a_recording_after_a_crash_is_a_readable_prefix(autojump_clock: object) -> None:
    text, _ = await record([(0.5, text_part("hi")), (1.0, end_of_turn()), (2.0, start_of_speech())])
    prefix = "".join(text.splitlines(keepends=True)[:6])
    log = parse(prefix, partial=True)
    assert [t for t, _ in log.inputs] == [0.5, 1.0]


def test_a_version_1_log_still_reads() -> None:
    # A prompt line per part, by reference or in full.
    text = (
        HEADER.replace('"version":2', '"version":1')
        + '{"kind":"input","at":0.5,"part":{"text":"hi","role":"user"}}\n'
        + '{"kind":"call","at":0.5,"call":0}\n'
        + '{"kind":"prompt","at":0.5,"call":0,"ref":2}\n'
        + '{"kind":"prompt","at":0.5,"call":0,"part":{"text":"there","role":"user"}}\n'
        + '{"kind":"prompt_end","at":0.6,"call":0}\n'
        + '{"kind":"call_end","at":0.7,"call":0,"outcome":"finished"}\n'
        + '{"kind":"end","at":1.0}\n'
    )
    log = parse(text)
    assert log.header.version == 1
    (call,) = log.calls
    assert call.prompt == (
        (0.5, text_part("hi", role="user")),
        (0.5, text_part("there", role="user")),
    )


async def test_a_calls_reads_at_one_instant_are_one_line_of_ranges(
    autojump_clock: object,
) -> None:
    chunks = [audio_part(bytes([i]) * 640, rate=16000) for i in range(50)]
    events: Timeline = [(0.02 * i, chunk) for i, chunk in enumerate(chunks)]
    events.append((1.0, end_of_turn("go on")))
    events.append((3.0, end_of_turn("more")))
    model = ScriptedModel([["a", " b"]], first_part_delay=0.25, part_delay=0.5)
    # Call 0 reads each chunk as it comes (no coalescing of audio wake-ups).
    text, out = await record(events, model=model, audio_wake_interval=0.0)
    log = ReplayLog.parse(io.StringIO(text))
    # Every call after the first reads the whole history at its start: one line.
    for call in log.calls[1:]:
        first = next(e for e in lines(text)[1:] if e["kind"] == "prompt" and e["call"] == call.call)
        assert "refs" in first
        assert [p for t, p in call.prompt if t == first["at"]][:50] == chunks
    assert log.calls[1].prompt[0][1].content == chunks[0].content
    assert log.outputs == out
    # The ranges are run-length encoded: the 50 chunks are one range.
    history = next(e for e in lines(text)[1:] if e["kind"] == "prompt" and e["call"] == 1)
    refs = history["refs"]
    assert isinstance(refs, list)
    assert refs[0] == [3, 3 + 2 * 49]  # an input line, then call 0's read, each chunk
    assert len(refs) <= 4


# --- the session logs its own output, in both forms -----------------------------


async def test_the_session_in_async_with_logs_what_it_output(autojump_clock: object) -> None:
    text, out = await record([(0.5, end_of_turn("hi")), (2.0, end_of_turn("again"))])
    log = ReplayLog.parse(io.StringIO(text))
    assert [p.text for _, p in log.outputs if p.text] == ["one", " two", "one", " two"]
    assert log.outputs == [(round(t, 6), p) for t, p in out]


async def test_the_session_as_a_stage_logs_what_it_output(autojump_clock: object) -> None:
    # No wrapper: `session.run` in `run_chain`, a stage after it.
    @attrs.define(eq=False)
    class Passing:
        async def run(
            self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
        ) -> None:
            with inbox, outbox:
                async for part in inbox:
                    await outbox.send(part)

    log = io.StringIO()
    model = ScriptedModel([["one", " two"]], first_part_delay=0.25, part_delay=0.5)
    session = LiveSession(model, recorder=Recorder(log))
    send_in, receive_in = trio.open_memory_channel[Part](8)
    send_out, receive_out = trio.open_memory_channel[Part](64)
    got: Timeline = []
    async with trio.open_nursery() as nursery:
        stages: list[Stage] = [Passing(), session, Passing()]
        nursery.start_soon(run_chain, stages, receive_in, send_out)
        async with send_in:
            await trio.sleep(0.5)
            await send_in.send(end_of_turn("hi"))
            await trio.sleep(2.0)
        got.extend([(trio.current_time(), part) async for part in receive_out])
    recorded = ReplayLog.parse(io.StringIO(log.getvalue()))
    assert [p for _, p in recorded.outputs] == [p for _, p in got]
    assert [p.text for _, p in recorded.outputs if p.text] == ["one", " two"]
    # Logged as the session output them: the first part 0.25 s after the turn.
    assert recorded.outputs[0][0] == 0.75
    assert_same_conversation(recorded, await replay_async(recorded))


# --- the microphone and the echo guard (format version 3) ---------------------------


async def test_the_microphone_is_logged_before_the_voice_stages(autojump_clock: object) -> None:
    @attrs.define(eq=False)
    class Hears:
        """A stand-in for VAD and speech to text: a turn after three chunks."""

        async def run(
            self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
        ) -> None:
            with inbox, outbox:
                count = 0
                async for part in inbox:
                    await outbox.send(part)
                    count += 1
                    if count == 3:
                        await trio.sleep(0.1)
                        await outbox.send(end_of_turn("heard"))

    log = io.StringIO()
    recorder = Recorder(log, voice={"stt": "fake"})
    session = LiveSession(ScriptedModel([["ok"]], first_part_delay=0.2), recorder=recorder)
    chunks = [audio_part(bytes([i]) * 640, rate=16000) for i in range(4)]
    send_in, receive_in = trio.open_memory_channel[Part](8)
    send_out, receive_out = trio.open_memory_channel[Part](64)
    async with trio.open_nursery() as nursery:
        stages: list[Stage] = [recorder.microphone(), Hears(), session]
        nursery.start_soon(run_chain, stages, receive_in, send_out)
        async with send_in:
            for chunk in chunks:
                await send_in.send(chunk)
                await trio.sleep(0.02)
        async with receive_out:
            async for _ in receive_out:
                pass
    text = log.getvalue()
    parsed = ReplayLog.parse(io.StringIO(text))
    assert parsed.header.voice == {"stt": "fake"}
    assert parsed.microphone == [(round(0.02 * i, 6), c) for i, c in enumerate(chunks)]
    assert parsed.microphone_end_at == 0.08
    # The audio reaching the session is the same: a reference, not a copy.
    events = lines(text)
    mic_lines = [n for n, e in enumerate(events, start=1) if e.get("kind") == "mic"]
    refs = [e.get("ref") for e in events if e.get("kind") == "input" and "ref" in e]
    assert refs == mic_lines
    assert [p for _, p in parsed.inputs if p.mimetype.startswith("audio/")] == chunks
    assert len(text) < 4 * 1000 + 2000  # each chunk's 640 bytes once, as base64


async def test_the_playback_tracker_logs_the_echo_guard(autojump_clock: object) -> None:
    @attrs.define
    class Guarded:
        model_speaking: bool = False

    log = io.StringIO()
    session = LiveSession(ScriptedModel(), recorder=Recorder(log))
    vad = Guarded()
    tracker = PlaybackTracker(session, stages=[vad], tail=0.0)
    async with session, trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        await trio.sleep(1.0)
        tracker.audio_sent(1, 0.5)
        assert vad.model_speaking
        await trio.sleep(2.0)
        assert not vad.model_speaking
        tracker.audio_sent(2, 2.0)
        await trio.sleep(0.5)
        tracker.interrupted(2)
        session.close_input()
        nursery.cancel_scope.cancel()
    parsed = ReplayLog.parse(io.StringIO(log.getvalue()))
    assert parsed.echo_guard == [(1.0, True), (1.5, False), (3.0, True), (3.5, False)]
    assert (1.0, "voice", "<echo guard on>") in parsed.timeline()


def test_a_version_2_log_still_reads_and_may_not_hold_microphone_lines() -> None:
    log = parse(HEADER + HI + '{"kind":"end","at":1.0}\n')
    assert log.header.version == 2
    assert log.header.voice == {}
    assert log.microphone == []
    with pytest.raises(ReplayLogError, match="line 2: a 'mic' event in a version 2 log"):
        parse(HEADER + '{"kind":"mic","at":0,"part":{"text":"hi"}}\n{"kind":"end","at":1}\n')


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"kind":"echo_guard","at":0}\n', "line 2: 'on' missing"),
        ('{"kind":"echo_guard","at":0,"on":1}\n', "line 2: 'on' missing"),
        ('{"kind":"mic","at":0}\n', "line 2: 'part' missing"),
    ],
)
def test_bad_version_3_lines(line: str, message: str) -> None:
    header = HEADER.replace('"version":2', '"version":3')
    with pytest.raises(ReplayLogError, match=message):
        parse(header + line + '{"kind":"end","at":1}\n')
    with pytest.raises(ReplayLogError, match="line 1: 'voice' missing"):
        parse(header.replace("{}}", '{},"voice":[1]}') + '{"kind":"end","at":1}\n')
