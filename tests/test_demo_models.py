"""The voice pipeline on a served model: ``demo --fast --model URL`` and ``serve``'s pipelines.

The commands run as a user runs them, against the loopback model server (in
a thread, since each command runs its own `trio.run`); the request bodies it
recorded show what each model received.
"""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any

import pytest
import trio
from _server_thread import server_in_thread
from model_server import Reply, open_model_server

from trio_live import Part, is_text, run_chain
from trio_live._cli import main
from trio_live._cli.demo import load_conversation, microphone_track
from trio_live.models import model_from_spec
from trio_live.voice import smart_turn_available

ANSWER = ["Sure", ", happy to help."]
# Spoken for about 4 s: the third answer is still playing at the cough.
LONG = ["Sure", ", happy to help.", " Dogs are loyal friends who love to run and to play."]
SPOKEN = [line for line in load_conversation() if line.pieces]
needs_turn_model = pytest.mark.skipif(
    not smart_turn_available(), reason="the turn extra (onnxruntime, pipecat-ai weights)"
)


def demo(capsys: pytest.CaptureFixture[str], dialect: str, *options: str) -> tuple[list[Any], str]:
    replies = [Reply(text=text) for text in (ANSWER, ANSWER, LONG, LONG, ANSWER)]
    with server_in_thread(replies) as server:
        url = server.gemini_url if dialect == "gemini" else server.url
        argv = ["demo", "--fast", "--model", url, "--model-name", "m", "--provider", dialect]
        assert main([*argv, *options]) == 0
    out = capsys.readouterr().out
    print(out)  # shown if the test fails
    return [request.body for request in server.requests], out


def audio_seconds(body: Any) -> list[float]:
    seconds = []
    for content in body["contents"]:
        for part in content["parts"]:
            if "inlineData" in part:
                data = base64.b64decode(part["inlineData"]["data"])
                with wave.open(io.BytesIO(data)) as reader:
                    seconds.append(reader.getnframes() / reader.getframerate())
    return seconds


@needs_turn_model
def test_demo_on_an_openai_text_model_answers_every_spoken_turn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The demo's defaults: Smart Turn and the interruption rules. The pause
    # mid-sentence does not split its turn, the cough does not cut the
    # answer it falls on: one request per spoken line.
    bodies, out = demo(capsys, "openai")
    assert len(bodies) == len(SPOKEN) == 4
    for turn in range(1, 5):
        assert f"turn {turn}: end of speech" in out
    assert out.count("model: Sure, happy to help.") == 4
    assert "turn 3 interrupted" not in out
    assert "premature turns (answered before the user's line was over): 0" in out
    assert "0 without words; let it go on: " in out
    # The sentence with a pause is one user turn: both transcriptions.
    last = bodies[3]["messages"][-1]
    assert last["role"] == "user"
    assert "flight" in last["content"].lower()
    assert "paris" in last["content"].lower()
    assert "error" not in out
    sizes = [len(json.dumps(body)) for body in bodies]
    print("openai request sizes per turn:", sizes)
    for body in bodies:
        assert "input_audio" not in json.dumps(body)
    # The transcripts carry the words.
    assert "capital of France" in bodies[0]["messages"][-1]["content"]


def test_demo_on_gemini_sends_the_current_turns_speech_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --no-quality: VAD silence ends each turn, speech over an answer cuts it
    # at once. The cough cuts the third answer; the pause mid-sentence makes
    # a premature turn (answered on half the sentence, then cut by the rest).
    bodies, out = demo(capsys, "gemini", "--no-quality")
    assert len(bodies) == 5
    assert "turn 3 interrupted" in out
    assert "turn 4 interrupted" in out
    assert "premature turns (answered before the user's line was over): 1" in out
    assert "1 without words" in out
    sizes = [len(json.dumps(body)) for body in bodies]
    print("gemini request sizes per turn:", sizes)
    assert sizes[3] <= 1.5 * sizes[0]
    from trio_live.voice import duration, read_wav

    for body, line in zip(bodies[:3], SPOKEN[:3], strict=True):
        # One clip per request: the line's speech with its pre-roll, no silence.
        [seconds] = audio_seconds(body)
        spoken = duration(read_wav(line.path)[0], 16000)
        assert 0.5 * spoken < seconds < spoken + 0.7


async def test_serve_pipeline_on_a_served_model_answers_speech() -> None:
    from trio_live._cli.serve import voice_pipeline
    from trio_live.voice import send_paced
    from trio_live.web import Config

    lines = load_conversation()[:1]
    track = microphone_track(lines, tail=2.0)
    async with open_model_server([Reply(text=ANSWER)]) as server:
        model = model_from_spec(server.url, "m", api_key=None)
        async with model:  # type: ignore[attr-defined]
            factory = await voice_pipeline(model, stt="auto")
            pipeline = factory(Config(tts=False))
            stages = [*pipeline.before, pipeline.session, *pipeline.after]
            send_mic, receive_mic = trio.open_memory_channel[Part](16)
            send_out, receive_out = trio.open_memory_channel[Part](64)
            texts: list[str] = []

            async def microphone() -> None:
                with send_mic:
                    await send_paced(send_mic, track, realtime=False)

            async def collect() -> None:
                texts.extend(
                    [
                        part.text
                        async for part in receive_out
                        if is_text(part) and part.role == "model" and not part.substream
                    ]
                )

            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(microphone)
                    nursery.start_soon(run_chain, stages, receive_mic, send_out)
                    nursery.start_soon(collect)
    assert "".join(texts) == "".join(ANSWER)
    [request] = server.requests
    assert "input_audio" not in json.dumps(request.body)
    assert "France" in request.body["messages"][-1]["content"]
