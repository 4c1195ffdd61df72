"""A plan's request path as a Mermaid ``flowchart LR``, collapsed for a reviewer.

Cloud Run: load balancer -> backend service (its affinity) -> serverless NEGs (one node per
backend) -> Cloud Run (one node per MCP service) -> session store. Mesh, when present: Istio
gateway -> DestinationRule (its hash header) -> Deployment -> session store.

In a preview, the references that wire these together (NEG ids, URL-map services) are unknown, so
the edges come from structure instead: resources under one parent component belong together, and
every entry point reaches every backend, and every workload every store. Input shape: see
:mod:`mcp_affinity.plan.diff`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from .render import lookup, show

LB_COMPONENT = ":GlobalHttpsLoadBalancer"
FORWARDING_RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
BACKEND = "gcp:compute/backendService:BackendService"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
REDIS = "gcp:redis/instance:Instance"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
AFFINITY_PATHS = ("sessionAffinity", "localityLbPolicy", "consistentHash.httpHeaderName")
# Mermaid entity codes: a label never holds a raw quote, bracket or '#' that could end or
# re-open the node shape; '#' goes first in effect because each character is replaced once.
_ENTITIES = {'"': "#quot;", "#": "#35;", "[": "#91;", "]": "#93;", "(": "#40;", ")": "#41;",
             "{": "#123;", "}": "#125;", "<": "#lt;", ">": "#gt;", "|": "#124;", "`": "#96;"}


class _Graph:
    """Nodes (optionally inside a subgraph per parent component) and de-duplicated edges."""

    def __init__(self, components: dict[str, dict]):
        self.components = components
        self.ids: set[str] = set()
        self.nodes: dict[Optional[str], list[str]] = {}
        self.edges: dict[str, None] = {}

    def node(self, prefix: str, name: str, lines: Iterable[str], parent: Optional[str]) -> str:
        node_id = _unique(f"{prefix}_{name}", self.ids)
        label = "<br/>".join(escape(line) for line in lines)
        group = parent if parent in self.components else None
        self.nodes.setdefault(group, []).append(f'{node_id}["{label}"]')
        return node_id

    def edge(self, source: str, target: str, label: str = "") -> None:
        self.edges[f"{source} -->|{escape(label)}| {target}" if label else f"{source} --> {target}"] = None

    def render(self) -> str:
        lines = ["flowchart LR"] + [f"  {n}" for n in self.nodes.get(None, [])]
        for parent in sorted(p for p in self.nodes if p is not None):
            nodes, component = self.nodes[parent], self.components[parent]
            if len(nodes) == 1:  # a subgraph around one node only adds noise
                lines.append(f"  {nodes[0]}")
                continue
            title = escape(f"{component['type'].rsplit(':', 1)[-1]} {component['name']}")
            lines += [f'  subgraph {_unique("grp_" + component["name"], self.ids)}["{title}"]']
            lines += [f"    {n}" for n in nodes] + ["  end"]
        return "\n".join(lines + [f"  {e}" for e in self.edges]) + "\n"


def to_mermaid(plan: dict) -> str:
    """Mermaid ``flowchart LR`` source for ``plan``; the same plan always gives the same text."""
    resources = sorted(plan.get("resources", []), key=lambda r: r["urn"])
    graph = _Graph({r["urn"]: r for r in resources if not r.get("custom")})
    entries = [_lb_node(graph, r, resources) for r in resources if r["type"].endswith(LB_COMPONENT)]
    workloads = _cloud_run(graph, resources, entries) + _mesh(graph, resources)
    for store in (r for r in resources if r["type"] == REDIS):
        store_id = _store_node(graph, store)
        for workload in workloads:
            graph.edge(workload, store_id, "sessions")
    return graph.render()


def _cloud_run(graph: _Graph, resources: list[dict], entries: list[str]) -> list[str]:
    """Backend -> NEGs -> Cloud Run per parent component; returns the Cloud Run node ids."""
    runs = {}
    for parent in _ordered(r["parent"] for r in resources if r["type"] == CLOUD_RUN):
        services = _of(resources, CLOUD_RUN, parent)
        runs[parent] = graph.node("run", _names(services), _run_label(services), parent)
    for backend in (r for r in resources if r["type"] == BACKEND):
        parent = backend["parent"]
        backend_id = graph.node("be", backend["name"], _backend_label(backend), parent)
        for entry in entries:
            graph.edge(entry, backend_id)
        negs = [n for n in _of(resources, NEG, parent) if _get(n, "networkEndpointType") == "SERVERLESS"]
        if negs:
            regions = ", ".join(sorted({_get(n, "region") for n in negs}))
            neg_id = graph.node("neg", backend["name"], ["Serverless NEGs", regions], parent)
            graph.edge(backend_id, neg_id)
            if parent in runs:
                graph.edge(neg_id, runs[parent])
    return list(runs.values())


def _mesh(graph: _Graph, resources: list[dict]) -> list[str]:
    """Istio gateway -> DestinationRule -> Deployment per parent; returns the Deployment node ids."""
    gateways = [graph.node("gw", _meta_name(r), _gateway_label(r), r["parent"])
                for r in resources if _is_gateway(r)]
    deployments: list[str] = []
    for parent in _ordered(r["parent"] for r in resources if _kind(r) in ("Deployment", "DestinationRule")):
        rules = [graph.node("dr", _meta_name(r), _rule_label(r), parent)
                 for r in resources if r["parent"] == parent and _kind(r) == "DestinationRule"]
        workloads = [graph.node("dep", _meta_name(r), _deployment_label(r), parent)
                     for r in resources if r["parent"] == parent and _kind(r) == "Deployment"
                     and not _is_gateway(r)]
        for source in rules or gateways:
            for target in workloads or []:
                graph.edge(source, target)
        for gateway in gateways if rules else []:
            for rule in rules:
                graph.edge(gateway, rule)
        deployments += workloads
    return deployments


def _lb_node(graph: _Graph, lb: dict, resources: list[dict]) -> str:
    ports = sorted({str(_get(r, "portRange")) for r in _of(resources, FORWARDING_RULE, lb["urn"])},
                   key=lambda p: (len(p), p))
    return graph.node("lb", lb["name"], [f"Load balancer {lb['name']}", "ports " + (", ".join(ports) or "none")],
                      lb["parent"])


def _backend_label(backend: dict) -> list[str]:
    settings = [show(v) for v in (_get(backend, p) for p in AFFINITY_PATHS) if v not in (None, "", "NONE")]
    affinity = "affinity " + " / ".join(settings) if settings else "no LB affinity"
    return [f"Backend {_get(backend, 'name') or backend['name']}", affinity]


def _run_label(services: list[dict]) -> list[str]:
    def values(path: str) -> str:
        return ", ".join(sorted({show(_get(s, path)) for s in services if _get(s, path) is not None})) or "default"
    lines = [f"Cloud Run {values('name')}", f"regions {values('location')}",
             f"timeout {values('template.timeout')}", f"ingress {values('ingress')}"]
    if any(_get(s, "template.sessionAffinity") is True for s in services):
        lines.append("Cloud Run session affinity on")  # best-effort cookie affinity, not the LB's
    return lines


def _store_node(graph: _Graph, store: dict) -> str:
    mode = _get(store, "transitEncryptionMode")
    tls = "TLS off" if mode in (None, "DISABLED") else f"TLS {show(mode)}"
    lines = [f"Session store {_get(store, 'name') or store['name']}", f"tier {show(_get(store, 'tier'))}", tls]
    return graph.node("store", store["name"], lines, store["parent"])


def _gateway_label(gateway: dict) -> list[str]:
    ports = sorted({show(_get(s, "port.number")) for s in _get(gateway, "spec.servers") or []})
    return [f"Istio gateway {_meta_name(gateway)}"] + ([f"ports {', '.join(ports)}"] if ports else [])


def _rule_label(rule: dict) -> list[str]:
    header = _get(rule, "spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName")
    hashing = f"hash header {show(header)}" if header else "no consistent hash"
    return [f"DestinationRule {_meta_name(rule)}", f"host {show(_get(rule, 'spec.host'))}", hashing]


def _deployment_label(deployment: dict) -> list[str]:
    replicas = _get(deployment, "spec.replicas")
    return [f"Deployment {_meta_name(deployment)}"] + ([f"replicas {show(replicas)}"] if replicas is not None else [])


def _kind(resource: dict) -> str:
    """The Kubernetes kind from the inputs, else from the type token (``...:Deployment``)."""
    kind = _get(resource, "kind")
    if isinstance(kind, str):
        return kind
    return resource["type"].rsplit(":", 1)[-1] if resource["type"].startswith("kubernetes:") else ""


def _is_gateway(resource: dict) -> bool:
    # An Istio Gateway object, or the ingress gateway's own Deployment (named *ingressgateway*).
    istio = "istio.io" in str(_get(resource, "apiVersion") or resource["type"])
    return (_kind(resource) == "Gateway" and istio) or (
        _kind(resource) == "Deployment" and "ingressgateway" in _meta_name(resource))


def _meta_name(resource: dict) -> str:
    name = _get(resource, "metadata.name")
    return name if isinstance(name, str) else resource["name"]


def _of(resources: list[dict], type_: str, parent: Optional[str]) -> list[dict]:
    return [r for r in resources if r["type"] == type_ and r["parent"] == parent]


def _get(resource: dict, path: str) -> Any:
    return lookup(resource.get("inputs") or {}, path)


def _names(resources: list[dict]) -> str:
    return "_".join(sorted({str(_get(r, "name") or r["name"]) for r in resources}))


def _ordered(values: Iterable[Optional[str]]) -> list[Optional[str]]:
    return sorted(set(values), key=lambda v: v or "")


def _unique(raw: str, taken: set[str]) -> str:
    """A valid Mermaid id (letters, digits, '_'), made unique in URN order by a numeric suffix."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", raw)
    node_id, n = base, 1
    while node_id in taken:
        n += 1
        node_id = f"{base}_{n}"
    taken.add(node_id)
    return node_id


def escape(text: str) -> str:
    """Label text with quotes, brackets, '#', '|' and backticks as Mermaid entity codes."""
    return "".join(_ENTITIES.get(c, c) for c in text)
