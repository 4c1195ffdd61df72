"""GlobalHttpsLoadBalancer: the public front end for MCP backends on Cloud Run or GKE.

A global static IP, Google-managed certificates, a URL map routing each backend service by host
or path, an HTTPS proxy with a TLS 1.2+ SSL policy, a forwarding rule on 443 and an
HTTP-to-HTTPS redirect on 80. It takes backend service ids, so any platform can sit behind it.

Certificates are a map keyed by a stable name. Each certificate's GCP name carries a hash of its
domains, so changing the domains creates the new certificate before the old one is deleted
(Pulumi's default create-before-delete replacement). A new Google-managed certificate needs
DNS to point at the address before it turns ACTIVE
(https://cloud.google.com/load-balancing/docs/ssl-certificates/google-managed-certs); for a
change with no downtime at all, add the new domains under a new key, wait for ACTIVE, then
remove the old key.
"""

from __future__ import annotations

import hashlib
import re
from typing import Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import Field, field_validator

from ._args import Args, StrInput

DOMAIN = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class RouteArgs(Args):
    """Where one backend service is served: on ``hosts``, under ``path_prefixes`` of any host, or
    both. A route with neither serves what no other route matches (the default)."""

    backend_service: StrInput
    hosts: list[str] = Field(default_factory=list)
    path_prefixes: list[str] = Field(default_factory=list)

    @field_validator("path_prefixes")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/") or path.endswith("/") or "*" in path:
                raise ValueError(f"path prefix {path!r} must start with '/', not end with '/', have no '*'")
        return value


class GlobalHttpsLoadBalancerArgs(Args):
    """Arguments of :class:`GlobalHttpsLoadBalancer`.

    - ``certificates``: stable key -> list of domains (1 to 100 per certificate).
    - ``routes``: stable key -> :class:`RouteArgs`; ``default_route`` names the one that gets
      unmatched requests (default: the only route without hosts and paths, else the first key).
    - ``http_redirect``: serve port 80 with a 301 redirect to HTTPS.
    - ``min_tls_version``: ``TLS_1_2`` (default) or ``TLS_1_3``.
    """

    prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")
    certificates: dict[str, list[str]]
    routes: dict[str, RouteArgs]
    project: Optional[str] = None
    default_route: Optional[str] = None
    http_redirect: bool = True
    min_tls_version: str = Field(default="TLS_1_2", pattern=r"^TLS_1_[23]$")
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("certificates")
    @classmethod
    def _certificates(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            raise ValueError("at least one certificate is needed")
        for key, domains in value.items():
            if not 1 <= len(domains) <= 100:
                raise ValueError(f"certificate {key!r} needs 1 to 100 domains")
            for domain in domains:
                if not DOMAIN.match(domain):
                    raise ValueError(f"{domain!r} is not a domain name")
        return value

    def model_post_init(self, _context: object) -> None:
        if not self.routes:
            raise ValueError("at least one route is needed")
        if self.default_route is not None and self.default_route not in self.routes:
            raise ValueError(f"default_route {self.default_route!r} is not a route key")

    def default_key(self) -> str:
        """The route that receives requests no host or path rule matches."""
        if self.default_route:
            return self.default_route
        bare = [k for k, r in sorted(self.routes.items()) if not r.hosts and not r.path_prefixes]
        return bare[0] if bare else sorted(self.routes)[0]


def certificate_name(prefix: str, key: str, domains: list[str]) -> str:
    """GCP name of a managed certificate: changes exactly when its set of domains changes."""
    digest = hashlib.sha256(",".join(sorted(domains)).encode()).hexdigest()[:8]
    return f"{prefix}-{key}-{digest}"[:63]


class GlobalHttpsLoadBalancer(pulumi.ComponentResource):
    """A global external Application Load Balancer (``EXTERNAL_MANAGED``) for MCP backends.

    Outputs: ``ip_address`` (the static IPv4 address to point DNS at), ``url_map_id`` and
    ``certificate_ids`` (key -> managed certificate id).
    """

    ip_address: pulumi.Output[str]
    url_map_id: pulumi.Output[str]
    certificate_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: GlobalHttpsLoadBalancerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:GlobalHttpsLoadBalancer", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        address = gcp.compute.GlobalAddress(
            name, name=f"{args.prefix}-ip", project=args.project, ip_version="IPV4", opts=child
        )
        certificates = {
            key: gcp.compute.ManagedSslCertificate(
                f"{name}-{key}",
                name=certificate_name(args.prefix, key, domains),
                project=args.project,
                managed={"domains": sorted(domains)},
                opts=child,
            )
            for key, domains in sorted(args.certificates.items())
        }
        url_map = gcp.compute.URLMap(name, name=f"{args.prefix}-urlmap", project=args.project,
                                     opts=child, **self._routing())
        ssl_policy = gcp.compute.SSLPolicy(
            name, name=f"{args.prefix}-tls", project=args.project, profile="MODERN",
            min_tls_version=args.min_tls_version, opts=child,
        )
        proxy = gcp.compute.TargetHttpsProxy(
            name,
            name=f"{args.prefix}-https",
            project=args.project,
            url_map=url_map.id,
            ssl_certificates=[c.id for c in certificates.values()],
            ssl_policy=ssl_policy.id,
            opts=child,
        )
        self._forwarding_rule(name, "443", proxy.id, address.address)
        if args.http_redirect:
            self._http_redirect(name, address.address)
        self.ip_address = address.address
        self.url_map_id = url_map.id
        self.certificate_ids = {key: c.id for key, c in certificates.items()}
        self.register_outputs({
            "ip_address": self.ip_address,
            "url_map_id": self.url_map_id,
            "certificate_ids": self.certificate_ids,
        })

    def _routing(self) -> dict:
        """URL map arguments: one path matcher per host-routed backend, one for path prefixes."""
        routes = self._args.routes
        default = routes[self._args.default_key()].backend_service
        host_rules, matchers = [], []
        for key, route in sorted(routes.items()):
            if route.hosts:
                host_rules.append({"hosts": sorted(route.hosts), "path_matcher": key})
                matchers.append({"name": key, "default_service": route.backend_service,
                                 "path_rules": _path_rules(route)})
        shared_paths = [r for _, r in sorted(routes.items()) if r.path_prefixes and not r.hosts]
        if shared_paths:
            host_rules.append({"hosts": ["*"], "path_matcher": "paths"})
            matchers.append({"name": "paths", "default_service": default,
                             "path_rules": [rule for r in shared_paths for rule in _path_rules(r)]})
        return {"default_service": default, "host_rules": host_rules, "path_matchers": matchers}

    def _forwarding_rule(self, name: str, port: str, target, address) -> gcp.compute.GlobalForwardingRule:
        return gcp.compute.GlobalForwardingRule(
            f"{name}-{port}",
            name=f"{self._args.prefix}-{port}",
            project=self._args.project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP",
            port_range=port,
            ip_address=address,
            target=target,
            labels=self._args.labels,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _http_redirect(self, name: str, address) -> None:
        redirect = gcp.compute.URLMap(
            f"{name}-redirect",
            name=f"{self._args.prefix}-redirect",
            project=self._args.project,
            default_url_redirect={"https_redirect": True, "strip_query": False,
                                  "redirect_response_code": "MOVED_PERMANENTLY_DEFAULT"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        proxy = gcp.compute.TargetHttpProxy(
            f"{name}-redirect",
            name=f"{self._args.prefix}-http",
            project=self._args.project,
            url_map=redirect.id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._forwarding_rule(name, "80", proxy.id, address)


def _path_rules(route: RouteArgs) -> list[dict]:
    return [{"paths": [p, f"{p}/*"], "service": route.backend_service} for p in sorted(route.path_prefixes)]
