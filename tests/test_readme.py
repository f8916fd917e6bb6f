"""The README's code examples run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import trio
import trio.testing

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def block_containing(marker: str) -> str:
    (block,) = [b for b in python_blocks() if marker in b]
    return block


def test_quick_start_runs(capsys: Any) -> None:
    code = block_containing("async def counting_model")
    exec(compile(code, "README quick start", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "text/plain '1 '",
        "text/plain '2 '",
        "text/plain '3 '",
        "application/x.trio-live.answer-complete ''",
        "application/x.trio-live.turn-complete ''",
    ]


def test_mock_clock_example_passes() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block_containing("autojump_clock"), "README test", "exec"), namespace)
    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(namespace["test_barge_in"], clock, clock=clock)


def test_every_python_block_compiles_and_imports_exist() -> None:
    import ast
    import importlib

    blocks = python_blocks()
    assert len(blocks) > 5
    for block in blocks:
        tree = compile(
            block, "README", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trio_live"):
                module = importlib.import_module(node.module or "")
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module}.{alias.name}"


def test_tool_example_runs() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(block_containing("max_tool_rounds=4"), "README tools", "exec"), namespace)
    from trio_live import end_of_turn
    from trio_live.testing import play_timeline

    session = namespace["session"]
    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(play_timeline, session, [(0.0, end_of_turn("time?"))], clock=clock)
    assert [p.content for p in session.history()][-1] == "It is noon."
    assert '"outcome": "result", "content": "12:00"' in session.history()[-2].text
