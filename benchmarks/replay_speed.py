"""Record-and-replay cost: log size per minute of audio, and replay wall time.

Records a synthetic session on the mock clock: 10 minutes of 16 kHz audio in
20 ms frames, and a turn every 10 s (speech starts, a final transcription,
speech ends; the scripted model answers in 0.3 s with a few parts). Then it
replays the log (against its recorded answers) and reports the log's size,
per minute of audio, and the replay's wall time (median of a few runs).

    python benchmarks/replay_speed.py [--minutes 10] [--mic]

With ``--mic`` everything goes through `Recorder.microphone` first, as
``demo --record`` and ``serve --record`` do (format version 3): the raw
microphone is logged, the audio reaching the session refers to it, and the
log replays at the session and through the (here empty) voice pipeline.

(It imports the checkout it is in, not an installed trio_live.) Figures, 10
minutes on the 2-core machine: format version 1, 7.90 MB per minute (4.11x
the raw PCM); version 2, 3.05 MB per minute (1.59x); replay about 4-6 s wall
either way (the log's format is not on its path). Version 3 with ``--mic``:
3.17 MB per minute (1.65x: the voice is stored once); replay about 10 s at
the session and 17 s from the microphone.
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
    run_chain,
    start_of_speech,
    transcription,
)
from trio_live.testing import ReplayLog, ScriptedModel, play_timeline, replay, replay_pipeline

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


async def record(events: list[tuple[float, Part]], end: float, mic: bool = False) -> str:
    log = io.StringIO()
    model = ScriptedModel(
        [["An", " answer", " in", " parts."]], first_part_delay=0.3, part_delay=0.25
    )
    recorder = Recorder(log)
    session = LiveSession(model, recorder=recorder)
    if not mic:
        await play_timeline(session, events, end_at=end)
        return log.getvalue()
    send, receive = trio.open_memory_channel[Part](16)
    out_send, out_receive = trio.open_memory_channel[Part](64)
    start = trio.current_time()

    async def speak() -> None:
        async with send:
            for at, part in events:
                await trio.sleep_until(start + at)
                await send.send(part)
            await trio.sleep_until(start + end)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_chain, [recorder.microphone(), session], receive, out_send)
        nursery.start_soon(speak)
        async with out_receive:
            async for _ in out_receive:
                pass
    return log.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mic", action="store_true", help="record the microphone too (v3)")
    args = parser.parse_args()
    events = timeline(args.minutes)
    clock = trio.testing.MockClock(autojump_threshold=0)
    began = time.perf_counter()
    text = trio.run(record, events, args.minutes * 60, args.mic, clock=clock)
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
    if args.mic:
        began = time.perf_counter()
        again = replay_pipeline(log, [])
        wall = time.perf_counter() - began
        assert again.outputs == log.outputs, "the pipeline replay differs from the recording"
        print(f"replay from the microphone (no voice stages): {wall:.2f} s wall")


if __name__ == "__main__":
    main()
