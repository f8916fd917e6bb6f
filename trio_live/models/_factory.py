"""Pick a turn model from a URL and a model name (the command line's way).

``--model URL --model-name NAME``:

* no URL: the local model that runs inside the process (`trio_live.models.local`),
  or, where that module is not available, the scripted echo model;
* ``gemini``, or a URL on Google's ``generativelanguage.googleapis.com``
  (except its ``/openai`` compatibility path): `GeminiModel`;
* ``openai``, or any other URL: `OpenAIChatModel` (Ollama, vLLM, the
  llama.cpp server, LM Studio...). A URL without a path gets ``/v1``; a
  trailing ``/chat/completions`` is dropped.

``--provider`` overrides the guess. Keys come from ``$OPENAI_API_KEY`` and
``$GEMINI_API_KEY``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Final

import httpx

from .._model import TurnModel
from ._gemini import GEMINI_BASE_URL, GeminiModel
from ._openai import OPENAI_BASE_URL, OpenAIChatModel

__all__ = ["add_model_arguments", "model_from_args", "model_from_spec"]

PROVIDERS: Final = ("openai", "gemini")
_ALIASES: Final = {"openai": OPENAI_BASE_URL, "gemini": GEMINI_BASE_URL}
_KEY_VARIABLES: Final = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
_GOOGLE_HOST: Final = "generativelanguage.googleapis.com"


def _guess_provider(url: httpx.URL) -> str:
    if url.host == _GOOGLE_HOST and "/openai" not in url.path:
        return "gemini"
    return "openai"


def _openai_base(url: httpx.URL) -> str:
    path = url.path.rstrip("/")
    path = path.removesuffix("/chat/completions")
    return str(url.copy_with(path=path or "/v1", query=None)).rstrip("/")


def model_from_spec(
    url: str | None,
    model: str | None = None,
    *,
    provider: str | None = None,
    api_key: str | None = None,
    system_instruction: str | None = None,
) -> TurnModel:
    """The turn model for a server URL and a model name.

    Args:
        url: ``"openai"``, ``"gemini"``, a base URL, or None for the local
            model.
        model: the model's name on the server (required with a URL).
        provider: ``"openai"`` or ``"gemini"`` to override the guess from
            the URL.
        api_key: the key; by default ``$OPENAI_API_KEY`` or ``$GEMINI_API_KEY``.
        system_instruction: the system instruction.

    The HTTP models own a client: close them with ``await model.aclose()``
    (or ``async with``) when done.

    Raises:
        ValueError: for an unknown provider, a bad URL, a missing name, or
            ``"openai"``/``"gemini"`` (the hosted APIs) without a key.
    """
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if url is None:
        if model is not None or provider is not None:
            raise ValueError("a model name or provider needs a server URL (--model URL)")
        return _local_model(system_instruction)
    if not model:
        raise ValueError(f"the server {url!r} needs a model name (--model-name NAME)")
    alias = url.strip().lower()
    parsed = httpx.URL(_ALIASES.get(alias, url))
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"the model URL must be 'openai', 'gemini' or an http(s) URL, got {url!r}")
    chosen = provider or (alias if alias in _ALIASES else _guess_provider(parsed))
    keys: dict[str, Any] = {} if api_key is None else {"api_key": api_key}
    if alias in _ALIASES and api_key is None and not os.environ.get(_KEY_VARIABLES[alias]):
        raise ValueError(f"--model {alias} needs an API key: set ${_KEY_VARIABLES[alias]}")
    if chosen == "gemini":
        return GeminiModel(
            model=model, base_url=str(parsed), system_instruction=system_instruction, **keys
        )
    return OpenAIChatModel(
        model=model,
        base_url=_openai_base(parsed),
        system_instruction=system_instruction,
        **keys,
    )


def _local_model(system_instruction: str | None) -> TurnModel:
    from .local import LocalModel

    model: TurnModel = LocalModel(system_instruction=system_instruction)
    return model


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--model``, ``--model-name``, ``--provider`` and ``--system`` to ``parser``."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        dest="model_url",
        metavar="URL",
        help="'openai', 'gemini' or the base URL of an OpenAI-compatible server"
        " (default: the local model)",
    )
    group.add_argument("--model-name", metavar="NAME", help="the model's name on the server")
    group.add_argument(
        "--provider",
        choices=PROVIDERS,
        help="the API the server speaks (default: guessed from the URL)",
    )
    group.add_argument(
        "--system", dest="system_instruction", metavar="TEXT", help="the system instruction"
    )


def model_from_args(args: argparse.Namespace) -> TurnModel:
    """The model chosen by the options of `add_model_arguments`.

    Raises:
        ValueError: as `model_from_spec`.
    """
    return model_from_spec(
        args.model_url,
        args.model_name,
        provider=args.provider,
        system_instruction=args.system_instruction,
    )
