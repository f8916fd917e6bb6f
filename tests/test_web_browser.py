"""The page in a real headless Chromium, with a fake microphone playing a WAV file.

Chromium is driven over the DevTools protocol with trio-websocket (no
WebDriver). The page starts its microphone by itself (``?autostart=1``);
Chromium feeds it ``tests/data/hello.wav`` once; the server runs the real
voice pipeline (VAD, speech to text, espeak-ng) around a scripted model. A
screenshot is saved under ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from trio_live import LiveSession
from trio_live.testing import ScriptedModel
from trio_live.voice import EspeakTts, VadStage
from trio_live.voice._stt import SpeechToText
from trio_live.voice._stt_backends import load_recognizer
from trio_live.web import Config, Pipeline, ServerConfig, WebServer

ROOT = Path(__file__).parent.parent
HELLO = Path(__file__).parent / "data" / "hello.wav"
ARTIFACTS = ROOT / "test-artifacts"
ANSWER = "It is sunny in the browser today."
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # needed as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--window-size=900,640",
    "--remote-debugging-port=0",
]


class DevTools:
    """A tiny Chrome DevTools Protocol client: one command at a time."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.session: str | None = None

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        await self._ws.send_message(json.dumps(message))
        while True:  # events are skipped: we only wait for our answer
            reply = json.loads(await self._ws.get_message())
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


@asynccontextmanager
async def chromium(profile: Path, log: Path) -> AsyncIterator[DevTools]:
    """Run headless Chromium; yield a DevTools client attached to a blank page."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    flags = [
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--use-file-for-fake-audio-capture={HELLO}%noloop",
    ]
    with log.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            [executable, *flags, "about:blank"], stdout=stderr, stderr=stderr
        )
        try:
            port_file = profile / "DevToolsActivePort"
            with trio.fail_after(20):
                while not port_file.exists() or not port_file.read_text().strip():  # noqa: ASYNC110
                    await trio.sleep(0.05)
            port, path = port_file.read_text().split()[:2]
            async with trio_websocket.open_websocket_url(
                f"ws://127.0.0.1:{port}{path}", max_message_size=64 * 2**20
            ) as ws:
                tools = DevTools(ws)
                target = await tools.call("Target.createTarget", url="about:blank")
                attached = await tools.call(
                    "Target.attachToTarget", targetId=target["targetId"], flatten=True
                )
                tools.session = attached["sessionId"]
                try:
                    yield tools
                finally:
                    tools.session = None
                    with trio.move_on_after(2) as scope:
                        scope.shield = True
                        await tools.call("Browser.close")
        finally:
            with trio.move_on_after(5) as scope:
                scope.shield = True
                await process.wait()
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()


async def test_page_in_chromium_with_a_fake_microphone(tmp_path: Path) -> None:
    recognizer = await trio.to_thread.run_sync(load_recognizer, "auto")
    model = ScriptedModel([ANSWER, "And it is typed."])
    sessions: list[LiveSession] = []

    def factory(config: Config) -> Pipeline:
        session = LiveSession(model, model_errors="report", emit_stats=True, emit_activity=True)
        sessions.append(session)
        return Pipeline(
            session=session,
            before=[VadStage(), SpeechToText(recognizer)],
            after=[EspeakTts()] if config.tts else [],
        )

    server = WebServer(factory, ServerConfig(port=0))
    ARTIFACTS.mkdir(exist_ok=True)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            async with chromium(tmp_path / "profile", ARTIFACTS / "chromium.log") as tools:
                await tools.call("Page.enable")
                await tools.call("Runtime.enable")
                await tools.call("Page.navigate", url=f"http://127.0.0.1:{port}/?autostart=1")
                text = ""
                with trio.move_on_after(40):
                    while ANSWER not in text or "weather" not in text.lower():
                        await trio.sleep(0.2)
                        text = (
                            await tools.evaluate(
                                "document.getElementById('conversation').innerText"
                            )
                            or ""
                        )
                # A typed turn, through the page's form.
                await tools.evaluate(
                    "document.getElementById('text').value = 'Type to me';"
                    "document.getElementById('typed').requestSubmit()"
                )
                with trio.move_on_after(10):
                    while "And it is typed." not in text:
                        await trio.sleep(0.2)
                        text = (
                            await tools.evaluate(
                                "document.getElementById('conversation').innerText"
                            )
                            or ""
                        )
                await trio.sleep(0.3)  # let the latency labels settle for the picture
                shot = await tools.call("Page.captureScreenshot", format="png")
                (ARTIFACTS / "web-page.png").write_bytes(base64.b64decode(shot["data"]))
                errors = await tools.evaluate("document.getElementById('errors').innerText")
                connection = await tools.evaluate("document.getElementById('connection').innerText")
            nursery.cancel_scope.cancel()
    assert "weather" in text.lower(), text  # the transcript of the spoken question
    assert ANSWER in text, text  # the model's answer to it
    assert "Type to me" in text, text
    assert "And it is typed." in text, text
    assert "connected" in connection
    assert errors == ""
    # The spoken turn reached the model as a final transcription.
    first_prompt = " ".join(p.text for p in model.prompts[0] if p.mimetype == "text/plain")
    assert "weather" in first_prompt.lower()
