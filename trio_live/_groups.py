"""Unwrapping the exception groups of nurseries that the library owns."""

from __future__ import annotations

from typing import NoReturn


def raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Raise the one plain error ``group`` holds as itself; else raise the group.

    The error keeps its traceback and its ``__cause__``.
    """
    if len(group.exceptions) == 1:
        (error,) = group.exceptions
        if not isinstance(error, BaseExceptionGroup):
            raise error from error.__cause__
    raise group
