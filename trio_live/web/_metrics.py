"""Health and metrics of one server process: ``GET /healthz`` and ``GET /metrics``.

`ServerMetrics` holds one process's Prometheus registry (prometheus-client):

* read from the server's `ServerCounters` at each scrape: the sessions open
  and accepted, refused handshakes and malformed messages (as errors by
  kind), dropped audio;
* observed on each session's output by a stage put right after the session
  (`ServerMetrics.observe` wraps the pipeline factory): turns, interruptions,
  model errors, and the latency histograms of the first output and of the
  barge-in (from the `TurnStats` a session sends with ``emit_stats=True``).

With several workers (``trio-live serve --workers N``) each process has its
own registry and every series carries a ``worker`` label: a scrape through
the shared port reaches one worker, so sum over ``worker`` knowing that a
scrape shows one worker at a time (see ``docs/scaling.md``).

``/healthz`` answers JSON: the worker's id and pid, its sessions and limit;
200 while it accepts sessions (ready), 503 when it is full. With
``?probe=live`` it answers 200 whenever the process serves at all (liveness).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final, TypeAlias
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .._parts import TURN_STATS_MIMETYPE, Part, is_error, is_interrupted, is_turn_complete
from ._bridge import Pipeline, PipelineFactory, ServerCounters
from ._http import RequestHead, response
from ._protocol import Config

Route: TypeAlias = Callable[[RequestHead], bytes]
"""Answers a plain HTTP request: the whole response's bytes."""

PROMETHEUS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: Latency buckets (seconds): from a fast local reply to a slow hosted one.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@attrs.define(eq=False)
class _CountersCollector(Collector):
    """The server's own counters, read at each scrape."""

    counters: ServerCounters
    worker: str
    errors: Mapping[str, int]

    def collect(self) -> Iterator[Metric]:
        counters, labels = self.counters, ["worker"]
        open_ = GaugeMetricFamily("trio_live_sessions_open", "Sessions open now.", labels=labels)
        open_.add_metric([self.worker], counters.active)
        yield open_
        total = CounterMetricFamily(
            "trio_live_sessions", "Sessions accepted since the start.", labels=labels
        )
        total.add_metric([self.worker], counters.total)
        yield total
        errors = CounterMetricFamily(
            "trio_live_errors",
            "Errors by kind: refused (handshakes), protocol (malformed messages),"
            " model (reported by the model), internal (a session crashed).",
            labels=[*labels, "kind"],
        )
        errors.add_metric([self.worker, "refused"], counters.refused)
        errors.add_metric([self.worker, "protocol"], counters.protocol_errors)
        for kind in ("model", "internal"):
            errors.add_metric([self.worker, kind], self.errors.get(kind, 0))
        yield errors
        dropped = CounterMetricFamily(
            "trio_live_dropped_audio",
            "Audio dropped: input frames (pipeline too slow), output chunks (client too slow).",
            labels=[*labels, "direction"],
        )
        dropped.add_metric([self.worker, "in"], counters.dropped_audio_in)
        dropped.add_metric([self.worker, "out"], counters.dropped_audio_out)
        yield dropped


class ServerMetrics:
    """One server process's metrics and its ``/healthz`` and ``/metrics`` routes.

    Args:
        counters: the server's counters (read at each scrape).
        worker: the worker's id (the ``worker`` label; ``"0"`` for a single process).
        max_sessions: the server's session limit (for readiness).
    """

    def __init__(self, counters: ServerCounters, *, worker: str, max_sessions: int) -> None:
        self.counters = counters
        self.worker = worker
        self.max_sessions = max_sessions
        self.started = time.monotonic()
        self.registry = CollectorRegistry()
        self._errors: dict[str, int] = {}
        self.registry.register(_CountersCollector(counters, worker, self._errors))
        labels = ["worker"]
        self.turns = Counter(
            "trio_live_turns", "Turns answered (ended).", labels, registry=self.registry
        ).labels(worker)
        self.interruptions = Counter(
            "trio_live_interruptions",
            "Answers cut short (barge-in or a newer turn).",
            labels,
            registry=self.registry,
        ).labels(worker)
        self.first_output = Histogram(
            "trio_live_first_text_seconds",
            "Seconds from a turn's trigger to its first output part (the first text).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(worker)
        self.barge_in = Histogram(
            "trio_live_barge_in_seconds",
            "Seconds from the start of speech to the interrupted answer's end.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(worker)

    def error(self, kind: str) -> None:
        """Count one error of ``kind`` (``model``, ``internal``)."""
        self._errors[kind] = self._errors.get(kind, 0) + 1

    def observe(self, factory: PipelineFactory) -> PipelineFactory:
        """``factory``, with a stage that watches each session's output."""

        def observed(config: Config) -> Pipeline:
            pipeline = factory(config)
            return attrs.evolve(pipeline, after=[_Observer(self), *pipeline.after])

        return observed

    def part(self, part: Part) -> None:
        """Take note of one output part of a session."""
        if is_turn_complete(part):
            self.turns.inc()
        elif is_interrupted(part):
            self.interruptions.inc()
        elif is_error(part):
            self.error("model")
        elif part.mimetype == TURN_STATS_MIMETYPE and isinstance(part.content, str):
            stats = json.loads(part.content)
            first = stats.get("time_to_first_output")
            if isinstance(first, int | float):
                self.first_output.observe(first)
            barge_in = stats.get("barge_in_latency")
            if isinstance(barge_in, int | float):
                self.barge_in.observe(barge_in)

    # -- the routes ---------------------------------------------------------------

    def routes(self) -> Mapping[str, Route]:
        """URL path → route: ``/healthz`` and ``/metrics``."""
        return {"/healthz": self.health_response, "/metrics": self.metrics_response}

    def health(self) -> dict[str, object]:
        """The worker's state, as ``/healthz`` shows it."""
        active = self.counters.active
        return {
            "status": "ok" if active < self.max_sessions else "full",
            "live": True,
            "ready": active < self.max_sessions,
            "worker": self.worker,
            "pid": os.getpid(),
            "sessions": active,
            "max_sessions": self.max_sessions,
            "uptime_seconds": round(time.monotonic() - self.started, 3),
        }

    def health_response(self, head: RequestHead) -> bytes:
        """``GET /healthz``: 200 when ready, 503 when full (``?probe=live``: 200)."""
        if head.method not in ("GET", "HEAD"):
            return response(405, b"method not allowed\n", content_type="text/plain")
        state = self.health()
        live = "live" in parse_qs(urlsplit(head.target).query).get("probe", [])
        status = 200 if live or state["ready"] else 503
        body = (json.dumps(state) + "\n").encode()
        return response(status, body, content_type="application/json", head=head.method == "HEAD")

    def metrics_response(self, head: RequestHead) -> bytes:
        """``GET /metrics``: the Prometheus text format."""
        if head.method not in ("GET", "HEAD"):
            return response(405, b"method not allowed\n", content_type="text/plain")
        body = generate_latest(self.registry)
        return response(200, body, content_type=PROMETHEUS_CONTENT_TYPE, head=head.method == "HEAD")


@attrs.define(eq=False)
class _Observer:
    """A stage that passes every part on and shows it to the metrics."""

    metrics: ServerMetrics

    async def run(
        self, inbox: trio.MemoryReceiveChannel[Part], outbox: trio.MemorySendChannel[Part]
    ) -> None:
        with inbox, outbox:
            async for part in inbox:
                self.metrics.part(part)
                await outbox.send(part)
