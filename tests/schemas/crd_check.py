"""The structural part of what the Kubernetes API server checks on a custom resource at create.

Sources (Kubernetes, k8s.io/apiextensions-apiserver and k8s.io/apimachinery):
- Decoding turns JSON numbers without a fraction into int64 (apimachinery ``util/json``), so an
  integral float from Pulumi's wire (``80.0``) is the integer 80.
- Defaulting (``default`` in the structural schema) runs before validation and CEL
  (apiextensions ``pkg/apiserver/schema/defaulting``).
- Validation: OpenAPI v3 types, ``nullable``, enums, required, min/max, lengths, patterns,
  ``oneOf``/``anyOf``/``not``, ``x-kubernetes-int-or-string``; string formats from kube-openapi's
  ``strfmt`` registry (only strings carry formats there: ``int32``/``int64`` ranges are not checked).
- Unknown fields: a structural object that neither has ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields`` drops unknown fields, and strict field validation
  (kubectl's default ``--validate=strict``, server-side apply) rejects them:
  ``strict decoding error: unknown field "spec.x"``.
- ``x-kubernetes-list-type: set|map`` (with ``x-kubernetes-list-map-keys``): duplicates rejected.
- ``metadata``: ObjectMeta (strict schema from the ``kubernetes-validate`` package), and
  ``ValidateObjectMetaAccessor(..., NameIsDNSSubdomain, ...)`` as the custom-resource validator
  calls it (``pkg/registry/customresource/validator.go``): name a DNS-1123 subdomain, namespace a
  DNS-1123 label, label keys qualified names and values at most 63 characters.

Fields outside the reference subset (``x-omitted-properties``, see istio_reference.py) are reported
apart from unknown fields, naming how to add them.
"""

from __future__ import annotations

import base64
import copy
import datetime
import functools
import json
import re
from typing import Any, Iterator

import jsonschema
from jsonschema import FormatChecker, ValidationError

GO_DURATION = re.compile(r"^[-+]?(\d*\.?\d*(ns|us|µs|μs|ms|s|m|h))+$|^[-+]?0$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
OMITTED_HINT = "add its path to FIELDS in tests/schemas/istio_reference.py and run it with --update"

# --------------------------------------------------------------------------- formats

FORMATS = FormatChecker(formats=())


def _string_format(name: str):
    def register(fn):
        FORMATS.checks(name)(lambda value: not isinstance(value, str) or fn(value))
        return fn
    return register


@_string_format("byte")
def _byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
        return True
    except ValueError:
        return False


@_string_format("date-time")
def _date_time(value: str) -> bool:
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return "T" in value.upper()
    except ValueError:
        return False


@_string_format("duration")
def _duration(value: str) -> bool:
    return bool(GO_DURATION.match(value)) and value not in ("", "+", "-")


for _name in ("ipv4", "ipv6"):
    FORMATS.checks(_name)(FormatChecker().checkers[_name][0])


# --------------------------------------------------------------------------- schema translation


def to_jsonschema(s: Any) -> Any:
    """An OpenAPI v3 structural schema (or our subset of one) as JSON Schema with our keywords."""
    if isinstance(s, list):
        return [to_jsonschema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k in ("properties", "patternProperties"):
            out[k] = {n: to_jsonschema(x) for n, x in v.items()}
        elif k == "default" or k.startswith("x-kubernetes-list"):
            out[k] = v
        else:
            out[k] = to_jsonschema(v)
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}] + out.get("anyOf", [])
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    is_object = s.get("type") == "object" or "properties" in s
    if is_object and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
        out["x-strict"] = {"known": sorted(s.get("properties", {})), "omitted": s.get("x-omitted-properties", [])}
    return out


def _strict(validator, spec, instance, schema) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for key in instance:
        if key in spec["known"]:
            continue
        if key in spec["omitted"]:
            yield ValidationError(f'field "{key}" exists in the CRD but is outside the reference subset: {OMITTED_HINT}')
        else:
            yield ValidationError(f'unknown field "{key}"')


def _list_type(validator, kind, instance, schema) -> Iterator[ValidationError]:
    if not isinstance(instance, list) or kind not in ("set", "map"):
        return
    keys = schema.get("x-kubernetes-list-map-keys", [])
    seen = []
    for i, item in enumerate(instance):
        ident = [item.get(k) for k in keys] if kind == "map" and isinstance(item, dict) else item
        if ident in seen:
            shown = dict(zip(keys, ident)) if kind == "map" else ident
            yield ValidationError(f"Duplicate value: {shown!r}", path=[i])
        seen.append(ident)


Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {"x-strict": _strict, "x-kubernetes-list-type": _list_type},
)


@functools.lru_cache(maxsize=None)
def _compiled(key: str, schema_json: str):
    return Validator(to_jsonschema(json.loads(schema_json)), format_checker=FORMATS)


def k8s_path(parts) -> str:
    """["spec", "http", 0, "timeout"] -> "spec.http[0].timeout"."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def validate(key: str, schema: dict, obj: dict) -> list[tuple[str, str]]:
    """(path, message) for each structural error of ``obj`` (its spec/status...) under ``schema``."""
    validator = _compiled(key, json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(obj), key=lambda e: (k8s_path(e.absolute_path), e.message))
    return [(k8s_path(e.absolute_path), e.message) for e in errors]


# --------------------------------------------------------------------------- defaulting


def default_and_normalize(value: Any, schema: dict) -> Any:
    """A copy of ``value`` as the API server holds it after decoding and defaulting."""

    def numbers(v):
        if isinstance(v, dict):
            return {k: numbers(x) for k, x in v.items()}
        if isinstance(v, list):
            return [numbers(x) for x in v]
        return int(v) if isinstance(v, float) and v.is_integer() else v

    def walk(v, s):
        if not isinstance(s, dict):
            return v
        if isinstance(v, dict):
            for name, sub in s.get("properties", {}).items():
                if name not in v and "default" in sub:
                    v[name] = copy.deepcopy(sub["default"])
                if name in v:
                    v[name] = walk(v[name], sub)
            if isinstance(s.get("additionalProperties"), dict):
                for name in v:
                    v[name] = walk(v[name], s["additionalProperties"])
        elif isinstance(v, list) and isinstance(s.get("items"), dict):
            v = [walk(x, s["items"]) for x in v]
        return v

    return walk(numbers(value), schema)


# --------------------------------------------------------------------------- metadata


@functools.lru_cache(maxsize=None)
def _object_meta_validator():
    from schemas.validate import K8S_VERSION, _registry

    ref = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=_registry(K8S_VERSION))


def validate_metadata(meta: Any, namespaced: bool) -> list[tuple[str, str]]:
    """(path, message) for each error of ``metadata`` as the API server checks it on create."""
    if not isinstance(meta, dict):
        return [("metadata", "must be an object")]
    out = [(k8s_path(["metadata", *e.absolute_path]), e.message)
           for e in _object_meta_validator().iter_errors(meta)]
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        out.append(("metadata.name", "Required value: name or generateName is required"))
    if isinstance(name, str) and name and (len(name) > 253 or not DNS1123_SUBDOMAIN.match(name)):
        out.append(("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of "
                                     "lower case alphanumeric characters, '-' or '.'"))
    ns = meta.get("namespace")
    if isinstance(ns, str) and ns and (len(ns) > 63 or not DNS1123_LABEL.match(ns)):
        out.append(("metadata.namespace", f"Invalid value: {ns!r}: a lowercase RFC 1123 label"))
    if ns and not namespaced:
        out.append(("metadata.namespace", "Forbidden: not allowed on a cluster-scoped resource"))
    for key, val in (meta.get("labels") or {}).items():
        prefix, _, local = key.rpartition("/")
        if (prefix and not DNS1123_SUBDOMAIN.match(prefix)) or len(local) > 63 or not QUALIFIED_NAME.match(local):
            out.append(("metadata.labels", f"Invalid value: {key!r}: not a qualified name"))
        if isinstance(val, str) and (len(val) > 63 or not LABEL_VALUE.match(val)):
            out.append(("metadata.labels", f"Invalid value: {val!r}: not a valid label value"))
    return out
