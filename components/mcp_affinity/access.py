"""Who may call an MCP service: the ``access`` setting every service declares, on both platforms.

- ``iap``: Identity-Aware Proxy on the load balancer's backend service. ``members`` get
  ``roles/iap.httpsResourceAccessor``; ``programmatic_clients`` (OAuth client ids the user created in
  the console) are allowlisted for CLIs and agents. IAP on a global external Application Load
  Balancer supports Cloud Run serverless NEGs; with no OAuth client IAP uses a Google-managed one;
  IAP on the load balancer and IAP on the Cloud Run service cannot both be on
  (https://cloud.google.com/iap/docs/load-balancer-howto,
  https://cloud.google.com/run/docs/securing/identity-aware-proxy-cloud-run,
  https://cloud.google.com/iap/docs/custom-oauth-configuration). OAuth clients cannot be created by
  this package: the IAP OAuth Admin API was shut down (https://cloud.google.com/iap/docs/deprecations).
  The Google-managed client signs in only users of the project's organization; ``oauth_client``
  (a client made in the console, its secret in Secret Manager) serves users outside it
  (https://cloud.google.com/iap/docs/custom-oauth-configuration). Members with consumer accounts
  (``@gmail.com``) are never in an organization, so they need ``oauth_client``.
- ``iam``: callers with Google identities send an ID token; Cloud Run's invoker check accepts an
  audience listed in ``custom_audiences`` (``https://HOST``) through the load balancer
  (https://cloud.google.com/run/docs/configuring/custom-audiences). On GKE the mesh validates
  Google-signed ID tokens in front of the server (Istio ``RequestAuthentication``) and a ``DENY``
  ``AuthorizationPolicy`` refuses other callers (:mod:`mcp_affinity.mesh_access`).
- ``oauth``: the server is an OAuth 2.1 resource server (MCP authorization); the load balancer routes
  the RFC 9728 metadata URLs to it and leaves its 401 untouched
  (https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization). On GKE ``jwt``
  names an issuer whose tokens the mesh validates; requests without a token reach the server,
  which answers 401 with ``resource_metadata``.
- ``public``: nobody is authenticated.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, Field, Strict, model_validator

from .secret_env import SecretRef
from .settings import Faults, Model, matching

MEMBER_PREFIXES = ("user:", "group:", "serviceAccount:", "domain:", "principal://", "principalSet://")
"""IAM principal identifiers (https://cloud.google.com/iam/docs/principal-identifiers)."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}")
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def _check_member(value: str) -> str:
    kind, _, rest = value.partition(":")
    if value in ("allUsers", "allAuthenticatedUsers"):
        raise ValueError(f"{value} lets anyone in: use access mode public instead")
    if value.startswith(("principal://", "principalSet://")) and len(value) > len("principalSet://"):
        return value
    if kind in ("user", "group", "serviceAccount") and _EMAIL.fullmatch(rest):
        return value
    if kind == "domain" and _DOMAIN.fullmatch(rest):
        return value
    raise ValueError(f"{value!r} is not an IAM principal: write user:EMAIL, group:EMAIL, serviceAccount:EMAIL, "
                     "domain:DOMAIN or a principal:// / principalSet:// identifier")


Member = Annotated[str, Strict(), AfterValidator(_check_member)]
ClientId = Annotated[str, Strict(), matching(r"[0-9]+-[a-z0-9]+\.apps\.googleusercontent\.com",
                                              "an OAuth client id such as 1234-abc.apps.googleusercontent.com")]
HttpsUrl = Annotated[str, Strict(), matching(r"https://[a-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?",
                                              "an https URL such as https://auth.example.com")]


CONSUMER_DOMAINS = frozenset({"gmail.com", "googlemail.com", "googlegroups.com"})
"""Domains of consumer Google accounts and groups, which belong to no organization."""


def member_domain(member: str) -> Optional[str]:
    """The domain of a ``user:``, ``group:`` or ``domain:`` member (lowercase), else None."""
    kind, _, rest = member.partition(":")
    if kind == "domain":
        return rest.lower()
    if kind in ("user", "group"):
        return rest.rpartition("@")[2].lower()
    return None


class OAuthClientArgs(Model):
    """Your own OAuth client for IAP's sign-in (type "Web application", made in the console), its
    secret read from Secret Manager when Pulumi runs (the deployer needs
    ``roles/secretmanager.secretAccessor`` on it)."""

    client_id: ClientId = Field(description="the OAuth client id (`1234-abc.apps.googleusercontent.com`).")
    client_secret: SecretRef = Field(
        description="the Secret Manager secret version holding the client secret: `{secret: ID, version: N}`.")


class AccessMode(str, Enum):
    """Who may call a service (see the module docstring)."""

    IAP = "iap"
    IAM = "iam"
    OAUTH = "oauth"
    PUBLIC = "public"


class JwtArgs(Model):
    """Tokens the mesh validates in front of an ``oauth`` service on GKE (Istio ``RequestAuthentication``)."""

    issuer: HttpsUrl = Field(description="the authorization server's issuer (the tokens' `iss` claim).")
    jwks_uri: HttpsUrl = Field(description="the URL of the issuer's JSON Web Key Set (its signing keys).")
    audiences: list[HttpsUrl] = Field(
        default_factory=list,
        description="accepted `aud` values, compared exactly; empty means `https://HOST` for each host. Set them "
                    "when your resource URL has a path (`https://HOST/mcp`).")


class AccessArgs(Model):
    """Settings of a service's ``access``; a plain string (``access: public``) is the mode alone.
    Raises a ``ValidationError`` listing every setting the mode does not use and ``iap`` / ``iam``
    without callers."""

    mode: AccessMode = Field(description="who may call: `iap`, `iam`, `oauth` or `public`.")
    members: list[Member] = Field(
        default_factory=list,
        description="IAM principals let in (`iap`: `roles/iap.httpsResourceAccessor`; `iam`: `roles/run.invoker` "
                    "on Cloud Run, the ID token's `email` on GKE).")
    programmatic_clients: list[ClientId] = Field(
        default_factory=list,
        description="OAuth client ids (created in the console) allowlisted in the IAP settings for programmatic "
                    "access (`iap` only).")
    jwt: Optional[JwtArgs] = Field(
        default=None,
        description="`oauth` on GKE only: the issuer whose tokens the mesh validates in front of the server.")
    oauth_client: Optional[OAuthClientArgs] = Field(
        default=None,
        description="`iap` only: your own OAuth client (`clientId`, `clientSecret` from Secret Manager) instead of "
                    "Google's managed one, which signs in only your organization's users; needed for members outside "
                    "it (`@gmail.com` accounts are refused without it).")

    def marks(self, acknowledge) -> dict[str, str]:
        """Labels that tell policy checks who may call (``mcp-access``), whether ``public`` was
        acknowledged (``mcp-ack: unauthenticated``) and whether a deploy may widen who may call
        (``mcp-ack-access: widened``, read by :mod:`mcp_affinity.impact`)."""
        marks = {"mcp-access": self.mode.value}
        if self.mode is AccessMode.PUBLIC and "unauthenticated" in acknowledge:
            marks["mcp-ack"] = "unauthenticated"
        if "access-widened" in acknowledge:
            marks["mcp-ack-access"] = "widened"
        return marks

    def summary(self) -> str:
        """One line for people: the mode, its members and clients."""
        parts = [*self.members, *(f"client {c}" for c in self.programmatic_clients)]
        if self.oauth_client is not None:
            parts.append(f"sign-in client {self.oauth_client.client_id}")
        if self.jwt is not None:
            parts.append(f"jwt from {self.jwt.issuer}")
        return self.mode.value + (f" ({', '.join(parts)})" if parts else "")

    @model_validator(mode="before")
    @classmethod
    def _mode_alone(cls, value: Any) -> Any:
        # iap and iam name who may call, so they never stand alone: show the mapping to write.
        if value in (AccessMode.IAP.value, AccessMode.IAM.value):
            who = "members or programmaticClients" if value == AccessMode.IAP.value else "members"
            raise ValueError(f"{value} needs {who}: write access: {{mode: {value}, members: [...]}}")
        return {"mode": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _rules(self) -> "AccessArgs":
        mode, faults = self.mode, Faults("AccessArgs")
        if self.programmatic_clients and mode is not AccessMode.IAP:
            faults.add("programmaticClients", "programmaticClients go with mode iap only")
        if self.jwt is not None and mode is not AccessMode.OAUTH:
            faults.add("jwt", "jwt goes with mode oauth only")
        if self.members and mode in (AccessMode.OAUTH, AccessMode.PUBLIC):
            faults.add("members", f"members: mode {mode.value} lets no IAM principal in; use iap or iam")
        if mode is AccessMode.IAP and not (self.members or self.programmatic_clients):
            faults.add("members", "mode iap needs members (who may sign in) or programmaticClients")
        if mode is AccessMode.IAM and not self.members:
            faults.add("members", "mode iam needs members (the principals given roles/run.invoker)")
        if self.oauth_client is not None and mode is not AccessMode.IAP:
            faults.add("oauthClient", "oauthClient goes with mode iap only")
        consumer = [m for m in self.members if member_domain(m) in CONSUMER_DOMAINS]
        if mode is AccessMode.IAP and self.oauth_client is None and consumer:
            faults.add("members", f"{', '.join(consumer)}: consumer accounts belong to no organization, and IAP's "
                       "Google-managed OAuth client signs in only users of your organization; set oauthClient (your "
                       "own client, External consent screen) or list organization accounts")
        faults.raise_if_any()
        return self
