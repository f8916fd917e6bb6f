from __future__ import annotations

import types

import trio_live
import trio_live.models
import trio_live.policy
import trio_live.testing
import trio_live.voice
import trio_live.web


def test_all_is_sorted_and_complete() -> None:
    for module in (
        trio_live,
        trio_live.policy,
        trio_live.testing,
        trio_live.models,
        trio_live.voice,
        trio_live.web,
    ):
        names = module.__all__
        assert names == sorted(names)
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }
        public -= {"annotations"}
        assert set(names) - {"__version__"} == public


def test_version() -> None:
    assert trio_live.__version__.count(".") == 2


def test_public_errors_print_under_the_package_name() -> None:
    for name in trio_live.__all__:
        value = getattr(trio_live, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert value.__module__ == "trio_live", name
    assert repr(trio_live.ModelError("down")) == "ModelError('down')"
    assert f"{type(trio_live.PolicyError()).__module__}.PolicyError" == "trio_live.PolicyError"
