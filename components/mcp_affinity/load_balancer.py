"""GlobalHttpsLoadBalancer: the public front end for MCP backends on Cloud Run or GKE.

A global static IP, Google-managed certificates, a URL map routing each backend service by host,
path or MCP method, an HTTPS proxy with a TLS 1.2+ SSL policy, a forwarding rule on 443 and an
HTTP-to-HTTPS redirect on 80. It takes backend service ids as context, so any platform can sit
behind it.

MCP 2026-07-28 requests carry ``Mcp-Method`` and ``Mcp-Name`` headers
(https://modelcontextprotocol.io/specification/2026-07-28/changelog); the URL map routes on them
with ``routeRules[].matchRules[].headerMatches``, which the global external Application Load
Balancer supports with serverless NEG backends (https://cloud.google.com/load-balancing/docs/url-map-concepts).

Certificates are a map keyed by a stable name. Each certificate's name carries a hash of its
domains, so changing the domains creates the new certificate before the old one is deleted. A
new Google-managed certificate needs DNS to point at the address before it turns ACTIVE
(https://cloud.google.com/load-balancing/docs/ssl-certificates/google-managed-certs); for a
change with no downtime add the new domains under a new key, wait for ACTIVE, remove the old key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Literal, Mapping, Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import AfterValidator, Field, Strict, model_validator

from . import cloud_run_shards, edge_routes
from .affinity import METHOD_HEADER, MODERN_VERSIONS, NAME_HEADER, VERSION_HEADER, HeaderName
from .naming import RFC1035, PhysicalName, physical_name
from .settings import Bool, Faults, Model, Name, Settings, StrInput, takes_settings
from .wire import (BACKEND, FORWARDING_RULE, GLOBAL_ADDRESS, MANAGED_SSL_CERTIFICATE, SSL_POLICY, TARGET_HTTP_PROXY,
                   TARGET_HTTPS_PROXY, URL_MAP)

_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def _check_domain(value: str) -> str:
    if len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise ValueError(f"{value!r} is not a lowercase domain name such as mcp.example.com")
    return value


def _check_path_prefix(value: str) -> str:
    if not re.fullmatch(r"/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*", value) or len(value) > 1000:
        raise ValueError(f"path prefix {value!r}: starts with '/', no trailing '/', no '*' or spaces")
    return value


def _check_method(value: str) -> str:
    if not re.fullmatch(r"[a-z][A-Za-z0-9_]*(/[a-z][A-Za-z0-9_]*)*", value):
        raise ValueError(f"{value!r} is not an MCP method name such as tools/call")
    return value


Domain = Annotated[str, Strict(), AfterValidator(_check_domain)]
PathPrefix = Annotated[str, Strict(), AfterValidator(_check_path_prefix)]
McpMethod = Annotated[str, Strict(), AfterValidator(_check_method)]


class MethodRouteArgs(Model):
    """Requests of one MCP method sent to another service's backend, matched on the ``Mcp-Method``
    / ``Mcp-Name`` headers of MCP 2026-07-28 (legacy requests carry neither and stay where they are).
    """

    method: McpMethod = Field(description="the MCP method, e.g. `tools/call`.")
    name: Optional[str] = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_./-]+$",
        description="the tool, prompt or resource name (`Mcp-Name`); unset matches every name.")
    service: Name = Field(description="the service that gets these requests.")


def check_hosts_once(hosts: list[str], faults: Faults, location: tuple = ("hosts",)) -> None:
    """Record a fault under ``location + (index,)`` for each host listed a second time."""
    for index, host in enumerate(hosts):
        if host in hosts[:index]:
            faults.add((*location, index), f"{host} is listed twice")


def check_method_matches(method_routes: Mapping[str, MethodRouteArgs], faults: Faults,
                         location: tuple = ("methodRoutes",)) -> None:
    """Record a fault for each method route whose match (method and name) an earlier key already
    routes to another service: a request cannot go to two services."""
    seen: dict[tuple, tuple[str, str]] = {}
    for key, route in sorted(method_routes.items()):
        match = (route.method, route.name)
        if match in seen and seen[match][1] != route.service:
            faults.add((*location, key), f"matches the same requests as methodRoutes.{seen[match][0]} "
                       f"({route.method}{' ' + route.name if route.name else ''}) but sends them to another service")
        seen.setdefault(match, (key, route.service))


ShardKey = Annotated[str, Strict(), Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]


class SessionShardsArgs(Model):
    """A route served by session shards (:mod:`mcp_affinity.cloud_run_shards`): one backend service per
    shard key; a request whose session header starts with ``{key}.`` goes to that shard, any other
    request to the ``current`` shards (all when unset) with equal weights."""

    header: HeaderName = Field(description="the session header whose prefix names the shard")
    keys: list[ShardKey] = Field(min_length=1, description="the shard keys, one backend service each")
    current: Optional[list[ShardKey]] = Field(default=None, min_length=1, description=(
        "the keys taking new sessions (the current generation's); the others only serve their own ids"))

    @model_validator(mode="after")
    def _current_in_keys(self) -> "SessionShardsArgs":
        if self.current is not None and not set(self.current) <= set(self.keys):
            raise ValueError(f"current keys {sorted(set(self.current) - set(self.keys))} are not among the keys")
        return self

    def spread(self, backends: Mapping[str, StrInput]) -> dict[str, StrInput]:
        """The part of ``backends`` (shard key -> backend service) that takes new sessions."""
        return {key: backends[key] for key in (self.current or self.keys)}


class RouteArgs(Model):
    """Where one backend serves. A route with neither hosts nor paths is the default route."""

    hosts: list[Domain] = Field(default_factory=list, description="host names routed here (each on a certificate).")
    path_prefixes: list[PathPrefix] = Field(
        default_factory=list,
        description="path prefixes of any host routed here.")
    method_routes: dict[Name, MethodRouteArgs] = Field(
        default_factory=dict,
        description="key -> MCP method sent to another service (needs hosts, no path prefixes).")
    # Set by the platform from a service's pinning: shards, never written in a stack file.
    session_shards: Optional[SessionShardsArgs] = Field(default=None, description=(
        "session shards: the backend is a map of shard key -> backend service id"))

    @model_validator(mode="after")
    def _rules(self) -> "RouteArgs":
        faults = Faults("RouteArgs")
        if self.method_routes and (not self.hosts or self.path_prefixes):
            faults.add("methodRoutes", "methodRoutes need hosts and no pathPrefixes on the same route")
        check_hosts_once(self.hosts, faults)
        for index, path in enumerate(self.path_prefixes):
            if path in self.path_prefixes[:index]:
                faults.add(("pathPrefixes", index), f"{path} is listed twice")
        check_method_matches(self.method_routes, faults)
        if self.session_shards is not None:
            if not self.hosts or self.path_prefixes:
                faults.add("hosts", "pinning: shards needs hosts and no pathPrefixes: each host gets a route "
                           "rule per shard")
            faults.check("shards", lambda: cloud_run_shards.check_url_map_quota(
                self.session_shards.keys, len(self.method_routes),
                sum(_predicates(m) for m in self.method_routes.values())))
        faults.raise_if_any()
        return self


MAX_CERTIFICATES = 15
"""SSL certificates per target HTTPS proxy (https://cloud.google.com/load-balancing/docs/quotas#ssl_certificates)."""


class GlobalHttpsLoadBalancerArgs(Settings):
    """Settings of :class:`GlobalHttpsLoadBalancer`.

    Rule violations are raised together, each under its field (``routes.<key>.hosts.<i>``, ...).
    """

    certificates: dict[Name, list[Domain]] = Field(
        min_length=1, max_length=MAX_CERTIFICATES,
        description="stable key -> 1 to 100 domains of one Google-managed certificate; at most 15 certificates (one "
                    "HTTPS proxy holds 15).")
    routes: dict[Name, RouteArgs] = Field(
        min_length=1,
        description="stable key -> `RouteArgs`; the context `backends` maps the same keys to backend service ids. "
                    "Every host must be on a certificate; no host or path twice.")
    default_route: Optional[Name] = Field(
        default=None,
        description="the route for requests whose host no route names, named on purpose (it then also gets "
                    "DNS-rebinding requests); unset: those requests end at the load balancer with 404. A route "
                    "without hosts or paths must be the default route or a method-route target.")
    http_redirect: Bool = Field(default=True, description="serve port 80 with a 301 redirect to HTTPS.")
    min_tls_version: Literal["TLS_1_2", "TLS_1_3"] = Field(
        default="TLS_1_2",
        description="the lowest TLS version the HTTPS proxy accepts.")
    oauth_routes: list[Name] = Field(
        default_factory=list,
        description="routes whose server is an OAuth resource server: the metadata URLs of their path prefixes are "
                    "routed to them (`mcp_affinity.edge_routes`).")

    @model_validator(mode="after")
    def _rules(self) -> "GlobalHttpsLoadBalancerArgs":
        faults = Faults("GlobalHttpsLoadBalancerArgs")
        for key, domains in self.certificates.items():
            if not 1 <= len(domains) <= 100 or len(set(domains)) != len(domains):
                faults.add(("certificates", key), "1 to 100 distinct domains")
        covered = {d for domains in self.certificates.values() for d in domains}
        seen_hosts: dict[str, str] = {}
        seen_paths: dict[str, str] = {}
        for key, route in self.routes.items():
            for index, host in enumerate(route.hosts):
                if host not in covered:
                    faults.add(("routes", key, "hosts", index), f"{host} is on no certificate; add it to certificates")
                if seen_hosts.setdefault(host, key) != key:
                    faults.add(("routes", key, "hosts", index), f"{host} is also on route {seen_hosts[host]}")
            for index, path in enumerate(route.path_prefixes if not route.hosts else []):
                if seen_paths.setdefault(path, key) != key:
                    faults.add(("routes", key, "pathPrefixes", index), f"{path} is also on route {seen_paths[path]}")
            for method_key, method in route.method_routes.items():
                if method.service not in self.routes or method.service == key:
                    others = ", ".join(sorted(set(self.routes) - {key})) or "none"
                    faults.add(("routes", key, "methodRoutes", method_key, "service"),
                               f"{method.service!r} is not another route; other routes: {others}")
        for index, key in enumerate(self.oauth_routes):
            if key not in self.routes:
                faults.add(("oauthRoutes", index), f"{key!r} is not a route; routes: {', '.join(sorted(self.routes))}")
        if not self.shared_hosts():
            for key, route in sorted(self.routes.items()):
                if route.path_prefixes and not route.hosts:
                    faults.add(("routes", key, "pathPrefixes"), "path prefixes serve on the certificate domains no "
                               "route claims by host, and there is none: add such a domain to a certificate")
        self._check_default(faults)
        faults.raise_if_any()
        return self

    def _check_default(self, faults: Faults) -> None:
        targets = {m.service for r in self.routes.values() for m in r.method_routes.values()}
        bare = sorted(k for k, r in self.routes.items() if not r.hosts and not r.path_prefixes and k not in targets)
        if self.default_route is not None:
            if self.default_route not in self.routes:
                faults.add("defaultRoute", f"{self.default_route!r} is not a route; routes: {', '.join(sorted(self.routes))}")
            for key in bare:
                if key != self.default_route:
                    faults.add(("routes", key), "no hosts or paths and not the default route: nothing would reach it")
        else:
            for key in bare:
                faults.add(("routes", key), "no hosts or paths: give it hosts, or name it in defaultRoute on purpose "
                           "(it then also receives requests for unknown hosts)")

    def shared_hosts(self) -> list[str]:
        """Certificate domains no route claims: where path-prefixed routes serve."""
        claimed = {h for r in self.routes.values() for h in r.hosts}
        return sorted({d for domains in self.certificates.values() for d in domains} - claimed)

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names of the load balancer's resources, keyed by role."""
        p = self.prefix
        names = {
            "address": physical_name(RFC1035, GLOBAL_ADDRESS, p, name, "ip"),
            "url_map": physical_name(RFC1035, URL_MAP, p, name, "urlmap"),
            "ssl_policy": physical_name(RFC1035, SSL_POLICY, p, name, "tls"),
            "https_proxy": physical_name(RFC1035, TARGET_HTTPS_PROXY, p, name, "https"),
            "rule_443": physical_name(RFC1035, FORWARDING_RULE, p, name, "443"),
        }
        if self.http_redirect:
            names["redirect"] = physical_name(RFC1035, URL_MAP, p, name, "redirect")
            names["http_proxy"] = physical_name(RFC1035, TARGET_HTTP_PROXY, p, name, "http")
            names["rule_80"] = physical_name(RFC1035, FORWARDING_RULE, p, name, "80")
        if self.default_route is None:
            names["nohost"] = physical_name(RFC1035, BACKEND, p, name, "nohost")
        for key, domains in self.certificates.items():
            digest = hashlib.sha256(",".join(sorted(domains)).encode()).hexdigest()[:8]
            names[f"cert-{key}"] = physical_name(RFC1035, MANAGED_SSL_CERTIFICATE, p, name, key, digest)
        return names


@dataclass(frozen=True)
class GlobalHttpsLoadBalancerRef:
    """What others take from the load balancer: ``ip_address`` (for DNS) and ``url_map_id``."""

    ip_address: StrInput
    url_map_id: StrInput


class GlobalHttpsLoadBalancer(pulumi.ComponentResource):
    """A global external Application Load Balancer (``EXTERNAL_MANAGED``) for MCP backends.

    Context: ``backends``, route key -> backend service id (one per key of ``args.routes``); for a
    route with ``session_shards``, a map of shard key -> backend service id.

    Outputs: ``ip_address`` (the static IPv4 address to point DNS at), ``url_map_id`` and
    ``certificate_ids`` (key -> managed certificate id).

    Raises ``ValueError`` when ``backends`` lacks a route's key.
    """

    ip_address: pulumi.Output[str]
    url_map_id: pulumi.Output[str]
    certificate_ids: dict[str, pulumi.Output[str]]

    @takes_settings
    def __init__(self, name: str, args: GlobalHttpsLoadBalancerArgs, *, backends: Mapping[str, StrInput],
                 opts: Optional[pulumi.ResourceOptions] = None):
        missing = sorted(set(args.routes) - set(backends))
        if missing:
            raise ValueError(f"no backend service for routes {missing}")
        for key, route in args.routes.items():
            shards = route.session_shards.keys if route.session_shards else None
            if isinstance(backends[key], Mapping) != (shards is not None) or (shards and set(backends[key]) != set(shards)):
                raise ValueError(f"route {key}: a map of backends goes with session shards, one per shard key "
                                 f"(its session shards: {shards})")
        names = args.names(name)
        super().__init__("mcp-affinity:index:GlobalHttpsLoadBalancer", name, None, opts)
        self._args, self._names, self._backends = args, names, backends
        child = pulumi.ResourceOptions(parent=self)
        address = gcp.compute.GlobalAddress(name, name=names["address"].value, project=args.project,
                                            ip_version="IPV4", labels=args.labels, opts=child)
        certificates = {
            key: gcp.compute.ManagedSslCertificate(f"{name}-{key}", name=names[f"cert-{key}"].value, project=args.project,
                                                   managed={"domains": sorted(domains)}, opts=child)
            for key, domains in sorted(args.certificates.items())
        }
        url_map = gcp.compute.URLMap(name, name=names["url_map"].value, project=args.project, opts=child,
                                     **self._routing(name))
        ssl_policy = gcp.compute.SSLPolicy(name, name=names["ssl_policy"].value, project=args.project,
                                           profile="MODERN", min_tls_version=args.min_tls_version, opts=child)
        proxy = gcp.compute.TargetHttpsProxy(
            name, name=names["https_proxy"].value, project=args.project, url_map=url_map.id,
            ssl_certificates=[c.id for c in certificates.values()], ssl_policy=ssl_policy.id, opts=child,
        )
        self._forwarding_rule(name, "443", proxy.id, address.address)
        if args.http_redirect:
            self._http_redirect(name, address.address)
        self.ip_address = address.address
        self.url_map_id = url_map.id
        self.certificate_ids = {key: c.id for key, c in certificates.items()}
        self.register_outputs({"ip_address": self.ip_address, "url_map_id": self.url_map_id,
                               "certificate_ids": self.certificate_ids})

    def ref(self) -> GlobalHttpsLoadBalancerRef:
        """This load balancer as DNS records and monitoring take it."""
        return GlobalHttpsLoadBalancerRef(self.ip_address, self.url_map_id)

    def _routing(self, name: str) -> dict:
        """URL map arguments: one path matcher per host-routed backend, one for shared path prefixes;
        unknown hosts go to the default route if named, else end with 404 (:mod:`mcp_affinity.edge_routes`)."""
        routes, every = self._args.routes, self._backends
        # New sessions (defaults, method routes) go to the shards taking them; header routes to every shard.
        backends = {key: routes[key].session_shards.spread(b) if key in routes and routes[key].session_shards else b
                    for key, b in every.items()}
        if self._args.default_route is not None:
            default = _target(backends[self._args.default_route], "default_service", "default_route_action")
        else:
            placeholder = edge_routes.placeholder_backend(self, name, self._names["nohost"].value, self._args.project)
            default = {"default_service": placeholder.id, "default_route_action": edge_routes.ABORT_404}
        host_rules, matchers = [], []
        for key, route in sorted(routes.items()):
            if route.hosts:
                host_rules.append({"hosts": sorted(route.hosts), "path_matcher": key})
                matcher = {"name": key, **_target(backends[key], "default_service", "default_route_action")}
                if route.method_routes or route.session_shards:
                    shard_rules = _shard_rules(route, every[key])
                    matcher["route_rules"] = shard_rules + _method_rules(route, backends, len(shard_rules))
                else:
                    matcher["path_rules"] = _path_rules(route, backends[key])
                matchers.append(matcher)
        shared = [(k, r) for k, r in sorted(routes.items()) if r.path_prefixes and not r.hosts]
        if shared and self._args.shared_hosts():
            metadata = edge_routes.metadata_rules({k: r.path_prefixes for k, r in shared}, set(self._args.oauth_routes),
                                                  backends)
            host_rules.append({"hosts": self._args.shared_hosts(), "path_matcher": "paths"})
            matchers.append({"name": "paths", **default,
                             "path_rules": metadata + [rule for k, r in shared for rule in _path_rules(r, backends[k])]})
        return {**default, "host_rules": host_rules, "path_matchers": matchers}

    def _forwarding_rule(self, name: str, port: str, target, address) -> gcp.compute.GlobalForwardingRule:
        return gcp.compute.GlobalForwardingRule(
            f"{name}-{port}", name=self._names[f"rule_{port}"].value, project=self._args.project,
            load_balancing_scheme="EXTERNAL_MANAGED", ip_protocol="TCP", port_range=port, ip_address=address,
            target=target, labels=self._args.labels, opts=pulumi.ResourceOptions(parent=self),
        )

    def _http_redirect(self, name: str, address) -> None:
        redirect = gcp.compute.URLMap(
            f"{name}-redirect", name=self._names["redirect"].value, project=self._args.project,
            default_url_redirect={"https_redirect": True, "strip_query": False,
                                  "redirect_response_code": "MOVED_PERMANENTLY_DEFAULT"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        proxy = gcp.compute.TargetHttpProxy(f"{name}-redirect", name=self._names["http_proxy"].value,
                                            project=self._args.project, url_map=redirect.id,
                                            opts=pulumi.ResourceOptions(parent=self))
        self._forwarding_rule(name, "80", proxy.id, address)


def _path_rules(route: RouteArgs, backend) -> list[dict]:
    return [{"paths": [p, f"{p}/*"], "service": backend} for p in sorted(route.path_prefixes)]


def _method_rules(route: RouteArgs, backends: Mapping[str, StrInput], after: int = 0) -> list[dict]:
    """``routeRules`` matching ``Mcp-Method`` (and ``Mcp-Name``) exactly, only in requests whose
    ``MCP-Protocol-Version`` is 2026-07-28 or later (``regexMatch``, RE2); the most specific first,
    numbered after ``after`` rules (the shard rules, so a legacy session's header wins). A request
    naming the method with an older or no version is not routed: it reaches the host's own backend,
    whose Cloud Armor policy refuses it (``routed_methods`` of :class:`~mcp_affinity.security_policy.EdgeScopeArgs`,
    which the platforms set from the same method routes)."""
    ordered = sorted(route.method_routes.items(), key=lambda kv: (kv[1].name is None, kv[0]))
    rules = []
    for priority, (_, method) in enumerate(ordered, start=after + 1):
        headers = [{"header_name": METHOD_HEADER, "exact_match": method.method}]
        if method.name is not None:
            headers.append({"header_name": NAME_HEADER, "exact_match": method.name})
        headers.append({"header_name": VERSION_HEADER, "regex_match": MODERN_VERSIONS})
        rules.append({"priority": priority, **_target(backends[method.service], "service", "route_action"),
                      "match_rules": [{"prefix_match": "/", "header_matches": headers}]})
    return rules


def _predicates(method: MethodRouteArgs) -> int:
    """Match predicates of one method route's rule: the path prefix and two or three header matches
    (the method, the name if set, the protocol version)."""
    return 3 if method.name is None else 4


def _target(backend, service_key: str, action_key: str) -> dict:
    """Where a rule or default sends requests: one backend service, or a map of shard key ->
    backend service spread with equal weights (``weightedBackendServices``)."""
    if not isinstance(backend, Mapping):
        return {service_key: backend}
    return {action_key: {"weighted_backend_services": [
        {"backend_service": backend[key], "weight": 1} for key in sorted(backend)]}}


def _shard_rules(route: RouteArgs, backends) -> list[dict]:
    """A ``routeRule`` per shard: a session header starting with ``{key}.`` goes to that shard.
    Priorities 1..N, before method routes (https://cloud.google.com/load-balancing/docs/url-map-concepts)."""
    if route.session_shards is None:
        return []
    header = route.session_shards.header
    return [{"priority": priority, "service": backends[key], "match_rules": [{"prefix_match": "/", "header_matches": [
        {"header_name": header, "prefix_match": f"{key}{cloud_run_shards.SEPARATOR}"}]}]}
        for priority, key in enumerate(sorted(route.session_shards.keys), start=1)]
