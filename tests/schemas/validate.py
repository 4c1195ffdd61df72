"""Offline, strict schema validation of Kubernetes and Istio manifests for the tests.

Kubernetes: the JSON schemas bundled in the ``kubernetes-validate`` PyPI package
(``pip install kubernetes-validate==1.37.0``), in their "strict" variant, where every
object has ``additionalProperties: false``. ``validate_kubernetes`` returns every error
(the package's own ``kubernetes_validate.validate(data, version, strict=True)`` raises on
the first one only).

Istio: the validators that ``@kubernetes-models/istio`` (npm, pinned in package.json
beside this file) generates from Istio's CRDs, run by Node through
``validate-istio.mjs``, which adds the unknown-field check those validators lack.
Install with ``npm ci --prefix tests/schemas``; ``validate_istio`` raises
``IstioValidatorMissing`` naming that command when it is not installed.

Errors are strings ``"<JSON pointer>: <message>"``, ``(root)`` for the document itself.

For the pinned Istio version with the CRDs' CEL rules, and for Helm values, see istio_check.py
(pure Python, offline reference data in istio/<version>.yaml).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "K8S_VERSION",
    "ISTIO_INSTALL_COMMAND",
    "ISTIO_AVAILABLE",
    "IstioValidatorMissing",
    "istio_missing_reason",
    "require_istio",
    "validate_kubernetes",
    "validate_istio",
]

HERE = Path(__file__).resolve().parent

# The newest Kubernetes release kubernetes-validate 1.37.0 ships schemas for.
K8S_VERSION = "1.37"

ISTIO_NPM_PACKAGE = "@kubernetes-models/istio"
ISTIO_INSTALL_COMMAND = "npm ci --prefix tests/schemas"
ISTIO_SCRIPT = HERE / "validate-istio.mjs"
ISTIO_TIMEOUT_S = 120


# --------------------------------------------------------------------------- Kubernetes


def _pointer(path: Any) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "(root)"


def _schema_dir(version: str):
    try:
        base = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    except ModuleNotFoundError as exc:  # pragma: no cover - environment problem
        raise RuntimeError(
            "kubernetes-validate is not installed: pip install kubernetes-validate==1.37.0"
        ) from exc
    d = base.joinpath(f"v{version}.0-local-strict")
    if not d.is_dir():
        raise ValueError(f"kubernetes-validate ships no strict schemas for Kubernetes {version}")
    return d


@functools.lru_cache(maxsize=None)
def _registry(version: str):
    from referencing import Registry, Resource

    defs = json.loads(_schema_dir(version).joinpath("_definitions.json").read_text())
    return Resource.from_contents(defs) @ Registry()


@functools.lru_cache(maxsize=None)
def _validator(version: str, api_version: str, kind: str):
    """The Draft 2020-12 validator for one kind, or None when the version has no schema for it."""
    import jsonschema

    # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    f = _schema_dir(version).joinpath(f"{kind.lower()}-{group_version}.json")
    if not f.is_file():
        return None
    schema = json.loads(f.read_text())
    from referencing import Resource

    registry = Resource.from_contents(schema) @ _registry(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_kubernetes(manifest: dict, version: str = K8S_VERSION) -> list[str]:
    """Every schema error of one Kubernetes manifest; ``[]`` when it is valid.

    Strict: unknown fields are errors at every level (``additionalProperties: false``),
    as are wrong types, missing required fields, and an apiVersion/kind the schemas
    for ``version`` do not have (custom resources included).
    """
    if not isinstance(manifest, dict):
        raise TypeError(f"manifest must be a dict, not {type(manifest).__name__}")
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
        return ["(root): apiVersion and kind must be strings"]
    validator = _validator(version, api_version, kind)
    if validator is None:
        return [f"(root): no Kubernetes {version} schema for apiVersion={api_version!r} kind={kind!r}"]
    errors = sorted(validator.iter_errors(manifest), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{_pointer(e.absolute_path)}: {e.message}" for e in errors]


# --------------------------------------------------------------------------- Istio


class IstioValidatorMissing(RuntimeError):
    """Node or the pinned npm package for Istio validation is not installed."""


def istio_missing_reason() -> str | None:
    """Why ``validate_istio`` cannot run, or None when it can."""
    if shutil.which("node") is None:
        return f"node is not on PATH: install Node.js and npm, then run `{ISTIO_INSTALL_COMMAND}`"
    pkg = HERE / "node_modules" / ISTIO_NPM_PACKAGE / "package.json"
    if not pkg.is_file():
        return f"{ISTIO_NPM_PACKAGE} is not installed under {HERE / 'node_modules'}: run `{ISTIO_INSTALL_COMMAND}`"
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"][ISTIO_NPM_PACKAGE]
    have = json.loads(pkg.read_text()).get("version")
    if have != wanted:
        return f"{ISTIO_NPM_PACKAGE} {have} is installed but package.json pins {wanted}: run `{ISTIO_INSTALL_COMMAND}`"
    return None


ISTIO_AVAILABLE: bool = istio_missing_reason() is None


def require_istio() -> None:
    """Raise IstioValidatorMissing, naming the install command, unless Istio validation can run."""
    reason = istio_missing_reason()
    if reason is not None:
        raise IstioValidatorMissing(f"Istio schema validation unavailable: {reason}")


def validate_istio(manifests: list[dict]) -> list[list[str]]:
    """The schema errors of each Istio manifest (one Node process for the whole batch).

    Strict: types, enums, required fields and oneOf from Istio's CRD schemas, and
    unknown fields at every level except maps (labels, headers, ...) and free-form
    objects (x-kubernetes-preserve-unknown-fields, e.g. EnvoyFilter patch values).
    An apiVersion/kind the package has no model for is an error.
    """
    manifests = list(manifests)
    if not manifests:
        return []
    require_istio()
    proc = subprocess.run(
        ["node", str(ISTIO_SCRIPT)],
        input=json.dumps(manifests),
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=ISTIO_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"validate-istio.mjs failed (exit {proc.returncode}): {proc.stderr.strip()}")
    results = json.loads(proc.stdout)
    if not isinstance(results, list) or len(results) != len(manifests):
        raise RuntimeError(f"validate-istio.mjs returned {proc.stdout[:200]!r} for {len(manifests)} manifests")
    return results
