"""Offline checks of Istio objects and Istio Helm values against the pinned Istio version.

- ``validate_object(manifest)``: an Istio (or Gateway API) custom resource as the API server
  checks it on create: ObjectMeta, defaulting, the CRD's structural schema with unknown fields
  rejected (crd_check.py), then every ``x-kubernetes-validations`` CEL rule (cel_check.py).
- ``check_release(chart, version, values)``: Helm values against the chart (helm_check.py).
- ``check_plan(plan)``: both over a recorded Pulumi plan.

Errors read ``Kind/name: path: message`` (``helm/<chart>: path: message`` for values). The data
comes from ``istio/<version>.yaml`` (istio_reference.py says what it holds and where from).
"""

from __future__ import annotations

from typing import Any

from schemas import cel_check, crd_check, helm_check
from schemas.istio_reference import ISTIO_VERSION, load

GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io", "gateway.networking.k8s.io",
          "monitoring.googleapis.com")
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"


def kinds() -> dict[str, dict]:
    return load()["kinds"]


def is_checked_type(resource_type: str) -> bool:
    """Whether a Pulumi resource type (``kubernetes:networking.istio.io/v1:VirtualService``) is one
    of the custom resources these checks cover (any kind of those API groups)."""
    return resource_type.startswith(tuple(f"kubernetes:{g}/" for g in GROUPS))


def object_errors(manifest: dict) -> list[tuple[str, str]]:
    """(path, message) for each error of one custom resource."""
    if not isinstance(manifest, dict):
        return [("<root>", "manifest is not an object")]
    key = f"{manifest.get('apiVersion')}/{manifest.get('kind')}"
    ref = kinds().get(key)
    if ref is None:
        return [("<root>", f"no reference data for apiVersion={manifest.get('apiVersion')!r} "
                           f"kind={manifest.get('kind')!r} (Istio {ISTIO_VERSION}): add it to FIELDS "
                           "in tests/schemas/istio_reference.py")]
    namespaced = ref["source"]["scope"] == "Namespaced"
    out = crd_check.validate_metadata(manifest.get("metadata"), namespaced)
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    body = crd_check.default_and_normalize(body, ref["schema"])
    out += crd_check.validate(key, ref["schema"], body)
    out += [(crd_check.k8s_path(at), msg) for at, msg in cel_check.check(body, ref["rules"])]
    return out


def _name(manifest: Any) -> str:
    meta = manifest.get("metadata") if isinstance(manifest, dict) else None
    return (meta or {}).get("name") or (meta or {}).get("generateName") or "<unnamed>"


def validate_object(manifest: dict) -> list[str]:
    """``Kind/name: path: message`` for each error of one custom resource; ``[]`` when valid."""
    kind = manifest.get("kind", "<no kind>") if isinstance(manifest, dict) else "<not an object>"
    return [f"{kind}/{_name(manifest)}: {path}: {msg}" for path, msg in object_errors(manifest)]


def check_release(chart: str, version: str | None, values: dict | None) -> list[str]:
    """``helm/<chart>: path: message`` for each value chart ``chart`` rejects or ignores."""
    ref = load()["charts"].get(chart)
    if ref is None:
        return [f"helm/{chart}: <chart>: no reference data for chart {chart!r} of Istio {ISTIO_VERSION}"]
    out = []
    if version is not None and str(version) != ISTIO_VERSION:
        out.append(f"helm/{chart}: version: chart version {version} but the checks are for Istio {ISTIO_VERSION}")
    out += [f"helm/{chart}: {path}: {msg}" for path, msg in helm_check.check(values or {}, ref)]
    return out


def check_plan(plan) -> tuple[list[str], int, int]:
    """(errors, custom resources checked, releases checked) for a recorded plan."""
    errors, objects, releases = [], 0, 0
    for r in plan.resources:
        if is_checked_type(r.type):
            objects += 1
            errors += validate_object(r.manifest())
        elif r.type == RELEASE_TYPE:
            releases += 1
            errors += check_release(r.inputs.get("chart"), r.inputs.get("version"), r.manifest().get("values"))
    return errors, objects, releases
