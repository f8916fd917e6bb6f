"""Tools a model may call: their declaration, schema and argument checks.

Pure: no I/O, no event loop. A `Tool` is an async function with a name, a
description and a JSON schema for its arguments. `tool` builds one from a
function, deriving the schema from its type hints where they are simple
(``str``, ``int``, ``float``, ``bool``, ``list[...]``, ``Literal[...]``,
``Optional[...]``; a parameter with a default is not required), or taking
an explicit one.

`parse_arguments` turns the model's JSON text into keyword arguments, or
raises `ToolArgumentsError` with a message the model can read (not JSON,
not an object, a schema mismatch): the session turns it into an error
outcome, never a crash. The check covers the subset of JSON schema that
`tool` derives (types, ``enum``, ``required``, ``items``, extra properties).

The session runs the tools (``trio_live._toolruns``).
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Union

import attrs

from ._errors import LiveError

__all__ = ["Tool", "ToolArgumentsError", "ToolError", "parse_arguments", "tool", "tool_schema"]

ToolFunction = Callable[..., Awaitable[Any]]


class ToolError(LiveError):
    """A tool declaration that cannot be used (schema, name, duplicate...)."""


class ToolArgumentsError(ToolError):
    """The model's arguments for a call do not fit the tool (the model sees the message)."""


_SIMPLE: Mapping[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_of(hint: Any, where: str) -> dict[str, Any]:
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is list or hint is list:
        if not args:
            return {"type": "array"}
        return {"type": "array", "items": _schema_of(args[0], where)}
    if origin is Literal:
        values = list(args)
        kinds = {type(v) for v in values}
        if len(kinds) != 1 or not kinds <= set(_SIMPLE):
            raise ToolError(f"{where}: a Literal must hold values of one simple type")
        return {"type": _SIMPLE[kinds.pop()], "enum": values}
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return _schema_of(rest[0], where)
    raise ToolError(f"{where}: cannot derive a JSON schema from {hint!r}; pass parameters=")


def tool_schema(fn: ToolFunction) -> dict[str, Any]:
    """The JSON schema of ``fn``'s keyword arguments, derived from its type hints."""
    name = getattr(fn, "__name__", "tool")
    hints = typing.get_type_hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"tool {name}: *args and **kwargs cannot be described")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolError(f"tool {name}: positional-only parameters cannot be called by name")
        if param.name not in hints:
            raise ToolError(f"tool {name}: parameter {param.name!r} needs a type hint")
        properties[param.name] = _schema_of(hints[param.name], f"tool {name}, {param.name}")
        if param.default is param.empty:
            required.append(param.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _check_name(instance: Tool, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or len(value) > 64 or not all(c.isalnum() or c in "_-" for c in value):
        raise ToolError(f"a tool name is 1 to 64 letters, digits, '_' or '-', got {value!r}")


@attrs.frozen(kw_only=True)
class Tool:
    """A tool the model may call.

    Attributes:
        name: how the model calls it.
        description: what it does, for the model.
        parameters: the JSON schema of its arguments (an object schema).
        function: the async function, called with the arguments as keywords;
            its return value (any JSON value) is the result the model sees.
        interruptible: a barge-in cancels the call (recorded as cancelled);
            False shields it: it runs to its end (payments, messages sent)
            and its real result joins the history, even if the answer
            around it was cancelled.
        answer_late: a result that arrives after the user moved on starts a
            new answer (by default it only joins the history).
    """

    name: str = attrs.field(validator=_check_name)
    description: str
    parameters: Mapping[str, Any]
    function: ToolFunction = attrs.field(repr=False)
    interruptible: bool = True
    answer_late: bool = False


def tool(
    function: ToolFunction | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    interruptible: bool = True,
    answer_late: bool = False,
) -> Any:
    """Make a `Tool` of an async function (also as a decorator, with or without options).

    The name defaults to the function's, the description to its docstring,
    and the schema is derived from its type hints unless ``parameters`` is
    given.

    Raises:
        ToolError: the function is not async, or its schema cannot be derived.
    """

    def make(fn: ToolFunction) -> Tool:
        if not inspect.iscoroutinefunction(fn):
            raise ToolError(f"a tool must be an async function, got {fn!r}")
        schema = dict(parameters) if parameters is not None else tool_schema(fn)
        if schema.get("type") != "object":
            raise ToolError("a tool's parameters must be an object schema")
        return Tool(
            name=name or fn.__name__,
            description=description or inspect.getdoc(fn) or "",
            parameters=schema,
            function=fn,
            interruptible=interruptible,
            answer_late=answer_late,
        )

    return make if function is None else make(function)


def check_tools(tools: Sequence[Tool]) -> tuple[Tool, ...]:
    """``tools`` as a tuple, checked: all `Tool` values, names unique."""
    checked = tuple(tools)
    names: set[str] = set()
    for item in checked:
        if not isinstance(item, Tool):
            raise ToolError(f"tools must be Tool values (see trio_live.tool), got {item!r}")
        if item.name in names:
            raise ToolError(f"two tools are named {item.name!r}")
        names.add(item.name)
    return checked


_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _check(value: Any, schema: Mapping[str, Any], where: str) -> None:
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _TYPES and not _TYPES[kind](value):
        raise ToolArgumentsError(f"{where} must be of type {kind}, got {json.dumps(value)}")
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        raise ToolArgumentsError(f"{where} must be one of {json.dumps(enum)}")
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        for index, item in enumerate(value):
            _check(item, items, f"{where}[{index}]")
    properties = schema.get("properties")
    if isinstance(value, dict) and isinstance(properties, Mapping):
        for key in schema.get("required", ()):
            if key not in value:
                raise ToolArgumentsError(f"{where} lacks the required argument {key!r}")
        for key, item in value.items():
            if key not in properties:
                raise ToolArgumentsError(f"{where} has an unknown argument {key!r}")
            _check(item, properties[key], f"argument {key!r}")


def parse_arguments(item: Tool, text: str) -> dict[str, Any]:
    """The keyword arguments in the model's JSON ``text`` for ``item``.

    Raises:
        ToolArgumentsError: not JSON, not an object, or not what the schema says.
    """
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        raise ToolArgumentsError(f"the arguments are not JSON: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise ToolArgumentsError("the arguments must be a JSON object")
    _check(value, item.parameters, "the arguments")
    return value


for _error in (ToolError, ToolArgumentsError):
    _error.__module__ = "trio_live"
