from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from trio_live import AudioFormatError, Part, audio_rate
from trio_live.voice import WavSource, read_wav, send_paced, write_wav

DATA = Path(__file__).parent / "data"


async def collect_timed(receive: trio.MemoryReceiveChannel[Part]) -> list[tuple[float, Part]]:
    async with receive:
        return [(trio.current_time(), part) async for part in receive]


async def test_frame_k_is_sent_at_start_plus_k_frames(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pcm, rate = read_wav(DATA / "hello.wav")
    send, receive = trio.open_memory_channel[Part](0)
    start = trio.current_time() + 1.0
    received: list[tuple[float, Part]] = []

    async def play() -> None:
        with send:
            end = await send_paced(send, pcm, rate=rate, frame_duration=0.02, start=start)
            assert end == pytest.approx(start + len(pcm) / 2 / rate)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(play)
            received = await collect_timed(receive)
    assert len(received) == -(-len(pcm) // 640)
    for index, (at, part) in enumerate(received):
        assert at == start + index * 320 / 16000  # exact: from the sample index
        assert audio_rate(part) == 16000
        assert part.role == "user"
    assert b"".join(p.data for _, p in received) == pcm
    assert len(received[-1][1].data) == (len(pcm) % 640 or 640)


async def test_pacing_does_not_drift_with_a_slow_consumer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receive = trio.open_memory_channel[Part](100)
    start = trio.current_time()
    pcm = bytes(16000 * 2)  # 1 s

    async def slow_consumer() -> list[float]:
        times = []
        async with receive:
            async for _ in receive:
                times.append(trio.current_time())
                await trio.sleep(0.015)  # takes time but less than a frame
        return times

    times: list[float] = []

    async def consume() -> None:
        times.extend(await slow_consumer())

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            with send:
                await send_paced(send, pcm, frame_duration=0.1)
    assert times == [start + k * 1600 / 16000 for k in range(10)]


async def test_not_realtime_sends_without_waiting(autojump_clock: trio.testing.MockClock) -> None:
    send, receive = trio.open_memory_channel[Part](1000)
    start = trio.current_time()
    with send:
        await send_paced(send, bytes(32000), realtime=False)
    assert trio.current_time() == start
    assert len(receive.receive_nowait().data) == 640


async def test_wav_source_resamples_pads_and_closes(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "tone.wav"
    write_wav(path, bytes(8000 * 2), 8000)  # 1 s at 8 kHz
    source = WavSource(path, rate=16000, lead_in=0.5, tail=0.25, frame_duration=0.05)
    send, receive = trio.open_memory_channel[Part](0)
    start = trio.current_time()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(source.run, send)
            received = await collect_timed(receive)
    assert len(received) == 35
    assert received[-1][0] == start + 34 * 800 / 16000
    assert all(audio_rate(p) == 16000 for _, p in received)
    assert sum(len(p.data) for _, p in received) == 1.75 * 16000 * 2


async def test_wav_source_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    send, _receive = trio.open_memory_channel[Part](10)
    with pytest.raises(AudioFormatError):
        await WavSource(path).run(send)
    with pytest.raises(ValueError, match="frame_duration"):
        WavSource(path, frame_duration=0.0)
    with pytest.raises(AudioFormatError):
        await send_paced(send, b"abc")
    with pytest.raises(ValueError, match="frame_duration"):
        await send_paced(send, b"", frame_duration=5.0)
