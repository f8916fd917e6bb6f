"""``trio-live serve``: the page and live voice sessions over websocket.

Each connection gets its own pipeline: voice activity detection and speech to
text on the microphone audio, a `LiveSession` on the chosen model, and text
to speech (espeak-ng) when the client asks for it. SIGINT or SIGTERM stops
the server gracefully: sessions are cancelled and clients get a close frame.

It logs (``trio_live.cli``) the page's URL with the token masked, each
session's end (turns, duration), each error a session reports and each
failure; the web server logs each connection (``trio_live.web``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import LiveError, LiveSession, Part, Recorder, Stage, TurnModel, is_error, tune_gc
from .. import web as workers
from .._groups import raise_single
from ..models import add_model_arguments
from ..web import Config, Pipeline, ServerConfig, WebServer
from ._checks import UsageError, check_local_model, check_model, check_port
from ._defaults import voice_model

logger = logging.getLogger("trio_live.cli")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default: 8765)")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin allowed besides the page's own (repeatable; '*' allows any)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name accepted besides localhost and IP addresses (repeatable; '*': any)",
    )
    parser.add_argument(
        "--token",
        help="require this bearer token (or ?token= in the URL); default: $TRIO_LIVE_TOKEN",
    )
    parser.add_argument(
        "--max-sessions", type=int, default=16, help="most concurrent sessions (default: 16)"
    )
    parser.add_argument(
        "--stt",
        choices=("auto", "moonshine", "pocketsphinx", "none"),
        default="auto",
        help="speech-to-text back end ('none': typed turns only)",
    )
    # Serving past one process (docs/scaling.md): see trio_live/web/_workers.py.
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (default: 1)"
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a reverse proxy's address or network whose X-Forwarded-* headers are believed",
    )
    parser.add_argument(
        "--record",
        metavar="PATH",
        help="record each session for 'trio-live replay' (holds the users' voices): PATH is a"
        " folder (one LOG per session, SESSION.jsonl) or a file name with {session} in it",
    )
    add_model_arguments(parser)


def record_path(template: str, session: str) -> Path:
    """Where ``--record template`` puts the log of session ``session``.

    A ``template`` with ``{session}`` in it is that file name with the
    session's name in place; any other is a folder, and the log is
    ``SESSION.jsonl`` in it.
    """
    if "{session}" in template:
        return Path(template.replace("{session}", session)).expanduser()
    return Path(template).expanduser() / f"{session}.jsonl"


@attrs.define(eq=False)
class SessionRecorders:
    """A `Recorder` per session, each to its own log (``--record``).

    A session's name is the server's start time, then its number (after the
    worker's id with several workers): ``20250101-120000-3``, so that the
    logs of a restarted server never overwrite the last run's.
    """

    template: str
    worker: str | None = None
    started: str = attrs.field(factory=lambda: time.strftime("%Y%m%d-%H%M%S"))
    count: int = 0
    #: Written to each log's header: what a replay needs to rebuild the voice stages.
    voice: dict[str, Any] = attrs.field(factory=dict)

    def __call__(self) -> Recorder:
        """The next session's recorder (its log is created when the session starts)."""
        self.count += 1
        number = str(self.count) if self.worker is None else f"w{self.worker}-{self.count}"
        path = record_path(self.template, f"{self.started}-{number}")
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("recording session %s to %s", number, path)
        return Recorder(path, voice=self.voice)


def check(args: argparse.Namespace) -> None:
    """Find mistakes in the options before any work starts.

    Raises:
        UsageError: the port is taken, or bad ``--model`` options.
    """
    check_port(args.host, args.port)
    check_model(args)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if not args.model_url:
        check_local_model()
    if getattr(args, "record", None):
        _check_record(args.record)


def _check_record(template: str) -> None:
    # The folder the logs go in, or the nearest one that exists, must be writable.
    folder = record_path(template, "x").parent.resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"--record {template}: {folder} is not a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"--record {template}: {folder} is not writable")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit status."""
    token = args.token or os.environ.get("TRIO_LIVE_TOKEN") or None
    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            allowed_origins=frozenset(args.allow_origin),
            allowed_hosts=frozenset(args.allow_host),
            token=token,
            max_sessions=args.max_sessions,
            trusted_proxies=frozenset(args.trusted_proxy),
        )
        if args.workers > 1 and workers.current_worker() is None:
            return _supervise(args, config)
        model = voice_model(args)
    except ValueError as error:
        logger.error("bad options: %s", error)
        print(f"trio-live serve: {error}", file=sys.stderr)
        return 2
    try:
        trio.run(serve, model, config, args.stt, getattr(args, "record", None))
    except (LiveError, OSError) as error:
        logger.error("the server failed: %s: %s", type(error).__name__, error)
        print(f"trio-live serve: {error}", file=sys.stderr)
        return 1
    return 0


def _supervise(args: argparse.Namespace, config: ServerConfig) -> int:
    """``--workers N``: bind the port, run N workers on it until SIGINT or SIGTERM."""
    command, env = workers.worker_command("trio_live._cli.serve:run", args)
    sock = workers.listen_socket(config.host, config.port)
    supervisor = workers.Supervisor(command=command, env=env, sock=sock, workers=args.workers)

    def announce(port: int) -> None:
        url = page_url(config, port)
        print(f"trio-live: open {url} ({args.workers} workers; Ctrl-C stops)", flush=True)

    workers.run_supervisor(supervisor, announce=announce)
    return 0


async def serve(
    model: TurnModel, config: ServerConfig, stt: str = "auto", record: str | None = None
) -> None:
    """Load the speech back ends, then serve until SIGINT or SIGTERM.

    With ``record``, each session is recorded (see `SessionRecorders`).
    """
    worker = workers.current_worker()
    recorders = None
    if record is not None:
        recorders = SessionRecorders(
            record, worker=None if worker is None else worker.id, voice={"stt": stt}
        )
    factory = await voice_pipeline(model, stt=stt, recorders=recorders)
    if worker is not None:
        config = attrs.evolve(config, worker=worker.id)
    server = WebServer(factory, config, sock=worker.sock if worker else None)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            # Everything the server keeps is loaded: CPython's full
            # collections need not walk it again (see trio_live.tune_gc).
            tune_gc()
            if worker is None:
                print(f"trio-live: open {page_url(config, port)} (Ctrl-C stops)", flush=True)
                logger.info("page at %s", page_url(config, port, mask_token=True))
            else:
                nursery.start_soon(worker.exit_with_parent, nursery.cancel_scope)
            async for signum in signals:
                print(f"trio-live: {signal.Signals(signum).name}, closing sessions", flush=True)
                logger.info("%s: closing sessions", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def page_url(config: ServerConfig, port: int, *, mask_token: bool = False) -> str:
    """The page's URL, with ``?token=`` when the server requires one (the page reads it).

    With ``mask_token``, the token is shown as ``***`` (for the logs).
    """
    token = "***" if mask_token else urllib.parse.quote(config.token or "", safe="")
    query = f"?token={token}" if config.token else ""
    return f"http://{config.host}:{port}/{query}"


async def voice_pipeline(
    model: TurnModel,
    *,
    stt: str = "auto",
    recorders: Callable[[], Recorder] | None = None,
) -> Callable[[Config], Pipeline]:
    """A pipeline factory: VAD → speech to text → session on ``model`` → TTS.

    The recognizer is loaded once (in a worker thread); each connection gets
    fresh stages. With ``stt="none"`` only typed turns are understood. With
    ``recorders``, each session is recorded by a recorder it makes.
    """
    # The voice extra (numpy and the speech back ends) is loaded only here.
    from ..voice import EspeakTts, SpeechToText, VadStage, load_recognizer

    recognizer = None
    if stt != "none":
        recognizer = await trio.to_thread.run_sync(load_recognizer, stt)

    def factory(config: Config) -> Pipeline:
        recorder = None if recorders is None else recorders()
        before: list[Stage] = []
        if recognizer is not None:
            before = [VadStage(), SpeechToText(recognizer)]
            if recorder is not None:
                # The microphone, before the voice stages, for a replay of them.
                before.insert(0, recorder.microphone())
        # With speech, an interrupted answer is remembered as far as it was heard.
        session = LoggedSession(
            model,
            model_errors="report",
            emit_stats=True,
            emit_activity=True,
            track_playback=config.tts,
            recorder=recorder,
        )
        after: list[Stage] = [EspeakTts()] if config.tts else []
        return Pipeline(session=session, before=before, after=after)

    return factory


@attrs.define(eq=False)
class LoggedSession(LiveSession):
    """A `LiveSession` that logs (``trio_live.cli``) its errors and its end."""

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Part],
        outbox: trio.MemorySendChannel[Part],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run as `LiveSession.run`, logging each error reported and the session's end."""
        start = trio.current_time()
        send, receive = trio.open_memory_channel[Part](0)
        outcome = "ended"
        try:
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(super().run, inbox, send)
                    task_status.started()
                    with outbox, receive:
                        async for part in receive:
                            if is_error(part):
                                report = json.loads(part.text)
                                logger.warning(
                                    "model error: %s: %s", report["error"], report["message"]
                                )
                            await outbox.send(part)
            except BaseExceptionGroup as group:
                raise_single(group)  # raised as itself, as by `LiveSession.run`
        except BaseException as error:
            if _only_cancelled(error):
                outcome = "cancelled"
            else:
                outcome = "failed"
                logger.error("session failed: %s: %s", type(error).__name__, error)
            raise
        finally:
            outbox.close()
            stats = self.statistics()
            logger.info(
                "session %s after %.1f s: %d turns, %d interrupted",
                outcome,
                trio.current_time() - start,
                stats.turns,
                stats.interrupted_turns,
            )


def _only_cancelled(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return error.split(trio.Cancelled)[1] is None
    return isinstance(error, trio.Cancelled)
