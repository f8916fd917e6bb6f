"""attrs validators shared by the configuration classes.

Each names the field and the bad value, e.g. ``window must be > 0, got -1.0``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, TypeVar

import attrs


def positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """The value must be > 0 (infinity allowed: "no limit")."""
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """The value must be >= 0."""
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def finite_non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """The value must be a finite number >= 0."""
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


E = TypeVar("E", bound=enum.Enum)


def to_enum(kind: type[E], name: str, value: object) -> E:
    """A member of ``kind`` given as itself or its value; anything else a `ValueError`.

    The error names the option and its allowed values, e.g. ``trigger must be
    one of 'end_of_speech', 'final_transcription', got 'bogus'``.
    """
    if isinstance(value, kind):
        return value
    for member in kind:
        if member.value == value:
            return member
    allowed = ", ".join(repr(member.value) for member in kind)
    raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def one_of(*allowed: object) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: the value must be one of ``allowed``."""
    names = ", ".join(repr(value) for value in allowed)

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in allowed:
            raise ValueError(f"{attribute.name} must be one of {names}, got {value!r}")

    return check
