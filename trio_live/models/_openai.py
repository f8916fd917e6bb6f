"""A turn model for OpenAI-compatible chat completion servers.

OpenAI itself, and the servers that speak its API: Ollama, vLLM, the
llama.cpp server, LM Studio... One streaming ``POST {base_url}/chat/completions``
per turn; each ``choices[0].delta.content`` becomes a model part as it
arrives, and ``data: [DONE]`` ends the answer.

The prompt becomes ``messages``: roles ``user``, ``assistant`` and
``system``, one message per run of parts of one role. Tools are declared in
``tools``; a streamed call (``delta.tool_calls`` pieces, joined by their
``index``) becomes a tool-call part once the answer ends, and in the next
request the model's calls are the ``tool_calls`` of its ``assistant`` message,
each followed by a ``tool`` message with its outcome. A message holding only
text has a string as content; otherwise a list of items: text, images as
``image_url`` data URLs, and sounds as ``input_audio`` (WAV or MP3; PCM is
wrapped in WAV), which only some models accept, so it must be enabled with
``audio_input=True``; otherwise audio is left out of the request (see
`trio_live.models._content`: the transcriptions carry the words).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import httpx

from .._checks import finite_non_negative
from .._errors import BadRequestError, MalformedStreamError
from .._httpclient import check_api_key
from .._httpstatus import error_from_payload, json_field, json_item, load_json
from .._parts import Part, ToolCall, ToolResult
from .._tools import Tool
from ._content import Blob, group_messages, result_text
from ._http import HTTPTurnModel, ToolCallDelta
from ._sse import ServerSentEvent

__all__ = ["OpenAIChatModel"]

OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
_ROLES: Final = {"user": "user", "model": "assistant", "system": "system"}
_AUDIO_FORMATS: Final = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3"}
_RESERVED: Final = frozenset({"model", "messages", "stream", "tools"})


def _env_key() -> str | None:
    return os.environ.get("OPENAI_API_KEY") or None


def _base_url(value: str) -> str:
    url = httpx.URL(str(value))
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
    return str(url).rstrip("/")


def _check_options(
    instance: object, attribute: attrs.Attribute[Mapping[str, Any]], value: Mapping[str, Any]
) -> None:
    clash = sorted(_RESERVED.intersection(value))
    if clash:
        raise ValueError(f"options must not set {', '.join(clash)}: the model sets them")


@attrs.define(eq=False, kw_only=True)
class OpenAIChatModel(HTTPTurnModel):
    """A turn model over an OpenAI-compatible ``/chat/completions`` endpoint.

    Use it as an async context manager (``async with OpenAIChatModel(...) as
    model:``), which closes its HTTP client at the end, or call `aclose`.

    Args:
        model: the model's name, for example ``"gpt-4o-mini"`` or ``"llama3.2"``.
        base_url: the API's base URL, up to and including ``/v1``.
        api_key: sent as a bearer token; defaults to ``$OPENAI_API_KEY``
            (None sends no key, which local servers accept).
        system_instruction: sent as the first, ``system`` message.
        options: generation options added to the request body as they are,
            for example ``{"temperature": 0.2, "max_tokens": 256}``.
        audio_input: send the speech's audio as ``input_audio`` (only audio
            models accept it); when False, audio is left out (a prompt with
            nothing else raises `BadRequestError`).
        audio_history: with ``audio_input``, seconds of earlier turns' speech
            sent as audio too (default 0: the current turn's only).

    The timeouts, retries and transport are those of `HTTPTurnModel`.
    """

    model: str
    base_url: str = attrs.field(default=OPENAI_BASE_URL, converter=_base_url)
    api_key: str | None = attrs.field(factory=_env_key, repr=False, validator=check_api_key)
    system_instruction: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_options)
    audio_input: bool = False
    audio_history: float = attrs.field(default=0.0, validator=finite_non_negative)

    @property
    def accepts(self) -> frozenset[str]:
        """The content families this model takes: text and images, audio with ``audio_input``."""
        return frozenset({"text", "image", "audio"} if self.audio_input else {"text", "image"})

    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def _body(self, parts: Sequence[Part]) -> dict[str, Any] | None:
        messages: list[dict[str, Any]] = []
        if self.system_instruction:
            messages.append({"role": "system", "content": self.system_instruction})
        conversation = group_messages(
            parts,
            self.accepts,
            audio_history=self.audio_history,
            hint=" (set audio_input=True if the model accepts audio)",
        )
        if not conversation:
            return None
        for message in conversation:
            if message.role == "tool":
                messages.extend(
                    {"role": "tool", "tool_call_id": item.id, "content": result_text(item)}
                    for item in message.items
                    if isinstance(item, ToolResult)
                )
                continue
            role = _ROLES[message.role]
            calls = [item for item in message.items if isinstance(item, ToolCall)]
            items = [item for item in message.items if isinstance(item, str | Blob)]
            content: str | list[dict[str, Any]] | None
            if not items:
                content = None
            elif len(items) == 1 and isinstance(items[0], str):
                content = items[0]  # adjacent texts are already merged
            else:
                content = [self._item(role, item) for item in items]
            entry: dict[str, Any] = {"role": role, "content": content}
            if calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in calls
                ]
            messages.append(entry)
        return {**self.options, "model": self.model, "messages": messages, "stream": True}

    def _item(self, role: str, item: str | Blob) -> dict[str, Any]:
        if isinstance(item, str):
            return {"type": "text", "text": item}
        if role != "user":
            raise BadRequestError(
                f"the chat API takes only text from the {role}, got {item.mimetype}"
            )
        data = base64.b64encode(item.data).decode("ascii")
        if item.mimetype.startswith("image/"):
            url = f"data:{item.mimetype};base64,{data}"
            return {"type": "image_url", "image_url": {"url": url}}
        if item.mimetype.startswith("audio/"):
            if not self.audio_input:
                raise BadRequestError(
                    "the prompt holds audio: set audio_input=True if the model accepts it"
                    " (input_audio), or transcribe it first"
                )
            audio_format = _AUDIO_FORMATS.get(item.mimetype.partition(";")[0].strip().lower())
            if audio_format is None:
                raise BadRequestError(f"input_audio takes WAV or MP3 audio, got {item.mimetype}")
            return {"type": "input_audio", "input_audio": {"data": data, "format": audio_format}}
        raise BadRequestError(f"the chat API cannot take {item.mimetype} content")

    def _declare(self, tools: Sequence[Tool]) -> dict[str, Any]:
        return {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": dict(tool.parameters),
                    },
                }
                for tool in tools
            ]
        }

    def _event(self, event: ServerSentEvent) -> tuple[Sequence[str | ToolCallDelta], bool]:
        if event.data.strip() == "[DONE]":
            return (), True
        payload = load_json(event.data)
        if not isinstance(payload, dict):
            raise MalformedStreamError(f"expected a JSON object, got {event.data!r}")
        if event.event == "error" or "error" in payload:
            raise error_from_payload(payload.get("error", payload))
        # Every field is checked for its JSON type: a wrong one is a
        # MalformedStreamError, never a TypeError from deep in here.
        texts: list[str | ToolCallDelta] = []
        finished = False
        for number, item in enumerate(json_field(payload, "choices", list, "event") or ()):
            where = f"event.choices[{number}]"
            choice = json_item(item, dict, where)
            index = json_field(choice, "index", int, where)
            if index not in (None, 0):
                continue
            delta = json_field(choice, "delta", dict, where) or {}
            text = json_field(delta, "content", str, f"{where}.delta")
            if text is not None:
                texts.append(text)
            calls = json_field(delta, "tool_calls", list, f"{where}.delta") or ()
            for position, entry in enumerate(calls):
                at = f"{where}.delta.tool_calls[{position}]"
                call = json_item(entry, dict, at)
                function = json_field(call, "function", dict, at) or {}
                texts.append(
                    ToolCallDelta(
                        index=json_field(call, "index", int, at) or 0,
                        id=json_field(call, "id", str, at) or "",
                        name=json_field(function, "name", str, f"{at}.function") or "",
                        arguments=json_field(function, "arguments", str, f"{at}.function") or "",
                    )
                )
            finished = finished or bool(json_field(choice, "finish_reason", str, where))
        return texts, finished
