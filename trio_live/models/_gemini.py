"""A turn model for Google's Gemini API (``streamGenerateContent`` over SSE).

One streaming ``POST {base_url}/models/{model}:streamGenerateContent?alt=sse``
per turn, with the key in the ``x-goog-api-key`` header (never in the URL,
where logs would show it). The text parts of each streamed candidate become
model parts as they arrive; the stream ends after the chunk that carries a
``finishReason``.

The prompt becomes ``contents``: roles ``user`` and ``model``, one content
per run of parts of one role, with text parts and ``inlineData`` (base64) for
images and sounds (PCM is wrapped in WAV). System parts and the system
instruction go to ``systemInstruction``.

Tools are declared as ``tools: [{"functionDeclarations": [...]}]``; a
streamed ``functionCall`` part becomes a tool-call part at once, and in the
next request it is a ``functionCall`` part of the model's content, followed
by a user content with its ``functionResponse`` (the outcome as an object).
"""

from __future__ import annotations

import base64
import json
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
from ._content import ALL_FAMILIES, check_accepts, group_messages, result_object
from ._http import HTTPTurnModel, ToolCallDelta
from ._sse import ServerSentEvent

__all__ = ["GeminiModel"]

GEMINI_BASE_URL: Final = "https://generativelanguage.googleapis.com/v1beta"


def _env_key() -> str | None:
    return os.environ.get("GEMINI_API_KEY") or None


def _base_url(value: str) -> str:
    url = httpx.URL(str(value))
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
    text = str(url).rstrip("/")
    # The bare host means the current API version.
    return text + "/v1beta" if url.path in ("", "/") else text


def _check_model(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or value != value.strip() or any(c in value for c in "?#: "):
        raise ValueError(f"model must be a model name such as 'gemini-2.0-flash', got {value!r}")


@attrs.define(eq=False, kw_only=True)
class GeminiModel(HTTPTurnModel):
    """A turn model over the Gemini API.

    Use it as an async context manager (``async with GeminiModel(...) as
    model:``), which closes its HTTP client at the end, or call `aclose`.

    Args:
        model: the model's name, for example ``"gemini-2.0-flash"`` (a
            ``models/`` prefix is accepted).
        base_url: the API's base URL, including its version.
        api_key: sent in the ``x-goog-api-key`` header; defaults to
            ``$GEMINI_API_KEY``.
        system_instruction: sent as ``systemInstruction``.
        options: the ``generationConfig`` object, for example
            ``{"temperature": 0.2, "maxOutputTokens": 256}``.
        accepts: the content families the model takes (default: text,
            images and audio); audio is sent as speech only.
        audio_history: seconds of earlier turns' speech sent as audio too
            (default 0: the current turn's only; earlier turns go by their
            transcriptions).

    The timeouts, retries and transport are those of `HTTPTurnModel`.
    """

    model: str = attrs.field(validator=_check_model)
    base_url: str = attrs.field(default=GEMINI_BASE_URL, converter=_base_url)
    api_key: str | None = attrs.field(factory=_env_key, repr=False, validator=check_api_key)
    system_instruction: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    accepts: frozenset[str] = attrs.field(default=ALL_FAMILIES, converter=check_accepts)
    audio_history: float = attrs.field(default=0.0, validator=finite_non_negative)

    def _url(self) -> str:
        name = self.model if "/" in self.model else f"models/{self.model}"
        return f"{self.base_url}/{name}:streamGenerateContent?alt=sse"

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if self.api_key:
            headers["x-goog-api-key"] = self.api_key
        return headers

    def _body(self, parts: Sequence[Part]) -> dict[str, Any] | None:
        system: list[dict[str, Any]] = []
        if self.system_instruction:
            system.append({"text": self.system_instruction})
        contents: list[dict[str, Any]] = []
        chosen = group_messages(parts, self.accepts, audio_history=self.audio_history)
        for message in chosen:
            items: list[dict[str, Any]] = []
            for item in message.items:
                if isinstance(item, str):
                    items.append({"text": item})
                elif isinstance(item, ToolCall):
                    items.append({"functionCall": _function_call(item)})
                elif isinstance(item, ToolResult):
                    response = {"name": item.name, "response": result_object(item)}
                    items.append({"functionResponse": {"id": item.id, **response}})
                elif message.role == "system":
                    raise BadRequestError(f"a system instruction must be text, got {item.mimetype}")
                else:
                    data = base64.b64encode(item.data).decode("ascii")
                    items.append({"inlineData": {"mimeType": item.mimetype, "data": data}})
            role = "user" if message.role == "tool" else message.role
            if role == "system":
                system.extend(items)
            elif contents and contents[-1]["role"] == role:
                contents[-1]["parts"].extend(items)
            else:
                contents.append({"role": role, "parts": items})
        if not contents:
            return None
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        if self.options:
            body["generationConfig"] = dict(self.options)
        return body

    def _declare(self, tools: Sequence[Tool]) -> dict[str, Any]:
        declarations = [
            {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            }
            for tool in tools
        ]
        return {"tools": [{"functionDeclarations": declarations}]}

    def _event(self, event: ServerSentEvent) -> tuple[Sequence[str | ToolCallDelta], bool]:
        payload = load_json(event.data)
        if isinstance(payload, list) and len(payload) == 1:
            payload = payload[0]
        if not isinstance(payload, dict):
            raise MalformedStreamError(f"expected a JSON object, got {event.data!r}")
        if "error" in payload:
            raise error_from_payload(payload["error"])
        # Every field is checked for its JSON type: a wrong one is a
        # MalformedStreamError, never a TypeError from deep in here.
        candidates = json_field(payload, "candidates", list, "event") or []
        if not candidates:
            feedback = json_field(payload, "promptFeedback", dict, "event") or {}
            reason = json_field(feedback, "blockReason", str, "event.promptFeedback")
            if reason:
                raise BadRequestError(f"the prompt was blocked: {reason}")
            return (), False
        where = "event.candidates[0]"
        candidate = json_item(candidates[0], dict, where)
        content = json_field(candidate, "content", dict, where) or {}
        texts: list[str | ToolCallDelta] = []
        parts = json_field(content, "parts", list, f"{where}.content") or ()
        for number, item in enumerate(parts):
            at = f"{where}.content.parts[{number}]"
            part = json_item(item, dict, at)
            text = json_field(part, "text", str, at)
            if text is not None and not json_field(part, "thought", bool, at):
                texts.append(text)
            call = json_field(part, "functionCall", dict, at)
            if call is not None:
                args = json_field(call, "args", dict, f"{at}.functionCall")
                texts.append(
                    ToolCallDelta(
                        index=None,
                        id=json_field(call, "id", str, f"{at}.functionCall") or "",
                        name=json_field(call, "name", str, f"{at}.functionCall") or "",
                        arguments=json.dumps(args or {}),
                    )
                )
        return texts, bool(json_field(candidate, "finishReason", str, where))


def _function_call(call: ToolCall) -> dict[str, Any]:
    try:
        args = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        args = None
    # Arguments that are not an object are sent as none (the call's error
    # outcome tells the model what was wrong with them).
    return {"id": call.id, "name": call.name, "args": args if isinstance(args, dict) else {}}
