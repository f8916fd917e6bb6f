"""`trio-live serve --workers 2` in a subprocess, and nginx in front of it.

Shared by ``test_scaling.py`` (plain HTTP and websocket clients through nginx)
and ``test_web_browser.py`` (the page in headless Chromium through nginx).
The workers answer with a loopback OpenAI-compatible model server of
``model_server.py`` in the test's process, and run ``--stt none``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from model_server import Reply, open_model_server

ROOT = Path(__file__).parent.parent
NGINX = shutil.which("nginx")
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (CI installs it)")


async def http_get(
    port: int, path: str, *, host: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP/1.1 GET over loopback: (status, headers, body)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), fields, body


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def serve_workers(
    *options: str, answer: Sequence[str] = ("Served ", "answer.")
) -> AsyncIterator[tuple[trio.Process, int, list[str]]]:
    """``trio-live serve --workers 2`` on a free port, against a model server.

    Every turn is answered with ``answer`` (its text deltas). Yields the parent
    process, its port, and the lines of its stderr so far.
    """
    async with (
        open_model_server([Reply(text=list(answer))]) as model,
        trio.open_nursery() as nursery,
    ):
        command = [sys.executable, "-m", "trio_live", "serve", "--workers", "2", "--port", "0"]
        command += ["--stt", "none", "--model", model.openai_url, "--model-name", "m", *options]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "k"}
        process = await trio.lowlevel.open_process(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        errors: list[str] = []
        try:
            assert process.stdout is not None
            assert process.stderr is not None
            nursery.start_soon(_collect, process.stderr, errors)
            with trio.fail_after(60):
                line = await _first_line(process.stdout)
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            assert match, (line, errors)
            yield process, int(match[1]), errors
        finally:
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
            nursery.cancel_scope.cancel()


async def _first_line(stream: trio.abc.ReceiveStream) -> str:
    data = b""
    while b"\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data.decode()


async def _collect(stream: trio.abc.ReceiveStream, lines: list[str]) -> None:
    data = b""
    while chunk := await stream.receive_some(4096):
        data += chunk
        *done, rest = data.split(b"\n")
        lines.extend(part.decode() for part in done)
        data = rest


def nginx_config(template: str, *, listen: int, upstream: int, prefix: Path) -> str:
    """``examples/nginx.conf`` on loopback ports, with its files in ``prefix``."""
    config = template.replace("127.0.0.1:8765", f"127.0.0.1:{upstream}")
    config = config.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen};")
    assert f"127.0.0.1:{upstream}" in config
    assert f"127.0.0.1:{listen}" in config
    paths = "\n".join(
        f"    {name}_temp_path {prefix / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    logs = f"    access_log {prefix / 'access.log'};\n"
    return config.replace("http {\n", f"http {{\n{paths}\n{logs}", 1)


@asynccontextmanager
async def running_nginx(upstream: int, prefix: Path) -> AsyncIterator[int]:
    """nginx with ``examples/nginx.conf`` in front of ``upstream``, its files in ``prefix``.

    Yields the port it listens on, once it answers ``GET /healthz``; its
    access log is ``prefix / "access.log"``.
    """
    assert NGINX is not None
    template = (ROOT / "examples" / "nginx.conf").read_text()
    listen = free_port()
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(template, listen=listen, upstream=upstream, prefix=prefix))
    main = f"daemon off; pid {prefix / 'nginx.pid'}; error_log {prefix / 'error.log'};"
    if os.geteuid() == 0:
        main += " user root;"  # its workers write in prefix
    command = [NGINX, "-e", str(prefix / "error.log"), "-p", str(prefix)]
    command += ["-c", str(config), "-g", main]
    process = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
    try:
        with trio.fail_after(30):
            while True:
                try:
                    await http_get(listen, "/healthz")
                    break
                except OSError:
                    assert process.returncode is None, (prefix / "error.log").read_text()
                    await trio.sleep(0.1)
        yield listen
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful stop
        with trio.move_on_after(10) as scope:
            scope.shield = True
            await process.wait()
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
