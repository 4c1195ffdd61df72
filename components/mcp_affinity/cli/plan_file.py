"""Reading a plan file: what ``check``, ``diff`` and the Mermaid picture accept, and nothing else.

A plan is the JSON object ``mcp-affinity plan --json`` writes (:meth:`runner.Plan.to_json`)::

    {"project": str, "stack": str,
     "resources": [{"urn": str, "type": str, "name": str, "parent": str | null, "custom": bool,
                    "inputs": {...}, "options": {...}, "references": {path: URN}}],
     "outputs": {...}, "warnings": [{"message": str, "urn": str | null}]}

``project``, ``stack`` and ``resources`` (each with ``urn`` and ``type``) are required; the rest
may be absent (plans written before options and warnings were recorded; ``options`` is then
None, so a diff does not report options that were merely not recorded; ``references``, the
planned resource each unknown input names (:mod:`mcp_affinity.references`), only where there are some). :func:`validate` returns
a normalized copy with every key present, so the commands index it without further checks, or
raises :class:`PlanError` with a one-line reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..references import REFERENCES
from ..secret_env import mask_flagged_env


class PlanError(ValueError):
    """Not a plan; the message is one line and names what is wrong."""


_OPTIONS = {"protect": bool, "ignoreChanges": list, "dependsOn": list, "deleteBeforeReplace": bool,
            "replaceOnChanges": list, "provider": (str, type(None))}


def load(path: Path, which: str = "plan") -> dict[str, Any]:
    """The validated plan in the file at ``path``; :class:`PlanError` if unreadable or not a plan."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise PlanError(f"{path}: not JSON: {str(error).splitlines()[0]}") from None
    try:
        return validate(document)
    except PlanError as error:
        raise PlanError(f"{path}: {which} {error}") from None


def validate(document: Any) -> dict[str, Any]:
    """A normalized copy of ``document`` if it is a plan, else :class:`PlanError`."""
    if not isinstance(document, dict):
        raise PlanError(f"is not a plan: expected a JSON object with project, stack and resources, "
                        f"got {_kind(document)}")
    for key in ("project", "stack"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise PlanError(f"is not a plan: '{key}' must be a non-empty string, got {_kind(document.get(key))}")
    resources = document.get("resources")
    if not isinstance(resources, list):
        raise PlanError(f"is not a plan: 'resources' must be a list, got {_kind(resources)}")
    normalized, seen = [], set()
    for index, resource in enumerate(resources):
        item = _resource(resource, index)
        if item["urn"] in seen:
            raise PlanError(f"lists the URN {item['urn']} twice")
        seen.add(item["urn"])
        normalized.append(item)
    outputs = document.get("outputs", {})
    if not isinstance(outputs, dict):
        raise PlanError(f"is not a plan: 'outputs' must be an object, got {_kind(outputs)}")
    return {"project": document["project"], "stack": document["stack"], "resources": normalized,
            "outputs": outputs, "warnings": _warnings(document.get("warnings", []))}


def _resource(resource: Any, index: int) -> dict[str, Any]:
    where = f"resources[{index}]"
    if not isinstance(resource, dict):
        raise PlanError(f"is not a plan: {where} must be an object, got {_kind(resource)}")
    for key in ("urn", "type"):
        if not isinstance(resource.get(key), str) or not resource[key]:
            raise PlanError(f"is not a plan: {where}.{key} must be a non-empty string, got {_kind(resource.get(key))}")
    expected = {"name": str, "parent": (str, type(None)), "custom": bool, "inputs": dict, "options": dict}
    for key, types in expected.items():
        if key in resource and not isinstance(resource[key], types):
            raise PlanError(f"is not a plan: {where}.{key} has the wrong type ({_kind(resource[key])})")
    options = resource.get("options") or {}
    for key, types in _OPTIONS.items():
        if key in options and not isinstance(options[key], types):
            raise PlanError(f"is not a plan: {where}.options.{key} has the wrong type ({_kind(options[key])})")
        if types is list and key in options and not all(isinstance(v, str) for v in options[key]):
            raise PlanError(f"is not a plan: {where}.options.{key} must list strings")
    urn = resource["urn"]
    normalized = {"urn": urn, "type": resource["type"], "name": resource.get("name", urn.rsplit("::", 1)[-1]),
                  "parent": resource.get("parent"), "custom": resource.get("custom", True),
                  # A plan written before env values were scanned may hold one that looks like a secret.
                  "inputs": mask_flagged_env(resource.get("inputs", {})), "options": options if "options" in resource else None}
    references = resource.get(REFERENCES)
    if references is not None:
        if not isinstance(references, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                       for k, v in references.items()):
            raise PlanError(f"is not a plan: {where}.{REFERENCES} must map input paths to URNs (strings)")
        normalized[REFERENCES] = references
    return normalized


def _warnings(warnings: Any) -> list[dict[str, Any]]:
    if not isinstance(warnings, list):
        raise PlanError(f"is not a plan: 'warnings' must be a list, got {_kind(warnings)}")
    found = []
    for warning in warnings:
        if isinstance(warning, str):
            warning = {"message": warning}
        if not isinstance(warning, dict) or not isinstance(warning.get("message"), str) \
                or not isinstance(warning.get("urn"), (str, type(None))):
            raise PlanError("is not a plan: each warning is {message: string, urn: string or null}")
        found.append({"message": warning["message"], "urn": warning.get("urn")})
    return found


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
