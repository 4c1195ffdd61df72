"""MeshGatewayAuth: token checks at the Istio ingress gateway for mesh services' ``access``.

- ``iam``: a ``RequestAuthentication`` validates Google-signed ID tokens (issuer
  ``https://accounts.google.com``, Google's JWKS) whose audience is ``https://HOST``; a ``DENY``
  ``AuthorizationPolicy`` for the service's hosts refuses (403) requests without such a token or
  whose ``email`` claim is not one of ``members``. Only ``user:`` and ``serviceAccount:`` members
  can be checked: an ID token names one email, no group or domain membership.
- ``oauth`` with ``jwt``: the gateway validates the named issuer's tokens, so a bad or expired token
  gets 401 before it reaches a pod; a request without a token passes (``RequestAuthentication``
  lets it through) and the server answers 401 with ``WWW-Authenticate: Bearer resource_metadata=...``,
  which MCP clients need for discovery. No policy requires a token: the mesh's own answer would be
  a 403 without ``WWW-Authenticate`` (https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/).
  Tokens stay in the request (``forwardOriginalToken``): the server must still check their audience
  (https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization).
- ``iap``: IAP on the gateway's backend service (:class:`~mcp_affinity.gateway_backend.MeshGatewayBackend`);
  one backend service serves every mesh service, so every mesh service must then be ``iap`` with the
  same members and clients.

The objects live in the gateway's namespace and select its pods (``istio: mcp-gateway``); a
``DENY`` policy, unlike an ``ALLOW`` one, leaves other hosts' traffic alone.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from .access import AccessArgs, AccessMode
from .gke_cluster import GkeCluster
from .mesh import GATEWAY_NAME, GATEWAY_NAMESPACE, Mesh

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
GOOGLE_JWKS = "https://www.googleapis.com/oauth2/v3/certs"
"""Google ID tokens: both issuer spellings occur (https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken)."""


def check_mesh_access(access: AccessArgs) -> None:
    """Raise ``ValueError`` for an ``access`` the mesh cannot enforce (``iam`` members other than
    users and service accounts)."""
    if access.mode is AccessMode.IAM:
        other = [m for m in access.members if not m.startswith(("user:", "serviceAccount:"))]
        if other:
            raise ValueError(f"members {other}: on GKE the gateway checks the ID token's email, which names one "
                             "user or service account, not a group, domain or workload identity pool; list "
                             "user: or serviceAccount: members, or use iap")


def _audiences(access: AccessArgs, hosts: Sequence[str]) -> list[str]:
    if access.jwt is not None and access.jwt.audiences:
        return sorted(access.jwt.audiences)
    return [f"https://{h}" for h in sorted(hosts)]


def jwt_rules(services: Mapping[str, tuple[Sequence[str], AccessArgs]]) -> list[dict]:
    """The ``RequestAuthentication`` ``jwtRules``: one per issuer, audiences merged across services."""
    issuers: dict[str, tuple[str, set[str]]] = {}
    for hosts, access in services.values():
        if access.mode is AccessMode.IAM:
            for issuer in GOOGLE_ISSUERS:
                issuers.setdefault(issuer, (GOOGLE_JWKS, set()))[1].update(_audiences(access, hosts))
        elif access.mode is AccessMode.OAUTH and access.jwt is not None:
            issuers.setdefault(access.jwt.issuer, (access.jwt.jwks_uri, set()))[1].update(_audiences(access, hosts))
    return [{"issuer": issuer, "jwksUri": jwks, "audiences": sorted(auds), "forwardOriginalToken": True}
            for issuer, (jwks, auds) in sorted(issuers.items())]


def deny_rules(hosts: Sequence[str], access: AccessArgs) -> list[dict]:
    """``DENY`` rules for one service: who is refused on its hosts."""
    to = [{"operation": {"hosts": sorted([*hosts, *(f"{h}:*" for h in hosts)])}}]
    audiences = {"key": "request.auth.audiences", "notValues": _audiences(access, hosts)}
    if access.mode is AccessMode.IAM:
        emails = sorted(m.partition(":")[2] for m in access.members)
        return [
            {"from": [{"source": {"notRequestPrincipals": [f"{i}/*" for i in GOOGLE_ISSUERS]}}], "to": to},
            {"to": to, "when": [{"key": "request.auth.claims[email]", "notValues": emails}]},
            {"to": to, "when": [audiences]},
        ]
    if access.mode is AccessMode.OAUTH and access.jwt is not None:
        # A token of this issuer minted for another service sharing it: refused; no token: passes.
        return [{"from": [{"source": {"requestPrincipals": [f"{access.jwt.issuer}/*"]}}], "to": to, "when": [audiences]}]
    return []


class MeshGatewayAuth(pulumi.ComponentResource):
    """The gateway's ``RequestAuthentication`` and one ``DENY`` ``AuthorizationPolicy`` per service.

    Context: ``services``, mesh service name -> (its hosts, its access); ``cluster`` (provider) and
    ``mesh`` (gateway, readiness). Creates nothing for services that need no token check.
    """

    def __init__(self, name: str, services: Mapping[str, tuple[Sequence[str], AccessArgs]], *, cluster: GkeCluster,
                 mesh: Mesh, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:MeshGatewayAuth", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=cluster.kubernetes_provider, depends_on=[cluster.node_pool, *mesh.ready])
        selector = {"matchLabels": {"istio": GATEWAY_NAME.removeprefix("istio-")}}
        rules = jwt_rules(services)
        if rules:
            k8s.apiextensions.CustomResource(
                f"{name}-jwt", api_version="security.istio.io/v1", kind="RequestAuthentication",
                metadata={"name": "mcp-jwt", "namespace": GATEWAY_NAMESPACE},
                spec={"selector": selector, "jwtRules": rules}, opts=k8s_opts)
        for service, (hosts, access) in sorted(services.items()):
            deny = deny_rules(hosts, access)
            if deny:
                k8s.apiextensions.CustomResource(
                    f"{name}-{service}", api_version="security.istio.io/v1", kind="AuthorizationPolicy",
                    metadata={"name": f"mcp-{service}-callers", "namespace": GATEWAY_NAMESPACE},
                    spec={"selector": selector, "action": "DENY", "rules": deny}, opts=k8s_opts)
        self.register_outputs({})
