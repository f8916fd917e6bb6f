"""``--record`` on ``demo`` and ``serve``, and the demo's recording replayed."""

from __future__ import annotations

import functools
import io
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from test_demo import SCRIPT, KnownWords, SilentTts, words

from trio_live import Recorder
from trio_live._cli._checks import UsageError
from trio_live._cli.demo import load_conversation, run_demo
from trio_live.testing import (
    ReplayLog,
    ScriptedModel,
    assert_same_conversation,
    read_log,
    replay,
)


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


def test_the_demo_recorded_replays_the_same_at_the_session() -> None:
    text = trio.run(record_demo, clock=trio.testing.MockClock(autojump_threshold=0))
    log = ReplayLog.parse(io.StringIO(text))
    assert log.header.version == 3
    assert log.options["trigger"] == "final_transcription"
    assert log.options["track_playback"] is True
    # The whole conversation: four answers, one barged in on, heard as far as played.
    assert len(log.calls) >= 4
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

    def run(function: object, *args: object) -> Any:
        # Each session in its own run, from time 0: the statistics parts
        # (emit_stats) hold the clock's time, which a replay starts from 0.
        return trio.run(function, *args, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]

    model = ScriptedModel([["Fine", " thanks."], ["Bye."]], first_part_delay=0.2)
    recorders = SessionRecorders(str(tmp_path / "calls"), started="20250101-120000")
    factory = run(functools.partial(voice_pipeline, model, stt="none", recorders=recorders))
    first = run(serve_one, factory, "How are you?")
    second = run(serve_one, factory, "Goodbye.")
    logs = sorted((tmp_path / "calls").iterdir())
    assert [p.name for p in logs] == ["20250101-120000-1.jsonl", "20250101-120000-2.jsonl"]
    for path, out in zip(logs, (first, second), strict=True):
        log = read_log(path)
        assert [p for _, p in log.outputs] == out
        assert_same_conversation(log, replay(log))
    assert [p.text for _, p in read_log(logs[1]).inputs] == ["Goodbye."]


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
