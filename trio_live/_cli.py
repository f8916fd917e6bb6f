"""The ``trio-live`` command line.

Each subcommand lives in its own module, which provides ``add_arguments``
(fill an argparse parser) and ``run`` (take the parsed arguments, return an
exit status). Modules are imported only when their subcommand runs, so a
missing optional back end never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from . import __version__

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("trio_live._chat", "the main demo (runs offline, no API key)"),
    "chat": ("trio_live._chat", "a scripted text conversation with a barge-in"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="trio-live", description="Live, interruptible conversations with language models."
    )
    parser.add_argument("--version", action="version", version=f"trio-live {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module=module_name)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    status: int = importlib.import_module(args.module).run(args)
    return status
