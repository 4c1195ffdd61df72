"""The IAM and IAP resources behind a service's ``access`` (see :mod:`mcp_affinity.access`): Cloud Run
services and the GKE gateway's backend service.

- ``iap``: the backend service's ``iap`` block (with ``oauth_client``, its ``oauth2_client_id`` and
  ``oauth2_client_secret``, the secret read from Secret Manager when Pulumi runs and kept a Pulumi
  secret); ``roles/iap.httpsResourceAccessor`` for each member
  (``WebBackendServiceIamMember``); the IAP service agent
  ``service-PROJECT_NUMBER@gcp-sa-iap.iam.gserviceaccount.com`` (``ServiceIdentity``) gets
  ``roles/run.invoker`` on each regional service, whose invoker check stays on; programmatic clients
  in the IAP settings' ``accessSettings.oauthSettings.programmaticClients``
  (https://cloud.google.com/iap/docs/enabling-cloud-run, https://cloud.google.com/iap/docs/authentication-howto).
- ``iam``: ``roles/run.invoker`` for each member on each regional service; ``custom_audiences``
  ``https://HOST`` so an ID token minted for the load balancer's host is accepted
  (https://cloud.google.com/run/docs/configuring/custom-audiences).
- ``oauth`` / ``public``: the invoker check off (the server or nobody authenticates).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp

from .access import AccessArgs, AccessMode, member_domain

IAP_ACCESSOR = "roles/iap.httpsResourceAccessor"
RUN_INVOKER = "roles/run.invoker"


def invoker_check(access: AccessArgs) -> bool:
    """Whether Cloud Run's IAM invoker check stays on."""
    return access.mode in (AccessMode.IAP, AccessMode.IAM)


def custom_audiences(access: AccessArgs, hosts: Sequence[str]) -> list[str]:
    """``https://HOST`` for each host with ``iam`` (ID tokens minted for the load balancer's host)."""
    return [f"https://{h}" for h in sorted(hosts)] if access.mode is AccessMode.IAM else []


def backend_iap(access: AccessArgs, project: Optional[str] = None) -> dict:
    """``BackendService`` arguments: the ``iap`` block for ``iap``, else none. Without
    ``oauth_client`` IAP uses Google's managed OAuth client; with it, the client id and its secret,
    looked up in Secret Manager (``project`` for a secret named by id only)."""
    if access.mode is not AccessMode.IAP:
        return {}
    client = access.oauth_client
    if client is None:
        return {"iap": {"enabled": True}}
    ref = client.client_secret
    secret_project, secret = (ref.secret.split("/")[1], ref.secret.rsplit("/", 1)[-1]) \
        if ref.secret.startswith("projects/") else (project, ref.secret)
    version = gcp.secretmanager.get_secret_version_output(project=secret_project, secret=secret, version=ref.version)
    return {"iap": {"enabled": True, "oauth2_client_id": client.client_id,
                    "oauth2_client_secret": pulumi.Output.secret(version.secret_data)}}


def warn_managed_client(parent: pulumi.Resource, access: AccessArgs) -> None:
    """Warn when IAP's managed OAuth client (organization users only) meets members of several
    domains: one organization may own several domains, so this is not refused, but a member
    outside the organization could never sign in."""
    domains = sorted({d for d in map(member_domain, access.members) if d})
    if access.mode is AccessMode.IAP and access.oauth_client is None and len(domains) > 1:
        pulumi.log.warn(f"access: members come from {len(domains)} domains ({', '.join(domains)}); IAP's Google-managed "
                        "OAuth client signs in only users of the project's organization: if a domain is outside it, "
                        "set access.oauthClient", resource=parent)


def grant(parent: pulumi.Resource, name: str, access: AccessArgs, *, project, services: Mapping[str, gcp.cloudrunv2.Service],
          backends: Mapping[str, gcp.compute.BackendService]) -> None:
    """Create the bindings and settings ``access`` needs (children of ``parent``). ``services``: the
    Cloud Run services, keyed by region or shard key (none for the GKE gateway); ``backends``: each
    backend service behind them, keyed by the name its IAP resources start with (``{name}`` for one,
    ``{name}-{shard key}`` for session shards)."""
    child = pulumi.ResourceOptions(parent=parent)
    warn_managed_client(parent, access)
    invokers: list[tuple[str, pulumi.Input[str]]] = []
    if access.mode is AccessMode.IAM:
        invokers = [(f"member{i}", m) for i, m in enumerate(access.members)]
    if access.mode is AccessMode.IAP and services:
        agent = gcp.projects.ServiceIdentity(f"{name}-iap-agent", project=project, service="iap.googleapis.com", opts=child)
        invokers = [("iap-agent", agent.member)]
    if access.mode is AccessMode.IAP:
        for label, backend in sorted(backends.items()):
            _iap(label, access, project, backend, child)
    for key, service in sorted(services.items()):
        for label, member in invokers:
            gcp.cloudrunv2.ServiceIamMember(f"{name}-{key}-invoker-{label}", project=service.project,
                                            location=service.location, name=service.name, role=RUN_INVOKER,
                                            member=member, opts=child)


def _iap(label: str, access: AccessArgs, project, backend: gcp.compute.BackendService,
         child: pulumi.ResourceOptions) -> None:
    """IAP on one backend service: ``roles/iap.httpsResourceAccessor`` per member, programmatic clients."""
    for i, member in enumerate(access.members):
        gcp.iap.WebBackendServiceIamMember(f"{label}-iap-member{i}", project=project, web_backend_service=backend.name,
                                           role=IAP_ACCESSOR, member=member, opts=child)
    if access.programmatic_clients:
        gcp.iap.Settings(f"{label}-iap", name=pulumi.Output.format(
            "projects/{0}/iap_web/compute/services/{1}", backend.project, backend.name),
            access_settings={"oauth_settings": {"programmatic_clients": sorted(access.programmatic_clients)}},
            opts=child)
