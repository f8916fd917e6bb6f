"""Record-and-replay cost: log size per minute of audio, and replay wall time.

Records a synthetic session on the mock clock: 10 minutes of 16 kHz audio in
20 ms frames, and a turn every 10 s (speech starts, a final transcription,
speech ends; the scripted model answers in 0.3 s with a few parts). Then it
replays the log (against its recorded answers) and reports the log's size,
per minute of audio, and the replay's wall time (median of a few runs).

    python benchmarks/replay_speed.py [--minutes 10]

(It imports the checkout it is in, not an installed trio_live.) Figures, 10
minutes on the 2-core machine: format version 1, 7.90 MB per minute (4.11x
the raw PCM); version 2, 3.05 MB per minute (1.59x); replay about 4-6 s wall
either way (the log's format is not on its path).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_live import (
    LiveSession,
    Part,
    Recorder,
    audio_part,
    end_of_speech,
    start_of_speech,
    transcription,
)
from trio_live.testing import ReplayLog, ScriptedModel, play_timeline, replay

FRAME = 0.02
RATE = 16000


def timeline(minutes: float) -> list[tuple[float, Part]]:
    events: list[tuple[float, Part]] = []
    frames = round(minutes * 60 / FRAME)
    pcm = bytes(range(256)) * (RATE * 2 // 50 // 256) + bytes(RATE * 2 // 50 % 256)
    for i in range(frames):
        at = round(i * FRAME, 6)
        # Every frame its own bytes object, as from a microphone.
        events.append((at, audio_part(bytes(bytearray(pcm)), rate=RATE)))
        second = at % 10
        if round(second, 6) == 5.0:
            events.append((at + 0.001, start_of_speech()))
        elif round(second, 6) == 7.0:
            events.append((at + 0.001, transcription(f"question {i}", final=True)))
        elif round(second, 6) == 7.2:
            events.append((at + 0.001, end_of_speech()))
    return events


async def record(events: list[tuple[float, Part]], end: float) -> str:
    log = io.StringIO()
    model = ScriptedModel(
        [["An", " answer", " in", " parts."]], first_part_delay=0.3, part_delay=0.25
    )
    await play_timeline(LiveSession(model, recorder=Recorder(log)), events, end_at=end)
    return log.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    events = timeline(args.minutes)
    clock = trio.testing.MockClock(autojump_threshold=0)
    began = time.perf_counter()
    text = trio.run(record, events, args.minutes * 60, clock=clock)
    recording = time.perf_counter() - began
    log = ReplayLog.parse(io.StringIO(text))
    size = len(text.encode())
    audio_bytes = sum(len(p.data) for _, p in log.inputs if p.mimetype.startswith("audio/"))
    walls = []
    for _ in range(args.runs):
        began = time.perf_counter()
        out = replay(log)
        walls.append(time.perf_counter() - began)
    assert out == log.outputs, "the replay differs from the recording"
    print(
        f"session: {args.minutes:g} min of audio, {len(events)} input parts, "
        f"{len(log.calls)} model calls, {len(log.events)} log lines"
    )
    print(
        f"log: {size / 1e6:.2f} MB, {size / 1e6 / args.minutes:.2f} MB per minute of audio "
        f"({size / audio_bytes:.2f}x the raw PCM, {audio_bytes / 1e6 / args.minutes:.2f} MB/min)"
    )
    print(f"recording (mock clock): {recording:.2f} s wall")
    print(
        f"replay: median {statistics.median(walls):.2f} s wall over {args.runs} runs "
        f"(min {min(walls):.2f} s) for {args.minutes * 60:g} s of conversation"
    )


if __name__ == "__main__":
    main()
