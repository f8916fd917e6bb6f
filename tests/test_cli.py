from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trio_live._cli import main
from trio_live._cli.chat import script_chat

ROOT = Path(__file__).resolve().parent.parent


async def test_chat_demo_shows_the_conversation(autojump_clock: trio.abc.Clock) -> None:
    out = io.StringIO()
    await script_chat(1.0, out)
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
    assert capsys.readouterr().err == "trio-live chat: --speed must be > 0, got 0.0\n"


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
            await script_chat(4.0, out, model)
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


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_live", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--model", "http://127.0.0.1:9"], "needs a model name (--model-name NAME)"),
        (["demo", "--out", "/nonexistent/x.wav"], "--out /nonexistent/x.wav: no folder"),
        (["demo", "--conversation", "/nonexistent"], "--conversation /nonexistent: no such"),
        (["demo", "--stt", "whisper"], "--stt must be one of auto, moonshine, pocketsphinx"),
        (["demo", "--model", "openai", "--model-name", "gpt"], "needs an API key: set $OPENAI"),
        (["serve", "--model", "gemini", "--model-name", "g"], "needs an API key: set $GEMINI"),
        (["chat", "--speed", "0"], "--speed must be > 0, got 0.0"),
    ],
)
def test_a_users_mistake_is_one_line_and_status_2(argv: list[str], message: str) -> None:
    result = run_cli(*argv, env={"OPENAI_API_KEY": "", "GEMINI_API_KEY": ""})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert result.stdout == ""  # nothing ran


def test_a_port_in_use_is_one_line_and_debug_shows_the_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli("serve", "--port", port, "--stt", "none")
        assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
        debug = run_cli("--debug", "serve", "--port", port, "--stt", "none")
    assert "Traceback" in debug.stderr


def test_without_numpy_the_voice_package_names_its_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['numpy'] = None\n"
        "try:\n"
        "    import trio_live.voice\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert 'pip install "trio-live[voice]"' in result.stdout


def test_the_served_page_url_carries_the_token() -> None:
    from trio_live._cli.serve import page_url
    from trio_live.web import ServerConfig

    assert page_url(ServerConfig(token="a b/c"), 8765) == "http://127.0.0.1:8765/?token=a%20b%2Fc"
    assert page_url(ServerConfig(), 8765) == "http://127.0.0.1:8765/"


def test_without_llama_cpp_the_local_model_names_its_extra(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    code = (
        "import sys\n"
        "sys.modules['llama_cpp'] = None\n"
        "import trio\n"
        "import trio_live.models\n"  # importing works without the extra
        "from trio_live import ModelError\n"
        f"model = trio_live.models.LocalModel(model_path={str(path)!r})\n"
        "try:\n"
        "    trio.run(model.load)\n"
        "except ImportError as error:\n"
        "    assert isinstance(error, ModelError), type(error)\n"
        "    print(error.name, error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("llama_cpp ")
    assert 'pip install "trio-live[local]"' in result.stdout
