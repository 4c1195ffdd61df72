"""Token checks in the mesh for mesh services' ``access``, one service at a time.

- ``iam``: a ``RequestAuthentication`` validates Google-signed ID tokens (issuer
  ``https://accounts.google.com``, Google's JWKS) whose audience is ``https://HOST``; a ``DENY``
  ``AuthorizationPolicy`` refuses (403) requests without such a token or whose ``email`` claim is
  not one of ``members``. Only ``user:`` and ``serviceAccount:`` members can be checked: an ID token
  names one email, no group or domain membership.
- ``oauth`` with ``jwt``: the named issuer's tokens are validated, so a bad or expired token gets 401
  before the server sees it; a request without a token passes (``RequestAuthentication`` lets it
  through) and the server answers 401 with ``WWW-Authenticate: Bearer resource_metadata=...``, which
  MCP clients need for discovery. No policy requires a token: the mesh's own answer would be a 403
  without ``WWW-Authenticate`` (https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/).
  Tokens stay in the request (``forwardOriginalToken``): the server must still check them
  (https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization).
- ``iap``: IAP on the gateway's backend service (:class:`~mcp_affinity.gateway_backend.MeshGatewayBackend`);
  one backend service serves every mesh service, so every mesh service must then be ``iap`` with the
  same members and clients. The gateway itself verifies IAP's signed header
  (:func:`mcp_affinity.mesh.iap_header_policies`): it reads only ``x-goog-iap-jwt-assertion``, so
  tokens in ``Authorization`` of any issuer pass through it untouched.

Why per service and not at the ingress gateway: with a ``RequestAuthentication`` on a workload,
a token from an issuer it does not list is refused with 401 ("Jwt issuer is not configured",
https://github.com/istio/istio/issues/24371). At the shared gateway that would break every other
service whose clients send tokens of their own issuer. So the objects select the service's front
pods (sidecar mode: the server's pods, or the learned-pinning proxy's) or, in ambient mode, target
the namespace's waypoint, which the ingress gateway passes through (the Service's
``istio.io/ingress-use-waypoint``); the app container never sees a bad token.
"""

from __future__ import annotations

from typing import Optional, Sequence

from .access import AccessArgs, AccessMode

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
GOOGLE_JWKS = "https://www.googleapis.com/oauth2/v3/certs"
"""Google ID tokens: both issuer spellings occur (https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken)."""


def check_mesh_access(access: AccessArgs) -> None:
    """Raise ``ValueError`` for an ``access`` the mesh cannot enforce (``iam`` members other than
    users and service accounts)."""
    if access.mode is AccessMode.IAM:
        other = [m for m in access.members if not m.startswith(("user:", "serviceAccount:"))]
        if other:
            raise ValueError(f"members {other}: on GKE the mesh checks the ID token's email, which names one "
                             "user or service account, not a group, domain or workload identity pool; list "
                             "user: or serviceAccount: members, or use iap")


def _audiences(access: AccessArgs, hosts: Sequence[str]) -> list[str]:
    if access.jwt is not None and access.jwt.audiences:
        return sorted(access.jwt.audiences)
    return [f"https://{h}" for h in sorted(hosts)]


def jwt_rules(hosts: Sequence[str], access: AccessArgs) -> list[dict]:
    """The ``RequestAuthentication`` ``jwtRules`` of one service (none when it needs no token check)."""
    audiences = _audiences(access, hosts)
    if access.mode is AccessMode.IAM:
        return [{"issuer": i, "jwksUri": GOOGLE_JWKS, "audiences": audiences, "forwardOriginalToken": True}
                for i in GOOGLE_ISSUERS]
    if access.mode is AccessMode.OAUTH and access.jwt is not None:
        return [{"issuer": access.jwt.issuer, "jwksUri": access.jwt.jwks_uri, "audiences": audiences,
                 "forwardOriginalToken": True}]
    return []


def deny_rules(access: AccessArgs, port: Optional[int] = None) -> list[dict]:
    """``DENY`` rules of one service: ``iam`` callers without a Google ID token, or not a member.

    With ``port`` (sidecar mode) each rule names the serving port: on TCP traffic Istio ignores a
    ``DENY`` rule's HTTP-only fields, so without it the rule would refuse every TCP connection to the
    pods, e.g. the learned-pinning proxies' peers
    (https://istio.io/latest/docs/reference/config/security/authorization-policy/).
    """
    if access.mode is not AccessMode.IAM:
        return []
    emails = sorted(m.partition(":")[2] for m in access.members)
    to = {"to": [{"operation": {"ports": [str(port)]}}]} if port is not None else {}
    return [{"from": [{"source": {"notRequestPrincipals": [f"{i}/*" for i in GOOGLE_ISSUERS]}}], **to},
            {**to, "when": [{"key": "request.auth.claims[email]", "notValues": emails}]}]


def token_policies(hosts: Sequence[str], access: AccessArgs, port: Optional[int] = None) -> list[tuple[str, str, dict]]:
    """``(kind, suffix, spec)`` of the Istio objects checking one service's callers, without their
    target (``selector`` or ``targetRefs``, which the service adds); ``port``: see :func:`deny_rules`."""
    objects = []
    rules = jwt_rules(hosts, access)
    if rules:
        objects.append(("RequestAuthentication", "jwt", {"jwtRules": rules}))
    deny = deny_rules(access, port)
    if deny:
        objects.append(("AuthorizationPolicy", "callers", {"action": "DENY", "rules": deny}))
    return objects
