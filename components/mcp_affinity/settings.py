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

import ipaddress
import re
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from .regions import check_region

COMMON_FIELDS = frozenset({"prefix", "project", "labels", "deletion_protection"})
"""Settings every component has; a stack file gives them once, at its top level."""


class Model(BaseModel):
    """A strict settings model: unknown keys are errors, camelCase aliases, snake_case names."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True,
                              validate_default=True, hide_input_in_errors=False)


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
