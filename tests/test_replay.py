"""Replaying recorded conversations on the mock clock, and comparing them."""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest
import trio

from trio_live import (
    LiveSession,
    Part,
    Recorder,
    ServerError,
    audio_part,
    end_of_speech,
    end_of_turn,
    start_of_speech,
    text_part,
    transcription,
)
from trio_live._cli import main
from trio_live.testing import (
    ReplayLog,
    ScriptedModel,
    assert_same_conversation,
    play_timeline,
    replay,
    replay_async,
)

Timeline = list[tuple[float, Part]]

# Two barge-ins: speech over the second answer, then over the third. (No two
# events share an instant: trio runs tasks woken at the same time in any order.)
SCRIPT: Timeline = [
    (0.0, text_part("Hello! Who are you?")),
    (0.3, end_of_turn()),
    (1.6, end_of_turn("Tell me a long story.")),
    (2.35, start_of_speech()),
    *[(2.4 + 0.02 * i, audio_part(bytes([i, 255 - i]) * 320)) for i in range(10)],
    (2.61, transcription("Sorry, stop", final=False)),
    (2.85, end_of_speech()),
    (2.95, transcription("Sorry, stop. What is a scope?", final=True)),
    (3.45, start_of_speech()),
    (3.7, end_of_speech()),
    (3.8, end_of_turn("Go on.")),
]


def scripted() -> ScriptedModel:
    return ScriptedModel(
        [["I am", " a model."], ["Once", " upon", " a", " time"], ["A", " scope", " is"], ["Ok."]],
        first_part_delay=0.21,
        part_delay=0.37,
    )


async def record(model: object | None = None, **options: object) -> tuple[ReplayLog, Timeline]:
    log = io.StringIO()
    session = LiveSession(model or scripted(), recorder=Recorder(log), **options)  # type: ignore[arg-type]
    out = await play_timeline(session, SCRIPT, end_at=6.0)
    return ReplayLog.parse(io.StringIO(log.getvalue())), out


def record_sync(**options: object) -> tuple[ReplayLog, Timeline]:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(lambda: record(**options), clock=clock)


async def test_a_replay_gives_the_same_outputs_at_the_same_times(autojump_clock: object) -> None:
    log, out = await record()
    labels = [p.text if p.content else p.mimetype.rsplit(".", 1)[1] for _, p in out]
    assert labels.count("interrupted") == 2
    assert log.outputs == out
    start = trio.current_time()
    again = await replay_async(log)
    assert trio.current_time() - start == 6.0
    assert again == log.outputs
    assert_same_conversation(out, again)


def test_a_plain_test_replays_without_a_trio_run() -> None:
    log, out = record_sync()
    assert replay(log) == log.outputs
    assert_same_conversation(out, replay(log))


def test_another_trigger_mode_diverges_where_expected() -> None:
    log, _ = record_sync()
    with pytest.raises(AssertionError) as caught:
        assert_same_conversation(log, replay(log, trigger="end_of_speech"))
    message = str(caught.value)
    # The end of speech (2.85 s) triggers the turn, not the final transcription
    # (2.95 s): the answer comes 0.1 s sooner.
    assert message.splitlines()[0] == "the conversations diverge at output 11, t=3.060 s:"
    assert "expected     3.160 s  model 'A'" in message
    assert "got          3.060 s  model 'A'" in message
    assert "(the same part, -0.100000 s off)" in message


def test_another_model_diverges_at_its_first_different_answer() -> None:
    log, _ = record_sync()
    slower = scripted()
    slower.first_part_delay = 0.5
    with pytest.raises(AssertionError, match=r"diverge at output 0, t=0\.510 s:") as caught:
        assert_same_conversation(log, replay(log, model=slower))
    assert "expected     0.510 s  model 'I am'" in str(caught.value)
    assert "got          0.800 s  model 'I am'" in str(caught.value)
    assert "(the same part, +0.290000 s off)" in str(caught.value)


def test_the_same_model_again_replays_the_same() -> None:
    log, _ = record_sync()
    assert replay(log, model=scripted()) == log.outputs


def test_a_reported_model_error_replays_as_itself() -> None:
    model = scripted()
    model.errors = {1: ServerError("down", status=503)}
    log, out = _record_with(model, model_errors="report")
    assert any(p.mimetype.endswith("error+json") and "ServerError" in p.text for _, p in out)
    assert replay(log) == log.outputs


def _record_with(model: ScriptedModel, **options: object) -> tuple[ReplayLog, Timeline]:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(lambda: record(model, **options), clock=clock)


def test_playback_reports_replay() -> None:
    async def listen() -> tuple[ReplayLog, Timeline]:
        log = io.StringIO()
        session = LiveSession(scripted(), recorder=Recorder(log), track_playback=True)
        out: Timeline = []

        async def play() -> None:
            await trio.sleep(1.0)
            session.report_playback(1, 4)
            await trio.sleep(0.5)
            session.report_playback(1, 13, finished=True)
            await trio.sleep(0.5)
            session.close_input()

        async with session, trio.open_nursery() as nursery:
            await session.send(end_of_turn("hi"))
            nursery.start_soon(play)
            out.extend([(trio.current_time(), part) async for part in session])
        return ReplayLog.parse(io.StringIO(log.getvalue())), out

    log, out = trio.run(listen, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [e.chars for e in log.of_kind("playback")] == [4, 13]
    assert_same_conversation(out, replay(log))


def write(tmp_path: Path, log_text: str) -> str:
    path = tmp_path / "call.jsonl"
    path.write_text(log_text)
    return str(path)


def recorded_text() -> str:
    async def go() -> str:
        log = io.StringIO()
        await play_timeline(LiveSession(scripted(), recorder=Recorder(log)), SCRIPT, end_at=6.0)
        return log.getvalue()

    return trio.run(go, clock=trio.testing.MockClock(autojump_threshold=0))


def inputs_first(lines: list[str]) -> list[str]:
    """Among lines of the same time, the user's first (each side in its order).

    A start of speech cuts the answer short in `LiveSession.send`, before the
    session takes it in: which of the two is logged first at that instant is
    the scheduler's choice.
    """
    groups = itertools.groupby(lines, key=lambda line: line[:8])
    return [
        line
        for _, group in groups
        for line in sorted(group, key=lambda line: not line[9:].startswith("user"))
    ]


def test_cli_prints_the_conversation_as_the_demo_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", write(tmp_path, recorded_text())]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# trio_live 0.1.0, log format 3: window=600.0")
    assert inputs_first(out[1:]) == [
        "[  0.00] user: 'Hello! Who are you?'",
        "[  0.30] user: '' <end of turn>",
        "[  0.51] model: I am a model.",
        "[  0.88] turn 1: end of speech -> heard 0 ms -> first text 210 ms",
        "[  1.60] user: 'Tell me a long story.' <end of turn>",
        "[  1.81] model: Once upon",
        "[  2.35] user starts speaking",
        "[  2.35] turn 2 interrupted: the user barged in",
        "[  2.35] turn 2: end of speech -> heard 0 ms -> first text 210 ms",
        "[  2.61]   ...  Sorry, stop",
        "[  2.85] user stops speaking",
        "[  2.95] heard: 'Sorry, stop. What is a scope?'",
        "[  3.16] model: A",
        "[  3.45] user starts speaking",
        "[  3.45] turn 3 interrupted: the user barged in",
        # From the end of speech (2.85 s): the final transcription, the answer.
        "[  3.45] turn 3: end of speech -> heard 100 ms -> first text 310 ms",
        "[  3.70] user stops speaking",
        "[  3.80] user: 'Go on.' <end of turn>",
        "[  4.01] model: Ok.",
        "[  4.01] turn 4: end of speech -> heard 0 ms -> first text 210 ms",
        "[  6.00] conversation over",
    ]


def test_cli_prints_every_part(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--parts", write(tmp_path, recorded_text())]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# trio_live 0.1.0, log format 3: window=600.0")
    assert "    0.000 s  in    user 'Hello! Who are you?'" in out
    assert "    2.400 s  user  audio 0.20 s (10 chunks)" in out
    assert "    0.510 s  out   model 'I am'" in out
    assert any(re.fullmatch(r" +2\.350 s  out   model <interrupted>", line) for line in out)
    assert "    6.000 s  in    <end of input>" in out


def test_cli_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = recorded_text()
    assert main(["replay", "--diff", write(tmp_path, text)]) == 0
    assert capsys.readouterr().out.startswith("the replay matches the recording")
    # A recording whose listener saw something else: the replay differs.
    changed = text.replace(
        '"text":" upon","role":"model","metadata"', '"text":" UPON","role":"model","metadata"'
    )
    assert changed != text
    assert main(["replay", "--diff", write(tmp_path, changed)]) == 1
    out = capsys.readouterr().out
    assert "expected     2.180 s  model ' UPON'" in out
    assert "got          2.180 s  model ' upon'" in out


def test_cli_bad_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = recorded_text()
    assert main(["replay", write(tmp_path, text[: len(text) // 2])]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"trio-live replay: .*call\.jsonl: line \d+: truncated line .*\n", err)
    assert main(["replay", "--diff", str(tmp_path / "missing.jsonl")]) == 2
    assert "No such file" in capsys.readouterr().err
