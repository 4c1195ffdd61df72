"""Faults of one stack file, gathered in one pass, each under the key path the user wrote.

:class:`Problems` collects ``(key, message)`` pairs from every component's settings (their field
checks and their own rules across fields, which pydantic reports per field) and from the rules
across components; :func:`validate_fields` validates each top-level key, and each entry of a map
of services, on its own, so a fault in one never hides the faults of another.

No message prints a value of a key that holds a ``secure:`` value: such keys never echo their
input, and any text found under them is replaced by ``[secret]`` in every message.
"""

from __future__ import annotations

import typing
from typing import Any, Callable, Optional

from pydantic import BaseModel, TypeAdapter, ValidationError

from mcp_affinity import ConfigError
from mcp_affinity.errors import describe_errors, unwrap_annotation
from mcp_affinity.wire import MASKED


class Problems:
    """Faults found by the validation pass, each under the config key it concerns.

    ``secret_keys``: top-level keys holding a secure value; ``raw``: the namespace's values, whose
    texts under those keys are kept out of every message.
    """

    def __init__(self, stack: str, namespace: str, secret_keys: frozenset[str] = frozenset(),
                 raw: Optional[dict] = None):
        self.stack, self.namespace, self.secret_keys = stack, namespace, secret_keys
        self.items: list[tuple[str, str]] = []
        self._secrets = sorted({t for k in secret_keys for t in _texts((raw or {}).get(k))}, key=len, reverse=True)

    def add(self, key: str, message: str) -> None:
        self.items.append((f"{self.namespace}:{key}", message))

    def add_errors(self, key: str, model: Any, errors: list[dict],
                   remap: Optional[Callable[[list[str]], str]] = None) -> None:
        """Record pydantic errors (``loc`` relative to ``key``, "" for the top level); ``remap`` turns a
        ``loc`` into the key the user wrote when it differs (a load-balancer route defined by a service)."""
        for error in errors:
            where = remap([str(p) for p in error["loc"]]) if remap else key
            relative = dict(error, loc=()) if remap else error
            top = (where or str(error["loc"][0])).split(".")[0]
            prefix = f"{self.namespace}:{where}"
            self.items += describe_errors([relative], model, prefix, show_input=top not in self.secret_keys)

    def build(self, key: str, model: type[BaseModel], values: dict,
              remap: Optional[Callable[[list[str]], str]] = None) -> Any:
        """``model(**values)``, or None with each fault recorded under ``key`` (or where ``remap`` says)."""
        try:
            return model.model_validate(values)
        except ValidationError as error:
            self.add_errors(key, model, error.errors(), remap)
        except ValueError as error:
            self.add(key, str(error))
        return None

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.stack, self._redacted())

    def _redacted(self) -> list[tuple[str, str]]:
        seen, items = set(), []
        for key, message in self.items:
            for text in self._secrets:
                message = message.replace(text, MASKED)
            if (key, message) not in seen:
                seen.add((key, message))
                items.append((key, message))
        return items


def _texts(value: Any) -> list[str]:
    """Every text inside ``value`` that could be a secret (long enough to mean something)."""
    if isinstance(value, str):
        return [value] if len(value) >= 4 and value != MASKED else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def validate_fields(model: type[BaseModel], raw: dict, problems: Problems) -> Any:
    """``model`` built from ``raw`` one top-level key at a time (each entry of a map of objects on
    its own); a refused key or entry is recorded and left out (None for a required key), so the
    rest is still validated and checked in the same pass."""
    values: dict[str, Any] = {}
    by_alias = {field.alias or name: name for name, field in model.model_fields.items()}
    for key in sorted(set(raw) - set(by_alias)):
        problems.add(key, "unknown key; allowed keys here: " + ", ".join(sorted(by_alias)))
    for alias, name in by_alias.items():
        field = model.model_fields[name]
        if alias not in raw:
            if field.is_required():
                problems.add(alias, "required, but missing")
                values[name] = None
            continue
        values[name] = _field(model, alias, field, raw[alias], problems)
    return model.model_construct(**{k: v for k, v in values.items() if v is not None or model.model_fields[k].is_required()})


def _field(model: type[BaseModel], alias: str, field: Any, value: Any, problems: Problems) -> Any:
    inner = unwrap_annotation(field.annotation)
    entry = typing.get_args(inner)[1] if typing.get_origin(inner) is dict else None
    if entry is not None and isinstance(unwrap_annotation(entry), type) and issubclass(unwrap_annotation(entry), BaseModel) \
            and isinstance(value, dict):
        key_type = typing.get_args(inner)[0]
        result = {}
        for name, item in value.items():
            good_key = _check(model, alias, key_type, name, problems, (name, "[key]"))
            good_value = _check(model, alias, entry, item, problems, (name,))
            if good_key is not None and good_value is not None:
                result[good_key] = good_value
        return result
    annotation = typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return _check(model, alias, annotation, value, problems, ())


def _check(model: type[BaseModel], alias: str, annotation: Any, value: Any, problems: Problems, loc: tuple) -> Any:
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as error:
        problems.add_errors("", model, [dict(e, loc=(alias, *loc, *e["loc"])) for e in error.errors()])
        return None
