"""The base of every component's settings, and the field types they share.

A component takes **settings** (plain values, validated here, before any resource exists) and a
**context** of references to other components' outputs (keyword arguments of its constructor),
as Cloud Foundation Fabric separates variables from ``context``. Settings are pydantic models with
camelCase aliases: the same model is the schema of the stack file (``services.tools.timeoutSeconds``),
so a setting is defined once.

Every component shares four settings (:data:`COMMON_FIELDS`): ``prefix``, ``project``, ``labels``
and ``deletion_protection``. A stack file sets them once at the top level.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import re
import typing
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, Callable, Iterator, Mapping, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from .errors import SettingsError, unwrap_annotation
from .regions import check_region

COMMON_FIELDS = frozenset({"prefix", "project", "labels", "deletion_protection"})
"""Settings every component has; a stack file gives them once, at its top level."""


_VALIDATING: ContextVar[int] = ContextVar("mcp_affinity_validating", default=0)
"""How many settings models are being validated around this point (0 in a program's own code)."""


@contextmanager
def nested_validation() -> Iterator[None]:
    """Models made inside raise pydantic's ``ValidationError`` (to be merged into an outer model's
    faults) instead of :class:`~mcp_affinity.errors.SettingsError`."""
    token = _VALIDATING.set(_VALIDATING.get() + 1)
    try:
        yield
    finally:
        _VALIDATING.reset(token)


class Model(BaseModel):
    """A strict settings model: unknown keys are errors, camelCase aliases, snake_case names.

    Made by a program (``McpMeshServiceArgs(...)``), a model with faults raises one
    :class:`~mcp_affinity.errors.SettingsError` listing each under its camelCase path, which
    Pulumi shows without a traceback. Inside another model's validation (a rule that builds a
    part's settings) it raises pydantic's ``ValidationError``, which pydantic merges into the
    outer model's faults; ``model_validate`` always raises ``ValidationError``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True,
                              validate_default=True, hide_input_in_errors=False)

    def __init__(self, /, **data: Any) -> None:
        outermost = not _VALIDATING.get()
        try:
            with nested_validation():
                super().__init__(**data)
        except ValidationError as error:
            if not outermost:
                raise
            raise SettingsError.of(type(self).__name__, error, type(self)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        with nested_validation():
            return super().model_validate(obj, **kwargs)

    @model_validator(mode="wrap")
    @classmethod
    def _nested(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        # A model validated as a field of another (its own rules run after this returns, still
        # inside the outer model's __init__ or model_validate).
        with nested_validation():
            return handler(data)


def _check_prefix(value: str) -> str:
    if not re.fullmatch(r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?", value):
        raise ValueError("a prefix is 1 to 20 characters: lowercase letters, digits and hyphens, "
                         "starting with a letter and not ending with a hyphen")
    return value


def _check_project(value: str) -> str:
    # https://cloud.google.com/resource-manager/docs/creating-managing-projects#before_you_begin
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", value):
        raise ValueError("a project id is 6 to 30 characters: lowercase letters, digits and hyphens, "
                         "starting with a letter and not ending with a hyphen")
    return value


def _check_label_key(value: str) -> str:
    # https://cloud.google.com/resource-manager/docs/labels-overview#requirements
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", value):
        raise ValueError(f"label key {value!r}: 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter")
    return value


def _check_label_value(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]{0,63}", value):
        raise ValueError(f"label value {value!r}: at most 63 lowercase letters, digits, '_' or '-'")
    return value


class Faults:
    """Rule violations of one settings object, collected and raised together, each tied to a field.

    A model validator adds ``(location, message)`` pairs, where location is the field's camelCase
    key path (``"maxReplicas"``, ``("routes", "tools", "hosts", 0)``), then calls :meth:`raise_if_any`:
    pydantic merges the error into the caller's, so a stack reports every fault under the key the
    user wrote (``services.tools.maxReplicas``) instead of the first one under the object.
    """

    def __init__(self, title: str):
        self.title, self.items = title, []

    def add(self, location: Any, message: str, value: Any = None) -> None:
        location = (location,) if isinstance(location, (str, int)) else tuple(location)
        self.items.append(InitErrorDetails(type=PydanticCustomError("rule", message), loc=location, input=value))

    def check(self, location: Any, rule: Any) -> None:
        """Run ``rule()`` and record a ``ValueError`` it raises under ``location``."""
        try:
            rule()
        except ValueError as error:
            self.add(location, str(error))

    def raise_if_any(self) -> None:
        """Raise one ``ValidationError`` holding every recorded fault, if any."""
        if self.items:
            raise ValidationError.from_exception_data(self.title, self.items)


Bool = Annotated[bool, Strict()]
"""A boolean written as true/false; "yes", 1 or "on" are refused."""

Int = Annotated[int, Strict()]
"""A whole number; 1.5 or "1" are refused."""

Prefix = Annotated[str, Strict(), AfterValidator(_check_prefix)]
ProjectId = Annotated[str, Strict(), AfterValidator(_check_project)]
Labels = dict[Annotated[str, AfterValidator(_check_label_key)], Annotated[str, Strict(), AfterValidator(_check_label_value)]]
Region = Annotated[str, Strict(), AfterValidator(check_region)]


def check_cidr(value: str) -> str:
    """Return ``value`` if it is an IPv4 range in CIDR form with no host bits set, else raise ``ValueError``."""
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError as error:
        raise ValueError(f"{value!r} is not an IPv4 CIDR range such as 10.0.0.0/24 ({error})") from None
    if str(network) != value:
        raise ValueError(f"{value!r}: write the range as {network}")
    return value


IPv4Cidr = Annotated[str, Strict(), AfterValidator(check_cidr)]
"""An IPv4 range in CIDR form with no host bits set, e.g. ``10.0.0.0/24``."""


def matching(pattern: str, example: str) -> AfterValidator:
    """A validator refusing strings that do not fully match ``pattern`` (``ValueError``: ``'VALUE' is not
    EXAMPLE``), for ``Annotated[str, Strict(), matching(...)]``."""
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{value!r} is not {example}")
        return value
    return AfterValidator(check)


def _check_name(value: str) -> str:
    if not re.fullmatch(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?", value):
        raise ValueError(f"{value!r}: a name is 1 to 40 lowercase letters, digits and hyphens (RFC 1035), "
                         "starting with a letter and not ending with a hyphen")
    return value


Name = Annotated[str, Strict(), AfterValidator(_check_name)]
"""A stable key of a map (a service, a certificate): an RFC 1035 label of at most 40 characters."""

UrlPath = Annotated[str, Strict(), Field(pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$", max_length=1024)]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]


class Settings(Model):
    """Settings every component shares."""

    prefix: Prefix = Field(
        description="the first part of every physical name (1 to 20 characters, RFC 1035); physical names are "
                    "`{prefix}-{component name}-...`, so two components of one kind live side by side.")
    project: Optional[ProjectId] = Field(
        default=None,
        description="the Google Cloud project id; None uses the provider's `gcp:project`.")
    labels: Labels = Field(
        default_factory=dict,
        description="added to every resource that takes labels (Google's label rules).")
    deletion_protection: Bool = Field(
        default=False,
        description="the platform's deletion protection where a resource has one, and Pulumi `protect` on stateful "
                    "resources.")


StrInput = Any
"""A ``pulumi.Input[str]``: a string, or an Output of one (context, never settings)."""


def config_model(args: type[BaseModel], *, exclude: frozenset[str] = COMMON_FIELDS,
                 extra: Optional[dict[str, Any]] = None, name: Optional[str] = None) -> type[Model]:
    """A stack-file model derived from a component's settings: the same fields, types, defaults and
    camelCase keys, minus ``exclude`` (the common fields a stack sets once), plus ``extra`` fields
    (``name -> (annotation, FieldInfo)``); each field keeps its ``description``, which the docs show.

    Field rules travel with the fields; rules across fields run when the stack program builds the
    component's settings from the derived model (:meth:`Model.model_dump` by alias, plus common values).
    """
    from pydantic import create_model

    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in args.model_fields.items() if n not in exclude}
    fields.update(extra or {})
    model = create_model(name or args.__name__.removesuffix("Args") + "Config", __base__=Model, **fields)
    model.__doc__ = args.__doc__
    model.settings_class = args  # type: ignore[attr-defined]
    return model


def takes_settings(init: Callable[..., None]) -> Callable[..., None]:
    """The contract of a component's ``__init__(self, name, args, *, ...)``, in one place.

    - Each parameter annotated with a settings model (also ``Optional[...]`` of one, or a
      ``Mapping[str, ...]`` of them) takes a dict too (camelCase or snake_case keys).
    - Every fault of every such argument, and a ``ValueError`` the component raises before it
      registers (a missing context, a physical name too long), is raised as one
      :class:`~mcp_affinity.errors.SettingsError` naming the component (``McpMeshService 'notes'``),
      each fault under its path (``sessionMode``, ``iap.members.0``): Pulumi prints it without a
      traceback, ``mcp-affinity plan`` exits 2.
    """
    signature = inspect.signature(init)
    hints: dict[str, Any] = {}

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        if not hints:
            hints.update(typing.get_type_hints(init))
        bound = signature.bind(self, *args, **kwargs)
        what = f"{type(self).__name__} {bound.arguments.get('name')!r}"
        faults: list[tuple[str, str]] = []
        for param, value in list(bound.arguments.items())[2:]:
            prefix = "" if param == "args" else param
            bound.arguments[param] = _coerce(hints.get(param), value, prefix, faults)
        if faults:
            raise SettingsError(what, faults)
        try:
            init(*bound.args, **bound.kwargs)
        except SettingsError:
            raise
        except ValidationError as error:  # a rule across parts, run again with the component's name
            raise SettingsError.of(what, error, type(bound.arguments["args"])) from None
        except ValueError as error:
            if "urn" in vars(self):  # registered already: not a settings fault
                raise
            raise SettingsError(what, [("", str(error))]) from None

    return wrapper


def _coerce(annotation: Any, value: Any, path: str, faults: list[tuple[str, str]]) -> Any:
    """``value`` as ``annotation`` wants it when that is a settings model (or a map of them);
    faults are added to ``faults`` under ``path``."""
    if value is None or annotation is None:
        return value
    inner = unwrap_annotation(annotation)
    if typing.get_origin(inner) in (dict, Mapping, typing.get_origin(Mapping[str, int])) and isinstance(value, Mapping):
        entry = typing.get_args(inner)[1] if len(typing.get_args(inner)) == 2 else None
        if _is_model(unwrap_annotation(entry)):
            return {key: _coerce(entry, item, f"{path}.{key}".strip("."), faults) for key, item in value.items()}
        return value
    if not _is_model(inner) or isinstance(value, inner):
        return value
    if not isinstance(value, Mapping):
        faults.append((path, f"expected {inner.__name__} or a dict of its settings, got {type(value).__name__}"))
        return value
    try:
        return inner.model_validate(dict(value))
    except ValidationError as error:
        faults.extend(SettingsError.of("", error, inner, path).problems)
        return value


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
