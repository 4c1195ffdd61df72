"""Read a stack's Pulumi configuration into a pydantic model, or stop with a clear error.

Pulumi hands a program its configuration as strings keyed ``namespace:key`` (objects and arrays
JSON-encoded). :func:`load_stack_config` gathers every key of one namespace, so a key the model
does not know is an error, not a silent no-op.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import BaseModel, ValidationError

from .errors import ConfigError, describe_validation_error

M = TypeVar("M", bound=BaseModel)


def namespace_values(namespace: str) -> dict[str, Any]:
    """All configuration values under ``namespace:``, keyed without the namespace.

    JSON values (objects, arrays, numbers, booleans) are decoded; anything else stays a string.
    """
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        ns, _, key = full_key.partition(":")
        if ns == namespace and key:
            values[key] = _decode(value)
    return values


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


def secret_top_keys(namespace: str) -> frozenset[str]:
    """Keys of ``namespace`` (without it) whose value was ``secure:`` in the stack file, at any depth.

    Pulumi marks a whole top-level key secret when any value inside it is secure
    (``pulumi config set --secret --path services.tools.env.API_KEY``), so consumers treat every
    value that may hold a secret under such a key as one.
    """
    prefix = namespace + ":"
    keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    return frozenset(k[len(prefix):] for k in keys if k.startswith(prefix))


def load_stack_config(model: type[M], namespace: str, stack: str | None = None) -> M:
    """Validate the ``namespace`` configuration of the current stack against ``model``.

    Raises :class:`ConfigError` naming the stack, each bad key and what is allowed there. Call
    it before creating any resource so that a bad stack file registers nothing.
    """
    stack = stack or pulumi.get_stack()
    try:
        return model.model_validate(namespace_values(namespace))
    except ValidationError as error:
        raise ConfigError(stack, describe_validation_error(error, model, f"{namespace}:")) from None
