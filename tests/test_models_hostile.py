"""The HTTP adapters against hostile servers: echoed keys, giant or endless
bodies, wrong JSON types.

The unit tests use `httpx.MockTransport`; the ``loopback`` tests use the real
server of `model_server` (its hostile modes), on the real clock, each under a
`trio.fail_after` bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
from model_server import run_turn

from trio_live import ModelError, text_part
from trio_live.models import GeminiModel, HTTPTurnModel, OpenAIChatModel
from trio_live.voice._stt_http import HttpRecognizer

KEY = "sk-hostile-SECRET-0123456789abcdef"
HALVES = (KEY[: len(KEY) // 2], KEY[len(KEY) // 2 :])


def sse(*payloads: Any) -> bytes:
    return b"".join(
        f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n".encode() for p in payloads
    )


def reply(status: int, body: bytes, kind: str = "text/event-stream") -> httpx.Response:
    return httpx.Response(status, headers={"content-type": kind}, content=body)


def build(dialect: str, response: Callable[[], httpx.Response], **options: Any) -> HTTPTurnModel:
    transport = httpx.MockTransport(lambda request: response())
    settings: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "transport": transport}
    settings.update(options)
    if dialect == "openai":
        return OpenAIChatModel(model="m", base_url="http://test/v1", **settings)
    return GeminiModel(model="m", base_url="http://test/v1beta", **settings)


def assert_no_key(error: BaseException) -> None:
    for text in (str(error), repr(error), getattr(error, "message", "")):
        for half in HALVES:
            assert half not in text, text


# --- 5: the key is masked before any cut ----------------------------------

# Where the old code cut: 500 characters (error bodies, error events), 200
# (event data shown in a parse error), 300 (the recognizer).
CUTS = (200, 300, 500)
# The key starts this many characters before a cut, so the cut falls inside it.
INSIDE = (9, len(KEY) // 2, len(KEY) - 1)


def straddling(prefix_length: int) -> str:
    return "x" * prefix_length + KEY + " was refused"


SHAPES: dict[str, Callable[[str], httpx.Response]] = {
    "error body (JSON)": lambda text: httpx.Response(401, json={"error": {"message": text}}),
    "error body (plain)": lambda text: httpx.Response(500, text=text),
    "error body (bare string)": lambda text: httpx.Response(400, json={"error": text}),
    "error event": lambda text: reply(200, sse({"error": {"message": text, "code": 503}})),
    "error event (not an object)": lambda text: reply(200, sse({"error": [text]})),
    "data not JSON": lambda text: reply(200, f"data: {{{text}\n\n".encode()),
    "data not an object": lambda text: reply(200, sse([text, text])),
    "not an event stream": lambda text: reply(200, text.encode(), "text/html"),
}


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_an_echoed_key_straddling_a_cut_is_masked_whole(dialect: str, shape: str) -> None:
    for cut in CUTS:
        for inside in INSIDE:
            text = straddling(cut - inside)
            model = build(dialect, lambda text=text: SHAPES[shape](text))
            async with model:
                with pytest.raises(ModelError) as caught:
                    await run_turn(model, [text_part("hi")])
            assert_no_key(caught.value)
            assert len(caught.value.message) <= 500


async def test_the_recognizer_masks_before_its_cut() -> None:
    pcm = bytes(3200)
    for cut in CUTS:
        for inside in INSIDE:
            for status, text in ((401, straddling(cut - inside)), (200, straddling(cut - inside))):
                response = httpx.Response(status, text=text)
                stt = HttpRecognizer(
                    "http://stt.test/v1",
                    api_key=KEY,
                    transport=httpx.MockTransport(lambda request, r=response: r),
                )
                async with stt:
                    with pytest.raises(ModelError) as caught:
                        await stt.transcribe(pcm, 16000)
                assert_no_key(caught.value)
                assert len(caught.value.message) <= 300
    await trio.lowlevel.checkpoint()
