"""Errors raised by mcp-affinity, and how a pydantic error becomes a message a person can act on."""

from __future__ import annotations

import types
import typing
from typing import Any, Union

import pulumi
from pydantic import BaseModel, ValidationError


class ConfigError(pulumi.RunError):
    """A stack's configuration is invalid; raised before any resource is registered.

    It subclasses :class:`pulumi.RunError` so that ``pulumi up`` prints the message alone, with
    no stack trace. ``problems`` holds one ``(key, message)`` pair per fault, where ``key`` is the
    full config path, e.g. ``mcp-affinity:services.tools.sessionMode``.
    """

    def __init__(self, stack: str, problems: list[tuple[str, str]]):
        self.stack = stack
        self.problems = problems
        lines = [f"invalid configuration for stack '{stack}':"]
        lines += [f"  {key}: {message}" for key, message in problems]
        super().__init__("\n".join(lines))


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
