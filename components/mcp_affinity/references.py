"""References between planned resources: which resource an input names by id or self-link.

A plan (``mcp-affinity plan``) cannot know a resource's id before apply, so an input such as a URL
map's ``pathMatchers[].defaultService`` reads as unknown. The plan records, beside the inputs, which
planned resource each such input is the id of: ``references``, input path -> URN
(``{"pathMatchers.0.defaultService": "urn:...::BackendService::tools-s0"}``). After apply (a
CrossGuard stack policy) the same inputs hold real ids or self-links
(``projects/P/global/backendServices/NAME``, ``https://www.googleapis.com/compute/v1/projects/...``),
which name the resource by its collection and ``name``
(https://cloud.google.com/compute/docs/reference/rest/v1/backendServices: ``id`` and ``selfLink``).

:func:`target` resolves one input either way; :func:`resolved_inputs` gives a copy of a resource's
inputs with each resolved reference shown as ``backend service tools-s0`` (what ``plan`` and
``diff`` print).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from .wire import BACKEND, NEG, SECURITY_POLICY, UNKNOWNS, URL_MAP

REFERENCES = "references"
"""The key of a planned resource's references (input path -> URN) in the plan JSON."""

KINDS = {BACKEND: "backend service", SECURITY_POLICY: "security policy", URL_MAP: "URL map", NEG: "NEG"}
"""How a referenced resource is named to people, by type (others: the type's last part)."""

COLLECTIONS = {"backendServices": BACKEND, "securityPolicies": SECURITY_POLICY, "urlMaps": URL_MAP,
               "networkEndpointGroups": NEG}
"""Compute API collections whose ids and self-links this module reads, and their resource types
(global ones, and regional network endpoint groups: ``projects/P/regions/R/networkEndpointGroups/N``)."""

_SELF_LINK = re.compile(r"(?:^|/)projects/[^/]+/(?:global|regions/([^/]+))/(" + "|".join(COLLECTIONS) + r")/([^/]+)$")


def label(resource: Mapping[str, Any]) -> str:
    """``backend service tools-s0``: the kind of resource and its name in the program."""
    type_ = str(resource.get("type", ""))
    kind = KINDS.get(type_) or type_.rsplit(":", 1)[-1]
    return f"{kind} {resource.get('name')}"


class Index:
    """The resources of one plan (plan shape, see :mod:`mcp_affinity.cli.plan_file`), indexed once
    by URN and by (type, region of a regional resource, physical ``name``)."""

    def __init__(self, resources: list[Mapping[str, Any]]):
        self.by_urn = {r["urn"]: r for r in resources}
        self._by_name: dict[tuple, Mapping[str, Any]] = {}
        for resource in resources:
            inputs = resource.get("inputs") or {}
            if resource.get("type") in KINDS and isinstance(inputs.get("name"), str):
                region = inputs.get("region") if resource["type"] == NEG else None
                self._by_name.setdefault((resource["type"], region, inputs["name"]), resource)

    def target(self, resource: Mapping[str, Any], path: str, value: Any) -> Optional[Mapping[str, Any]]:
        """The planned resource the input at ``path`` of ``resource`` (whose value is ``value``)
        names: by the plan's recorded reference, else by an id or self-link; None if neither."""
        urn = (resource.get(REFERENCES) or {}).get(path)
        if urn is not None:
            return self.by_urn.get(urn)
        if isinstance(value, str) and value not in UNKNOWNS:
            match = _SELF_LINK.search(value)
            if match:
                return self._by_name.get((COLLECTIONS[match.group(2)], match.group(1), match.group(3)))
        return None


def resolved_inputs(resource: Mapping[str, Any], index: Index) -> dict[str, Any]:
    """A copy of ``resource``'s inputs with each input that names a planned resource (recorded
    reference, id or self-link) replaced by its :func:`label`."""

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
        found = index.target(resource, path, value) if isinstance(value, str) else None
        return label(found) if found is not None else value

    inputs = resource.get("inputs")
    return walk(inputs, "") if isinstance(inputs, dict) else {}
