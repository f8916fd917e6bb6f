from __future__ import annotations

import hypothesis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_live import Part, RollingPrompt, text_part
from trio_live._prompt import Cursor


def user(text: str) -> Part:
    return text_part(text, role="user")


def model(text: str) -> Part:
    return text_part(text, role="model")


def texts(parts: list[Part]) -> list[str]:
    return [p.text for p in parts]


def test_pending_streams_history_then_new_parts() -> None:
    prompt = RollingPrompt()
    prompt.add(user("a"), 0.0)
    cursor = prompt.pending()
    assert texts(cursor.take()) == ["a"]
    assert cursor.next() is None
    prompt.add(user("b"), 1.0)
    assert cursor.available() == 1
    assert texts(cursor.take()) == ["b"]
    assert not cursor.finalized


def test_finalize_closes_the_prompt_and_opens_the_next_with_history() -> None:
    prompt = RollingPrompt()
    prompt.add(user("q1"), 0.0)
    first = prompt.pending()
    closed = prompt.finalize(1.0)
    assert closed is first
    assert closed.finalized
    assert texts(closed.take()) == ["q1"]
    assert closed.exhausted
    prompt.add(model("a1"), 2.0)
    # The closed prompt does not see parts added after it was finalized.
    assert closed.available() == 0
    nxt = prompt.pending()
    assert nxt is not first
    assert texts(nxt.take()) == ["q1", "a1"]
    assert closed.size == 1


def test_stash_joins_in_order_on_apply() -> None:
    prompt = RollingPrompt()
    prompt.add(user("q"), 0.0)
    prompt.stash(user("s1"))
    prompt.stash(user("s2"))
    assert prompt.history() == [user("q")]
    assert prompt.stashed == (user("s1"), user("s2"))
    prompt.add(model("answer"), 1.0)
    assert prompt.apply_stash(2.0) == 2
    assert texts(prompt.history()) == ["q", "answer", "s1", "s2"]
    assert prompt.stashed == ()
    assert [t for t, _ in prompt.timed_history()] == [0.0, 1.0, 2.0, 2.0]


def test_age_cut_drops_whole_exchanges_only() -> None:
    prompt = RollingPrompt(window=10.0)
    prompt.add(user("q1"), 0.0)
    prompt.add(model("a1"), 1.0)
    prompt.add(user("q2"), 5.0)
    prompt.add(model("a2"), 12.0)
    prompt.add(user("q3"), 13.0)
    # At t=11.5, exchange 1 ended at 1.0 (older than 1.5): dropped whole.
    prompt.finalize(11.5)
    assert texts(prompt.history()) == ["q2", "a2", "q3"]
    # At t=20, exchange 2's newest part (a2 at 12) is within the window; q2 stays
    # with its answer even though q2 itself is older than the window.
    prompt.finalize(20.0)
    assert texts(prompt.history()) == ["q2", "a2", "q3"]
    prompt.finalize(22.5)
    assert texts(prompt.history()) == ["q3"]


def test_open_exchange_is_never_cut_by_age() -> None:
    prompt = RollingPrompt(window=1.0)
    prompt.add(user("q1"), 0.0)
    prompt.finalize(100.0)
    assert texts(prompt.history()) == ["q1"]


def test_window_none_keeps_everything() -> None:
    prompt = RollingPrompt(window=None)
    prompt.add(user("q"), 0.0)
    prompt.add(model("a"), 0.0)
    prompt.add(user("q2"), 1e9)
    prompt.finalize(1e9)
    assert len(prompt) == 3


def test_cap_cuts_whole_exchanges_oldest_first() -> None:
    prompt = RollingPrompt(window=None, max_parts=4)
    for i in range(3):
        prompt.add(user(f"q{i}"), i)
        prompt.add(model(f"a{i}"), i)
    assert texts(prompt.history()) == ["q1", "a1", "q2", "a2"]
    prompt.add(user("q3"), 3)
    assert texts(prompt.history()) == ["q2", "a2", "q3"]


def test_cap_cuts_inside_an_exchange_that_alone_is_too_long() -> None:
    prompt = RollingPrompt(window=None, max_parts=3)
    for i in range(5):
        prompt.add(user(f"u{i}"), i)
    assert texts(prompt.history()) == ["u2", "u3", "u4"]


def test_default_cap_fits_ten_minutes_of_20ms_audio() -> None:
    assert RollingPrompt().max_parts is not None
    assert RollingPrompt().max_parts >= 600 / 0.02  # type: ignore[operator]


@pytest.mark.parametrize(("window", "max_parts"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bad_settings_name_the_value(window: float, max_parts: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        RollingPrompt(window=window, max_parts=max_parts)


def test_detached_prompts_survive_compaction() -> None:
    prompt = RollingPrompt(window=None, max_parts=100)
    prompt.add(user("q"), 0)
    closed = prompt.finalize(0)
    for i in range(1000):
        prompt.add(model(f"a{i}"), i)
        prompt.add(user(f"q{i}"), i)
    prompt.finalize(1000)
    # The list was compacted many times; the old prompt still reads its parts.
    assert texts(closed.take()) == ["q"]
    assert len(prompt) <= 100
    assert prompt._base > 0  # compaction really happened


def test_wakers_fire_on_add_and_finalize() -> None:
    prompt = RollingPrompt()
    cursor = prompt.pending()
    calls: list[str] = []
    cursor.waker = lambda: calls.append("woke")
    prompt.add(user("x"), 0)
    assert calls == ["woke"]
    prompt.add(user("y"), 0)  # the waker fires once, then is cleared
    assert calls == ["woke"]
    cursor.waker = lambda: calls.append("final")
    prompt.finalize(0)
    assert calls == ["woke", "final"]


class Reference:
    """The rolling prompt's rules, written plainly: whole lists, no compaction."""

    def __init__(self, window: float | None, cap: int | None) -> None:
        self.window, self.cap = window, cap
        self.parts: list[Part] = []
        self.times: list[float] = []
        self.start = 0

    def boundaries(self) -> list[int]:
        # Where an exchange starts: the first non-model part after a model part.
        roles = [p.role for p in self.parts]
        return [
            i
            for i in range(max(1, self.start + 1), len(roles))
            if roles[i - 1] == "model" and roles[i] != "model"
        ]

    def cut(self, now: float) -> None:
        starts = self.boundaries()
        if self.window is not None:
            while starts and self.times[starts[0] - 1] < now - self.window:
                self.start = starts.pop(0)
        if self.cap is not None:
            while starts and len(self.parts) - self.start > self.cap:
                self.start = starts.pop(0)
            self.start = max(self.start, len(self.parts) - self.cap)

    def add(self, part: Part, now: float) -> None:
        self.parts.append(part)
        self.times.append(now)
        if self.cap is not None and len(self.parts) - self.start > self.cap:
            self.cut(now)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("user"), st.integers(0, 3)),
        st.tuples(st.just("model"), st.integers(0, 3)),
        st.tuples(st.just("finalize"), st.integers(0, 3)),
        # Many parts at once (an exchange of n user parts, then n answers),
        # so that the list is compacted.
        st.tuples(st.just("burst"), st.integers(1, 80)),
        st.tuples(st.just("finalize"), st.integers(0, 3)),
        # Read n parts of the open prompt one by one.
        st.tuples(st.just("read"), st.integers(1, 5)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 20) | st.just(50) | st.none(), st.sampled_from([None, 2.0, 5.0]))
def test_history_is_a_suffix_cut_on_boundaries(
    script: list[tuple[str, int]], cap: int | None, window: float | None
) -> None:
    prompt = RollingPrompt(window=window, max_parts=cap)
    reference = Reference(window, cap)
    added: list[Part] = []
    # The open prompt: what it must hold, and what was read of it so far.
    opened_at = 0
    read: list[Part] = []
    closed_prompts: list[tuple[Cursor, list[Part]]] = []
    now = 0.0

    def add(part: Part) -> None:
        added.append(part)
        prompt.add(part, now)
        reference.add(part, now)

    # The last finalize cuts (and compacts) whatever the script left.
    for n, (op, arg) in enumerate([*script, ("finalize", 0)]):
        if op == "finalize":
            now += arg
            expected = reference.parts[opened_at:]
            closed = prompt.finalize(now)
            assert closed.finalized
            assert closed.size == len(expected)
            assert closed.available() == len(expected) - len(read)
            if n % 2:
                # Read later, once more parts were added and cut.
                closed_prompts.append((closed, expected[len(read) :]))
            else:
                assert read + closed.take() == expected
                assert closed.exhausted
                assert closed.next() is None
            reference.cut(now)
            opened_at, read = reference.start, []
            assert prompt.pending().position == opened_at
            # The window rule: the oldest exchange kept (unless it is the
            # open one) has its newest part within the window.
            starts = reference.boundaries()
            if window is not None and starts:
                assert reference.times[starts[0] - 1] >= now - window
        elif op == "burst":
            for k in range(arg):
                add(text_part(f"u{n}.{k}", role="user"))
            for k in range(arg):
                add(text_part(f"m{n}.{k}", role="model"))
        elif op == "read":
            cursor = prompt.pending()
            for _ in range(arg):
                part = cursor.next()
                if part is None:
                    assert len(read) == len(reference.parts) - opened_at
                    break
                read.append(part)
            assert cursor.available() == len(reference.parts) - opened_at - len(read)
        else:
            now += arg
            add(text_part(f"{op}{n}", role=op))
        history = prompt.history()
        # Exactly what the plain rules keep: no more, and no less.
        assert history == reference.parts[reference.start :]
        assert prompt.timed_history() == list(
            zip(reference.times[reference.start :], history, strict=True)
        )
        assert len(prompt) == len(history)
        # Never more than the cap, always the newest parts, in order.
        if cap is not None:
            assert len(history) <= cap
        assert history == added[len(added) - len(history) :]
        # The kept history starts at an exchange boundary unless the open
        # exchange alone is over the cap.
        if history and len(history) < len(added):
            before = added[len(added) - len(history) - 1]
            starts_exchange = before.role == "model" and history[0].role == "user"
            assert starts_exchange or len(history) == cap
    # Prompts closed long ago still read their own parts after compaction.
    hypothesis.event("compacted" if prompt._base else "not compacted")
    for i, (closed, expected) in enumerate(closed_prompts):
        assert closed.available() == len(expected)
        if i % 2:
            assert closed.take() == expected
        else:
            got = []
            while (part := closed.next()) is not None:
                got.append(part)
            assert got == expected
        assert closed.exhausted
