"""What the voice commands (``demo`` and ``serve``) share: the local model's settings."""

from __future__ import annotations

import argparse
from typing import Final

from .._model import TurnModel
from ..models import model_from_args

#: The local model's system instruction in a voice conversation (SmolLM2-135M
#: drifts into French without "English" in it, and rambles without "short").
SYSTEM: Final = (
    "You are a friendly English-speaking voice assistant. "
    "Reply in English only, with one or two short, simple sentences."
)
#: Keeps SmolLM2-135M out of loops like "a cat, a cat, a cat...".
REPEAT_PENALTY: Final = 1.2
#: The longest spoken answer of the local model, in tokens.
MAX_TOKENS: Final = 60


def voice_model(args: argparse.Namespace) -> TurnModel:
    """The model of ``--model`` (see `add_model_arguments`), or the local one set up for voice."""
    if getattr(args, "model_url", None):
        return model_from_args(args)
    from ..models.local import LocalModel

    local: TurnModel = LocalModel(
        system_instruction=getattr(args, "system_instruction", None) or SYSTEM,
        max_tokens=MAX_TOKENS,
        repeat_penalty=REPEAT_PENALTY,
    )
    return local
