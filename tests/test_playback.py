"""The playback tracker alone, on the mock clock: the echo guard's times, reports to a session."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing
from _fakes import SpeakingRecorder

from trio_live import (
    LiveSession,
    Part,
    audio_part,
    end_of_turn,
    is_answer_complete,
    is_interrupted,
    is_text,
    is_turn_complete,
    start_of_speech,
    text_part,
)
from trio_live.testing import ScriptedModel
from trio_live.voice import PlaybackTracker

Vad = SpeakingRecorder


@attrs.define(eq=False)
class Recording(LiveSession):
    reports: list[tuple[int, int, bool]] = attrs.field(init=False, factory=list)

    def report_playback(self, turn: int, chars: int, *, finished: bool = False) -> None:
        super().report_playback(turn, chars, finished=finished)
        self.reports.append((turn, chars, finished))


def texts(history: list[Part]) -> list[str]:
    return [p.text for p in history if is_text(p)]


async def test_guard_on_from_the_first_audio_until_it_had_time_to_play(
    autojump_clock: trio.abc.Clock,
) -> None:
    vad = Vad()
    tracker = PlaybackTracker(Recording(ScriptedModel()), stages=[object(), vad], tail=0.5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        start = trio.current_time()
        tracker.audio_sent(1, 2.0)
        assert vad.model_speaking is True
        assert tracker.active
        await trio.sleep(1.0)
        tracker.audio_sent(1, 2.0)  # queued behind the first: plays until start + 4
        await trio.sleep(10)
        assert not tracker.active
        # A chunk sent after the first had played starts playing when it is sent.
        tracker.audio_sent(2, 1.0)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert vad.history == [
        (True, start),
        (False, start + 4.5),  # the audio had time to play, plus the tail
        (True, start + 11),
        (False, start + 12.5),
    ]


async def test_a_chunk_at_the_deadline_keeps_the_guard_on(autojump_clock: trio.abc.Clock) -> None:
    vad = Vad()
    tracker = PlaybackTracker(Recording(ScriptedModel()), stages=[vad], tail=0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        start = trio.current_time()
        tracker.audio_sent(1, 1.0)
        await trio.sleep(1.0)  # the guard's deadline, exactly: the next chunk starts now
        tracker.audio_sent(1, 1.0)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert vad.history == [(True, start), (False, start + 2)]


async def test_finished_report_and_interruption_clear_the_guard(
    autojump_clock: trio.abc.Clock,
) -> None:
    vad = Vad()
    session = Recording(ScriptedModel())
    tracker = PlaybackTracker(session, stages=[vad], tail=60)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        start = trio.current_time()
        tracker.audio_sent(1, 2.0)
        await trio.sleep(1)
        tracker.report(1, 8)
        assert vad.model_speaking is True  # not finished yet
        await trio.sleep(1)
        tracker.report(1, 12, finished=True)
        assert vad.model_speaking is False
        await trio.sleep(1)
        # A report or an interruption of an older turn leaves a newer turn's guard on.
        tracker.audio_sent(3, 10.0)
        tracker.report(2, 5, finished=True)
        tracker.interrupted(2)
        assert vad.model_speaking is True
        await trio.sleep(1)
        tracker.interrupted(3)
        assert vad.model_speaking is False
        await trio.sleep(1)
        tracker.audio_sent(4, 10.0)
        tracker.interrupted(None)  # whatever plays
        assert not tracker.active
        # The cleared guard's timer does not fire later.
        await trio.sleep(100)
        nursery.cancel_scope.cancel()
    assert vad.history == [
        (True, start),
        (False, start + 2),
        (True, start + 3),
        (False, start + 4),
        (True, start + 5),
        (False, start + 5),
    ]
    assert session.reports == [(1, 8, False), (1, 12, True), (2, 5, True)]


async def test_part_sent_reads_the_turn_and_the_duration(autojump_clock: trio.abc.Clock) -> None:
    vad = Vad()
    tracker = PlaybackTracker(Recording(ScriptedModel()), stages=[vad], tail=0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        start = trio.current_time()
        tracker.part_sent(audio_part(b"\x00\x00" * 8000).with_metadata(turn=1))  # 0.5 s
        tracker.part_sent(audio_part(b"\x00\x00" * 8000))  # no turn: ignored
        tracker.part_sent(text_part("hi").with_metadata(turn=1))  # not audio: ignored
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert vad.history == [(True, start), (False, start + 0.5)]


async def test_without_a_vad_there_is_no_guard_but_reports_go_on() -> None:
    session = Recording(ScriptedModel())
    tracker = PlaybackTracker(session, stages=[object()])
    tracker.audio_sent(1, 1.0)
    assert not tracker.active
    tracker.report(1, 3)
    tracker.report(1, 2)
    assert tracker.heard(1) == 3
    assert tracker.heard(0) == 0
    tracker.report(2, 1, finished=True)
    assert tracker.heard(1) == 0
    assert tracker.heard(2) == 1
    assert session.reports == [(1, 3, False), (1, 2, False), (2, 1, True)]
    with pytest.raises(ValueError, match="chars"):
        tracker.report(2, -1)
    with pytest.raises(ValueError, match="tail must be >= 0"):
        PlaybackTracker(session, tail=-1)


async def test_reports_reach_the_session_which_keeps_only_what_was_heard(
    autojump_clock: trio.abc.Clock,
) -> None:
    vad = Vad()
    model = ScriptedModel([["Hello there. ", "How are you?"]], part_delay=1.0)
    async with LiveSession(model, track_playback=True) as session:
        tracker = PlaybackTracker(session, stages=[vad], tail=0.5)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tracker.run)
            await session.send(end_of_turn("q"))
            first = await session.receive()
            assert first.text == "Hello there. "
            tracker.audio_sent(1, 3.0)  # its speech goes out
            tracker.report(1, 5)  # "Hello" was heard
            await session.send(start_of_speech())  # the user barges in
            assert is_answer_complete(await session.receive())
            stop = await session.receive()
            assert is_interrupted(stop)
            tracker.interrupted(stop.metadata["turn"])
            assert vad.model_speaking is False
            assert is_turn_complete(await session.receive())
            assert texts(session.history()) == ["q", "Hello"]
            nursery.cancel_scope.cancel()
    assert [value for value, _ in vad.history] == [True, False]


async def test_a_finished_report_commits_the_whole_answer(autojump_clock: trio.abc.Clock) -> None:
    model = ScriptedModel([["a", "b"]])
    async with LiveSession(model, track_playback=True) as session:
        tracker = PlaybackTracker(session)
        await session.send(end_of_turn("q"))
        for _ in range(3):
            await session.receive()
        await trio.testing.wait_all_tasks_blocked()
        assert texts(session.history()) == ["q"]  # generated, not heard yet
        tracker.report(1, tracker.heard(1), finished=True)
        assert texts(session.history()) == ["q", "a", "b"]


async def test_echo_guard_switched_off_and_on(autojump_clock: trio.abc.Clock) -> None:
    vad = Vad()
    tracker = PlaybackTracker(Recording(ScriptedModel()), stages=[vad], tail=0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        start = trio.current_time()
        tracker.audio_sent(1, 5.0)
        await trio.sleep(1)
        tracker.echo_guard = False  # a headset: off at once
        assert not tracker.active
        tracker.audio_sent(1, 5.0)
        tracker.audio_sent(2, 5.0)
        assert vad.model_speaking is False
        await trio.sleep(1)
        tracker.interrupted(2)  # nothing plays now
        tracker.echo_guard = True
        assert vad.model_speaking is False  # nothing plays: it comes on with the next audio
        tracker.audio_sent(3, 1.0)
        await trio.sleep(5)
        # Turned on while speech plays, it comes on at once.
        tracker.echo_guard = False
        tracker.audio_sent(4, 5.0)
        await trio.sleep(1)
        tracker.echo_guard = True
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert tracker.echo_guard is True
    assert vad.history == [
        (True, start),
        (False, start + 1),
        (True, start + 2),
        (False, start + 3),
        (True, start + 8),
        (False, start + 12),
    ]


@attrs.define(eq=False)
class Hurried:
    """Stands for a voice activity stage's ``answer_playing``: records each set, with the time."""

    history: list[tuple[bool, float]] = attrs.field(factory=list)
    _playing: bool = False

    @property
    def answer_playing(self) -> bool:
        return self._playing

    @answer_playing.setter
    def answer_playing(self, value: bool) -> None:
        self._playing = value
        self.history.append((value, trio.current_time()))


async def test_a_reporting_listener_ends_the_playback_by_its_report(
    autojump_clock: trio.abc.Clock,
) -> None:
    vad, hurried = Vad(), Hurried()
    session = Recording(ScriptedModel())
    tracker = PlaybackTracker(
        session, stages=[vad, hurried], tail=0.5, reports=True, report_timeout=5.0
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        start = trio.current_time()
        tracker.audio_sent(1, 2.0)
        await trio.sleep(3)  # past the guessed end and its tail: still playing
        assert tracker.active
        assert tracker.playing
        tracker.answer_complete(1)  # the listener reports it, not the tracker
        tracker.report(1, 8, finished=True)
        assert not tracker.playing
        # A listener that stops reporting: the guess plus report_timeout bounds it.
        tracker.audio_sent(2, 1.0)
        tracker.answer_complete(2)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert vad.history == [(True, start), (False, start + 3), (True, start + 3), (False, start + 9)]
    assert hurried.history == vad.history
    assert session.reports == [(1, 8, True)]


async def test_answer_playing_follows_the_playback_whatever_the_guard(
    autojump_clock: trio.abc.Clock,
) -> None:
    vad, hurried = Vad(), Hurried()
    tracker = PlaybackTracker(Recording(ScriptedModel()), stages=[vad, hurried], tail=0.5)
    tracker.echo_guard = False  # a headset
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        start = trio.current_time()
        tracker.audio_sent(1, 1.0)
        assert hurried.answer_playing is True
        await trio.sleep(0.5)
        tracker.interrupted(1)
        tracker.audio_sent(1, 1.0)  # late audio of the interrupted turn: not played
        tracker.audio_sent(2, 1.0)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert vad.history == []
    assert not tracker.active
    assert hurried.history == [
        (True, start),
        (False, start + 0.5),
        (True, start + 0.5),
        (False, start + 2.0),
    ]


async def test_a_listener_that_does_not_report_hears_a_complete_answer_once_played(
    autojump_clock: trio.abc.Clock,
) -> None:
    session = Recording(ScriptedModel())
    tracker = PlaybackTracker(session, tail=0.5)  # reports=False: an old client
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tracker.run)
        start = trio.current_time()
        tracker.audio_sent(1, 2.0)
        tracker.report(1, 4)  # it may still say how far it heard
        await trio.sleep(0.5)
        tracker.answer_complete(1)
        assert session.reports == [(1, 4, False)]  # still playing
        await trio.sleep(1.99)
        await trio.testing.wait_all_tasks_blocked()
        assert session.reports == [(1, 4, False)]
        await trio.sleep(0.01)  # its audio, plus the tail
        await trio.testing.wait_all_tasks_blocked()
        assert trio.current_time() == start + 2.5
        assert session.reports[1:] == [(1, 4, True)]
        tracker.answer_complete(2)  # no speech (speech off): finished at once
        assert session.reports[2:] == [(2, 0, True)]
        tracker.audio_sent(3, 2.0)
        tracker.interrupted(3)  # cut: its turn ends without a playback report
        tracker.answer_complete(3)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert session.reports == [(1, 4, False), (1, 4, True), (2, 0, True)]
