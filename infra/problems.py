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

from pydantic import BaseModel, BeforeValidator, TypeAdapter, ValidationError

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
        self.refused: set[str] = set()
        self.refused_tops: set[str] = set()
        self._schema: Any = None
        self._secrets = sorted({t for k in secret_keys for t in _texts((raw or {}).get(k))}, key=len, reverse=True)

    def add(self, key: str, message: str, after: tuple[str, ...] = ()) -> None:
        """Record a fault at ``key``. ``after``: the keys it follows from (a rule across keys reads
        them): it is left out when one of them, or a key under one, has a fault already, which the
        user fixes first (a misspelt region's subnet is no reason to also say "no subnet")."""
        if not any(_under(found, f"{self.namespace}:{source}") for source in after for found, _ in self.items):
            self._append(f"{self.namespace}:{key}", message)

    def _append(self, key: str, message: str) -> None:
        # A key refused while reading the file is not reported again by a rule that ran on its
        # default, nor is the object holding it (it is partial) or a key inside it (it is gone).
        if not any(_under(key, refused) or _under(refused, key) for refused in self.refused):
            self.items.append((key, message))

    def refuse(self, loc: tuple, message: Optional[str], error: Optional[dict] = None) -> None:
        """Record a value refused while reading the file (``error``: pydantic's, or ``message``)."""
        parts = [str(p) for p in loc]
        error = error or {"type": "rule", "loc": (), "msg": message}
        top = parts[0] if parts else ""
        for key, text in describe_errors([dict(error, loc=tuple(loc))], self._schema, f"{self.namespace}:",
                                         show_input=top not in self.secret_keys):
            self.items.append((key, text))
            self.refused.add(key)
        if len(parts) >= 1:
            self.refused_tops.add(top)

    def add_errors(self, key: str, model: Any, errors: list[dict],
                   remap: Optional[Callable[[list[str]], str]] = None) -> None:
        """Record pydantic errors (``loc`` relative to ``key``, "" for the top level); ``remap`` turns a
        ``loc`` into the key the user wrote when it differs (a load-balancer route defined by a service)."""
        for error in errors:
            where = remap([str(p) for p in error["loc"]]) if remap else key
            relative = dict(error, loc=()) if remap else error
            top = (where or str(error["loc"][0])).split(".")[0]
            prefix = f"{self.namespace}:{where}"
            for full, message in describe_errors([relative], model, prefix, show_input=top not in self.secret_keys):
                self._append(full, message)

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


def _under(key: str, other: str) -> bool:
    """True when ``key`` is ``other`` or a key inside it (``a.b.c`` is under ``a.b``)."""
    return key == other or key.startswith(other + ".")


def _texts(value: Any) -> list[str]:
    """Every text inside ``value`` that could be a secret (long enough to mean something)."""
    if isinstance(value, str):
        return [value] if len(value) >= 4 and value != MASKED else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


REFUSED = object()
"""What a refused value becomes while the file is read field by field."""


def validate_fields(model: type[BaseModel], raw: dict, problems: Problems, path: tuple = ()) -> Any:
    """``model`` built from ``raw`` one field at a time, objects and each entry of a map of objects
    on their own: a refused value is recorded and left out (its default applies, or the object
    stays partial), so the rest is still validated and checked in the same pass. The component's
    rules then run on what is left; a later fault at a key already refused is not repeated."""
    values: dict[str, Any] = {}
    if not path:
        problems._schema = model
    by_alias = {field.alias or name: name for name, field in model.model_fields.items()}
    for key in sorted(set(raw) - set(by_alias)):
        problems.refuse(path + (key,), f"unknown key; allowed keys here: {', '.join(sorted(by_alias))}")
    for alias, name in by_alias.items():
        field = model.model_fields[name]
        if alias not in raw:
            if field.is_required() and not path:
                problems.refuse((alias,), "required, but missing")
            continue
        value = _field(model, path + (alias,), field, raw[alias], problems)
        if value is not REFUSED:
            values[name] = value
    if not path:
        values.update({n: None for n, f in model.model_fields.items() if f.is_required() and n not in values})
    return model.model_construct(_fields_set={n for n, v in values.items() if v is not None}, **values)


def _model(annotation: Any) -> Optional[type[BaseModel]]:
    inner = unwrap_annotation(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _field(model: type[BaseModel], loc: tuple, field: Any, value: Any, problems: Problems) -> Any:
    inner = unwrap_annotation(field.annotation)
    entry = _model(typing.get_args(inner)[1]) if typing.get_origin(inner) is dict else None
    if entry is not None and isinstance(value, dict) and not field.metadata:
        result = {}
        for name, item in value.items():
            good_key = _check(model, typing.get_args(inner)[0], name, problems, loc + (name, "[key]"))
            good_value = validate_fields(entry, item, problems, loc + (name,)) if isinstance(item, dict) else \
                _check(model, entry, item, problems, loc + (name,))
            if good_key is not REFUSED and good_value is not REFUSED:
                result[good_key] = good_value
        return result
    annotation = typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    sub = _model(field.annotation)
    if sub is not None and isinstance(value, dict) and value:
        value = _check(model, annotation, value, problems, loc, before_only=True)
        return value if value is None else validate_fields(sub, value, problems, loc)
    return _check(model, annotation, value, problems, loc)


def _check(model: type[BaseModel], annotation: Any, value: Any, problems: Problems, loc: tuple,
           before_only: bool = False) -> Any:
    """``value`` validated as ``annotation``; :data:`REFUSED` (and the faults recorded under ``loc``) if refused.
    ``before_only``: an object checked field by field later; only its before-validators run here."""
    if before_only:
        inner = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is typing.Annotated else ()
        for meta in inner:
            value = meta.func(value) if isinstance(meta, BeforeValidator) else value
        return value
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as error:
        for e in error.errors():
            full = (*loc, *e["loc"])
            problems.refuse(full, None, e)
        return REFUSED
