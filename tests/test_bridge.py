"""The bridge of one connection, on in-memory streams and the mock clock.

The server's websocket is a real trio-websocket connection over
`trio.testing.lockstep_stream_pair` (no buffer: a client that does not read
holds the server's writer back, as a full socket does); the bridge is built
the way the server builds it, with a `BridgeConfig` and `ServerCounters`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing
import trio_websocket
from _fakes import SpeakingRecorder

from trio_live import (
    LiveSession,
    Part,
    SpeechError,
    audio_part,
    is_text,
)
from trio_live.testing import ScriptedModel
from trio_live.web import Budgets, Config, Pipeline
from trio_live.web._bridge import Bridge, BridgeConfig, ServerCounters

Event = dict[str, Any]
FRAME = 640  # 20 ms of 16 kHz PCM16


@attrs.define(eq=False)
class Connection:
    """A client connected to one bridge."""

    ws: trio_websocket.WebSocketConnection
    stream: trio.abc.Stream
    counters: ServerCounters
    ended: trio.Event
    closed_with: list[tuple[int, str | None]]

    async def receive(self) -> Event:
        message = await self.ws.get_message()
        assert isinstance(message, str), message
        event: Event = json.loads(message)
        return event

    async def send(self, **event: Any) -> None:
        await self.ws.send_message(json.dumps(event))

    async def until(self, kind: str, seen: list[Event] | None = None) -> Event:
        """Read events (keeping them in ``seen``) until one of type ``kind``."""
        while True:
            event = await self.receive()
            if seen is not None:
                seen.append(event)
            if event["type"] == "audio":
                binary = await self.ws.get_message()
                if seen is not None:
                    seen.append({"binary": binary})
            if event["type"] == kind:
                return event

    async def sync(self, seen: list[Event] | None = None) -> None:
        """Wait until the bridge has handled everything sent so far (its error proves it)."""
        await self.ws.send_message("{")
        await self.until("error", seen)

    async def go_away(self) -> None:
        """Drop the connection without a close frame (the server sees 1006)."""
        await trio.aclose_forcefully(self.stream)

    async def closed(self) -> trio_websocket.CloseReason:
        """Read to the end; the close the server sent."""
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await self.read_to_the_end()
        assert info.value.reason is not None
        return info.value.reason

    async def read_to_the_end(self) -> None:
        while True:
            await self.ws.get_message()


@asynccontextmanager
async def bridged(
    factory: Callable[[Config], Pipeline], **config: Any
) -> AsyncIterator[Connection]:
    """A bridge serving ``factory``'s pipelines to one client, as the server runs it."""
    client_stream, server_stream = trio.testing.lockstep_stream_pair()
    counters = ServerCounters()
    ended = trio.Event()
    closed_with: list[tuple[int, str | None]] = []

    async def serve() -> None:
        request = await trio_websocket.wrap_server_stream(nursery, server_stream)
        ws = await request.accept()
        bridge = Bridge(
            ws=ws,
            name="1",
            config=BridgeConfig(**config),
            counters=counters,
            pipeline=factory,
        )
        try:
            closed_with.append(await bridge.run())
        finally:
            ended.set()
        await ws.aclose(*closed_with[-1])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            client_stream,  # type: ignore[arg-type]
            "bridge.test",
            "/ws",
        )
        yield Connection(
            ws=ws, stream=client_stream, counters=counters, ended=ended, closed_with=closed_with
        )
        nursery.cancel_scope.cancel()


def sessions(
    model: Any, *, after: list[Any] | None = None, **options: Any
) -> Callable[[Config], Pipeline]:
    options = {"emit_activity": True, **options}

    def factory(config: Config) -> Pipeline:
        session = LiveSession(model, model_errors="report", emit_stats=True, **options)
        return Pipeline(session=session, after=after or [])

    return factory


# --- a conversation ----------------------------------------------------------


async def test_typed_turn(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel()
    async with bridged(sessions(model)) as client:
        ready = await client.receive()
        assert ready["type"] == "ready"
        assert ready["version"] == 2
        assert ready["session"] == "1"
        await client.send(type="text", text="hello there")
        seen: list[Event] = []
        done = await client.until("turn_complete", seen)
        assert done == {"type": "turn_complete", "turn": 1}
        texts = "".join(e["text"] for e in seen if e["type"] == "text")
        assert texts == "You said: hello there"
        metrics = await client.until("metrics", seen)
        await client.sync(seen)
        states = [e["state"] for e in seen if e["type"] == "state"]
        assert states == ["thinking", "speaking", "listening"]
        assert metrics["turn"] == 1
        assert metrics["cancelled"] is False
        assert metrics["dropped_audio_in"] == metrics["dropped_audio_out"] == 0
        assert model.prompts[0][-1].text == "hello there"


async def test_barge_in_interrupts_the_answer(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["one", *[" two"] * 200], "again"], part_delay=0.02)
    async with bridged(sessions(model)) as client:
        await client.receive()
        await client.send(type="text", text="talk")
        seen: list[Event] = []
        await client.until("text", seen)
        await client.send(type="interrupt")
        assert await client.until("interrupted", seen) == {"type": "interrupted", "turn": 1}
        assert await client.until("turn_complete", seen) == {"type": "turn_complete", "turn": 1}
        assert not model.calls[0].finished
        # The conversation goes on after the barge-in.
        await client.send(type="text", text="next")
        assert await client.until("text", seen) == {"type": "text", "turn": 2, "text": "again"}


async def test_the_state_is_the_sessions_activity(autojump_clock: trio.abc.Clock) -> None:
    # With playback tracking the session stays "speaking" until the answer has
    # played: the state follows the session, not the bridge's own guess.
    factory = sessions(ScriptedModel(), after=[FakeSpeech()], track_playback=True)
    async with bridged(factory) as client:
        await client.receive()
        await client.send(type="text", text="hello")
        seen: list[Event] = []
        # The answer's end; the turn's end waits for the playback report.
        await client.until("answer_complete", seen)
        await client.sync(seen)
        assert [e["state"] for e in seen if e.get("type") == "state"] == ["thinking", "speaking"]
        assert not [e for e in seen if e.get("type") == "turn_complete"]
        await client.send(type="playback", turn=1, chars=5, finished=True)
        assert await client.until("turn_complete", seen) == {"type": "turn_complete", "turn": 1}
        assert await client.until("state", seen) == {"type": "state", "state": "listening"}
    # The raw activity parts never reach the client.
    assert all(set(e) != {"activity", "turn"} and e.get("type") for e in seen if "binary" not in e)


async def test_without_emit_activity_no_state_events(autojump_clock: trio.abc.Clock) -> None:
    async with bridged(sessions(ScriptedModel(), emit_activity=False)) as client:
        await client.receive()
        await client.send(type="text", text="hello")
        seen: list[Event] = []
        await client.until("turn_complete", seen)
        await client.sync(seen)
    assert [e for e in seen if e["type"] == "state"] == []


# --- malformed input -----------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "bad_json"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"type": "text"}), "bad_message"),
        (json.dumps({"type": "config", "version": 9}), "unsupported_version"),
        ("[" * 100_000, "bad_json"),  # nested too deeply for the parser
        ('{"type": "text", "text": "\\ud800"}', "bad_message"),  # a lone surrogate
        (b"\x00\x01\x02", "bad_audio"),
        (b"\x00" * 40000, "bad_audio"),
    ],
)
async def test_malformed_input_gets_an_error_and_the_session_goes_on(
    message: str | bytes, code: str, autojump_clock: trio.abc.Clock
) -> None:
    model = ScriptedModel(["fine"])
    async with bridged(sessions(model)) as client:
        await client.receive()
        await client.ws.send_message(message)
        error = await client.receive()
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["message"]
        await client.send(type="text", text="still there?")
        assert (await client.until("text"))["text"] == "fine"
        assert client.counters.protocol_errors == 1


async def test_a_lone_surrogate_in_the_answer_is_escaped(autojump_clock: trio.abc.Clock) -> None:
    async with bridged(sessions(ScriptedModel(["\udc00 oops", "fine"]))) as client:
        await client.receive()
        await client.send(type="text", text="hi")
        assert (await client.until("text"))["text"] == "\udc00 oops"
        await client.until("turn_complete")
        await client.send(type="text", text="again")
        assert (await client.until("text"))["text"] == "fine"


async def test_config_only_first(autojump_clock: trio.abc.Clock) -> None:
    async with bridged(sessions(ScriptedModel())) as client:
        await client.receive()
        await client.send(type="config", version=1)
        await client.send(type="config", version=1)
        error = await client.receive()
        assert error["code"] == "bad_message"
        assert "first message" in error["message"]
        assert client.counters.protocol_errors == 1


# --- playback and the echo guard ---------------------------------------------


@attrs.define(eq=False)
class RecordingSession(LiveSession):
    reports: list[tuple[int, int, bool]] = attrs.field(init=False, factory=list)

    def report_playback(self, turn: int, chars: int, *, finished: bool = False) -> None:
        self.reports.append((turn, chars, finished))


async def test_playback_is_reported_to_the_session(autojump_clock: trio.abc.Clock) -> None:
    made: list[RecordingSession] = []

    def factory(config: Config) -> Pipeline:
        made.append(RecordingSession(ScriptedModel()))
        return Pipeline(session=made[-1])

    async with bridged(factory) as client:
        await client.receive()
        await client.send(type="playback", turn=1, chars=12)
        await client.send(type="playback", turn=1, chars=20, finished=True)
        await client.sync()  # its error proves the playback was handled
        assert made[0].reports == [(1, 12, False), (1, 20, True)]


@attrs.define(eq=False)
class FakeSpeech:
    """Stands in for text to speech: 10 bytes of audio per character spoken."""

    done: trio.Event = attrs.field(factory=trio.Event)

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        spoken: dict[int, int] = {}
        with inbox, outbox:
            async for part in inbox:
                await outbox.send(part)
                if part.role == "model" and is_text(part) and part.content:
                    turn = part.metadata["turn"]
                    spoken[turn] = spoken.get(turn, 0) + len(part.text)
                    audio = audio_part(b"\x01\x00" * 5 * len(part.text)).replace(role="model")
                    await outbox.send(audio.with_metadata(turn=turn, spoken_chars=spoken[turn]))
                if part.mimetype.endswith("turn-complete"):
                    self.done.set()


@pytest.mark.parametrize("tts", [True, False])
async def test_speech_audio_follows_its_header(tts: bool, autojump_clock: trio.abc.Clock) -> None:
    factory = sessions(ScriptedModel([["Hi", " there"]]), after=[FakeSpeech()])
    async with bridged(factory) as client:
        await client.receive()
        await client.send(type="config", tts=tts)
        await client.send(type="text", text="hello")
        seen: list[Event] = []
        await client.until("turn_complete", seen)
    audio = [(e, seen[i + 1]) for i, e in enumerate(seen) if e.get("type") == "audio"]
    if not tts:
        assert audio == []
        return
    assert [header["spoken_chars"] for header, _ in audio] == [2, 8]
    assert [header["bytes"] for header, _ in audio] == [20, 60]
    for header, payload in audio:
        assert header["turn"] == 1
        assert header["sample_rate"] == 16000
        assert len(payload["binary"]) == header["bytes"]


@attrs.define(eq=False)
class FakeVad(SpeakingRecorder):
    """Passes everything through and records each value set on ``model_speaking``."""

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for part in inbox:
                await outbox.send(part)


def guarded(vad: FakeVad, model: ScriptedModel) -> Callable[[Config], Pipeline]:
    def factory(config: Config) -> Pipeline:
        session = LiveSession(model)
        return Pipeline(session=session, before=[vad], after=[FakeSpeech()])

    return factory


async def test_echo_guard_on_while_playing_until_the_client_reports(
    autojump_clock: trio.abc.Clock,
) -> None:
    vad = FakeVad()
    async with bridged(guarded(vad, ScriptedModel([["Hi", " there"], "Bye"])), echo_tail=60) as c:
        await c.receive()
        assert vad.history == []
        await c.send(type="text", text="hello")
        seen: list[Event] = []
        await c.until("audio", seen)
        assert vad.model_speaking is True
        await c.until("turn_complete", seen)
        assert vad.model_speaking is True  # the client may still be playing
        await trio.sleep(10)
        await c.send(type="playback", turn=1, chars=8)
        await c.sync(seen)
        assert vad.model_speaking is True  # not finished yet
        await trio.sleep(10)
        await c.send(type="playback", turn=1, chars=8, finished=True)
        await c.sync(seen)
        assert vad.model_speaking is False
        # The next turn turns it on again.
        await trio.sleep(10)
        await c.send(type="text", text="again")
        await c.until("audio", seen)
        assert vad.model_speaking is True
    (_, on), (_, off), (_, again) = vad.history
    assert [value for value, _ in vad.history] == [True, False, True]
    assert (off - on, again - off) == (20, 10)


async def test_echo_guard_off_on_interrupted(autojump_clock: trio.abc.Clock) -> None:
    vad = FakeVad()
    model = ScriptedModel([["one", *[" two"] * 200]], part_delay=0.02)
    async with bridged(guarded(vad, model), echo_tail=60) as client:
        await client.receive()
        await client.send(type="text", text="talk")
        seen: list[Event] = []
        await client.until("audio", seen)
        assert vad.model_speaking is True
        await trio.sleep(0.1)
        await client.send(type="interrupt")
        await client.until("interrupted", seen)
        assert vad.model_speaking is False
    (on, on_at), (off, off_at) = vad.history
    assert (on, off) == (True, False)
    assert off_at - on_at == pytest.approx(0.1)


async def test_echo_guard_off_after_the_audio_could_play(autojump_clock: trio.abc.Clock) -> None:
    vad = FakeVad()
    # FakeSpeech: 5 samples per character, so each 400 characters are 0.125 s of speech.
    reply = ["x" * 400, "y" * 400]
    async with bridged(guarded(vad, ScriptedModel([reply])), echo_tail=0.1) as client:
        await client.receive()
        await client.send(type="text", text="hello")
        await client.until("turn_complete")
        assert vad.model_speaking is True
        await trio.sleep(10)
    (on, on_at), (off, off_at) = vad.history
    assert (on, off) == (True, False)
    # Both chunks were sent at once: they play one after the other, then the tail.
    assert off_at == on_at + 0.125 + 0.125 + 0.1


async def test_options_switch_speech_off_and_on_in_the_same_session(
    autojump_clock: trio.abc.Clock,
) -> None:
    made: list[RecordingSession] = []

    def factory(config: Config) -> Pipeline:
        made.append(RecordingSession(ScriptedModel(["One", "Two", "Three"])))
        return Pipeline(session=made[-1], after=[FakeSpeech()])

    async with bridged(factory) as client:
        await client.receive()
        audio = []
        for tts, text in [(True, "a"), (False, "b"), (True, "c")]:
            await client.send(type="options", tts=tts)
            await client.send(type="text", text=text)
            seen: list[Event] = []
            done = await client.until("turn_complete", seen)
            audio.append([e["turn"] for e in seen if e.get("type") == "audio"])
            assert done["turn"] == len(audio)
    assert audio == [[1], [], [3]]
    assert len(made) == 1  # one session throughout
    # Unspoken, the shown text counts as heard: "Two" in full.
    assert (2, 3, False) in made[0].reports


async def test_echo_guard_off_for_a_headset(autojump_clock: trio.abc.Clock) -> None:
    vad = FakeVad()
    model = ScriptedModel([["one", *[" two"] * 50], "Again", "More"], part_delay=0.02)
    async with bridged(guarded(vad, model), echo_tail=60) as client:
        await client.receive()
        await client.send(type="text", text="talk")
        seen: list[Event] = []
        await client.until("audio", seen)
        assert vad.model_speaking is True
        await client.send(type="options", echo_guard=False)
        await client.sync(seen)
        assert vad.model_speaking is False  # off at once
        await client.until("turn_complete", seen)
        await client.send(type="text", text="again")
        await client.until("turn_complete", seen)
        assert vad.model_speaking is False  # audio was sent, the guard stayed off
        await client.send(type="options", echo_guard=True)
        await client.send(type="text", text="more")
        await client.until("audio", seen)
        assert vad.model_speaking is True
    assert [value for value, _ in vad.history] == [True, False, True]


# --- slow peers: what is dropped, what is kept --------------------------------


async def test_slow_client_loses_old_audio_never_control(autojump_clock: trio.abc.Clock) -> None:
    speech = FakeSpeech()
    reply = [f" word{i:03d}" + "x" * 3000 for i in range(120)]
    factory = sessions(ScriptedModel([reply]), after=[speech])
    async with bridged(factory, audio_out_chunks=4, control_queue=1000) as client:
        await client.receive()
        await client.send(type="text", text="flood me")
        # Read nothing until the whole answer was produced (~3.6 MB of audio).
        await speech.done.wait()
        seen: list[Event] = []
        await client.until("turn_complete", seen)
        await client.ws.aclose()
        await client.ended.wait()
    texts = [e["text"] for e in seen if e.get("type") == "text"]
    assert texts == reply  # every control event arrived, in order
    audio = [e for e in seen if e.get("type") == "audio"]
    assert 0 < len(audio) < len(reply)
    # What is kept is the newest audio.
    assert audio[-1]["spoken_chars"] == sum(len(t) for t in reply)
    assert client.counters.dropped_audio_out == len(reply) - len(audio)


@attrs.define(eq=False)
class Gate:
    """A stage that reads nothing until ``open`` is set, then passes everything on."""

    open: trio.Event = attrs.field(factory=trio.Event)

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            await self.open.wait()
            async for part in inbox:
                await outbox.send(part)


async def test_slow_pipeline_loses_old_input_audio(autojump_clock: trio.abc.Clock) -> None:
    gate = Gate()

    def factory(config: Config) -> Pipeline:
        session = LiveSession(ScriptedModel(["ok"]), emit_stats=True)
        return Pipeline(session=session, before=[gate])

    async with bridged(factory, audio_in_frames=3) as client:
        await client.receive()
        for _ in range(10):
            await client.ws.send_message(b"\x00\x00" * (FRAME // 2))
        await client.sync()
        # One frame waits with the feeder, the newest three in the queue.
        gate.open.set()
        await client.send(type="text", text="hi")
        metrics = await client.until("metrics")
        assert metrics["dropped_audio_in"] == 6
        assert client.counters.dropped_audio_in == 0  # added when the connection ends
        await client.ws.aclose()
        await client.ended.wait()
        assert client.counters.dropped_audio_in == 6
        assert client.counters.dropped_audio_out == 0


# --- ends: the client going away, the pipeline failing --------------------------


async def test_disconnect_mid_turn_cancels_the_model(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["one", *[" two"] * 500]], part_delay=0.01)
    async with bridged(sessions(model)) as client:
        await client.receive()
        await client.send(type="text", text="talk")
        await client.until("text")
        gone = trio.current_time()
        await client.go_away()
        await client.ended.wait()
        assert trio.current_time() == gone
        sent = len(model.calls[0].sent)
        await trio.sleep(1)
        assert len(model.calls[0].sent) == sent
        assert not model.calls[0].finished


@attrs.define(eq=False)
class NeverReads:
    """A stage stuck forever without reading its input; it records its cancellation."""

    cancelled: trio.Event = attrs.field(factory=trio.Event)

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                self.cancelled.set()
                raise


def stuck(stage: NeverReads) -> Callable[[Config], Pipeline]:
    def factory(config: Config) -> Pipeline:
        return Pipeline(session=LiveSession(ScriptedModel()), before=[stage])

    return factory


async def test_disconnect_cancels_a_stuck_pipeline_with_a_full_control_queue(
    autojump_clock: trio.abc.Clock,
) -> None:
    stage = NeverReads()
    async with bridged(stuck(stage), control_queue=2) as client:
        await client.receive()
        for i in range(3):  # one taken by the feeder, two queued
            await client.send(type="text", text=f"t{i}")
        await client.sync()
        gone = trio.current_time()
        await client.go_away()
        await stage.cancelled.wait()
        await client.ended.wait()
        assert trio.current_time() == gone


async def test_control_messages_past_the_queue_close_with_1013(
    autojump_clock: trio.abc.Clock,
) -> None:
    stage = NeverReads()
    async with bridged(stuck(stage), control_queue=2) as client:
        await client.receive()
        for i in range(4):  # one taken by the feeder, two queued, one more
            await client.send(type="text", text=f"t{i}")
        reason = await client.closed()
        assert reason.code == 1013
        assert reason.reason == "too many control messages waiting"
        await stage.cancelled.wait()
        assert client.ended.is_set()


@attrs.define(eq=False)
class Fails:
    """A stage that fails on its first input part."""

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for _ in inbox:
                raise SpeechError("the recognizer broke")


async def test_pipeline_failure_says_why_then_closes_with_1011(
    autojump_clock: trio.abc.Clock,
) -> None:
    def factory(config: Config) -> Pipeline:
        return Pipeline(session=LiveSession(ScriptedModel()), before=[Fails()])

    async with bridged(factory) as client:
        await client.receive()
        await client.send(type="text", text="hi")
        seen: list[Event] = []
        error = await client.until("error", seen)
        assert error == {
            "type": "error",
            "code": "pipeline_failed",
            "message": "SpeechError: the recognizer broke",
        }
        reason = await client.closed()
        assert (reason.code, reason.reason) == (1011, "pipeline failed")
        assert client.closed_with == [(1011, "pipeline failed")]


# --- input budgets ---------------------------------------------------------------


SECOND = b"\x00\x00" * 16000  # one second of 16 kHz PCM16: the largest frame


async def flood(client: Connection, messages: list[str | bytes], *, pace: float = 0) -> int:
    """Send ``messages`` (``pace`` seconds apart) until the server closes; how many went."""
    sent = 0
    try:
        for message in messages:
            await client.ws.send_message(message)
            sent += 1
            await trio.sleep(pace)
    except trio_websocket.ConnectionClosed:
        pass
    return sent


async def closed_over_budget(client: Connection, messages: list[str | bytes]) -> str:
    """Flood, and read until the close: the ``over_budget`` error's message."""
    seen: list[Event] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood, client, messages)
            error = await client.until("error", seen)
            reason = await client.closed()
    assert error["code"] == "over_budget"
    assert (reason.code, reason.reason) == (1008, "input budget exceeded")
    assert client.closed_with == [(1008, "input budget exceeded")]
    message: str = error["message"]
    return message


async def test_audio_faster_than_the_budget_closes_with_1008(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with bridged(sessions(ScriptedModel())) as client:
        await client.receive()
        start = trio.current_time()
        message = await closed_over_budget(client, [SECOND] * 100)
        assert "1.5 x real time" in message
        assert trio.current_time() - start < 3  # the close grace at most


async def test_audio_at_real_time_and_a_little_faster_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with bridged(sessions(ScriptedModel(["fine"]))) as client:
        await client.receive()
        assert await flood(client, [SECOND] * 30, pace=1.0) == 30
        assert await flood(client, [SECOND] * 30, pace=0.8) == 30  # 1.25 x real time
        await client.send(type="text", text="still there?")
        assert (await client.until("text"))["text"] == "fine"


async def test_typed_text_flood_closes_with_1008(autojump_clock: trio.abc.Clock) -> None:
    part = json.dumps({"type": "text", "text": "x" * 8000, "end_of_turn": False})
    async with bridged(sessions(ScriptedModel())) as client:
        await client.receive()
        assert "bytes of text a minute" in await closed_over_budget(client, [part] * 100)


async def test_the_text_budget_slides(autojump_clock: trio.abc.Clock) -> None:
    part = json.dumps({"type": "text", "text": "x" * 8000})
    async with bridged(sessions(ScriptedModel(["ok"] * 20))) as client:
        await client.receive()
        # 8 x 8000 bytes a minute fit in 64 KiB, for several minutes.
        assert await flood(client, [part] * 24, pace=60 / 8 + 0.01) == 24
        await client.sync()


async def test_the_open_exchange_is_bounded(autojump_clock: trio.abc.Clock) -> None:
    part = json.dumps({"type": "text", "text": "more", "end_of_turn": False})
    budgets = Budgets(open_parts=5)
    async with bridged(sessions(ScriptedModel(["ok"] * 5)), budgets=budgets) as client:
        await client.receive()
        # A turn request empties the open exchange: five at a time go on.
        for _ in range(3):
            assert await flood(client, [part] * 5) == 5
            await client.send(type="end_of_turn")
        assert "send end_of_turn" in await closed_over_budget(client, [part] * 10)


async def test_pipeline_failed_is_sent_although_malformed_messages_follow(
    autojump_clock: trio.abc.Clock,
) -> None:
    def factory(config: Config) -> Pipeline:
        return Pipeline(session=LiveSession(ScriptedModel()), before=[Fails()])

    async with bridged(factory) as client:
        await client.receive()
        codes: list[str] = []
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood, client, [json.dumps({"type": "text", "text": "hi"})])
                nursery.start_soon(flood, client, ["{"] * 200)
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    await codes_until_closed(client, codes)
        assert "pipeline_failed" in codes
        assert info.value.reason is not None
        assert (info.value.reason.code, info.value.reason.reason) == (1011, "pipeline failed")


async def codes_until_closed(client: Connection, codes: list[str]) -> None:
    while True:
        event = await client.receive()
        codes.append(event.get("code", ""))


# --- idle clients ------------------------------------------------------------------


async def test_a_silent_client_is_closed_with_4000(autojump_clock: trio.abc.Clock) -> None:
    async with bridged(sessions(ScriptedModel()), idle_timeout=30) as client:
        await client.receive()
        start = trio.current_time()
        with trio.fail_after(100):
            reason = await client.closed()
        assert (reason.code, reason.reason) == (4000, "idle timeout")
        assert trio.current_time() - start == pytest.approx(30)


async def test_any_message_keeps_a_client_alive(autojump_clock: trio.abc.Clock) -> None:
    playback = json.dumps({"type": "playback", "turn": 1, "chars": 0})
    async with bridged(sessions(ScriptedModel(["still here"])), idle_timeout=30) as client:
        await client.receive()
        assert await flood(client, [playback] * 10, pace=20) == 10
        assert not client.ended.is_set()
        await client.send(type="text", text="hi")
        assert (await client.until("text"))["text"] == "still here"


# --- protocol versions: who ends the playback ---------------------------------


@attrs.define(eq=False)
class PlayingVad(FakeVad):
    """A `FakeVad` that also records each value set on ``answer_playing``."""

    playing: list[tuple[bool, float]] = attrs.field(factory=list)
    _answer_playing: bool = False

    @property
    def answer_playing(self) -> bool:
        return self._answer_playing

    @answer_playing.setter
    def answer_playing(self, value: bool) -> None:
        self._answer_playing = value
        self.playing.append((value, trio.current_time()))


def tracked(
    vad: FakeVad, model: ScriptedModel, made: list[LiveSession] | None = None
) -> Callable[[Config], Pipeline]:
    """Sessions with playback tracking (as ``trio-live serve`` builds them with speech)."""

    def factory(config: Config) -> Pipeline:
        session = LiveSession(model, track_playback=True, emit_activity=True)
        if made is not None:
            made.append(session)
        return Pipeline(session=session, before=[vad], after=[FakeSpeech()])

    return factory


# FakeSpeech: 5 samples per character, so 1600 characters are 0.5 s of speech.
HALF_A_SECOND = "x" * 1600


async def test_a_version_2_client_ends_the_playback_with_its_report(
    autojump_clock: trio.abc.Clock,
) -> None:
    vad = PlayingVad()
    model = ScriptedModel([[HALF_A_SECOND], [HALF_A_SECOND]])
    async with bridged(tracked(vad, model), echo_tail=0.5, report_timeout=5.0) as client:
        await client.receive()
        await client.send(type="config", version=2)
        await client.send(type="text", text="hello")
        seen: list[Event] = []
        await client.until("answer_complete", seen)
        sent = trio.current_time()
        await trio.sleep(3)  # well past the guessed end (0.5 s) and the echo tail
        await client.sync(seen)
        assert vad.model_speaking is True  # the client may still be playing
        assert "turn_complete" not in [e.get("type") for e in seen]  # it waits for the report
        await client.send(type="playback", turn=1, chars=1600, finished=True)
        await client.until("turn_complete", seen)
        assert vad.model_speaking is False
        # A client that stops reporting: the guess plus report_timeout ends the guard,
        # and the turn stays open (turn_complete waits for the report).
        await client.send(type="text", text="again")
        later: list[Event] = []
        await client.until("answer_complete", later)
        again = trio.current_time()
        await trio.sleep(10)
        await client.sync(later)
        assert "turn_complete" not in [e.get("type") for e in later]
    assert vad.history == [(True, sent), (False, sent + 3), (True, again), (False, again + 5.5)]
    assert vad.playing == vad.history  # the quicker barge-in over the same window


@pytest.mark.parametrize("config", [None, {"version": 1}, {"version": 1, "tts": False}])
async def test_a_version_1_client_gets_turn_complete_without_reporting(
    config: dict[str, Any] | None, autojump_clock: trio.abc.Clock
) -> None:
    vad = FakeVad()
    made: list[LiveSession] = []
    model = ScriptedModel([[HALF_A_SECOND]])
    async with bridged(tracked(vad, model, made), echo_tail=0.5) as client:
        await client.receive()
        if config is not None:
            await client.send(type="config", **config)
        await client.send(type="text", text="hello")
        seen: list[Event] = []
        await client.until("answer_complete", seen)
        sent = trio.current_time()
        await client.until("turn_complete", seen)
        waited = trio.current_time() - sent
    spoken = config is None or config.get("tts", True)
    # With speech, once its audio had time to play plus the echo tail; without, at once.
    assert waited == pytest.approx(1.0 if spoken else 0.0)
    kinds = [e["type"] for e in seen if "type" in e]
    assert kinds[-2:] == ["answer_complete", "turn_complete"]
    assert ("audio" in kinds) == spoken
    assert [p.text for p in made[0].history()] == ["hello", HALF_A_SECOND]  # heard whole


# --- options: the interruption rules, switched in the same session -------------


async def test_options_change_the_interruption_rules_in_the_same_session(
    autojump_clock: trio.abc.Clock,
) -> None:
    made: list[LiveSession] = []
    model = ScriptedModel([["one", *[" two"] * 100]] * 3, part_delay=0.05)

    def factory(config: Config) -> Pipeline:
        made.append(LiveSession(model, emit_activity=True))
        return Pipeline(session=made[-1])

    async with bridged(factory) as client:
        await client.receive()
        await client.send(type="options", min_interruption_duration=0.3, min_interruption_words=1)
        await client.send(type="options", false_interruption_timeout=1.5)
        await client.sync()
        session = made[0]
        assert (
            session.min_interruption_duration,
            session.min_interruption_words,
            session.false_interruption_timeout,
        ) == (0.3, 1, 1.5)
        # Out of bounds: a typed error, nothing changed, the session goes on.
        await client.send(type="options", false_interruption_timeout=3600, tts=False)
        error = await client.until("error")
        assert error["code"] == "bad_option"
        assert "false_interruption_timeout" in error["message"]
        assert session.false_interruption_timeout == 1.5
        # The interrupt button still cuts at once (it is no voice to judge).
        await client.send(type="text", text="talk")
        await client.until("text")
        cut_at = trio.current_time()
        await client.send(type="interrupt")
        await client.until("interrupted")
        assert trio.current_time() - cut_at < 0.1
        # Switched off again (null: no timeout), in the same session.
        await client.send(
            type="options",
            min_interruption_duration=0,
            min_interruption_words=0,
            false_interruption_timeout=None,
        )
        await client.sync()
        assert session.false_interruption_timeout is None
        assert session.statistics().interrupted_turns == 1
    assert len(made) == 1
    assert client.counters.protocol_errors == 3  # the bad option and the two syncs


@attrs.define(eq=False)
class PickySession(LiveSession):
    """A session that refuses every policy change (as one with stricter bounds might)."""

    def update_policy(self, **options: object) -> None:
        raise ValueError(f"{sorted(options)[0]} may not change here")


async def test_an_option_the_session_refuses_gets_bad_option(
    autojump_clock: trio.abc.Clock,
) -> None:
    def factory(config: Config) -> Pipeline:
        return Pipeline(session=PickySession(ScriptedModel(["Still here."])))

    async with bridged(factory) as client:
        await client.receive()
        await client.send(type="options", min_interruption_words=2, tts=False)
        error = await client.until("error")
        assert error == {
            "type": "error",
            "code": "bad_option",
            "message": "min_interruption_words may not change here",
        }
        await client.send(type="text", text="hello")
        seen: list[Event] = []
        await client.until("turn_complete", seen)
    assert [e["text"] for e in seen if e["type"] == "text"] == ["Still here."]
