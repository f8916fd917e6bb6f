"""Turn models: OpenAI-compatible and Gemini over HTTP, and a local llama.cpp model.

Each model is a `trio_live.TurnModel` and an async context manager that owns
one HTTP client::

    async with OpenAIChatModel(model="gpt-4o-mini") as model:
        async with LiveSession(model) as session:
            ...

`LocalModel` runs SmolLM2 in-process (the ``local`` extra), with no network.
`model_from_spec` picks a model from a URL and a model name, as the command
line's ``--model URL --model-name NAME`` options do.
"""

from __future__ import annotations

from ._factory import add_model_arguments, model_from_args, model_from_spec
from ._gemini import GEMINI_BASE_URL, GeminiModel
from ._http import HTTPTurnModel
from ._openai import OPENAI_BASE_URL, OpenAIChatModel
from .local import LocalModel

__all__ = [
    "GEMINI_BASE_URL",
    "GeminiModel",
    "HTTPTurnModel",
    "LocalModel",
    "OPENAI_BASE_URL",
    "OpenAIChatModel",
    "add_model_arguments",
    "model_from_args",
    "model_from_spec",
]
