"""The ``trio-live`` command line.

Each subcommand lives in its own module, which provides ``add_arguments``
(fill an argparse parser) and ``run`` (take the parsed arguments, return an
exit status). Only the chosen subcommand's module is imported, so a missing
optional back end never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "trio_live._cli.demo",
        "the offline voice demo: a recorded conversation through VAD, speech to text, "
        "the live session, a local model and text to speech",
    ),
    "chat": ("trio_live._cli.chat", "a scripted text conversation with a barge-in"),
    "serve": ("trio_live._cli.serve", "the websocket bridge and its browser page"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported to fill its options."""
    parser = argparse.ArgumentParser(
        prog="trio-live", description="Live, interruptible conversations with language models."
    )
    parser.add_argument("--version", action="version", version=f"trio-live {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if word in COMMANDS), None)
    args = build_parser(command).parse_args(words)
    status: int = importlib.import_module(args.module).run(args)
    return status
