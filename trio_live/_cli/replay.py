"""``trio-live replay LOG``: a recorded conversation's timeline, or its replay's diff.

Without options it prints the timeline (time, who, what). With ``--diff`` it
replays the log on the mock clock against the recorded answers and compares
the output with what was recorded: exit status 0 if they are the same, 1 with
the first divergence if not. A log that cannot be read is a one-line error
and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import ReplayLogError
from ..testing import conversation_diff, read_log, replay
from ._checks import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    parser.add_argument("log", metavar="LOG", help="a log written by trio_live.Recorder")
    parser.add_argument(
        "--diff",
        action="store_true",
        help="replay the log and compare with what was recorded (exit status 1 if different)",
    )


def check(args: argparse.Namespace) -> None:
    """The log file exists (its content is checked as it is read)."""
    if not Path(args.log).is_file():
        raise UsageError(f"{args.log}: No such file or directory")


def run(args: argparse.Namespace) -> int:
    """Print the timeline, or replay and compare."""
    try:
        log = read_log(args.log)
    except (ReplayLogError, OSError, UnicodeDecodeError) as error:
        print(f"trio-live replay: {args.log}: {error}", file=sys.stderr)
        return 2
    if not args.diff:
        options = ", ".join(f"{key}={value!r}" for key, value in log.options.items())
        print(f"# trio_live {log.header.library}, log format {log.header.version}: {options}")
        for at, who, what in log.timeline():
            print(f"{at:9.3f} s  {who:<5} {what}")
        return 0
    diff = conversation_diff(log.outputs, replay(log))
    if diff is None:
        print(f"the replay matches the recording ({len(log.outputs)} outputs)")
        return 0
    print(diff)
    return 1
