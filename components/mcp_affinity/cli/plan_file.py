"""Reading a plan file: what ``check``, ``diff`` and the Mermaid picture accept, and nothing else.

``mcp-affinity plan --json`` writes the shape of ``pulumi preview --json``
(https://www.pulumi.com/docs/iac/cli/commands/pulumi_preview/; the document is Pulumi's
``PreviewDigest``, ``pkg/display/json.go``, each state an ``apitype.ResourceV3``)::

    {"steps": [{"op": "create", "urn": str, "newState": {"urn", "type", "custom", "parent", "inputs",
                "protect", "provider", "dependencies", "propertyDependencies", "aliases", "ignoreChanges",
                "replaceOnChanges"}, "detailedDiff": null}],
     "changeSummary": {"create": int},
     "diagnostics": [{"urn": str | null, "message": str, "severity": "warning"}],
     # our additions, in fields of their own:
     "project": str, "stack": str, "outputs": {...}, "sessionImpact": {...}}

A step may also carry ``deleteBeforeReplace`` (our addition: the engine's state does not record
that option) and ``references`` (our addition: input path -> URN of the planned resource whose id
the unknown input is, :mod:`mcp_affinity.references`). A real ``pulumi preview --json`` is read as well: its steps add ``oldState``,
``replaceReasons``, ``diffReasons`` and ``detailedDiff``, ops ``same``, ``update``, ``replace``,
``delete`` and the replacement steps; secrets read ``[secret]``; the stack's outputs are the root
``pulumi:pulumi:Stack`` step's ``outputs``; project and stack come from the URNs. Plans written
before this shape (``{"project", "stack", "resources": [...], "outputs", "warnings"}``) are still read.

:func:`validate` returns one normalized shape whatever it read::

    {"project": str, "stack": str, "outputs": {...}, "warnings": [{"message": str, "urn": str | null}],
     "resources": [{"urn", "type", "name", "parent", "custom", "inputs", "options", "dependencies",
                    "step", "aliases", "references" (where there are some)}],
     "complete": bool, "before": <the same shape, or None>}

``options`` is ``{"protect", "ignoreChanges", "dependsOn", "deleteBeforeReplace",
"replaceOnChanges", "provider"}`` (None for plans written before options were recorded, so a diff
does not report options that were merely not recorded); ``dependencies`` every URN the resource
waits for; ``step`` the preview's ``{"op", "replaceReasons"}`` or None. ``complete``: the document
lists every resource of the stack (a plan, a preview of a new stack, or one run with
``--show-sames``), so a picture of it is whole. ``before``: a preview's old states, the stack as
it is (None for a plan). Anything else raises :class:`PlanError` with a one-line reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

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
    """A normalized copy of ``document`` if it is a plan or a preview, else :class:`PlanError`."""
    if not isinstance(document, dict):
        raise PlanError(f"is not a plan: expected a JSON object with project, stack and resources, "
                        f"got {_kind(document)}")
    if "steps" in document or ("changeSummary" in document and "resources" not in document):
        return _preview(document)
    return _legacy(document)


def _legacy(document: dict) -> dict[str, Any]:
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
            "outputs": outputs, "warnings": _warnings(document.get("warnings", [])), "complete": True, "before": None}


ROOT_TYPE = "pulumi:pulumi:Stack"


def _preview(document: dict) -> dict[str, Any]:
    steps = document.get("steps") or []
    if not isinstance(steps, list):
        raise PlanError(f"is not a plan: 'steps' must be a list, got {_kind(steps)}")
    merged: dict[str, dict] = {}
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, dict) or not isinstance(step.get("urn"), str) or not isinstance(step.get("op"), str):
            raise PlanError(f"is not a plan: {where} must be an object with op and urn")
        for side in ("oldState", "newState"):
            if step.get(side) is not None and not isinstance(step[side], dict):
                raise PlanError(f"is not a plan: {where}.{side} must be an object, got {_kind(step[side])}")
        seen = merged.setdefault(step["urn"], {"ops": [], "reasons": []})
        seen["ops"].append(step["op"])
        seen["reasons"] += [r for r in step.get("replaceReasons") or [] if isinstance(r, str)]
        seen["delete_first"] = seen.get("delete_first") or step.get("deleteBeforeReplace") is True
        if step.get(REFERENCES) is not None:
            seen[REFERENCES] = step[REFERENCES]
        for side in ("oldState", "newState"):
            if step.get(side):
                seen[side] = step[side]
    urns = list(merged)
    project, stack = document.get("project"), document.get("stack")
    if not (isinstance(project, str) and project and isinstance(stack, str) and stack):
        project, stack = _names_from(urns, project, stack)
    # The root stack's step is always written, as "same" when nothing of it changes: not a sign of --show-sames.
    ops = {op for urn, seen in merged.items() if f"::{ROOT_TYPE}::" not in urn for op in seen["ops"]}
    head = _side(merged, "newState", project, stack, document)
    head["complete"] = ops <= {"create"} or "same" in ops
    olds = any(seen.get("oldState") for seen in merged.values())
    head["before"] = _side(merged, "oldState", project, stack, None) if olds else None
    return head


def _names_from(urns: list[str], project: Any, stack: Any) -> tuple[str, str]:
    """Stack and project of ``urn:pulumi:STACK::PROJECT::...``."""
    for urn in urns:
        parts = urn.split("::")
        if urn.startswith("urn:pulumi:") and len(parts) >= 3:
            return parts[1], parts[0][len("urn:pulumi:"):]
    raise PlanError("is not a plan: no project and stack, and no step URN names them")


def _side(merged: dict[str, dict], side: str, project: str, stack: str, document: Any) -> dict[str, Any]:
    """The stack before (``oldState``) or after (``newState``) the steps, as a plan."""
    resources, outputs = [], {}
    for urn, seen in merged.items():
        state = seen.get(side)
        if not state:  # created (no old state) or deleted (no new state)
            continue
        if state.get("type") == ROOT_TYPE:
            outputs = state.get("outputs") if isinstance(state.get("outputs"), dict) else {}
            continue
        resources.append(_state(urn, state, seen if side == "newState" else None, len(resources)))
    if document is not None and "outputs" in document:
        outputs = document["outputs"]
        if not isinstance(outputs, dict):
            raise PlanError(f"is not a plan: 'outputs' must be an object, got {_kind(outputs)}")
    warnings = [{"message": _strip_prefix(d.get("message")), "urn": d.get("urn") or None}
                for d in (document or {}).get("diagnostics") or []
                if isinstance(d, dict) and d.get("severity") == "warning"]
    return {"project": project, "stack": stack, "resources": sorted(resources, key=lambda r: r["urn"]),
            "outputs": outputs, "warnings": _warnings(warnings)}


def _state(urn: str, state: dict, seen: Optional[dict], index: int) -> dict[str, Any]:
    """A ``ResourceV3`` as a normalized resource; ``seen`` (the new side) gives its step."""
    by_input = state.get("propertyDependencies") if isinstance(state.get("propertyDependencies"), dict) else {}
    carried = {u for urns in by_input.values() if isinstance(urns, list) for u in urns}
    dependencies = [u for u in state.get("dependencies") or [] if isinstance(u, str)]
    provider = state.get("provider")
    options = {"protect": state.get("protect") is True, "ignoreChanges": state.get("ignoreChanges") or [],
               "dependsOn": sorted(set(dependencies) - carried),
               "deleteBeforeReplace": bool(seen and seen.get("delete_first")),
               "replaceOnChanges": state.get("replaceOnChanges") or [],
               "provider": provider.rsplit("::", 1)[0] if isinstance(provider, str) and provider else None}
    resource = _resource({"urn": urn, "type": state.get("type"), "parent": state.get("parent") or None,
                          "custom": state.get("custom", True), "inputs": state.get("inputs") or {},
                          "options": options, "aliases": [a for a in state.get("aliases") or [] if isinstance(a, str)],
                          **({REFERENCES: seen[REFERENCES]} if seen and REFERENCES in seen else {})},
                         index)
    resource["dependencies"] = sorted(set(dependencies) | carried)
    ops = (seen or {}).get("ops") or []
    op = "replace" if any(o in ("replace", "create-replacement") for o in ops) else ops[0] if ops else None
    resource["step"] = {"op": op, "replaceReasons": sorted(set(seen["reasons"]))} if seen else None
    return resource


def _strip_prefix(message: Any) -> Any:
    # The engine writes a diagnostic's prefix ("warning: ") before its message.
    return message[len("warning: "):] if isinstance(message, str) and message.startswith("warning: ") else message


def _resource(resource: Any, index: int) -> dict[str, Any]:
    where = f"resources[{index}]"
    if not isinstance(resource, dict):
        raise PlanError(f"is not a plan: {where} must be an object, got {_kind(resource)}")
    for key in ("urn", "type"):
        if not isinstance(resource.get(key), str) or not resource[key]:
            raise PlanError(f"is not a plan: {where}.{key} must be a non-empty string, got {_kind(resource.get(key))}")
    expected = {"name": str, "parent": (str, type(None)), "custom": bool, "inputs": dict, "options": dict,
                "aliases": list}
    for key, types in expected.items():
        if key in resource and not isinstance(resource[key], types):
            raise PlanError(f"is not a plan: {where}.{key} has the wrong type ({_kind(resource[key])})")
    options = resource.get("options") or {}
    for key, types in _OPTIONS.items():
        if key in options and not isinstance(options[key], types):
            raise PlanError(f"is not a plan: {where}.options.{key} has the wrong type ({_kind(options[key])})")
        if types is list and key in options and not all(isinstance(v, str) for v in options[key]):
            raise PlanError(f"is not a plan: {where}.options.{key} must list strings")
    if not all(isinstance(v, str) for v in resource.get("aliases", [])):
        raise PlanError(f"is not a plan: {where}.aliases must list strings (URNs)")
    urn = resource["urn"]
    dependencies = resource.get("dependencies")
    normalized = {"urn": urn, "type": resource["type"], "name": resource.get("name", urn.rsplit("::", 1)[-1]),
                  "parent": resource.get("parent"), "custom": resource.get("custom", True),
                  # A plan written before env values were scanned may hold one that looks like a secret.
                  "inputs": mask_flagged_env(resource.get("inputs", {})), "options": options if "options" in resource else None,
                  "dependencies": [u for u in dependencies if isinstance(u, str)] if isinstance(dependencies, list) else [],
                  "step": None, "aliases": list(resource.get("aliases", []))}
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
