"""The ``trio-live`` command line.

Each subcommand lives in its own module, which provides ``add_arguments``
(fill an argparse parser) and ``run`` (take the parsed arguments, return an
exit status). The demo's module needs the voice extra (numpy and the speech
back ends), so it is imported only when the demo is chosen: ``trio-live
--help``, ``chat`` and ``serve`` work without it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Protocol

from .. import __version__
from . import chat, replay, serve

__all__ = ["COMMANDS", "build_parser", "main"]


class _Command(Protocol):
    """What a subcommand's module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: subcommand -> one-line help
COMMANDS: dict[str, str] = {
    "demo": (
        "the offline voice demo: a recorded conversation through VAD, speech to text, "
        "the live session, a local model and text to speech"
    ),
    "chat": "a scripted text conversation with a barge-in",
    "serve": "the websocket bridge and its browser page",
    "replay": "a recorded conversation's timeline; --diff replays it and compares",
}


def _command_module(name: str) -> _Command:
    """The module of subcommand ``name`` (the demo's is imported here, on demand)."""
    if name == "demo":
        from . import demo

        return demo
    if name == "chat":
        return chat
    if name == "serve":
        return serve
    if name == "replay":
        return replay
    raise ValueError(f"no such command: {name!r}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module fills its options."""
    parser = argparse.ArgumentParser(
        prog="trio-live", description="Live, interruptible conversations with language models."
    )
    parser.add_argument("--version", action="version", version=f"trio-live {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _command_module(name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if word in COMMANDS), None)
    args = build_parser(command).parse_args(words)
    return _command_module(args.command).run(args)
