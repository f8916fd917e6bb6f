"""How often one peer address may fail the token check: token buckets (sans-IO).

Each peer address has a bucket of ``failures`` tokens, refilled at ``failures``
per ``period`` seconds; each failed token check takes one. An address whose
bucket is empty is refused (429, with ``Retry-After``) until a token is back,
whatever token it sends: a guess cannot be checked while it is blocked. A
right token takes nothing, so a client that knows it is never slowed down,
unless its address fails as well (behind a reverse proxy every client has
the proxy's address: one guesser blocks them all for a while).

The buckets of at most ``max_peers`` addresses are kept, the one failed
longest ago is forgotten first (in O(1)): an attacker with many addresses
gets no more than ``failures`` guesses per address per period unless it
cycles through more than ``max_peers`` of them, and never grows the server's
memory.

The caller reads the clock (``trio.current_time()``) and passes it in.
"""

from __future__ import annotations

import math

import attrs

from .._checks import positive


@attrs.define(eq=False)
class FailureLimiter:
    """Failed attempts per peer address, limited by token buckets (see the module docs).

    Attributes:
        failures: the failures an address may make at once (the bucket's size),
            and per ``period``.
        period: seconds to refill an empty bucket.
        max_peers: the most addresses whose buckets are kept.
    """

    failures: int = attrs.field(default=10, validator=positive)
    period: float = attrs.field(default=60.0, validator=positive)
    max_peers: int = attrs.field(default=4096, validator=positive)
    # address -> (tokens, when they were counted); oldest update first.
    _buckets: dict[str, tuple[float, float]] = attrs.field(init=False, factory=dict)

    def _tokens(self, peer: str, now: float) -> float:
        tokens, then = self._buckets.get(peer, (float(self.failures), now))
        rate = self.failures / self.period
        return min(float(self.failures), tokens + max(0.0, now - then) * rate)

    def retry_after(self, peer: str, now: float) -> float | None:
        """Seconds until ``peer`` may try again, or None if it may try now."""
        tokens = self._tokens(peer, now)
        if tokens >= 1:
            return None
        return (1 - tokens) * self.period / self.failures

    def failed(self, peer: str, now: float) -> None:
        """Count a failed attempt of ``peer`` at ``now``."""
        tokens = self._tokens(peer, now)
        self._buckets.pop(peer, None)
        self._buckets[peer] = (max(0.0, tokens - 1), now)
        while len(self._buckets) > self.max_peers:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(seconds: float) -> str:
    """The value of a ``Retry-After`` header: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
