"""Read a stack's Pulumi configuration into a pydantic model, or stop with a clear error.

Pulumi hands a program its configuration as strings keyed ``namespace:key`` (objects and arrays
JSON-encoded). :func:`namespace_values` gathers every key of one namespace, so a key the model
does not know is an error, not a silent no-op.
"""

from __future__ import annotations

import json
from typing import Any

from .pulumi_shim import config_values, secret_config_keys


def namespace_values(namespace: str, text_keys: frozenset[str] = frozenset()) -> dict[str, Any]:
    """All configuration values under ``namespace:``, keyed without the namespace.

    JSON values (objects, arrays, numbers, booleans) are decoded, as ``pulumi.Config.get_object``
    does, except under ``text_keys``: keys whose type is text stay the text written (as
    ``pulumi.Config.get`` returns it), so ``prefix: "null"`` is the text ``null``, not None.
    """
    raw = config_values()
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        ns, _, key = full_key.partition(":")
        if ns == namespace and key:
            values[key] = value if key in text_keys else _decode(value)
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
    keys = secret_config_keys()
    return frozenset(k[len(prefix):] for k in keys if k.startswith(prefix))
