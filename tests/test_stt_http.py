from __future__ import annotations

import email.parser
import email.policy
import functools
import io
import json
import wave
from collections.abc import Callable, Coroutine
from typing import Any

import h11
import httpx
import pytest
import trio

from trio_live._errors import (
    AudioFormatError,
    AuthenticationError,
    BadRequestError,
    MalformedStreamError,
    ModelError,
    ModelTimeoutError,
    RateLimitedError,
    ServerError,
)
from trio_live._parts import (
    Part,
    audio_part,
    end_of_speech,
    is_final_transcription,
    start_of_speech,
)
from trio_live.voice._stt import SpeechToText
from trio_live.voice._stt_http import HttpRecognizer

KEY = "sk-test-very-secret-0123456789"
PCM = bytes(range(200)) * 16  # 3200 bytes: 1600 samples


def parse_form(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    # name -> (filename, content) for each field of a multipart/form-data body.
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"content-type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, tuple[str | None, bytes]] = {}
    for item in message.iter_parts():
        name = item.get_param("name", header="content-disposition")
        payload = item.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        fields[name] = (item.get_filename(), payload)
    return fields


def describe_wav(data: bytes) -> str:
    with wave.open(io.BytesIO(data)) as wav:
        return f"{wav.getnframes()} frames {wav.getframerate()} Hz {wav.getnchannels()} ch"


Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def recognizer(handler: Handler, **config: Any) -> HttpRecognizer:
    return HttpRecognizer("http://stt.test/v1/", transport=httpx.MockTransport(handler), **config)


async def test_request_is_a_multipart_wav_upload() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"text": " hello there "})

    async with recognizer(
        handler, model="tiny.en", api_key=KEY, language="en", prompt="trio"
    ) as stt:
        assert await stt.transcribe(PCM, 8000) == "hello there"
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "http://stt.test/v1/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    fields = parse_form(request.headers["content-type"], await request.aread())
    assert fields["model"] == (None, b"tiny.en")
    assert fields["response_format"] == (None, b"json")
    assert fields["language"] == (None, b"en")
    assert fields["prompt"] == (None, b"trio")
    filename, data = fields["file"]
    assert filename == "speech.wav"
    assert describe_wav(data) == "1600 frames 8000 Hz 1 ch"


async def test_no_key_no_header_and_no_optional_fields() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"text": ""})

    async with recognizer(handler) as stt:
        assert await stt.transcribe(PCM, 16000) == ""
    assert "authorization" not in seen[0].headers
    fields = parse_form(seen[0].headers["content-type"], await seen[0].aread())
    assert set(fields) == {"model", "response_format", "file"}
    assert fields["model"] == (None, b"whisper-1")


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (401, {"error": {"message": "bad key"}}, AuthenticationError, "bad key"),
        (403, {"detail": "forbidden here"}, AuthenticationError, "forbidden here"),
        (400, {"error": {"message": "audio too short"}}, BadRequestError, "audio too short"),
        (404, "no such route", BadRequestError, "no such route"),
        (500, {"error": "it broke"}, ServerError, "it broke"),
        (503, "", ServerError, "503"),
    ],
)
async def test_error_statuses_are_typed(
    status: int, body: Any, kind: type[ModelError], message: str
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    async with recognizer(handler) as stt:
        with pytest.raises(kind, match=message) as caught:
            await stt.transcribe(PCM, 16000)
    assert caught.value.status == status


async def test_rate_limit_carries_retry_after() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "7"}, json={"error": "slow down"})

    async with recognizer(handler) as stt:
        with pytest.raises(RateLimitedError) as caught:
            await stt.transcribe(PCM, 16000)
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("body", [b"not json", b'{"words": []}', b'{"text": 3}', b"[1]"])
async def test_malformed_answer(body: bytes) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    async with recognizer(handler) as stt:
        with pytest.raises(MalformedStreamError, match="text"):
            await stt.transcribe(PCM, 16000)


async def test_key_never_shown() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": f"key {KEY} is revoked"}})

    async with recognizer(handler, api_key=KEY) as stt:
        assert KEY not in repr(stt)
        with pytest.raises(AuthenticationError) as caught:
            await stt.transcribe(PCM, 16000)
    assert KEY not in str(caught.value)
    assert KEY not in caught.value.message
    assert "revoked" in str(caught.value)


@pytest.mark.parametrize("bad", ["\n", " ", "\x01", "é"])
def test_a_key_that_cannot_be_a_header_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^api_key holds") as caught:
        HttpRecognizer("http://stt.test/v1", api_key=KEY + bad)
    assert KEY not in str(caught.value)


async def test_url_encoded_key_is_masked() -> None:
    key = "sk/a+b=="

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="bad key sk%2Fa%2Bb%3D%3D")

    async with recognizer(handler, api_key=key) as stt:
        with pytest.raises(AuthenticationError) as caught:
            await stt.transcribe(PCM, 16000)
    assert "%2B" not in str(caught.value)
    assert caught.value.message == "bad key ***"


async def test_response_timeout(autojump_clock: trio.abc.Clock) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError("not reached")

    async with recognizer(handler, response_timeout=2.5) as stt:
        start = trio.current_time()
        with pytest.raises(ModelTimeoutError) as caught:
            await stt.transcribe(PCM, 16000)
    assert caught.value.phase == "first_byte"
    assert trio.current_time() - start == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("raised", "kind", "phase"),
    [
        (httpx.ConnectTimeout("slow"), ModelTimeoutError, "connect"),
        (httpx.ReadTimeout("slow"), ModelTimeoutError, "first_byte"),
        (httpx.ConnectError("refused"), ServerError, None),
        (httpx.RemoteProtocolError("garbage"), ServerError, None),
    ],
)
async def test_transport_errors(
    raised: Exception, kind: type[ModelError], phase: str | None
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    async with recognizer(handler) as stt:
        with pytest.raises(kind) as caught:
            await stt.transcribe(PCM, 16000)
    assert caught.value.__cause__ is raised
    assert getattr(caught.value, "phase", None) == phase


async def test_bad_audio_and_config() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request for bad audio")

    async with recognizer(handler) as stt:
        with pytest.raises(AudioFormatError):
            await stt.transcribe(b"\x00", 16000)
    with pytest.raises(ValueError, match="response_timeout"):
        HttpRecognizer("http://x", response_timeout=0)


async def test_in_the_stage_with_errors_reported(autojump_clock: trio.abc.Clock) -> None:
    answers = iter([httpx.Response(500, json={"error": "busy"})])

    async def handler(request: httpx.Request) -> httpx.Response:
        response = next(answers, None)
        if response is not None:
            return response
        fields = parse_form(request.headers["content-type"], await request.aread())
        return httpx.Response(200, json={"text": describe_wav(fields["file"][1])})

    send_in, receive_in = trio.open_memory_channel[Part](10)
    send_out, receive_out = trio.open_memory_channel[Part](10)
    async with recognizer(handler) as stt:
        stage = SpeechToText(stt, partial_every=100.0)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stage.run, receive_in, send_out)
                with send_in:
                    for _ in range(2):
                        await send_in.send(start_of_speech())
                        await send_in.send(audio_part(b"\x10\x00" * 1600))
                        await send_in.send(end_of_speech())
                output = [part async for part in receive_out]
    errors = [part.text for part in output if part.substream == "status"]
    assert len(errors) == 1
    assert "ServerError" in errors[0]
    finals = [part.text for part in output if is_final_transcription(part)]
    assert finals == ["1600 frames 16000 Hz 1 ch"]


# --- a real server on 127.0.0.1 ---------------------------------------------


async def serve_transcriptions(stream: trio.SocketStream) -> None:
    # One request per connection: answers with what it found in the upload.
    connection = h11.Connection(h11.SERVER)
    request: h11.Request | None = None
    body = b""
    async with stream:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                connection.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert request is not None
        headers = {name.decode(): value.decode() for name, value in request.headers}
        answer: dict[str, Any]
        if headers.get("authorization") != f"Bearer {KEY}":
            status, answer = 401, {"error": {"message": "wrong key"}}
        elif request.target != b"/v1/audio/transcriptions":
            status, answer = 404, {"error": {"message": f"no route {request.target!r}"}}
        else:
            fields = parse_form(headers["content-type"], body)
            text = f"{fields['model'][1].decode()}: {describe_wav(fields['file'][1])}"
            status, answer = 200, {"text": text}
        content = json.dumps(answer).encode()
        response = h11.Response(
            status_code=status,
            headers=[
                ("content-type", "application/json"),
                ("content-length", str(len(content))),
                ("connection", "close"),
            ],
        )
        await stream.send_all(connection.send(response) or b"")
        await stream.send_all(connection.send(h11.Data(data=content)) or b"")
        await stream.send_all(connection.send(h11.EndOfMessage()) or b"")


async def test_real_loopback_server() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, serve_transcriptions, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            base = f"http://127.0.0.1:{port}/v1"
            async with HttpRecognizer(base, api_key=KEY, model="base.en") as stt:
                assert await stt.transcribe(PCM, 16000) == "base.en: 1600 frames 16000 Hz 1 ch"
                assert await stt.transcribe(PCM * 2, 8000) == "base.en: 3200 frames 8000 Hz 1 ch"
            async with HttpRecognizer(base, api_key="sk-other") as stt:
                with pytest.raises(AuthenticationError, match="wrong key"):
                    await stt.transcribe(PCM, 16000)
            nursery.cancel_scope.cancel()


async def test_no_server_is_a_server_error() -> None:
    # A port that was just free on 127.0.0.1: nothing listens there.
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with trio.fail_after(10):
        async with HttpRecognizer(f"http://127.0.0.1:{port}/v1") as stt:
            with pytest.raises(ServerError, match="could not connect") as caught:
                await stt.transcribe(PCM, 16000)
    assert caught.value.status is None
