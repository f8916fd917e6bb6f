"""CPython's garbage collector, tuned for a process that serves many sessions.

A live session allocates a few objects per part and keeps them only as long
as the window; what makes latency spike is not that, but CPython's full
collections, which walk every object the process ever kept (the imported
modules, the web server, caches): with a thousand sessions, 150-290 ms each.
"""

from __future__ import annotations

import gc

#: The collector's thresholds `tune_gc` sets: young collections every 50,000
#: net allocations instead of 700; older generations as CPython's defaults.
THRESHOLDS = (50_000, 10, 10)


def tune_gc(*, freeze: bool = True, thresholds: tuple[int, int, int] | None = THRESHOLDS) -> None:
    """Call once after start-up (imports done, before sessions start).

    Collects once, then (with ``freeze``) moves every object alive into the
    permanent generation with `gc.freeze`, so later collections never walk
    them again, and sets the collector's ``thresholds`` (None leaves them).
    Cycles created later are still collected.
    """
    gc.collect()
    if freeze:
        gc.freeze()
    if thresholds is not None:
        gc.set_threshold(*thresholds)
