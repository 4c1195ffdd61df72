"""The access map: for every host the load balancer serves, every route and what the backend it ends at enforces.

Computed from a plan (resources in the plan shape of :mod:`mcp_affinity.cli.plan_file`; references
between them resolved by :mod:`mcp_affinity.references`), so it shows what would be deployed, not
what the settings meant:

- routes: a host's default (its path matcher's default service), path rules, ``Mcp-Method`` method
  routes and session-shard prefix routes (URL-map ``routeRules``, first match by priority,
  https://cloud.google.com/load-balancing/docs/url-map-concepts), the OAuth metadata paths on the
  shared hosts, and on GKE the mesh's own method routes (Istio ``VirtualService`` ``http`` routes,
  first match wins, https://istio.io/latest/docs/reference/config/networking/virtual-service/);
- what each backend enforces: IAP (``iap.enabled``) with its members (``roles/iap.httpsResourceAccessor``)
  and programmatic clients; the Cloud Run invoker check (``invokerIamDisabled``) with its
  ``roles/run.invoker`` members (https://cloud.google.com/run/docs/securing/managing-access#invoker_check);
  on GKE the mesh's token policy (``RequestAuthentication`` issuers, ``DENY`` callers' emails); the
  Cloud Armor policy the backend service names, read for the host (rules scoped to other hosts
  left out): its Origin allowlist, the refusal of ``POST`` without ``Mcp-Method``, the per-client and
  per-tool limits, Google's preconfigured rules it enforces (WAF rule sets, ``cve-canary``). Cloud Armor applies the policy of the backend service the URL map picks
  (https://cloud.google.com/armor/docs/security-policy-overview), so a method route to another
  service's backend meets that service's rules, not the host's.

:func:`crossings` says where a route ends at a backend that does not hold the host's own access and
edge (the rule ``method-route-holds-host-access`` of :mod:`mcp_affinity.policies`): the same IAP
members and clients, the same invoker members, the same token policy, and Cloud Armor rules at least
as strict (an Origin allowlist within the host's, the ``Mcp-Method`` refusal where the host has it,
per-client and per-tool limits no looser, compared as requests per second, every preconfigured rule
the host enforces enforced at a sensitivity no lower). The allowlist may also
name ``https://HOST`` of the load balancer's own hosts whose services have the host's access: a page
there is served by such a service, no foreign origin (the default allowlist of a method route's
target names the hosts that route to it and its own). An input unknown until apply (a CrossGuard
preview of a new stack) cannot be judged and is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional

from .references import Index, label
from .wire import (
    AUTHORIZATION_POLICY, BACKEND, CLOUD_RUN, CLOUD_RUN_IAM_MEMBER, IAP_BACKEND_IAM_MEMBER, IAP_SETTINGS, NEG,
    PROJECT_SERVICE_IDENTITY, REQUEST_AUTHENTICATION, SECURITY_POLICY, UNKNOWNS, URL_MAP, VIRTUAL_SERVICE,
)

INVOKER_ROLES = ("roles/run.invoker", "roles/run.servicesInvoker")
IAP_AGENT = "IAP service agent"
_HOST = re.compile(r"request\.headers\['host'\](?:\.lower\(\))?\.matches\('((?:[^'\\]|\\.)*)'\)")
_ORIGINS = re.compile(r"!request\.headers\['origin'\]\.matches\('((?:[^'\\]|\\.)*)'\)")
_METHOD = re.compile(r"request\.headers\['mcp-method'\] == '((?:[^'\\]|\\.)*)'")
_NAME = re.compile(r"request\.headers\['mcp-name'\] == '((?:[^'\\]|\\.)*)'")
_NO_METHOD = re.compile(r"!has\(request\.headers\['mcp-method'\]\)")
_SIGNATURE = re.compile(r"evaluatePreconfigured(?:Waf|Expr)\('([^']+)'(?:,\s*\{'sensitivity':\s*(\d+)\})?")


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value in UNKNOWNS)


def _cel_text(quoted: str) -> str:
    """The text of a CEL single-quoted string's body (``\\\\`` and ``\\'`` unescaped)."""
    return re.sub(r"\\(.)", r"\1", quoted)


@dataclass(frozen=True)
class Limit:
    """A Cloud Armor ``throttle``: ``count`` requests per ``interval`` seconds."""

    count: float
    interval: float

    @property
    def rate(self) -> float:
        return self.count / self.interval

    def __str__(self) -> str:
        return f"{self.count:g}/{self.interval:g}s"


@dataclass(frozen=True)
class Edge:
    """The Cloud Armor rules that apply to one host's requests at one backend service.

    ``origins``: the allowlist (None: no Origin check); ``method_header``: ``POST`` without
    ``Mcp-Method`` refused; ``per_client``: the per-IP limit; ``per_tool``: (method, name or None) ->
    limit; ``signatures``: Google's preconfigured rules enforced (not in preview), rule set ->
    sensitivity (0 where it takes none: ``cve-canary``). ``policy``: the policy's label, or None when
    the backend service names none.
    """

    policy: Optional[str]
    origins: Optional[frozenset[str]] = None
    method_header: bool = False
    per_client: Optional[Limit] = None
    per_tool: tuple[tuple[tuple[str, Optional[str]], Limit], ...] = ()
    signatures: tuple[tuple[str, int], ...] = ()

    def summary(self) -> str:
        if self.policy is None:
            return "no Cloud Armor policy"
        parts = [self.policy]
        parts.append("origins " + (", ".join(sorted(self.origins)) if self.origins is not None else "any"))
        if self.method_header:
            parts.append("POST without Mcp-Method refused")
        if self.per_client is not None:
            parts.append(f"per client {self.per_client}")
        parts += [f"{m}{' ' + n if n else ''} {limit}" for (m, n), limit in self.per_tool]
        parts += [_signature(name, level) for name, level in self.signatures]
        return "; ".join(parts)


@dataclass(frozen=True)
class Access:
    """Who a backend admits: ``iap`` (None: off; else members and programmatic clients),
    ``invoker`` (None: the invoker check off on some service behind it; else its members),
    ``tokens`` (GKE: (issuers, callers' emails or None for any token holder, whether a request
    without a token is refused); None: no token policy), ``mode``: the ``mcp-access`` label of the services behind it, when known."""

    iap: Optional[tuple[frozenset[str], frozenset[str]]] = None
    invoker: Optional[frozenset[str]] = None
    tokens: Optional[tuple[frozenset[str], Optional[frozenset[str]], bool]] = None
    mode: Optional[str] = None

    def summary(self) -> str:
        parts = []
        if self.iap is not None:
            members, clients = self.iap
            parts.append("iap: " + ", ".join([*sorted(members), *(f"client {c}" for c in sorted(clients))]))
        if self.invoker is not None and self.iap is None:  # behind IAP the invoker is IAP's service agent
            parts.append("invoker: " + (", ".join(sorted(self.invoker)) or "nobody"))
        if self.tokens is not None:
            issuers, emails, required = self.tokens
            parts.append(("token required from " if required else "token checked when sent, from ") +
                         ", ".join(sorted(issuers)) + (f", callers {', '.join(sorted(emails))}" if emails is not None else ""))
        if not parts:
            return f"{self.mode}: no identity check at the edge" if self.mode else "no identity check"
        shown = "; ".join(parts)
        # The mode label names what the checks are for (``iam (invoker: ...)``), unless a check says it already.
        return f"{self.mode} ({shown})" if self.mode and not shown.startswith(self.mode) else shown


@dataclass(frozen=True)
class End:
    """Where a route ends: a backend service (``urn``, ``label``) or a mesh service, with what it enforces."""

    urn: str
    label: str
    access: Optional[Access]
    edge: Optional[Edge]

    def summary(self) -> str:
        parts = [self.access.summary() if self.access is not None else "access unknown until apply"]
        if self.edge is not None:
            parts.append(self.edge.summary())
        return f"{self.label} [{' | '.join(parts)}]"


@dataclass(frozen=True)
class Route:
    """One route of one host: ``kind`` default, path, method, shard, metadata or mesh-method;
    ``match`` as people read it; ``ends``: where it goes (several for weighted shards);
    ``method``/``name``: the ``Mcp-Method``/``Mcp-Name`` it matches (method routes);
    ``source``: the URN of the URL map or VirtualService that routes it; ``owner``: where the host's
    own requests end (the host's default), against which it is judged."""

    host: str
    kind: str
    match: str
    ends: tuple[End, ...]
    source: str
    method: Optional[str] = None
    name: Optional[str] = None
    owner: tuple[End, ...] = field(default=(), compare=False)

    def line(self) -> str:
        """``host: match -> label, label [access | edge]``: ends enforcing the same shown once."""
        groups: dict[str, list[str]] = {}
        for end in self.ends:
            groups.setdefault(end.summary()[len(end.label):], []).append(end.label)
        return f"{self.host}: {self.match} -> " + ", ".join(
            ", ".join(labels) + shown for shown, labels in groups.items())


class _Reader:
    """What each backend service and mesh service enforces, read once per resource."""

    def __init__(self, resources: list[Mapping[str, Any]]):
        self.resources, self.index = resources, Index(resources)
        self.of: dict[str, list[Mapping[str, Any]]] = {}
        for resource in resources:
            self.of.setdefault(resource.get("type", ""), []).append(resource)
        self._ends: dict[tuple, End] = {}

    def inputs(self, resource: Mapping[str, Any]) -> dict:
        value = resource.get("inputs")
        return value if isinstance(value, dict) else {}

    def end(self, backend: Mapping[str, Any], host: str) -> End:
        key = (backend["urn"], host)
        if key not in self._ends:
            self._ends[key] = End(backend["urn"], label(backend), self._access(backend), self._edge(backend, host))
        return self._ends[key]

    def _access(self, backend: Mapping[str, Any]) -> Optional[Access]:
        inputs, name = self.inputs(backend), self.inputs(backend).get("name")
        iap = None
        if (inputs.get("iap") or {}).get("enabled") is True:
            members = frozenset(self._member(m, "member") for m in self.of.get(IAP_BACKEND_IAM_MEMBER, [])
                                if self.inputs(m).get("webBackendService") == name)
            clients = frozenset(c for s in self.of.get(IAP_SETTINGS, [])
                                if str(self.inputs(s).get("name", "")).endswith(f"/services/{name}")
                                for c in (((self.inputs(s).get("accessSettings") or {}).get("oauthSettings") or {})
                                          .get("programmaticClients") or []))
            iap = (members, clients)
        services = self._run_services(backend)
        if services is None:  # no Cloud Run behind it: the GKE gateway (the mesh checks tokens) or the 404 placeholder
            return Access(iap=iap)
        invoker: Optional[frozenset[str]] = frozenset()
        modes = set()
        for service in services:
            s = self.inputs(service)
            modes.add((s.get("labels") or {}).get("mcp-access"))
            if s.get("invokerIamDisabled") is not False:
                invoker = None
            elif invoker is not None:
                invoker |= {self._member(b, "member") for b in self.of.get(CLOUD_RUN_IAM_MEMBER, [])
                            if self.inputs(b).get("name") == s.get("name")
                            and self.inputs(b).get("location") == s.get("location")
                            and self.inputs(b).get("role") in INVOKER_ROLES}
        mode = modes.pop() if len(modes) == 1 else None
        return Access(iap=iap, invoker=invoker, mode=mode)

    def _member(self, binding: Mapping[str, Any], path: str) -> str:
        value = self.inputs(binding).get(path)
        target = self.index.target(binding, path, value)
        if target is not None and target.get("type") == PROJECT_SERVICE_IDENTITY:
            service = self.inputs(target).get("service")
            return IAP_AGENT if service == "iap.googleapis.com" else f"service agent of {service}"
        return str(value) if _known(value) else label(target) if target is not None else "(known after apply)"

    def _run_services(self, backend: Mapping[str, Any]) -> Optional[list[Mapping[str, Any]]]:
        """The Cloud Run services behind the backend's serverless NEGs; None when it has none known."""
        found = []
        for i, item in enumerate(self.inputs(backend).get("backends") or []):
            neg = self.index.target(backend, f"backends.{i}.group", (item or {}).get("group"))
            if neg is None or neg.get("type") != NEG:
                continue
            n = self.inputs(neg)
            found += [s for s in self.of.get(CLOUD_RUN, []) if self.inputs(s).get("name") == (n.get("cloudRun") or {}).get("service")
                      and self.inputs(s).get("location") == n.get("region")]
        return found or None

    def _edge(self, backend: Mapping[str, Any], host: str) -> Optional[Edge]:
        value = self.inputs(backend).get("securityPolicy")
        if value is None:
            return Edge(policy=None)
        policy = self.index.target(backend, "securityPolicy", value)
        if policy is None or policy.get("type") != SECURITY_POLICY:
            return None  # unknown until apply, or a policy this plan does not make
        attached = [other for other in self.of.get(backend.get("type", ""), [])
                    if (self.index.target(other, "securityPolicy", self.inputs(other).get("securityPolicy")) or {}).get("urn")
                    == policy.get("urn")]
        return edge_for_host(policy, host, max(len(attached), 1))


def edge_for_host(policy: Mapping[str, Any], host: str, backend_services: int = 1) -> Edge:
    """The rules of a planned Cloud Armor ``policy`` that apply to requests for ``host``, in priority
    order; rate limits as a client meets them over the ``backend_services`` the policy is attached to
    (Cloud Armor counts per backend service, and a sharded service's policy divides its limits by its
    shards: :mod:`mcp_affinity.security_policy`)."""
    rules = sorted((r for r in (policy.get("inputs") or {}).get("rules") or [] if isinstance(r, dict)),
                   key=lambda r: r.get("priority", 0))
    origins, method_header, per_client, per_tool, signatures = None, False, None, {}, {}
    for rule in rules:
        expression = str(((rule.get("match") or {}).get("expr") or {}).get("expression") or "")
        scope = _HOST.search(expression)
        if scope and not re.fullmatch(_cel_text(scope.group(1)), host.lower()):
            continue
        action, limit = str(rule.get("action", "")), rule.get("rateLimitOptions") or {}
        if action.startswith("deny") and "request.headers['origin']" in expression:
            allowed = _ORIGINS.search(expression)
            origins = frozenset(_origins(allowed.group(1))) if allowed else frozenset()
        elif action.startswith("deny") and _NO_METHOD.search(expression) and "'POST'" in expression:
            method_header = True
        elif action.startswith("deny") and not rule.get("preview") and (found := _SIGNATURE.search(expression)):
            signatures[found.group(1)] = max(signatures.get(found.group(1), 0), int(found.group(2) or 0))
        elif action == "throttle" and limit:
            threshold = limit.get("rateLimitThreshold") or {}
            if not isinstance(threshold.get("count"), (int, float)) or not isinstance(threshold.get("intervalSec"), (int, float)):
                continue
            found = Limit(threshold["count"] * backend_services, threshold["intervalSec"])
            method, name = _METHOD.search(expression), _NAME.search(expression)
            if method:
                key = (_cel_text(method.group(1)), _cel_text(name.group(1)) if name else None)
                per_tool.setdefault(key, found)
            elif per_client is None:
                per_client = found
    return Edge(label(policy), origins, method_header, per_client,
                tuple(sorted(per_tool.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))), tuple(sorted(signatures.items())))


def _signature(name: str, sensitivity: int) -> str:
    return f"{name} enforced" + (f" (sensitivity {sensitivity})" if sensitivity else "")


def _origins(pattern: str) -> list[str]:
    """The origins of an allowlist pattern ``^(?:a|b)$`` (each ``re.escape``d, then CEL-quoted)."""
    body = _cel_text(pattern)
    body = body[4:-2] if body.startswith("^(?:") and body.endswith(")$") else body
    return [re.sub(r"\\(.)", r"\1", part) for part in body.split("|") if part]


@dataclass
class AccessMap:
    """Every route of every host (:class:`Route`), in the order the load balancer lists them."""

    routes: list[Route] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line a route: ``host: match -> backend [access | edge]``."""
        return [route.line() for route in self.routes]


def access_map(resources: list[Mapping[str, Any]]) -> AccessMap:
    """The access map of a plan's resources (see the module docstring)."""
    reader = _Reader(resources)
    found = AccessMap()
    for url_map in reader.of.get(URL_MAP, []):
        found.routes += list(_url_map_routes(reader, url_map))
    found.routes += list(_mesh_routes(reader, found.routes))
    return found


def _targets(reader: _Reader, url_map: Mapping[str, Any], where: dict, path: str, service_key: str,
             action_key: str) -> list[Mapping[str, Any]]:
    """The backend services a default or rule sends to: one ``service``, or weighted backends."""
    if where.get(service_key) is not None:
        target = reader.index.target(url_map, f"{path}{service_key}", where[service_key])
        return [target] if target is not None else []
    weighted = ((where.get(action_key) or {}).get("weightedBackendServices") or [])
    return [t for i, w in enumerate(weighted)
            if (t := reader.index.target(url_map, f"{path}{action_key}.weightedBackendServices.{i}.backendService",
                                         (w or {}).get("backendService"))) is not None]


def _url_map_routes(reader: _Reader, url_map: Mapping[str, Any]) -> Iterator[Route]:
    inputs = reader.inputs(url_map)
    matchers = {m.get("name"): (i, m) for i, m in enumerate(inputs.get("pathMatchers") or []) if isinstance(m, dict)}
    name = url_map["urn"]
    default = _targets(reader, url_map, inputs, "", "defaultService", "defaultRouteAction")
    if default or inputs.get("hostRules"):
        yield Route("*", "default", "unknown hosts" + _aborts(inputs), _ends(reader, default, "*"), name)
    for rule in inputs.get("hostRules") or []:
        index, matcher = matchers.get((rule or {}).get("pathMatcher"), (None, None))
        if matcher is None:
            continue
        base = f"pathMatchers.{index}."
        for host in rule.get("hosts") or []:
            own = _ends(reader, _targets(reader, url_map, matcher, base, "defaultService", "defaultRouteAction"), host)
            yield Route(host, "default", "/*" + _aborts(matcher), own, name, owner=own)
            for j, path_rule in enumerate(matcher.get("pathRules") or []):
                paths = path_rule.get("paths") or []
                kind = "metadata" if any("/.well-known/oauth-protected-resource" in p for p in paths) else "path"
                ends = _ends(reader, _targets(reader, url_map, path_rule, f"{base}pathRules.{j}.", "service", "routeAction"), host)
                # A path owns its requests: judged against the backend it names.
                yield Route(host, kind, " ".join(paths), ends, name, owner=ends)
            for j, route_rule in sorted(enumerate(matcher.get("routeRules") or []), key=lambda r: r[1].get("priority", 0)):
                ends = _ends(reader, _targets(reader, url_map, route_rule, f"{base}routeRules.{j}.", "service", "routeAction"), host)
                yield _rule_route(host, route_rule, ends, name, own)


def _aborts(where: Mapping[str, Any]) -> str:
    """`` (404 at the load balancer)`` when a default's route action aborts every request."""
    abort = (((where.get("defaultRouteAction") or {}).get("faultInjectionPolicy") or {}).get("abort") or {})
    return f" ({abort.get('httpStatus', 0):g} at the load balancer)" if abort.get("percentage") == 100 else ""


def _rule_route(host: str, rule: Mapping[str, Any], ends: tuple[End, ...], source: str, own: tuple[End, ...]) -> Route:
    headers = [h for m in rule.get("matchRules") or [] for h in (m or {}).get("headerMatches") or []]
    by_name = {str(h.get("headerName", "")).lower(): h for h in headers}
    if "mcp-method" in by_name:
        method = by_name["mcp-method"].get("exactMatch")
        name = (by_name.get("mcp-name") or {}).get("exactMatch")
        return Route(host, "method", f"{method}{' ' + name if name else ''}", ends, source, method, name, own)
    shown = ", ".join(f"{h.get('headerName')} {'^' + str(h['prefixMatch']) if 'prefixMatch' in h else h.get('exactMatch')}"
                      for h in headers)
    # A shard of the host's own service: judged against the shard it names (same service, same rules).
    return Route(host, "shard", shown or "route rule", ends, source, owner=ends)


def _ends(reader: _Reader, backends: list[Mapping[str, Any]], host: str) -> tuple[End, ...]:
    return tuple(reader.end(b, host) for b in backends if b.get("type") == BACKEND)


def _mesh_routes(reader: _Reader, edge_routes: list[Route]) -> Iterator[Route]:
    """GKE: the mesh's routes of each host, from the gateway on (``VirtualService`` ``http`` routes)."""
    gateway = {r.host: r for r in edge_routes if r.kind == "default"}
    for service in reader.of.get(VIRTUAL_SERVICE, []):
        spec = (reader.inputs(service).get("spec") or {})
        routes = [r for r in spec.get("http") or [] if isinstance(r, dict)]
        default = next((r for r in routes if not r.get("match")), None)
        if default is None:
            continue
        for host in spec.get("hosts") or []:
            edge = gateway.get(host)
            own = (_mesh_end(reader, default, edge),)
            yield Route(host, "mesh-default", "/* (mesh)", own, service["urn"], owner=own)
            for route in routes:
                if route is default:
                    continue
                headers = {k.lower(): v for m in route.get("match") or [] for k, v in ((m or {}).get("headers") or {}).items()}
                method = (headers.get("mcp-method") or {}).get("exact")
                name = (headers.get("mcp-name") or {}).get("exact")
                match = f"{method}{' ' + name if name else ''} (mesh)" if method else f"{route.get('name')} (mesh)"
                yield Route(host, "method", match, (_mesh_end(reader, route, edge),), service["urn"], method, name, own)


def _mesh_end(reader: _Reader, route: Mapping[str, Any], edge: Optional[Route]) -> End:
    """A mesh service (by its ``NAME.NAMESPACE.svc.cluster.local`` host) with the gateway's IAP and
    Cloud Armor for the host (one backend service for the whole mesh) and its own token policy."""
    destination = ((route.get("route") or [{}])[0].get("destination") or {}).get("host", "")
    parts = str(destination).split(".")
    namespace = parts[1] if len(parts) > 2 else ""
    gateway = edge.ends[0] if edge is not None and len(edge.ends) == 1 else None
    policies = [(policy["type"], reader.inputs(policy).get("spec") or {})
                for policy in reader.of.get(REQUEST_AUTHENTICATION, []) + reader.of.get(AUTHORIZATION_POLICY, [])
                if (reader.inputs(policy).get("metadata") or {}).get("namespace") == namespace]
    tokens = token_checks(policies)
    iap = gateway.access.iap if gateway is not None and gateway.access is not None else None
    return End(f"mesh:{destination}", f"mesh service {parts[0]}", Access(iap=iap, tokens=tokens),
               gateway.edge if gateway is not None else None)


Tokens = tuple[frozenset[str], Optional[frozenset[str]], bool]
"""What token policies check of a mesh service's callers (:attr:`Access.tokens`)."""
EMAIL_CLAIM = "request.auth.claims[email]"


def token_policy(kind: str, spec: Mapping[str, Any]) -> Tokens:
    """What one planned Istio object (``kind`` its type, ``spec`` as planned) checks of callers'
    tokens: (issuers a ``RequestAuthentication`` validates; the emails a ``DENY``
    ``AuthorizationPolicy`` admits, its ``notValues`` of :data:`EMAIL_CLAIM`, None without an email
    check; whether a ``DENY`` policy refuses requests without a token, ``notRequestPrincipals``).
    Other objects, ``ALLOW`` policies among them, check nothing of tokens: ``(∅, None, False)``."""
    issuers: set[str] = set()
    emails: Optional[set[str]] = None
    required = False
    if kind == REQUEST_AUTHENTICATION:
        issuers = {r["issuer"] for r in spec.get("jwtRules") or [] if isinstance(r, dict) and isinstance(r.get("issuer"), str)}
    elif kind == AUTHORIZATION_POLICY and spec.get("action") == "DENY":
        for rule in (r for r in spec.get("rules") or [] if isinstance(r, dict)):
            required |= any((f.get("source") or {}).get("notRequestPrincipals") for f in rule.get("from") or [])
            for when in rule.get("when") or []:
                if when.get("key") == EMAIL_CLAIM:
                    emails = (emails or set()) | set(when.get("notValues") or [])
    return frozenset(issuers), frozenset(emails) if emails is not None else None, required


def token_checks(policies: list[tuple[str, Mapping[str, Any]]]) -> Optional[Tokens]:
    """What the token policies of one mesh service, ``(kind, spec)`` each, check together
    (:func:`token_policy`, merged); None when no ``RequestAuthentication`` validates an issuer."""
    found = [token_policy(kind, spec) for kind, spec in policies]
    issuers = frozenset().union(*(f[0] for f in found))
    checked = [f[1] for f in found if f[1] is not None]
    emails = frozenset().union(*checked) if checked else None
    return (issuers, emails, any(f[2] for f in found)) if issuers else None


def crossings(found: AccessMap) -> list[tuple[Route, End, list[str]]]:
    """(route, end, what differs) for each route ending where its host's access or edge does not hold."""
    result, seen = [], set()
    defaults = [(r.host, e.access) for r in found.routes if r.kind == "default" and r.host != "*" for e in r.ends]
    for route in found.routes:
        for end in route.ends:
            for own in route.owner:
                # Pages of the load balancer's own hosts served with the same access are no foreign origin.
                siblings = {f"https://{host}" for host, access in defaults if access == own.access}
                differences = differs(own, end, route, siblings) if own.urn != end.urn else []
                if differences and (route, end.urn) not in seen:
                    seen.add((route, end.urn))
                    result.append((route, end, differences))
    return result


def differs(own: End, end: End, route: Route, siblings: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """What ``end`` does not hold of ``own`` for the requests ``route`` sends it (empty: it holds);
    ``siblings``: origins ``end`` may admit beyond the host's allowlist (the load balancer's own
    hosts whose services have the host's access)."""
    out = []
    if own.access is not None and end.access is not None:
        a, b = own.access, end.access
        if a.iap != b.iap:
            out.append(f"IAP {_iap(a.iap)} on the host, {_iap(b.iap)} at the route's end")
        if a.invoker != b.invoker:
            out.append(f"invoker check {_set(a.invoker)} on the host, {_set(b.invoker)} at the route's end")
        if a.tokens is not None and (b.tokens is None or not b.tokens[0] <= a.tokens[0] or (a.tokens[2] and not b.tokens[2])
                                     or (a.tokens[1] is not None and (b.tokens[1] is None or not b.tokens[1] <= a.tokens[1]))):
            out.append(f"mesh token check ({_tokens(a.tokens)}) on the host, ({_tokens(b.tokens)}) at the route's end")
    if own.edge is not None and end.edge is not None:
        out += _edge_differences(own.edge, end.edge, route, frozenset(siblings))
    return out


def _tokens(value) -> str:
    if value is None:
        return "none"
    issuers, emails, required = value
    return (("required" if required else "when sent") + " from " + ", ".join(sorted(issuers)) +
            (f", callers {', '.join(sorted(emails))}" if emails is not None else ""))


def _iap(value) -> str:
    return "off" if value is None else "on for " + (", ".join(sorted(value[0]) + [f"client {c}" for c in sorted(value[1])]) or "nobody")


def _set(value) -> str:
    return "off" if value is None else "on for " + (", ".join(sorted(value)) or "nobody")


def _edge_differences(a: Edge, b: Edge, route: Route, siblings: frozenset[str]) -> list[str]:
    out = []
    if a.origins is not None and (b.origins is None or not b.origins <= a.origins | siblings):
        extra = "any origin" if b.origins is None else ", ".join(sorted(b.origins - a.origins - siblings))
        out.append(f"Origin check: the route's end admits {extra}, which the host refuses")
    if a.method_header and not b.method_header:
        out.append("the host refuses POST without Mcp-Method, the route's end does not")
    if a.per_client is not None and (b.per_client is None or b.per_client.rate > a.per_client.rate):
        out.append(f"per-client limit {a.per_client} on the host, {b.per_client or 'none'} at the route's end")
    for (method, name), limit in a.per_tool:
        if route.method is None or method != route.method or (route.name and name and name != route.name):
            continue  # the route does not carry requests this limit counts
        held = [l for (m, n), l in b.per_tool if m == method and n in (name, None)]
        if not held or min(l.rate for l in held) > limit.rate:
            out.append(f"per-tool limit {method}{' ' + name if name else ''} {limit} on the host, "
                       f"{min(held, key=lambda l: l.rate) if held else 'none'} at the route's end")
    theirs = dict(b.signatures)
    for name, level in a.signatures:
        if theirs.get(name, -1) < level:
            there = _signature(name, theirs[name]) if name in theirs else "not enforced"
            out.append(f"preconfigured rule {_signature(name, level)} on the host, {there} at the route's end")
    return out
