"""URL-map pieces that keep the edge honest: unknown hosts end at the load balancer, and the OAuth
protected-resource metadata of path-prefixed services reaches them.

- A URL map always has exactly one target (``defaultService``, ``defaultUrlRedirect`` or weighted
  backends); ``defaultCustomErrorResponsePolicy`` only rewrites errors a backend returned. So a
  request whose ``Host`` is on no route goes to a placeholder backend service with no backends and a
  100 % fault-injection abort (HTTP 404), which the global external Application Load Balancer
  supports (https://cloud.google.com/load-balancing/docs/https/traffic-management-global). A
  DNS-rebinding page therefore never reaches an MCP server.
- MCP clients look for RFC 9728 metadata at ``/.well-known/oauth-protected-resource/<path>`` first,
  then at the root (https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization):
  for a service routed by ``pathPrefixes: [/tools]`` both ``.../oauth-protected-resource/tools``
  and, when it is the only ``oauth`` service on the shared hosts, the root go to it.
"""

from __future__ import annotations

from typing import Mapping

import pulumi
import pulumi_gcp as gcp

METADATA_PATH = "/.well-known/oauth-protected-resource"
"""RFC 9728 protected-resource metadata (root form)."""

ABORT_404 = {"fault_injection_policy": {"abort": {"http_status": 404, "percentage": 100}}}
"""A route action that answers every request with 404 at the load balancer."""


def placeholder_backend(parent: pulumi.Resource, name: str, physical: str, project) -> gcp.compute.BackendService:
    """A backend service with no backends: the target of routes that abort with 404."""
    return gcp.compute.BackendService(
        f"{name}-nohost", name=physical, project=project, load_balancing_scheme="EXTERNAL_MANAGED", protocol="HTTPS",
        description="mcp-affinity: unknown hosts and paths end here with 404 (fault injection); no backends",
        opts=pulumi.ResourceOptions(parent=parent))


def metadata_rules(prefixes: Mapping[str, list[str]], oauth: set[str], backends: Mapping[str, object]) -> list[dict]:
    """``pathRules`` for the metadata URLs of ``oauth`` path-prefixed routes (route key -> prefixes)."""
    rules = []
    for key in sorted(k for k in prefixes if k in oauth):
        for prefix in sorted(prefixes[key]):
            rules.append({"paths": [f"{METADATA_PATH}{prefix}", f"{METADATA_PATH}{prefix}/*"], "service": backends[key]})
    keys = [k for k in prefixes if k in oauth]
    if len(keys) == 1:
        rules.append({"paths": [METADATA_PATH], "service": backends[keys[0]]})
    return rules
