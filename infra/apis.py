"""The Google Cloud APIs a stack needs, each with what needs it: the stack output ``requiredApis``
and the README's list come from here.

An API is needed when the stack creates a resource of its service (``RESOURCE_APIS``, checked
against every planned stack by ``tests/test_apis.py``) or turns on a feature served by it.
"""

from __future__ import annotations

from typing import Any

from mcp_affinity.wire import PROJECT_SERVICE_IDENTITY

API_USES = {
    "compute": "always: VPC, subnets, load balancer, certificates, NEGs, backend services, firewall rules",
    "iam": "always: the services' and nodes' service accounts",
    "run": "with Cloud Run services (platform `cloud-run`)",
    "redis": "with a session store (a service in `shared-sessions` mode or with `notificationBroker`)",
    "secretmanager": "with a session store: the secret holding its URL; with session shards: the ingress configuration; "
                     "with `secretEnv` or `access.oauthClient`: the secrets read",
    "servicenetworking": "with a session store, or `network.privateServicesAccess: true`: the peering a store connects through",
    "container": "with GKE (platform `gke`)",
    "cloudresourcemanager": "with GKE: the project-level roles of the node and autoneg accounts",
    "cloudkms": "with GKE and `gke.secretsEncryption` (the default)",
    "artifactregistry": "with GKE and `gke.imageRepositories`: the nodes' pull permission",
    "gkehub": "with `gke.mesh.kind: cloud-service-mesh`: the fleet membership",
    "mesh": "with `gke.mesh.kind: cloud-service-mesh`: the managed control plane",
    "binaryauthorization": "with `gke.binaryAuthorization`",
    "iap": "with a service of `access: iap`: IAP on its backend service, its members and programmatic clients",
    "serviceusage": "with a Cloud Run service of `access: iap`: the IAP service agent's identity, given the invoker role",
    "monitoring": "with `monitoring` on (staging and prod by default): the dashboard and alert policies",
    "logging": "with `monitoring` on: the log-based metrics over the load balancer's and the shards' logs",
}
"""API (``SERVICE`` of ``SERVICE.googleapis.com``) -> when a stack needs it."""

RESOURCE_APIS = {
    "gcp:compute": "compute", "gcp:serviceaccount": "iam", "gcp:cloudrunv2": "run", "gcp:redis": "redis",
    "gcp:secretmanager": "secretmanager", "gcp:servicenetworking": "servicenetworking", "gcp:container": "container",
    "gcp:projects": "cloudresourcemanager", "gcp:kms": "cloudkms", "gcp:artifactregistry": "artifactregistry",
    "gcp:gkehub": "gkehub", "gcp:iap": "iap", "gcp:monitoring": "monitoring", "gcp:logging": "logging",
}
"""Pulumi type module -> the API that serves its resources."""

TYPE_APIS = {PROJECT_SERVICE_IDENTITY: "serviceusage"}
"""Resource types served by another API than their module's (``generateServiceIdentity`` is Service
Usage's, https://cloud.google.com/service-usage/docs/reference/rest/v1beta1/services/generateServiceIdentity)."""


def api_of(resource_type: str) -> str:
    """The API (``SERVICE``) serving a Pulumi ``gcp:`` resource type."""
    return TYPE_APIS.get(resource_type) or RESOURCE_APIS[resource_type.split("/")[0]]


def required_apis(settings: Any) -> list[str]:
    """``SERVICE.googleapis.com`` for every API the stack's resources and features need, sorted:
    enable them once per project before the first ``pulumi up``."""
    apis = {"compute", "iam"}
    if "cloud-run" in settings.platforms:
        apis.add("run")
        if any(args.pinning == "shards" and args.shard_prefix_by == "proxy"
               for args, *_ in settings.platforms["cloud-run"].values()):
            apis.add("secretmanager")  # the shards' ingress configuration
        if any(args.access.mode.value == "iap" for args, *_ in settings.platforms["cloud-run"].values()):
            apis.add("serviceusage")  # the IAP service agent's identity
        if any(args.secret_env or args.access.oauth_client for args, *_ in settings.platforms["cloud-run"].values()
               if args is not None):
            apis.add("secretmanager")  # secretEnv's secrets, the IAP OAuth client's secret
    if settings.session_store is not None:
        apis.update({"redis", "secretmanager"})
    if settings.network.private_services_access:
        apis.add("servicenetworking")
    gke = settings.platforms.get("gke")
    if gke:
        cluster = gke["cluster"]
        apis.update({"container", "cloudresourcemanager"})
        apis.update({"cloudkms"} if cluster.secrets_encryption else set())
        apis.update({"artifactregistry"} if cluster.image_repositories else set())
        apis.update({"binaryauthorization"} if cluster.binary_authorization else set())
        apis.update({"gkehub", "mesh"} if gke["mesh"].kind == "cloud-service-mesh" else set())
        apis.update({"secretmanager"} if any(s is not None and s.secret_env for s in gke["services"].values()) else set())
    if _uses_iap(settings):
        apis.add("iap")
    if getattr(settings, "monitoring", None) is not None:
        apis.update({"monitoring", "logging"})
    return sorted(f"{api}.googleapis.com" for api in apis)


def _uses_iap(settings: Any) -> bool:
    services = [s.access for s in settings.config.services.values()]
    services += [s.access for s in settings.config.mesh_services.values()]
    return any(a.mode.value == "iap" for a in services)


def markdown_list() -> str:
    """The README's list of APIs: one line per API with what needs it."""
    return "\n".join(f"- `{api}.googleapis.com`: {use}" for api, use in API_USES.items())
