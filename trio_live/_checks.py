"""attrs validators shared by the configuration classes.

Each names the field and the bad value, e.g. ``window must be > 0, got -1.0``.
"""

from __future__ import annotations

import math
from typing import Any

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
