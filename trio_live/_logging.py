"""The library's loggers, and the command line's logging setup.

trio_live logs with the standard `logging` module, under these names (all
children of ``trio_live``, which the library never configures: an
application sets up handlers and levels as it likes):

* ``trio_live.cli``: the commands (the served URL, signals, each session's
  end with its turns and duration, errors);
* ``trio_live.web``: the web server (its address, each connection accepted,
  refused and why, or ended);
* ``trio_live.models``: the HTTP models (retries).

No secret is ever logged: the token of ``trio-live serve`` is masked in the
URL, and the models' API keys never appear in their messages.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Final

import trio

__all__ = ["LEVELS", "LOGGERS", "logging_to_stderr", "peer_name"]

#: The loggers' names, each with what it reports.
LOGGERS: Final = {
    "trio_live.cli": "the commands: the served URL, signals, sessions' ends, errors",
    "trio_live.web": "the web server: its address, connections accepted, refused or ended",
    "trio_live.models": "the HTTP models: retries",
}
#: The levels ``--log-level`` takes.
LEVELS: Final = ("debug", "info", "warning", "error")
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def logging_to_stderr(level: str) -> Iterator[None]:
    """Show the ``trio_live`` loggers' records at ``level`` and above on stderr, for the block.

    The handler and the level are taken away at the end, so that running a
    command in a process (or a test) leaves its logging as it found it.
    """
    root = logging.getLogger("trio_live")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    old_level = root.level
    root.setLevel(level.upper())
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def peer_name(stream: trio.SocketStream) -> str:
    """``host:port`` of the other end of ``stream`` (``?`` once it is gone)."""
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return "?"
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)
