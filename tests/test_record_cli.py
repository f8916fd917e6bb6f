"""``--record`` on ``demo`` and ``serve``, and the demo's recording replayed."""

from __future__ import annotations

import functools
import io
import json
import time
from pathlib import Path

import pytest
import trio
import trio.testing
from test_demo import SCRIPT, KnownWords, SilentTts, words

from trio_live import (
    LiveSession,
    Part,
    Recorder,
    Stage,
    is_end_of_speech,
    is_final_transcription,
    run_chain,
)
from trio_live._cli._checks import UsageError
from trio_live._cli.demo import load_conversation, microphone_track, run_demo
from trio_live.testing import (
    ReplayLog,
    ScriptedModel,
    assert_same_conversation,
    read_log,
    replay,
    replay_pipeline,
)
from trio_live.voice import VadConfig, VadStage, send_paced


async def record_demo() -> str:
    lines = load_conversation()
    model = ScriptedModel([words(reply) for reply in SCRIPT], first_part_delay=0.2, part_delay=0.02)
    log = io.StringIO()
    await run_demo(
        model,
        KnownWords(lines),
        tts=SilentTts(),
        lines=lines,
        write=lambda text: None,
        recorder=Recorder(log),
    )
    return log.getvalue()


@functools.cache
def demo_log() -> str:
    """The demo recorded once for this module (real VAD, speech to text that knows the script)."""
    return trio.run(record_demo, clock=trio.testing.MockClock(autojump_threshold=0))


def test_the_demo_recorded_replays_the_same_at_the_session() -> None:
    log = ReplayLog.parse(io.StringIO(demo_log()))
    assert log.header.version == 3
    assert log.options["trigger"] == "final_transcription"
    assert log.options["track_playback"] is True
    # The whole conversation (the library's rules): five answers, three cut (by
    # speech, the cough, the rest of a paused sentence), heard as far as played.
    assert len(log.calls) >= 5
    assert any(p.mimetype.endswith("interrupted") for _, p in log.outputs)
    assert log.of_kind("playback")
    assert log.end_at is not None
    assert log.end_at > 25.0
    began = time.perf_counter()
    again = replay(log)
    wall = time.perf_counter() - began
    assert_same_conversation(log, again)
    assert again == log.outputs
    assert wall < 5.0  # (about 0.1 s alone; a loaded CI machine is slower)


def test_the_demo_replays_the_same_through_the_whole_voice_pipeline() -> None:
    log = ReplayLog.parse(io.StringIO(demo_log()))
    # The microphone track itself, 20 ms chunks from 0, to its end.
    mic = log.microphone
    assert [round(at, 6) for at, _ in mic[:3]] == [0.0, 0.02, 0.04]
    assert b"".join(p.data for _, p in mic) == microphone_track(load_conversation())
    assert log.microphone_end_at == mic[-1][0]
    assert [on for _, on in log.echo_guard][:4] == [True, False, True, False]
    began = time.perf_counter()
    again = replay_pipeline(log, [VadStage(), KnownWords(load_conversation())])
    wall = time.perf_counter() - began
    # What reached the session (audio, speech markers with their stream
    # times, transcriptions) and what it output: the same, at the same times.
    assert_same_conversation(log, again, inputs=True)
    assert again.inputs == log.inputs
    assert again.outputs == log.outputs
    heard = [p.text for _, p in again.inputs if is_final_transcription(p)]
    # One transcript per stretch of speech: a line with a pause gives two,
    # the cough none.
    assert heard == [piece for line in load_conversation() for piece in line.pieces]
    assert wall < 20.0  # (Silero on every 32 ms frame: about 2 s here)


def test_a_changed_vad_option_diverges_readably() -> None:
    log = ReplayLog.parse(io.StringIO(demo_log()))
    # A longer silence before the end of speech: each turn ends 0.3 s later.
    vad = VadStage(VadConfig(silence_to_end=0.6))
    again = replay_pipeline(log, [vad, KnownWords(load_conversation())])
    first_end = next(at for at, p in log.inputs if is_end_of_speech(p))
    with pytest.raises(AssertionError) as caught:
        assert_same_conversation(log, again, inputs=True)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("the conversations diverge at input ")
    assert lines[0].endswith(f"t={first_end:.3f} s:")
    assert lines[-3:-1] == [
        f"  expected {first_end:9.3f} s  user <end of speech>",
        f"  got      {first_end + 0.02:9.3f} s  user audio 0.02 s",
    ]
    # What the session said moves with it: the first partial transcription
    # is the same, the final one (right after the end of speech) comes 0.3 s
    # later.
    with pytest.raises(AssertionError) as caught:
        assert_same_conversation(log, again)
    assert "diverge at output 1" in str(caught.value)
    assert "(the same part, +0.300000 s off)" in str(caught.value)
    # The session-level replay of the same log knows nothing of the VAD.
    assert_same_conversation(log, replay(log))


async def record_vad_only() -> str:
    """The first line of the conversation through a real VAD, into a session."""
    log = io.StringIO()
    recorder = Recorder(log, voice={"stt": "none"})
    model = ScriptedModel([["Paris."]], first_part_delay=0.2)
    session = LiveSession(model, trigger="end_of_speech", recorder=recorder)
    track = microphone_track(load_conversation()[:1], tail=1.0)
    send_mic, receive_mic = trio.open_memory_channel[Part](16)
    send_out, receive_out = trio.open_memory_channel[Part](64)
    stages: list[Stage] = [recorder.microphone(), VadStage(), session]

    async def microphone() -> None:
        with send_mic:
            await send_paced(send_mic, track, start=trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(microphone)
        nursery.start_soon(run_chain, stages, receive_mic, send_out)
        async with receive_out:
            async for _ in receive_out:
                pass
    return log.getvalue()


def test_the_cli_replays_the_whole_pipeline_when_the_log_holds_the_microphone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trio_live._cli import main

    text = trio.run(record_vad_only, clock=trio.testing.MockClock(autojump_threshold=0))
    path = tmp_path / "call.jsonl"
    path.write_text(text)
    assert main(["replay", "--diff", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the replay through the voice pipeline matches the recording (")
    # What if the user had to be silent longer before the end of speech?
    assert main(["replay", "--diff", "--vad", "silence_to_end=0.6", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("the conversations diverge at input ")
    assert "  expected" in out
    assert "user <end of speech>" in out
    # At the session, from what reached it: the same, whatever the VAD.
    assert (
        main(["replay", "--diff", "--session-only", "--vad", "silence_to_end=0.6", str(path)]) == 0
    )
    assert capsys.readouterr().out.startswith("the replay matches the recording (")
    assert main(["replay", "--diff", "--vad", "silence", str(path)]) == 2
    assert "--vad silence: expected NAME=NUMBER" in capsys.readouterr().err
    assert main(["replay", "--diff", "--vad", "loudness=1", str(path)]) == 2
    assert "unexpected keyword argument 'loudness'" in capsys.readouterr().err


# --- serve --record: a log per session -----------------------------------------


async def serve_one(factory: object, question: str) -> list[object]:
    from trio_live import end_of_turn
    from trio_live.web import Config

    pipeline = factory(Config(tts=False))  # type: ignore[operator]
    send_in, receive_in = trio.open_memory_channel[object](8)
    send_out, receive_out = trio.open_memory_channel[object](64)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.session.run, receive_in, send_out)
        async with send_in:
            await send_in.send(end_of_turn(question))
            await trio.sleep(2.0)
        return [part async for part in receive_out]


def test_serve_records_each_session_to_its_own_log(tmp_path: Path) -> None:
    from trio_live._cli.serve import SessionRecorders, voice_pipeline

    model = ScriptedModel([["Fine", " thanks."], ["Bye."]], first_part_delay=0.2)
    recorders = SessionRecorders(
        str(tmp_path / "calls"), started="20250101-120000", voice={"stt": "none"}
    )

    async def serve_two() -> list[list[object]]:
        factory = await voice_pipeline(model, stt="none", recorders=recorders)
        # The second session starts 100 s into the server's run: its
        # statistics parts (emit_stats) hold clock times the log counts from
        # the session's start, as a replay does.
        first = await serve_one(factory, "How are you?")
        await trio.sleep(100.0)
        return [first, await serve_one(factory, "Goodbye.")]

    outs = trio.run(serve_two, clock=trio.testing.MockClock(autojump_threshold=0))
    logs = sorted((tmp_path / "calls").iterdir())
    assert [p.name for p in logs] == ["20250101-120000-1.jsonl", "20250101-120000-2.jsonl"]
    for path, out in zip(logs, outs, strict=True):
        log = read_log(path)
        assert [p.mimetype for _, p in log.outputs] == [p.mimetype for p in out]  # type: ignore[attr-defined]
        stats = [json.loads(p.text) for _, p in log.outputs if p.mimetype.endswith("stats+json")]
        assert [s["triggered_at"] for s in stats] == [0.0]
        assert_same_conversation(log, replay(log))
    assert [p.text for _, p in read_log(logs[1]).inputs] == ["Goodbye."]
    assert read_log(logs[0]).header.voice == {"stt": "none"}


def test_serve_record_paths(tmp_path: Path) -> None:
    from trio_live._cli.serve import SessionRecorders, record_path

    assert record_path("logs", "s-1") == Path("logs/s-1.jsonl")
    assert record_path("logs/call-{session}.log", "s-1") == Path("logs/call-s-1.log")
    pattern = str(tmp_path / "a" / "b-{session}.jsonl")
    recorders = SessionRecorders(pattern, worker="2", started="T")
    recorders()
    assert (tmp_path / "a").is_dir()  # made for the logs
    assert recorders.count == 1
    assert record_path(pattern, "T-w2-1") == tmp_path / "a" / "b-T-w2-1.jsonl"


def test_record_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trio_live._cli import build_parser
    from trio_live._cli.demo import check as check_demo
    from trio_live._cli.serve import _check_record

    args = build_parser("demo").parse_args(["demo", "--record", str(tmp_path / "no" / "x.jsonl")])
    with pytest.raises(UsageError, match=r"--record .*: no folder"):
        check_demo(args)
    _check_record(str(tmp_path / "new" / "{session}.jsonl"))  # a folder made when needed
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="is not a folder"):
        _check_record(str(tmp_path / "file"))
