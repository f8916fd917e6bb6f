"""The loopback model server in a thread, for tests that run a command's own `trio.run`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import trio
from model_server import ModelServer, Script, open_model_server


@contextlib.contextmanager
def server_in_thread(script: Script) -> Iterator[ModelServer]:
    """Run a `ModelServer` on its own trio loop in a thread for the block."""
    ready = threading.Event()
    box: list[ModelServer] = []
    token: list[trio.lowlevel.TrioToken] = []
    stop = trio.Event()
    errors: list[BaseException] = []

    async def main() -> None:
        token.append(trio.lowlevel.current_trio_token())
        async with open_model_server(script) as server:
            box.append(server)
            ready.set()
            await stop.wait()

    def target() -> None:
        try:
            trio.run(main)
        except BaseException as error:  # reported to the test below
            errors.append(error)
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    ready.wait(30)
    if errors:
        raise errors[0]
    try:
        yield box[0]
    finally:
        trio.from_thread.run_sync(stop.set, trio_token=token[0])
        thread.join(30)
