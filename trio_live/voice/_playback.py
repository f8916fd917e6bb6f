"""`PlaybackTracker`, for whoever plays the model's speech (the demo's player, the bridge).

It lives in the core (``trio_live/_playback.py``) so that the websocket bridge
can use it without the voice extras (numpy) this package needs; see there.
"""

from __future__ import annotations

from .._playback import PlaybackTracker

__all__ = ["PlaybackTracker"]
