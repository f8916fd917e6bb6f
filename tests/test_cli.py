from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trio_live._cli import main
from trio_live._cli.chat import chat

ROOT = Path(__file__).resolve().parent.parent


async def test_chat_demo_shows_the_conversation(autojump_clock: trio.abc.Clock) -> None:
    out = io.StringIO()
    await chat(1.0, out)
    text = out.getvalue()
    assert "user: Hello! Who are you?" in text
    assert "model: I am a scripted model" in text
    assert "(interrupted)" in text
    assert "heard (final): Sorry, stop. What is a cancel scope?" in text
    assert "A cancel scope is where cancellation starts and stops." in text
    assert "3 turns, 1 interrupted." in text
    # The interruption comes before the story is told to its end.
    assert "ran, and ran" not in text


def test_bad_speed_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--speed", "0"]) == 2
    assert "--speed must be > 0, got 0.0" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "trio-live 0." in capsys.readouterr().out


def test_quickstart_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        # The example imports this checkout's package, not an installed copy.
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = result.stdout.splitlines()
    assert "1 application/x.trio-live.interrupted ''" in lines
    assert " user: 'stop please'" in lines
    assert lines[-1] == "model: '8 '"


async def test_chat_runs_against_a_served_model() -> None:
    from model_server import Reply, open_model_server

    from trio_live.models import model_from_spec

    with trio.fail_after(20):
        async with open_model_server([Reply(text=["Served ", "answer."])]) as server:
            model = model_from_spec(server.url, "test-model", api_key="k")
            out = io.StringIO()
            await chat(4.0, out, model)
    text = out.getvalue()
    assert "model: Served  answer." in text
    assert "3 turns" in text
    assert len(server.requests) >= 2


def test_help_chat_and_serve_options_do_not_load_the_voice_extra() -> None:
    code = (
        "import sys\n"
        "from trio_live._cli import build_parser\n"
        "for command in (None, 'chat', 'serve'):\n"
        "    build_parser(command)\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
        "assert 'trio_live.voice' not in sys.modules, 'the voice package was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60, check=True)
