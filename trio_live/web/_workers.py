"""Serving past one process: worker processes on one port, behind a reverse proxy.

Workers. The parent binds the listening socket (so a port in use is found
once, and port 0 works), then starts N worker processes that inherit it
(``pass_fds``) and each accept from it with their own session limit. The
parent only supervises: a worker that exits is logged (``trio_live.workers``)
and started again (after a delay that grows while it keeps dying within
seconds); when the parent is cancelled (SIGINT/SIGTERM in the CLI) it sends
each worker SIGTERM, waits for it to close its sessions (clients get 1001),
and kills whatever is left after a grace period. Workers run in their own
session (a terminal's Ctrl-C reaches only the parent) and exit by
themselves if the parent goes away.

A worker learns what it is from its environment: ``TRIO_LIVE_WORKER`` is
``"ID:FD"`` (`current_worker` reads it).

Reverse proxy. ``X-Forwarded-For``, ``X-Forwarded-Host`` and
``X-Forwarded-Proto`` are believed only from the proxy's addresses
(``ServerConfig.trusted_proxies``): `forwarded_head` replaces the ``Host``
with the forwarded one (the Host allowlist and the origin check then see
the name the browser used) and drops the forwarded headers of anyone else.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import logging
import os
import pickle
import signal
import socket
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final

import attrs
import trio

from .._checks import positive
from ._http import RequestHead

logger = logging.getLogger("trio_live.workers")

WORKER_ENV: Final = "TRIO_LIVE_WORKER"
#: The pickled call a worker started by `worker_main` makes.
TARGET_ENV: Final = "TRIO_LIVE_WORKER_TARGET"
_FORWARDED: Final = ("x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded")


# -- the parent ---------------------------------------------------------------


def listen_socket(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``host``:``port``, for the workers to share.

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    return sock


@attrs.define(eq=False, kw_only=True)
class Supervisor:
    """Keeps ``workers`` processes running ``command``, sharing ``sock``.

    Args:
        command: the worker's command line (``sys.executable`` and its arguments).
        sock: the listening socket the workers inherit.
        workers: how many.
        env: the workers' environment (default: the parent's), to which
            ``TRIO_LIVE_WORKER`` is added.
        restart_delay: seconds before a worker that exited starts again
            (doubled, up to 30 s, while it keeps dying within 5 s).
        stop_grace: seconds a worker has to stop after SIGTERM before SIGKILL.
    """

    command: Sequence[str]
    sock: socket.socket
    workers: int = attrs.field(validator=positive)
    env: Mapping[str, str] | None = None
    restart_delay: float = attrs.field(default=0.5, validator=positive)
    stop_grace: float = attrs.field(default=10.0, validator=positive)
    processes: dict[str, trio.Process] = attrs.field(init=False, factory=dict)
    restarts: int = attrs.field(init=False, default=0)

    @property
    def port(self) -> int:
        """The port the workers serve."""
        port: int = self.sock.getsockname()[1]
        return port

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the workers and keep them running until cancelled; then stop them all."""
        async with trio.open_nursery() as nursery:
            for number in range(1, self.workers + 1):
                await nursery.start(self._keep, str(number))
            task_status.started()

    async def _keep(self, worker: str, *, task_status: trio.TaskStatus[None]) -> None:
        delay = self.restart_delay
        env = {**(self.env if self.env is not None else os.environ)}
        env[WORKER_ENV] = f"{worker}:{self.sock.fileno()}"
        while True:
            started = trio.current_time()
            process = await trio.lowlevel.open_process(
                list(self.command), env=env, pass_fds=(self.sock.fileno(),), start_new_session=True
            )
            self.processes[worker] = process
            logger.info("worker %s started (pid %d)", worker, process.pid)
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            try:
                await process.wait()
            finally:
                if process.returncode is None:
                    with trio.CancelScope(shield=True):
                        await self._stop(worker, process)
            lived = trio.current_time() - started
            delay = min(30.0, delay * 2) if lived < 5 else self.restart_delay
            self.restarts += 1
            logger.warning(
                "worker %s (pid %d) exited with %s; restarting it in %.1f s",
                worker,
                process.pid,
                _exit_status(process.returncode),
                delay,
            )
            await trio.sleep(delay)

    async def _stop(self, worker: str, process: trio.Process) -> None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.stop_grace):
            await process.wait()
        if process.returncode is None:
            logger.warning("worker %s (pid %d) did not stop: killed", worker, process.pid)
            process.kill()
            await process.wait()
        else:
            logger.info("worker %s (pid %d) stopped", worker, process.pid)


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            pass
    return f"status {code}"


def run_supervisor(supervisor: Supervisor, *, announce: Callable[[int], None]) -> None:
    """Run ``supervisor`` until SIGINT or SIGTERM (``announce`` gets the port once started)."""

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                announce(supervisor.port)
                async for signum in signals:
                    name = signal.Signals(signum).name
                    print(f"trio-live: {name}, stopping the workers", flush=True)
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    finally:
        supervisor.sock.close()


def worker_command(target: str, args: Any) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a worker that calls ``target(args)``.

    ``target`` is ``"module:function"``; ``args`` is pickled into the
    environment (the parent's own parsed options: nothing from outside).
    """
    payload = base64.b64encode(pickle.dumps((target, args))).decode("ascii")
    code = "from trio_live.web._workers import worker_main; worker_main()"
    command = [sys.executable, "-c", code]
    return command, {**os.environ, TARGET_ENV: payload}


def worker_main() -> None:
    """A worker's entry point: call the target of `worker_command`, exit with its status."""
    import importlib

    target, args = pickle.loads(base64.b64decode(os.environ[TARGET_ENV]))
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    raise SystemExit(function(args))


# -- the worker ---------------------------------------------------------------


@attrs.frozen
class Worker:
    """What a worker process knows of itself (see `current_worker`).

    Attributes:
        id: the worker's number, from 1 (a restarted worker keeps its number).
        sock: the listening socket inherited from the parent.
        parent: the parent's pid when the worker started.
    """

    id: str
    sock: socket.socket
    parent: int

    async def exit_with_parent(self, scope: trio.CancelScope, *, interval: float = 1.0) -> None:
        """Cancel ``scope`` once the parent process has gone away."""
        # Nothing to wait on but the pid: polled.
        while os.getppid() == self.parent:  # noqa: ASYNC110
            await trio.sleep(interval)
        logger.warning("worker %s: the parent process went away, stopping", self.id)
        scope.cancel()


@functools.cache
def current_worker() -> Worker | None:
    """This process's `Worker`, or None when it is not a worker (read once)."""
    value = os.environ.get(WORKER_ENV)
    if not value:
        return None
    worker, _, fd = value.partition(":")
    sock = socket.socket(fileno=int(fd))
    return Worker(worker, sock, os.getppid())


# -- behind a reverse proxy ---------------------------------------------------


def is_trusted(peer: str, trusted: Collection[str]) -> bool:
    """True if ``peer`` (an address) is one of ``trusted`` (addresses or networks)."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def forwarded_head(head: RequestHead, peer: str, trusted: Collection[str]) -> RequestHead:
    """``head`` as the server should see it, coming from ``peer``.

    From a trusted proxy, ``X-Forwarded-Host`` becomes the ``Host`` (the
    other forwarded headers stay); from anyone else, every forwarded header
    is dropped.
    """
    present = [name for name in _FORWARDED if name in head.headers]
    if not present:
        return head
    headers = dict(head.headers)
    if is_trusted(peer, trusted):
        forwarded_host = headers.get("x-forwarded-host")
        if forwarded_host:
            # The proxy's own value is the last one.
            headers["host"] = forwarded_host.split(",")[-1].strip()
        proto = headers.get("x-forwarded-proto")
        if proto:
            headers["x-forwarded-proto"] = proto.split(",")[-1].strip().lower()
    else:
        for name in present:
            del headers[name]
    return attrs.evolve(head, headers=headers)


def client_address(head: RequestHead, peer: str) -> str:
    """The client's address: the proxy's ``X-Forwarded-For`` entry, or the peer.

    ``head`` must have gone through `forwarded_head` (only a trusted
    proxy's header is left); the last entry is the one the proxy added.
    """
    forwarded = head.headers.get("x-forwarded-for", "")
    last = forwarded.split(",")[-1].strip()
    return last or peer


def peer_address(stream: trio.SocketStream) -> str:
    """The address at the other end of ``stream`` ("" if unknown)."""
    try:
        name = stream.socket.getpeername()
    except OSError:
        return ""
    return str(name[0]) if isinstance(name, tuple) else ""
