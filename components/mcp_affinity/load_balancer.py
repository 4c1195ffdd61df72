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
from typing import Annotated, Literal, Mapping, Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import AfterValidator, Field, Strict, model_validator

from . import edge_routes
from .affinity import METHOD_HEADER, NAME_HEADER
from .naming import RFC1035, PhysicalName, physical_name
from .settings import Bool, Model, Name, Settings, StrInput

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

    - ``method``: the MCP method, e.g. ``tools/call``.
    - ``name``: the tool, prompt or resource name (``Mcp-Name``); unset matches every name.
    - ``service``: the service that gets these requests.
    """

    method: McpMethod
    name: Optional[str] = Field(default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_./-]+$")
    service: Name


class RouteArgs(Model):
    """Where one backend serves. A route with neither hosts nor paths is the default route.

    - ``hosts``: host names routed here (each on a certificate).
    - ``path_prefixes``: path prefixes of any host routed here.
    - ``method_routes``: key -> MCP method sent to another service (needs hosts, no path prefixes).
    """

    hosts: list[Domain] = Field(default_factory=list)
    path_prefixes: list[PathPrefix] = Field(default_factory=list)
    method_routes: dict[Name, MethodRouteArgs] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _method_routes_need_hosts(self) -> "RouteArgs":
        if self.method_routes and (not self.hosts or self.path_prefixes):
            raise ValueError("methodRoutes need hosts and no pathPrefixes on the same route")
        return self


class GlobalHttpsLoadBalancerArgs(Settings):
    """Settings of :class:`GlobalHttpsLoadBalancer`.

    - ``certificates``: stable key -> 1 to 100 domains of one Google-managed certificate.
    - ``routes``: stable key -> :class:`RouteArgs`; the context ``backends`` maps the same keys
      to backend service ids. Every host must be on a certificate; no host or path twice.
    - ``default_route``: the route for requests whose host no route names, named on purpose (it then
      also gets DNS-rebinding requests). Unset: those requests end at the load balancer with 404.
      A route without hosts or paths must be the default route or a method-route target.
    - ``oauth_routes``: routes whose server is an OAuth resource server: the metadata URLs of their
      path prefixes are routed to them (:mod:`mcp_affinity.edge_routes`).
    - ``http_redirect``: serve port 80 with a 301 redirect to HTTPS.
    - ``min_tls_version``: ``TLS_1_2`` (default) or ``TLS_1_3``.
    """

    certificates: dict[Name, list[Domain]] = Field(min_length=1)
    routes: dict[Name, RouteArgs] = Field(min_length=1)
    default_route: Optional[Name] = None
    http_redirect: Bool = True
    min_tls_version: Literal["TLS_1_2", "TLS_1_3"] = "TLS_1_2"
    oauth_routes: list[Name] = Field(default_factory=list, description=(
        "Routes whose server is an OAuth resource server: their path prefixes' metadata URLs are routed to them."))

    @model_validator(mode="after")
    def _rules(self) -> "GlobalHttpsLoadBalancerArgs":
        for key, domains in self.certificates.items():
            if not 1 <= len(domains) <= 100 or len(set(domains)) != len(domains):
                raise ValueError(f"certificates.{key}: 1 to 100 distinct domains")
        covered = {d for domains in self.certificates.values() for d in domains}
        seen_hosts: dict[str, str] = {}
        seen_paths: dict[str, str] = {}
        for key, route in self.routes.items():
            for host in route.hosts:
                if host in seen_hosts:
                    raise ValueError(f"host {host} is on routes {seen_hosts[host]} and {key}")
                if host not in covered:
                    raise ValueError(f"host {host} of route {key} is on no certificate; add it to certificates")
                seen_hosts[host] = key
            for path in route.path_prefixes if not route.hosts else []:
                if path in seen_paths:
                    raise ValueError(f"path prefix {path} is on routes {seen_paths[path]} and {key}")
                seen_paths[path] = key
            for method_key, method in route.method_routes.items():
                if method.service not in self.routes or method.service == key:
                    raise ValueError(f"routes.{key}.methodRoutes.{method_key}.service: {method.service!r} is not another route")
        unknown = sorted(set(self.oauth_routes) - set(self.routes))
        if unknown:
            raise ValueError(f"oauthRoutes {', '.join(unknown)} are not routes")
        if any(r.path_prefixes and not r.hosts for r in self.routes.values()) and not self.shared_hosts():
            raise ValueError("path prefixes serve on the certificate domains no route claims by host: add such a domain")
        self._check_default()
        return self

    def _check_default(self) -> None:
        targets = {m.service for r in self.routes.values() for m in r.method_routes.values()}
        bare = sorted(k for k, r in self.routes.items() if not r.hosts and not r.path_prefixes and k not in targets)
        if self.default_route is not None:
            if self.default_route not in self.routes:
                raise ValueError(f"defaultRoute {self.default_route!r} is not a route; routes: {', '.join(sorted(self.routes))}")
            bare = [k for k in bare if k != self.default_route]
            if bare:
                raise ValueError(f"routes {', '.join(bare)} have no hosts or paths and are not the default route: "
                                 "nothing would reach them")
        elif bare:
            raise ValueError(f"routes {', '.join(bare)} have no hosts or paths: give them hosts, or name one in "
                             "defaultRoute on purpose (it then also receives requests for unknown hosts)")

    def shared_hosts(self) -> list[str]:
        """Certificate domains no route claims: where path-prefixed routes serve."""
        claimed = {h for r in self.routes.values() for h in r.hosts}
        return sorted({d for domains in self.certificates.values() for d in domains} - claimed)

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names of the load balancer's resources, keyed by role."""
        p, c = self.prefix, "gcp:compute/"
        names = {
            "address": physical_name(RFC1035, c + "globalAddress:GlobalAddress", p, name, "ip"),
            "url_map": physical_name(RFC1035, c + "uRLMap:URLMap", p, name, "urlmap"),
            "ssl_policy": physical_name(RFC1035, c + "sSLPolicy:SSLPolicy", p, name, "tls"),
            "https_proxy": physical_name(RFC1035, c + "targetHttpsProxy:TargetHttpsProxy", p, name, "https"),
            "rule_443": physical_name(RFC1035, c + "globalForwardingRule:GlobalForwardingRule", p, name, "443"),
        }
        if self.http_redirect:
            names["redirect"] = physical_name(RFC1035, c + "uRLMap:URLMap", p, name, "redirect")
            names["http_proxy"] = physical_name(RFC1035, c + "targetHttpProxy:TargetHttpProxy", p, name, "http")
            names["rule_80"] = physical_name(RFC1035, c + "globalForwardingRule:GlobalForwardingRule", p, name, "80")
        if self.default_route is None:
            names["nohost"] = physical_name(RFC1035, c + "backendService:BackendService", p, name, "nohost")
        for key, domains in self.certificates.items():
            digest = hashlib.sha256(",".join(sorted(domains)).encode()).hexdigest()[:8]
            names[f"cert-{key}"] = physical_name(RFC1035, c + "managedSslCertificate:ManagedSslCertificate",
                                                 p, name, key, digest)
        return names


class GlobalHttpsLoadBalancer(pulumi.ComponentResource):
    """A global external Application Load Balancer (``EXTERNAL_MANAGED``) for MCP backends.

    Context: ``backends``, route key -> backend service id (one per key of ``args.routes``).

    Outputs: ``ip_address`` (the static IPv4 address to point DNS at), ``url_map_id`` and
    ``certificate_ids`` (key -> managed certificate id).

    Raises ``ValueError`` when ``backends`` lacks a route's key.
    """

    ip_address: pulumi.Output[str]
    url_map_id: pulumi.Output[str]
    certificate_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: GlobalHttpsLoadBalancerArgs, *, backends: Mapping[str, StrInput],
                 opts: Optional[pulumi.ResourceOptions] = None):
        missing = sorted(set(args.routes) - set(backends))
        if missing:
            raise ValueError(f"no backend service for routes {missing}")
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

    def _routing(self, name: str) -> dict:
        """URL map arguments: one path matcher per host-routed backend, one for shared path prefixes;
        unknown hosts go to the default route if named, else end with 404 (:mod:`mcp_affinity.edge_routes`)."""
        routes, backends = self._args.routes, self._backends
        if self._args.default_route is not None:
            default, fallback = backends[self._args.default_route], {}
        else:
            default = edge_routes.placeholder_backend(self, name, self._names["nohost"].value, self._args.project).id
            fallback = {"default_route_action": edge_routes.ABORT_404}
        host_rules, matchers = [], []
        for key, route in sorted(routes.items()):
            if route.hosts:
                host_rules.append({"hosts": sorted(route.hosts), "path_matcher": key})
                matcher = {"name": key, "default_service": backends[key]}
                if route.method_routes:
                    matcher["route_rules"] = _method_rules(route, backends)
                else:
                    matcher["path_rules"] = _path_rules(route, backends[key])
                matchers.append(matcher)
        shared = [(k, r) for k, r in sorted(routes.items()) if r.path_prefixes and not r.hosts]
        if shared and self._args.shared_hosts():
            metadata = edge_routes.metadata_rules({k: r.path_prefixes for k, r in shared}, set(self._args.oauth_routes),
                                                  backends)
            host_rules.append({"hosts": self._args.shared_hosts(), "path_matcher": "paths"})
            matchers.append({"name": "paths", "default_service": default, **fallback,
                             "path_rules": metadata + [rule for k, r in shared for rule in _path_rules(r, backends[k])]})
        return {"default_service": default, **fallback, "host_rules": host_rules, "path_matchers": matchers}

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


def _method_rules(route: RouteArgs, backends: Mapping[str, StrInput]) -> list[dict]:
    """``routeRules`` matching ``Mcp-Method`` (and ``Mcp-Name``) exactly; the most specific first."""
    ordered = sorted(route.method_routes.items(), key=lambda kv: (kv[1].name is None, kv[0]))
    rules = []
    for priority, (_, method) in enumerate(ordered, start=1):
        headers = [{"header_name": METHOD_HEADER, "exact_match": method.method}]
        if method.name is not None:
            headers.append({"header_name": NAME_HEADER, "exact_match": method.name})
        rules.append({"priority": priority, "service": backends[method.service],
                      "match_rules": [{"prefix_match": "/", "header_matches": headers}]})
    return rules
