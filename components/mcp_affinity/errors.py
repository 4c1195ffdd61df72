"""Errors raised by mcp-affinity, and how a pydantic error becomes a message a person can act on."""

from __future__ import annotations

import types
import typing
from typing import Any, Optional, Union

import pulumi
from pydantic import BaseModel, ValidationError


class SettingsError(pulumi.RunError, ValueError):
    """Settings are invalid: a component's, a settings model's or a stack file's. The one error
    type of mcp-affinity for bad input, raised before anything is registered.

    It subclasses :class:`pulumi.RunError`, so ``pulumi up`` prints the message alone, with no
    stack trace, and ``mcp-affinity plan`` exits 2 (https://www.pulumi.com/docs/reference/pkg/python/pulumi/,
    ``RunError``: "a clean exit rather than the usual verbose unhandled error logic"). It is also
    a ``ValueError``. ``what`` names the settings (``McpMeshService 'notes'``,
    ``McpMeshServiceArgs``); ``problems`` holds one ``(path, message)`` pair per fault, ``path``
    the field as written: camelCase, dotted (``access.members.0``; ``""`` for the whole).
    """

    def __init__(self, what: str, problems: list[tuple[str, str]], heading: Optional[str] = None):
        self.what, self.problems = what, problems
        lines = [heading or f"invalid settings for {what}:"]
        lines += [f"  {key}: {message}" if key else f"  {message}" for key, message in problems]
        super().__init__("\n".join(lines))

    @classmethod
    def of(cls, what: str, error: ValidationError, model: type[BaseModel], prefix: str = "") -> "SettingsError":
        """The faults of a pydantic error on ``model``, each under its path (``prefix`` first)."""
        items = [dict(item, loc=written_path(model, item["loc"])) for item in error.errors()]
        return cls(what, [(key.strip("."), message) for key, message in describe_errors(items, model, prefix or "")])


class ConfigError(SettingsError):
    """A stack's configuration is invalid; raised before any resource is registered.

    A :class:`SettingsError` (so a :class:`pulumi.RunError`: ``pulumi up`` prints the message
    alone, with no stack trace). ``problems`` holds one ``(key, message)`` pair per fault, where
    ``key`` is the full config path, e.g. ``mcp-affinity:services.tools.sessionMode``.
    """

    def __init__(self, stack: str, problems: list[tuple[str, str]]):
        self.stack = stack
        super().__init__(f"stack '{stack}'", problems, heading=f"invalid configuration for stack '{stack}':")


def describe_validation_error(error: ValidationError, model: type[BaseModel], prefix: str,
                              show_input: bool = True) -> list[tuple[str, str]]:
    """Turn a pydantic error on ``model`` into ``(key, message)`` pairs named by config path.

    An unknown key is reported with the keys that are allowed at that place. ``show_input=False``
    keeps the offending value out of the message (for keys that hold secrets).
    """
    return describe_errors(error.errors(), model, prefix, show_input)


def describe_errors(items: list[dict], model: type[BaseModel], prefix: str,
                    show_input: bool = True) -> list[tuple[str, str]]:
    """:func:`describe_validation_error` for pydantic error dicts (``loc`` relative to ``model``)."""
    problems = []
    for item in items:
        loc = [str(part) for part in item["loc"] if str(part) != "[key]"]
        key = prefix + ".".join(loc) if prefix.endswith(":") else ".".join([prefix, *loc])
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            message = "unknown key; allowed keys here: " + ", ".join(allowed)
        else:
            message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if item["type"] == "missing":
                message = "required, but missing"
            # A rule across fields names what it found itself; a value check shows the value.
            if (show_input and item["type"] not in ("missing", "rule") and "input" in item
                    and not isinstance(item["input"], (dict, list))):
                message += f" (got {item['input']!r})"
        if "[key]" in [str(part) for part in item["loc"]]:
            message = "this key: " + message
        problems.append((key.rstrip("."), message))
    return problems


def written_path(model: Any, loc: tuple) -> tuple:
    """``loc`` with each field as its camelCase key (pydantic reports a field by the name it was
    given, ``session_mode`` or ``sessionMode``); map keys and list indexes stay as they are."""
    current, written = model, []
    for part in loc:
        current = unwrap_annotation(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(((n, f) for n, f in current.model_fields.items() if part in (n, f.alias)), None)
            written.append(field[1].alias or field[0] if field else part)
            current = field[1].annotation if field else None
        elif typing.get_origin(current) is dict and part != "[key]":
            written.append(part)
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) in (list, tuple) and isinstance(part, int):
            written.append(part)
            current = typing.get_args(current)[0]
        else:
            written.append(part)
    return tuple(written)


def _allowed_keys(model: Any, path: list[str]) -> list[str]:
    """The config keys (aliases) a model accepts at ``path``, walking through maps and models."""
    current: Any = model
    for part in path:
        current = unwrap_annotation(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
    current = unwrap_annotation(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items())
    return []


def unwrap_annotation(annotation: Any) -> Any:
    """Strip Optional[...] / X | None and Annotated[...] so a walk reaches the model or container inside."""
    while typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0]
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation
