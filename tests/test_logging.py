"""The ``trio_live.*`` logs: what the server and ``serve`` report, and never a secret."""

from __future__ import annotations

import logging

import pytest
import trio
import trio_websocket
from model_server import Reply, open_model_server

from trio_live import ModelError, Part, end_of_turn
from trio_live._cli import build_parser, main
from trio_live._cli.serve import LoggedSession, page_url
from trio_live.models import OpenAIChatModel
from trio_live.testing import ScriptedModel
from trio_live.web import Config, Pipeline, ServerConfig, WebServer

TOKEN = "tok-5ecret-Zq9"
KEY = "sk-5ecret-key-Xw2"


async def run_session(session: LoggedSession, *texts: str) -> list[Part]:
    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, receive_out = trio.open_memory_channel[Part](100)
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run, receive_in, send_out)
        async with send_in:
            for text in texts:
                await send_in.send(end_of_turn(text))
                await trio.sleep(1)
    return [part async for part in receive_out]


def messages(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name]


async def test_a_session_logs_its_errors_and_its_end(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_live")
    model = ScriptedModel(["Fine."], errors={1: ModelError("the server is down")})
    session = LoggedSession(model, model_errors="report")
    out = await run_session(session, "one", "two", "three")
    assert any(p.text == "Fine." for p in out)  # the parts still flow
    assert messages(caplog, "trio_live.cli") == [
        "model error: ModelError: the server is down",
        "session ended after 3.0 s: 3 turns, 0 interrupted",
    ]


async def test_an_api_key_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_live")
    # The server's error message quotes the request's key.
    with trio.fail_after(20):
        async with open_model_server([Reply(status=401, echo_key=5)]) as server:
            model = OpenAIChatModel(model="m", base_url=server.openai_url, api_key=KEY)
            async with model:
                await run_session(LoggedSession(model, model_errors="report"), "hello")
    assert messages(caplog, "trio_live.cli")[0].startswith("model error: AuthenticationError")
    assert KEY not in caplog.text
    assert KEY[3:12] not in caplog.text  # nor a piece of it


async def refused_upgrade(port: int, target: str) -> bytes:
    """The answer to a websocket upgrade request for ``target``."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
    return answer


async def until_idle(server: WebServer) -> None:
    with trio.fail_after(5):
        while server.statistics().active_sessions:  # noqa: ASYNC110
            await trio.sleep(0.005)


async def test_the_server_logs_each_connection_and_never_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_live")

    def factory(config: Config) -> Pipeline:
        return Pipeline(session=LoggedSession(ScriptedModel(), model_errors="report"))

    server = WebServer(factory, ServerConfig(port=0, token=TOKEN))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            url = f"ws://127.0.0.1:{port}/ws"
            assert (await refused_upgrade(port, f"/ws?token=wrong-{TOKEN}")).startswith(
                b"HTTP/1.1 401"
            )
            async with trio_websocket.open_websocket_url(f"{url}?token={TOKEN}"):
                pass
            await until_idle(server)
            nursery.cancel_scope.cancel()
    logged = messages(caplog, "trio_live.web")
    assert any(m.endswith("websocket refused (401): a valid token is required") for m in logged)
    assert any("websocket accepted (1 active)" in m for m in logged)
    assert any("websocket ended (0 active)" in m for m in logged)
    assert all(m.startswith("127.0.0.1:") for m in logged if "websocket" in m)
    assert TOKEN not in caplog.text


def test_the_logged_url_masks_the_token() -> None:
    config = ServerConfig(token=TOKEN)
    assert page_url(config, 8765, mask_token=True) == "http://127.0.0.1:8765/?token=***"
    assert TOKEN in page_url(config, 8765)  # the printed one carries it, for the page


def test_log_level_goes_before_or_after_the_command() -> None:
    assert build_parser("serve").parse_args(["serve"]).log_level is None
    assert build_parser("serve").parse_args(["--log-level", "debug", "serve"]).log_level == "debug"
    assert build_parser("chat").parse_args(["chat", "--log-level", "error"]).log_level == "error"
    parsed = build_parser("chat").parse_args(["--log-level", "debug", "chat"])
    assert parsed.log_level == "debug"  # not reset by the command's own option


def test_a_command_leaves_the_logging_as_it_found_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger("trio_live")
    handlers, level = list(root.handlers), root.level
    assert main(["--log-level", "debug", "chat", "--speed", "0"]) == 2
    assert (root.handlers, root.level) == (handlers, level)
    err = capsys.readouterr().err
    assert "DEBUG trio_live.cli: chat: bad options" in err
    assert err.splitlines()[-1] == "trio-live chat: --speed must be > 0, got 0.0"
