"""The reference data of the offline Istio checks: what it holds, where it comes from, how it is made.

``istio/<version>.yaml`` beside this module is authored by us from two upstream sources, both
Apache License 2.0:

- istio/istio at tag ``ISTIO_VERSION``: the CRDs in ``manifests/charts/base/files/crd-all.gen.yaml``
  and the Helm charts in ``manifests/charts/{base,gateway,istio-control/istio-discovery,istio-cni,
  ztunnel}``;
- kubernetes-sigs/gateway-api at the tag Istio's ``go.mod`` requires (``sigs.k8s.io/gateway-api``),
  standard channel ``config/crd/standard/gateway.networking.k8s.io_gateways.yaml``;
- GoogleCloudPlatform/prometheus-engine at ``GMP_TAG``: the ``PodMonitoring`` CRD of Managed
  Service for Prometheus (``charts/operator/crds``).

No installable package carries these with their CEL rules for this Istio version: PyPI's
``cloudcoil-models-istio`` follows Istio 1.31 and has no ``x-kubernetes-validations``, npm's
``@kubernetes-models/istio`` is generated without them (its schemas carry no ``x-kubernetes-validations``).

Per kind the file keeps only what our objects need: the structural schema of the ``FIELDS`` we
use (descriptions dropped; every other property of a kept object is only named, under
``x-omitted-properties``, so an unknown field and a field outside the subset stay distinct), and
*every* ``x-kubernetes-validations`` rule of the kind with its path. Per chart: the tree of value
keys of ``values.yaml`` (leaves give the default's type), the ``.Values`` paths its templates read
that ``values.yaml`` lacks (with file:line), the free-form subtrees (``OPEN``, each with the
template line that passes it through), and for ``gateway`` its ``values.schema.json`` without
descriptions.

Regenerate after changing ``FIELDS``/``OPEN`` or the pinned version (needs the fetched mirrors)::

    .venv/bin/python tests/schemas/istio_reference.py --update

``tests/test_schemas_selfcheck.py`` compares the file with a fresh ``build()`` when the mirrors
are present.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ISTIO_VERSION = "1.30.3"
REFERENCE = HERE / "istio" / f"{ISTIO_VERSION}.yaml"

ISTIO_REPO = "istio/istio"
GATEWAY_API_REPO = "kubernetes-sigs/gateway-api"
GMP_REPO, GMP_TAG = "GoogleCloudPlatform/prometheus-engine", "v0.17.2"
"""Managed Service for Prometheus's CRDs (PodMonitoring, which McpMeshMetrics plans): GKE installs
them with managed collection; the fields we use are in every v1 release since."""
MIRRORS = {  # where the search tool's `fetch` puts them; override with the environment variables
    ISTIO_REPO: os.environ.get("ISTIO_MIRROR", "/work/.mirror/istio+istio/repo"),
    GATEWAY_API_REPO: os.environ.get("GATEWAY_API_MIRROR", "/work/.mirror/kubernetes-sigs+gateway-api/repo"),
    GMP_REPO: os.environ.get("GMP_MIRROR", "/work/.mirror/GoogleCloudPlatform+prometheus-engine/repo"),
}
ISTIO_CRDS = "manifests/charts/base/files/crd-all.gen.yaml"
GATEWAY_API_CRD = "config/crd/standard/gateway.networking.k8s.io_gateways.yaml"
GMP_CRD = "charts/operator/crds/monitoring.googleapis.com_podmonitorings.yaml"

# The kinds we emit, and the subtrees of each that we use ("[]" steps into list items).
FIELDS: dict[str, list[str]] = {
    "networking.istio.io/v1/DestinationRule": [
        "spec.host", "spec.exportTo", "spec.workloadSelector",
        "spec.trafficPolicy.loadBalancer", "spec.trafficPolicy.connectionPool",
        "spec.trafficPolicy.outlierDetection", "spec.trafficPolicy.tls",
    ],
    "networking.istio.io/v1/VirtualService": [
        "spec.hosts", "spec.gateways", "spec.exportTo",
        "spec.http[].name", "spec.http[].match", "spec.http[].route", "spec.http[].timeout",
        "spec.http[].retries", "spec.http[].headers", "spec.http[].rewrite",
    ],
    "networking.istio.io/v1/Gateway": ["spec"],
    "security.istio.io/v1/PeerAuthentication": ["spec"],
    "security.istio.io/v1/AuthorizationPolicy": ["spec"],
    "security.istio.io/v1/RequestAuthentication": ["spec"],
    "telemetry.istio.io/v1/Telemetry": ["spec.selector", "spec.targetRefs", "spec.metrics"],
    "monitoring.googleapis.com/v1/PodMonitoring": ["spec.selector", "spec.endpoints"],
    "gateway.networking.k8s.io/v1/Gateway": ["spec.gatewayClassName", "spec.listeners", "spec.infrastructure"],
}

# Helm release chart name -> directory at the Istio tag.
CHARTS = {
    "base": "manifests/charts/base",
    "istiod": "manifests/charts/istio-control/istio-discovery",
    "gateway": "manifests/charts/gateway",
    "cni": "manifests/charts/istio-cni",
    "ztunnel": "manifests/charts/ztunnel",
}

# Value subtrees with non-empty defaults that a template passes through whole (any key inside is
# read). Each cites the line that does it; build() checks the line still names the path.
OPEN: dict[str, dict[str, str]] = {
    "istiod": {
        "meshConfig": "templates/configmap.yaml:79",
        "resources": "templates/deployment.yaml:229",
        "global.defaultResources": "templates/deployment.yaml:231",
        "global.proxy.resources": "files/injection-template.yaml:23",
        "global.waypoint.resources": "files/waypoint.yaml:219",
    },
    "gateway": {
        "podAnnotations": "templates/deployment.yaml:30",
        "labels": "templates/deployment.yaml:39",
        "resources": "templates/deployment.yaml:106",
    },
    "cni": {
        "resources": "templates/daemonset.yaml:229",
        "global.defaultResources": "templates/daemonset.yaml:231",
        "updateStrategy": "templates/daemonset.yaml:37",
    },
    "ztunnel": {
        "resources": "templates/daemonset.yaml:76",
        "podAnnotations": "templates/daemonset.yaml:40",
        "updateStrategy": "templates/daemonset.yaml:19",
    },
}

# Keys a chart's schema allows but its templates do not read (quoted from the schema itself).
UNREAD: dict[str, dict[str, str]] = {
    "gateway": {"enabled": "values.schema.json: \"It's allowed in the schema, but the chart itself does not read it.\""},
}

# Values the zzz_profile.yaml wrapper consumes itself; users must not set them.
WRAPPER = "_internal_defaults_do_not_set"

HEADER = f"""\
# Reference data for the offline Istio checks in tests/schemas (istio_check.py).
# Authored by mcp-affinity from Istio {ISTIO_VERSION} (istio/istio at tag {ISTIO_VERSION}) and from
# Kubernetes Gateway API (kubernetes-sigs/gateway-api at the tag Istio's go.mod requires), and the
# PodMonitoring CRD of GoogleCloudPlatform/prometheus-engine at {GMP_TAG}.
# Upstreams: Copyright the Istio Authors / the Kubernetes Authors / Google LLC, Apache License 2.0
# (https://www.apache.org/licenses/LICENSE-2.0). Excerpts: descriptions removed, only the kinds,
# fields and charts this package uses. Each section names its source path at the tag.
# Generated by tests/schemas/istio_reference.py --update; do not edit by hand.
"""


# --------------------------------------------------------------------------- loading


@functools.lru_cache(maxsize=None)
def load(path: Path = REFERENCE) -> dict:
    """The reference data (parsed YAML)."""
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------- mirrors


def mirror_missing(repo: str) -> str | None:
    """Why the mirror of ``repo`` cannot be read, or None."""
    git_dir = MIRRORS[repo]
    if not Path(git_dir).is_dir():
        return f"no mirror of {repo} at {git_dir} (bring it with the search tool: fetch github:{repo})"
    return None


def git_show(repo: str, ref: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", MIRRORS[repo], "show", f"{ref}:{path}"],
        check=True, capture_output=True, text=True,
    ).stdout


def git_files(repo: str, ref: str, path: str) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", MIRRORS[repo], "ls-tree", "-r", "--name-only", ref, path],
        check=True, capture_output=True, text=True,
    ).stdout
    return out.split()


def gateway_api_tag(istio_ref: str = ISTIO_VERSION) -> str:
    """The Gateway API version Istio's go.mod requires at ``istio_ref``."""
    gomod = git_show(ISTIO_REPO, istio_ref, "go.mod")
    return re.search(r"^\s*sigs\.k8s\.io/gateway-api (v\S+)", gomod, re.M).group(1)


# --------------------------------------------------------------------------- CRDs


def _strip(schema: Any) -> Any:
    """A copy without descriptions and without the CEL rules (those are kept apart, with paths)."""
    if isinstance(schema, list):
        return [_strip(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k in ("description", "x-kubernetes-validations"):
            continue
        out[k] = {n: _strip(s) for n, s in v.items()} if k == "properties" else _strip(v)
    return out


def _trie(fields: list[str]) -> dict:
    root: dict = {}
    for f in fields:
        node = root
        steps = [s for part in f.split(".") for s in re.split(r"(\[\])", part) if s]
        for s in steps[:-1]:
            node = node.setdefault(s, {})
            if node is True:
                break
        else:
            node[steps[-1]] = True
    return root


def _prune(schema: dict, trie: dict | bool) -> dict:
    if trie is True:
        return _strip(schema)
    out = _strip({k: v for k, v in schema.items() if k not in ("properties", "items")})
    if "[]" in trie:
        out["items"] = _prune(schema["items"], trie["[]"])
    props = schema.get("properties", {})
    if props:
        kept = {n: _prune(s, trie[n]) for n, s in props.items() if n in trie}
        # A property with a default is kept whole: the API server adds it even when we do not.
        kept.update({n: _strip(s) for n, s in props.items() if n not in trie and "default" in s})
        out["properties"] = kept
        omitted = sorted(set(props) - set(kept))
        if omitted:
            out["x-omitted-properties"] = omitted
    unknown = set(trie) - set(props) - {"[]"}
    if unknown:
        raise KeyError(f"FIELDS name properties the CRD does not have: {sorted(unknown)}")
    return out


def rules_of(schema: dict, path: str = "") -> list[dict]:
    """Every x-kubernetes-validations rule under ``schema``, with its path (``[]`` list items,
    ``{}`` map values)."""
    out = [{"path": path or ".", **{k: r[k] for k in sorted(r)}} for r in schema.get("x-kubernetes-validations", [])]
    for name, sub in schema.get("properties", {}).items():
        out += rules_of(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        out += rules_of(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += rules_of(schema["additionalProperties"], f"{path}{{}}")
    for kw in ("oneOf", "anyOf", "allOf", "not"):
        subs = schema.get(kw, [])
        for sub in subs if isinstance(subs, list) else [subs]:
            if rules_of(sub):
                raise ValueError(f"CEL rule under {kw} at {path}: not supported by the checker")
    return out


def _crd_version(docs: list[dict], group: str, version: str, kind: str) -> tuple[dict, dict]:
    for d in docs:
        spec = (d or {}).get("spec", {})
        if spec.get("group") == group and spec.get("names", {}).get("kind") == kind:
            for v in spec["versions"]:
                if v["name"] == version:
                    return d, v
    raise KeyError(f"no CRD for {group}/{version} {kind}")


def build_kind(key: str, crd_docs: list[dict], source: dict) -> dict:
    group, version, kind = key.split("/")
    crd, ver = _crd_version(crd_docs, group, version, kind)
    schema = copy.deepcopy(ver["schema"]["openAPIV3Schema"])
    for implicit in ("apiVersion", "kind", "metadata"):  # checked apart (ObjectMeta), never pruned
        schema.get("properties", {}).pop(implicit, None)
    return {
        "source": {**source, "crd": crd["metadata"]["name"], "version": version,
                   "served": ver.get("served"), "storage": ver.get("storage"),
                   "scope": crd["spec"]["scope"]},
        "fields": FIELDS[key],
        "rules": rules_of(schema),
        "schema": _prune(schema, _trie(FIELDS[key])),
    }


# --------------------------------------------------------------------------- charts


def _key_tree(values: Any) -> Any:
    """values.yaml as a tree of keys; leaves name the default's type ("map" and "null" are open)."""
    if isinstance(values, dict):
        return {k: _key_tree(v) for k, v in values.items()} if values else "map"
    if values is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}[type(values)]


def _has_path(tree: Any, path: str) -> bool:
    for part in path.split("."):
        if not isinstance(tree, dict):
            return tree in ("map", "null")
        if part not in tree:
            return False
        tree = tree[part]
    return True


def _template_reads(files: dict[str, str]) -> dict[str, str]:
    """``.Values.a.b`` paths that templates/ read, each with its first file:line."""
    reads: dict[str, str] = {}
    for name, text in sorted(files.items()):
        if not name.startswith("templates/"):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            for m in re.finditer(r"\(?\$?\.Values\)?((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", line):
                reads.setdefault(m.group(1)[1:], f"{name}:{i}")
    return reads


def build_chart(chart: str, ref: str) -> dict:
    base = CHARTS[chart]
    files = {p[len(base) + 1:]: git_show(ISTIO_REPO, ref, p) for p in git_files(ISTIO_REPO, ref, base)
             if p.endswith((".yaml", ".tpl", ".json")) and "/files/profile-" not in p}
    values = yaml.safe_load(files["values.yaml"])
    defaults = values.get(WRAPPER, values)
    keys = _key_tree(defaults)
    extra = {p: where for p, where in _template_reads(files).items()
             if p.split(".")[0] not in (WRAPPER, "defaults", "_original") and not _has_path(keys, p)}
    for path, where in OPEN.get(chart, {}).items():
        file, line = where.rsplit(":", 1)
        if f".Values.{path}" not in files[file].splitlines()[int(line) - 1] and \
                f"with .Values.{path}" not in files[file].splitlines()[int(line) - 1]:
            raise ValueError(f"{chart}: {where} no longer reads .Values.{path}")
        if not _has_path(keys, path):
            raise ValueError(f"{chart}: OPEN path {path} is not in values.yaml")
    out = {
        "source": {"repo": ISTIO_REPO, "ref": ref, "path": base},
        "wrapper": WRAPPER if WRAPPER in values else None,
        "keys": keys,
        "read_by_templates": extra,
        "open": OPEN.get(chart, {}),
        "unread": UNREAD.get(chart, {}),
    }
    if "values.schema.json" in files:
        out["schema"] = _strip(json.loads(files["values.schema.json"]))
    return out


# --------------------------------------------------------------------------- the whole file


def build(ref: str = ISTIO_VERSION) -> dict:
    """The reference data, made afresh from the mirrors."""
    gw_tag = gateway_api_tag(ref)
    istio_crds = list(yaml.safe_load_all(git_show(ISTIO_REPO, ref, ISTIO_CRDS)))
    gw_crds = list(yaml.safe_load_all(git_show(GATEWAY_API_REPO, gw_tag, GATEWAY_API_CRD)))
    kinds = {}
    for key in FIELDS:
        if key.split("/")[0].endswith("istio.io"):
            kinds[key] = build_kind(key, istio_crds, {"repo": ISTIO_REPO, "ref": ref, "path": ISTIO_CRDS})
        elif key.startswith("monitoring.googleapis.com/"):
            gmp_crds = list(yaml.safe_load_all(git_show(GMP_REPO, GMP_TAG, GMP_CRD)))
            kinds[key] = build_kind(key, gmp_crds, {"repo": GMP_REPO, "ref": GMP_TAG, "path": GMP_CRD})
        else:
            kinds[key] = build_kind(key, gw_crds, {"repo": GATEWAY_API_REPO, "ref": gw_tag, "path": GATEWAY_API_CRD,
                                                   "why": f"sigs.k8s.io/gateway-api {gw_tag} in go.mod of {ISTIO_REPO}@{ref}"})
    return {
        "istio_version": ref,
        "licence": "Apache-2.0 (istio/istio, kubernetes-sigs/gateway-api, GoogleCloudPlatform/prometheus-engine); "
                   "excerpts authored by mcp-affinity",
        "kinds": kinds,
        "charts": {chart: build_chart(chart, ref) for chart in CHARTS},
    }


def dump(data: dict) -> str:
    return HEADER + yaml.safe_dump(data, sort_keys=False, width=120, allow_unicode=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: istio_reference.py --update   (rewrites " + str(REFERENCE) + ")")
    for repo in MIRRORS:
        if (why := mirror_missing(repo)):
            sys.exit(why)
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(dump(build()))
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)")
