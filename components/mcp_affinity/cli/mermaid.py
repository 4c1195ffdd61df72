"""A plan's request path as a Mermaid ``flowchart LR``, collapsed for a reviewer.

Cloud Run: load balancer -> backend service (its affinity) -> serverless NEGs (one node per
backend) -> Cloud Run (one node per MCP service) -> session store. A service run as session shards
(``pinning: shards``) collapses to one node per part: the URL map's shard routes (header prefix
per shard, weighted default), the shards' backend services and NEGs, the one-instance services. Mesh, when present: load
balancer -> backend -> zonal NEGs -> Istio gateway -> DestinationRule (its hash header) ->
Deployment (an MCP server: it declares ``MCP_SESSION_HEADER``) -> session store. Input: a plan
as :func:`.plan_file.validate` returns it.

Every node stands for resources of the plan (its members) and every edge is drawn only where the
plan links a member of one node to a member of the other (:class:`Links`): an input that carries
another resource's output (the engine's ``propertyDependencies``; in a preview the value itself is
unknown, the reference is not), or an input that names another resource (a NEG's Cloud Run
service, a VirtualService's gateway and host, a proxy configuration's pod Service), directly or
through resources the picture does not draw (a service's secret that holds the store's address).
The references the plan resolves (``references``: an input that is another planned resource's id)
are links too. Ordering-only dependencies (``dependsOn``) are not. :func:`graph` gives the nodes with their
members and the edges, for tests that hold the picture to the plan.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from ..cloud_run_shards import ID_PREFIX_ENV, SEPARATOR, SHARD_KEY_ENV
from ..policies import HEADER_ENV, pod_env
from ..wire import (
    ALERT_POLICY, BACKEND, CLOUD_RUN, CONFIG_MAP, DASHBOARD, FORWARDING_RULE, LOG_METRIC, NEG, REDIS, STATEFUL_SET, UNKNOWNS,
    URL_MAP,
)
from .render import lookup, show

LB_COMPONENT = ":GlobalHttpsLoadBalancer"
AFFINITY_PATHS = ("sessionAffinity", "localityLbPolicy", "consistentHash.httpHeaderName")
ZONAL_NEG = re.compile(r"zones/([^/]+)/networkEndpointGroups/([^/]+)$")
# Mermaid entity codes, so a label never holds a raw character that ends or re-opens a shape.
_ENTITIES = {'"': "#quot;", "#": "#35;", "[": "#91;", "]": "#93;", "(": "#40;", ")": "#41;",
             "{": "#123;", "}": "#125;", "<": "#lt;", ">": "#gt;", "|": "#124;", "`": "#96;"}


_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
LINK_HOPS = 3
"""How many resources the picture does not draw a link may pass through (service -> secret version -> store)."""


class Links:
    """Which resources of a plan refer to which (``refers``: URN -> the URNs its inputs carry or
    name; ``dependsOn`` left out, see the module docstring)."""

    def __init__(self, resources: list[dict]):
        self.refers: dict[str, set[str]] = {r["urn"]: set() for r in resources}
        names: dict[str, set[str]] = {}
        for resource in resources:
            for name in _physical_names(resource):
                names.setdefault(name, set()).add(resource["urn"])
        for resource in resources:
            explicit = set((resource.get("options") or {}).get("dependsOn") or [])
            found = {u for u in resource.get("dependencies") or [] if u not in explicit and u in self.refers}
            found |= {u for u in (resource.get("references") or {}).values() if u in self.refers}
            found |= {u for token in set(_tokens(resource.get("inputs"))) for u in names.get(token, ())}
            self.refers[resource["urn"]] = found - {resource["urn"]}

    def linked(self, sources: Iterable[str], targets: Iterable[str], drawn: set[str]) -> bool:
        """True when the plan links a member of ``sources`` to one of ``targets``: they share a
        resource, one refers to the other through at most :data:`LINK_HOPS` resources outside
        ``drawn`` (the members of every node), or a resource outside ``drawn`` refers to both (a
        VirtualService names its gateway and its host)."""
        sources, targets = set(sources), set(targets)
        if sources & targets or self._reaches(sources, targets, drawn) or self._reaches(targets, sources, drawn):
            return True
        return any(refs & sources and refs & targets for urn, refs in self.refers.items() if urn not in drawn)

    def _reaches(self, sources: set[str], targets: set[str], drawn: set[str]) -> bool:
        frontier, seen = set(sources), set(sources)
        for _ in range(LINK_HOPS + 1):
            reached = {n for urn in frontier for n in self.refers.get(urn, ())} - seen
            if reached & targets:
                return True
            frontier, seen = reached - drawn, seen | reached
        return False


def _physical_names(resource: dict) -> list[str]:
    """The names other resources use for ``resource``: its GCP ``name``, its Kubernetes name."""
    names = [_get(resource, "name"), _get(resource, "metadata.name")]
    return [n for n in names if isinstance(n, str) and n and n not in UNKNOWNS and _TOKEN.fullmatch(n)]


def _tokens(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield from _TOKEN.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tokens(item)
    elif isinstance(value, list):
        for item in value:
            yield from _tokens(item)


class _Graph:
    """Nodes, grouped per parent component (a subgraph when it holds two or more), and the edges the
    plan links (:class:`Links`)."""

    def __init__(self, components: dict[str, dict], links: Links):
        self.components, self.ids, self.links = components, set(), links
        self.nodes: dict[Optional[str], list[str]] = {}
        self.members: dict[str, list[str]] = {}
        self.wanted: list[tuple[str, str, str]] = []

    def node(self, prefix: str, name: str, lines: Iterable[str], parent: Optional[str], members: Iterable[dict]) -> str:
        node_id = _unique(f"{prefix}_{name}", self.ids)
        group = parent if parent in self.components else None
        self.nodes.setdefault(group, []).append(f'{node_id}["{"<br/>".join(map(escape, lines))}"]')
        self.members[node_id] = [m["urn"] for m in members]
        return node_id

    def edge(self, source: str, target: str, label: str = "") -> None:
        """Draw ``source`` -> ``target`` if the plan links them (decided once every node is known)."""
        self.wanted.append((source, target, label))

    @property
    def edges(self) -> dict[tuple[str, str], str]:
        """(source, target) -> label, in the order asked, for the pairs the plan links."""
        drawn = {urn for members in self.members.values() for urn in members}
        found: dict[tuple[str, str], str] = {}
        for source, target, label in self.wanted:
            if (source, target) not in found and self.links.linked(self.members[source], self.members[target], drawn):
                found[(source, target)] = label
        return found

    def render(self) -> str:
        lines = ["flowchart LR"] + [f"  {n}" for n in self.nodes.get(None, [])]
        for parent in sorted(p for p in self.nodes if p is not None):
            nodes, component = self.nodes[parent], self.components[parent]
            if len(nodes) == 1:
                lines.append(f"  {nodes[0]}")
                continue
            title = escape(f"{component['type'].rsplit(':', 1)[-1]} {component['name']}")
            lines += [f'  subgraph {_unique("grp_" + component["name"], self.ids)}["{title}"]']
            lines += [f"    {n}" for n in nodes] + ["  end"]
        edges = [f"{s} -->|{escape(label)}| {t}" if label else f"{s} --> {t}" for (s, t), label in self.edges.items()]
        return "\n".join(lines + [f"  {e}" for e in edges]) + "\n"


def to_mermaid(plan: dict) -> str:
    """Mermaid ``flowchart LR`` source for ``plan``; the same plan always gives the same text."""
    return _build(plan).render()


def graph(plan: dict) -> tuple[dict[str, list[str]], dict[tuple[str, str], str]]:
    """The picture of ``plan`` as data: node id -> the URNs it stands for, (source, target) -> label."""
    built = _build(plan)
    return dict(built.members), built.edges


def _build(plan: dict) -> _Graph:
    resources = sorted(plan.get("resources", []), key=lambda r: r["urn"])
    graph = _Graph({r["urn"]: r for r in resources if not r.get("custom")}, Links(resources))
    entries = [graph.node("lb", r["name"], _lb_label(r, resources), r["parent"], _lb_members(r, resources))
               for r in resources if r["type"].endswith(LB_COMPONENT)]
    gateways = [graph.node("gw", _meta_name(r), _gateway_label(r), r["parent"], _gateway_members(r, resources))
                for r in resources if _is_gateway(r)]
    workloads = _cloud_run(graph, resources, entries, gateways) + _mesh(graph, resources, gateways)
    for store in (r for r in resources if r["type"] == REDIS):
        store_id = graph.node("store", store["name"], _store_label(store), store["parent"], [store])
        for workload in workloads:  # drawn where the workload reads the store's address
            graph.edge(workload, store_id, "sessions")
    _monitoring(graph, resources, entries)
    return graph


def _lb_members(lb: dict, resources: list[dict]) -> list[dict]:
    """The load balancer component and what it holds but its backends (drawn on their own)."""
    return [lb] + [r for r in resources if r["parent"] == lb["urn"] and r["type"] != BACKEND]


def _gateway_members(gateway: dict, resources: list[dict]) -> list[dict]:
    """The gateway and the Helm release that installs it (its Service names the backend for autoneg)."""
    return [gateway] + [r for r in resources if r["parent"] == gateway["parent"] and _kind(r) == "Release"
                        and r["name"].endswith("gateway")]


def _monitoring(graph: _Graph, resources: list[dict], entries: list[str]) -> None:
    """What a monitoring component builds, watching the load balancer's traffic: drawn to each
    backend its metrics and alerts name (the plan links them by the backend's name)."""
    for component in (r for r in resources if r["type"].endswith(":McpMonitoring")):
        counts = [(len(_of(resources, t, component["urn"])), what) for t, what in (
            (DASHBOARD, "dashboard"), (ALERT_POLICY, "alert policies"), (LOG_METRIC, "log-based metrics"))]
        node = graph.node("mon", component["name"], ["monitoring", *(f"{n} {what}" for n, what in counts)], None,
                          [component, *(r for r in resources if r["parent"] == component["urn"])])
        for target in [*entries, *(n for n in graph.members if n.startswith("be_"))]:
            graph.edge(node, target, "watches")


def _cloud_run(graph: _Graph, resources: list[dict], entries: list[str], gateways: list[str]) -> list[str]:
    """Backend -> NEGs -> Cloud Run (or -> mesh gateways); returns the Cloud Run node ids."""
    negs: dict[Optional[str], str] = {}
    sharded = {parent: keys for parent in _ordered(r["parent"] for r in resources if r["type"] == CLOUD_RUN)
               if (keys := _shard_keys(_of(resources, CLOUD_RUN, parent)))}
    for parent, keys in sharded.items():
        negs[parent] = _shards(graph, resources, entries, parent, keys)
    for backend in (r for r in resources if r["type"] == BACKEND and r["parent"] not in sharded):
        parent = backend["parent"]
        backend_id = graph.node("be", backend["name"], _backend_label([backend]), parent, [backend])
        for entry in entries:
            graph.edge(entry, backend_id)
        serverless = [n for n in _of(resources, NEG, parent) if _get(n, "networkEndpointType") == "SERVERLESS"]
        zonal = [m.groups() for m in (ZONAL_NEG.search(str(b.get("group"))) for b in _get(backend, "backends") or []
                                      if isinstance(b, dict)) if m]
        if serverless:
            regions = ", ".join(sorted({show(_get(n, "region")) for n in serverless}))
            negs[parent] = graph.node("neg", backend["name"], ["Serverless NEGs", regions], parent, serverless)
            graph.edge(backend_id, negs[parent])
        elif zonal:  # GKE NEGs named in the backend; the mesh gateway's pods are their endpoints
            names, zones = (", ".join(sorted({z[i] for z in zonal})) for i in (1, 0))
            neg_id = graph.node("neg", backend["name"], [f"Zonal NEGs {names}", zones], parent, [backend])
            graph.edge(backend_id, neg_id)
            for gateway in gateways:
                graph.edge(neg_id, gateway)
        else:  # NEGs autoneg attaches after apply: the gateway's Service names this backend
            for gateway in gateways:
                graph.edge(backend_id, gateway)
    runs = []
    for parent in _ordered(r["parent"] for r in resources if r["type"] == CLOUD_RUN):
        services = _of(resources, CLOUD_RUN, parent)
        runs.append(graph.node("run", _names(services), _run_label(services), parent, services))
        if parent in negs:
            graph.edge(negs[parent], runs[-1])
    return runs


def _shard_keys(services: list[dict]) -> list[str]:
    """The shard keys of a sharded service's Cloud Run services (its containers' env), else []."""
    keys = set()
    for service in services:
        for container in _get(service, "template.containers") or []:
            env = {e.get("name"): e.get("value") for e in container.get("envs") or [] if isinstance(e, dict)}
            key = env.get(SHARD_KEY_ENV) or str(env.get(ID_PREFIX_ENV) or "").removesuffix(SEPARATOR)
            if isinstance(key, str) and key:
                keys.add(key)
    return sorted(keys)


def _shards(graph: _Graph, resources: list[dict], entries: list[str], parent: str, keys: list[str]) -> str:
    """Load balancer -> shard routes -> the shards' backends -> their NEGs; returns the NEGs' node id."""
    services = _of(resources, CLOUD_RUN, parent)
    header = next((e.get("value") for s in services for c in _get(s, "template.containers") or []
                   for e in c.get("envs") or [] if isinstance(e, dict) and e.get("name") == HEADER_ENV), "session header")
    name = parent.rsplit("::", 1)[-1]
    backends, negs = _of(resources, BACKEND, parent), _of(resources, NEG, parent)
    url_maps = [r for r in resources if r["type"] == URL_MAP and any(isinstance(m, dict) and m.get("name") == name for m in _get(r, "pathMatchers") or [])]
    routes = graph.node("shards", name, [f"Shard routes {len(keys)}", f"{header} prefix {keys[0]}{SEPARATOR} .. {keys[-1]}{SEPARATOR}",
                                         "to its shard; others weighted 1:1"], parent, url_maps)
    for entry in entries:
        graph.edge(entry, routes)
    backend_id = graph.node("be", name, _backend_label(backends, f"Backends {len(backends)}, one per shard"), parent, backends)
    regions = ", ".join(sorted({show(_get(n, "region")) for n in negs}))
    neg_id = graph.node("neg", name, [f"Serverless NEGs {len(keys)}", regions], parent, negs)
    graph.edge(routes, backend_id, "shards")
    graph.edge(backend_id, neg_id)
    return neg_id


def _mesh(graph: _Graph, resources: list[dict], gateways: list[str]) -> list[str]:
    """Gateway -> DestinationRule -> (learned-pinning proxy ->) Deployment per parent; returns the
    Deployment node ids."""
    deployments: list[str] = []
    servers = [r for r in resources if _kind(r) == "DestinationRule" or _is_mcp_server(r)]
    for parent in _ordered(r["parent"] for r in servers):
        members = [r for r in resources if r["parent"] == parent and not _is_gateway(r)]
        rules = [graph.node("dr", _meta_name(r), _rule_label(r), parent, [r])
                 for r in members if _kind(r) == "DestinationRule"]
        proxies = [graph.node("proxy", _meta_name(r), _proxy_label(r), parent, [r, *_proxy_configs(r, members)])
                   for r in members if r["type"] == STATEFUL_SET]
        workloads = [graph.node("dep", _meta_name(r), _deployment_label(r, members), parent, [r])
                     for r in members if _is_mcp_server(r)]
        # Gateway traffic passes the parent's DestinationRule when there is one, then its proxy.
        hops = [[g for g in gateways], rules, proxies, workloads]
        hops = [hop for hop in hops if hop]
        for sources, targets in zip(hops, hops[1:]):
            for source in sources:
                for target in targets:
                    graph.edge(source, target)
        deployments += workloads
    return deployments


def _proxy_configs(proxy: dict, siblings: list[dict]) -> list[dict]:
    """The ConfigMap holding the proxy's ``haproxy.cfg``."""
    return [r for r in siblings if r["type"] == CONFIG_MAP and "haproxy.cfg" in (_get(r, "data") or {})]


def _proxy_label(proxy: dict) -> list[str]:
    replicas = _get(proxy, "spec.replicas")
    return [f"Pinning proxy {_meta_name(proxy)}", f"HAProxy x {show(replicas) if replicas is not None else 1}",
            "learned pins, shared by peers"]


def _lb_label(lb: dict, resources: list[dict]) -> list[str]:
    ports = {show(_get(r, "portRange")) for r in _of(resources, FORWARDING_RULE, lb["urn"])}
    return [f"Load balancer {lb['name']}", "ports " + (", ".join(_by_number(ports)) or "none")]


def _backend_label(backends: list[dict], title: str = "") -> list[str]:
    """Name (or ``title``), IAP and Cloud Armor when every backend has them, and the affinity."""
    backend = backends[0]
    settings = [show(v) for v in (_get(backend, p) for p in AFFINITY_PATHS) if v not in (None, "", "NONE")]
    affinity = "affinity " + " / ".join(settings) if settings else "no LB affinity"
    name = title or f"Backend {_get(backend, 'name') or backend['name']}"
    if str(_get(backend, "description") or "").startswith("mcp-affinity: unknown hosts"):
        return [name, "unknown hosts: 404 at the load balancer"]
    edge = [label for label, on in (("IAP", all(_get(b, "iap.enabled") is True for b in backends)),
                                    ("Cloud Armor", all(_get(b, "securityPolicy") is not None for b in backends))) if on]
    return [name, *([", ".join(edge)] if edge else []), affinity]


def _run_label(services: list[dict]) -> list[str]:
    def values(path: str) -> str:
        return ", ".join(sorted({show(_get(s, path)) for s in services if _get(s, path) is not None})) or "default"
    lines = [f"Cloud Run {values('name')}", f"regions {values('location')}",
             f"timeout {values('template.timeout')}", f"ingress {values('ingress')}",
             f"access {values('labels.mcp-access')}"]
    if any(_get(s, "template.sessionAffinity") is True for s in services):
        lines.append("cookie affinity on")  # Cloud Run's own best-effort affinity, not the LB's
    shards = _shard_keys(services)
    if shards:
        proxied = any(c.get("name") == "session-shard" for s in services for c in _get(s, "template.containers") or [])
        lines += [f"{len(shards)} shards x 1 instance, always on",
                  "ids prefixed by " + ("ingress HAProxy" if proxied else "the server")]
    return lines


def _store_label(store: dict) -> list[str]:
    mode = _get(store, "transitEncryptionMode")
    tls = "TLS off" if mode in (None, "DISABLED") else f"TLS {show(mode)}"
    return [f"Session store {_get(store, 'name') or store['name']}", f"tier {show(_get(store, 'tier'))}", tls]


def _gateway_label(gateway: dict) -> list[str]:
    numbers = (lookup(s, "port.number") for s in _get(gateway, "spec.servers") or [])
    ports = _by_number({show(n) for n in numbers if n is not None})
    return [f"Istio gateway {_meta_name(gateway)}"] + ([f"ports {', '.join(ports)}"] if ports else [])


def _rule_label(rule: dict) -> list[str]:
    header = _get(rule, "spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName")
    hashing = f"hash header {show(header)}" if header else "no consistent hash"
    return [f"DestinationRule {_meta_name(rule)}", f"host {show(_get(rule, 'spec.host'))}", hashing]


def _deployment_label(deployment: dict, siblings: list[dict]) -> list[str]:
    name, replicas = _meta_name(deployment), _get(deployment, "spec.replicas")
    access = _get(deployment, "metadata.labels.mcp-access")
    scalers = [s for s in siblings if _kind(s) == "HorizontalPodAutoscaler"
               and _get(s, "spec.scaleTargetRef.name") == name]
    if scalers:  # an autoscaler, not spec.replicas, decides the count
        count = [f"replicas {show(_get(scalers[0], 'spec.minReplicas') or 1)}-{show(_get(scalers[0], 'spec.maxReplicas'))} HPA"]
    else:
        count = [f"replicas {show(replicas)}"] if replicas is not None else []
    return [f"Deployment {name}", *count] + ([f"access {show(access)}"] if access is not None else [])


def _is_mcp_server(resource: dict) -> bool:
    """A Deployment of an MCP server: its containers declare ``MCP_SESSION_HEADER`` (not, say, a controller)."""
    return _kind(resource) == "Deployment" and pod_env(resource, HEADER_ENV) is not None


def _kind(resource: dict) -> str:
    """The Kubernetes kind (inputs, else the type token); "" for anything not Kubernetes."""
    if not resource["type"].startswith("kubernetes:"):
        return ""
    kind = _get(resource, "kind")
    return kind if isinstance(kind, str) else resource["type"].rsplit(":", 1)[-1]


def _is_gateway(resource: dict) -> bool:
    # An Istio Gateway object, or an ingress gateway's own Deployment (named *ingressgateway*).
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


def _by_number(values: Iterable[str]) -> list[str]:
    return sorted(values, key=lambda v: (len(v), v))  # "80" before "443", no int() on ranges


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
