"""What makes ``pulumi up`` replace a resource instead of updating it, per resource type we use.

A Google Cloud field marked ``ForceNew: true`` in terraform-provider-google (which pulumi-gcp
bridges; the bridge turns ``ForceNew`` into a replacement) cannot change in place: the provider
deletes the resource and creates it again. The Kubernetes provider replaces an object when a field
listed by ``forceNewProperties`` changes. Paths are camelCase input paths (``a.b`` also matches
every item of a list ``a``); a change at or below one of them is a replacement.

Sources (read November 2026):

- ``TF``: hashicorp/terraform-provider-google at e03b7622a26c (2026-08-21), the ``ForceNew: true``
  fields of the schema in ``google/services/<service>/resource_<name>.go`` (node pool node
  settings: ``google/services/container/node_config.go``; IAM members:
  ``google/tpgiamresource/resource_iam_member.go``). Subnetwork ``ipCidrRange`` is replaced only
  when the range shrinks (``customdiff.ForceNewIfChange("ip_cidr_range", IsShrinkageIpCidr)``).
- ``K8S``: pulumi/pulumi-kubernetes ``provider/pkg/provider/diff.go`` (``forceNewProperties``):
  ``metadata.name``, ``metadata.namespace`` of every kind, plus per kind.
- ``HELM``: pulumi/pulumi-kubernetes ``provider/pkg/provider/helm_release.go`` (``Diff``,
  ``forceNewFields``): a Helm release's ``name`` and ``namespace``.
"""

from __future__ import annotations

from typing import Iterable, Optional

from ..wire import (
    ADDRESS, BACKEND, CLOUD_RUN, CLOUD_RUN_IAM_MEMBER, CONTAINER_CLUSTER, FIREWALL, FORWARDING_RULE, GLOBAL_ADDRESS,
    GOOGLE_SERVICE_ACCOUNT, HEALTH_CHECK, HELM_V3_RELEASE, MANAGED_SSL_CERTIFICATE, NEG, NETWORK, NODE_POOL,
    PROJECT_IAM_MEMBER, REDIS, SECRET_IAM_MEMBER, SECRET_MANAGER_SECRET, SECRET_VERSION, SERVICE_ACCOUNT_IAM_MEMBER,
    SERVICE_NETWORKING_CONNECTION, SSL_POLICY, SUBNETWORK, TARGET_HTTP_PROXY, TARGET_HTTPS_PROXY, URL_MAP,
)

TF = "hashicorp/terraform-provider-google@e03b7622a26c google/services/{}.go (ForceNew)"
K8S = "pulumi/pulumi-kubernetes provider/pkg/provider/diff.go (forceNewProperties)"
HELM = "pulumi/pulumi-kubernetes provider/pkg/provider/helm_release.go (Diff, forceNewFields)"

# Type token -> (source file under google/services, create-only paths besides name and project).
_GCP: dict[str, tuple[str, tuple[str, ...]]] = {
    CLOUD_RUN: ("cloudrunv2/resource_cloud_run_v2_service", ("location",)),
    NEG: (
        "compute/resource_compute_region_network_endpoint_group",
        ("region", "networkEndpointType", "cloudRun", "cloudFunction", "appEngine", "network", "subnetwork",
         "pscTargetService", "description")),
    BACKEND: ("compute/resource_compute_backend_service", ()),
    URL_MAP: ("compute/resource_compute_url_map", ()),
    TARGET_HTTPS_PROXY: (
        "compute/resource_compute_target_https_proxy", ("description", "proxyBind", "httpKeepAliveTimeoutSec")),
    TARGET_HTTP_PROXY: (
        "compute/resource_compute_target_http_proxy", ("description", "proxyBind", "httpKeepAliveTimeoutSec")),
    SSL_POLICY: ("compute/resource_compute_ssl_policy", ("description",)),
    MANAGED_SSL_CERTIFICATE: (
        "compute/resource_compute_managed_ssl_certificate", ("managed", "type", "description")),
    GLOBAL_ADDRESS: (
        "compute/resource_compute_global_address",
        ("address", "addressType", "ipVersion", "network", "prefixLength", "purpose", "description")),
    ADDRESS: (
        "compute/resource_compute_address",
        ("address", "addressType", "ipVersion", "networkTier", "network", "subnetwork", "prefixLength", "purpose",
         "region", "description")),
    FORWARDING_RULE: (
        "compute/resource_compute_global_forwarding_rule",
        ("ipAddress", "ipProtocol", "ipVersion", "portRange", "network", "networkTier", "subnetwork",
         "sourceIpRanges", "metadataFilters", "description")),
    NETWORK: (
        "compute/resource_compute_network", ("autoCreateSubnetworks", "internalIpv6Range", "description")),
    SUBNETWORK: (
        "compute/resource_compute_subnetwork", ("network", "region", "reservedInternalRange", "description")),
    FIREWALL: ("compute/resource_compute_firewall", ("direction", "network")),
    HEALTH_CHECK: ("compute/resource_compute_health_check", ()),
    REDIS: (
        "redis/resource_redis_instance",
        ("region", "tier", "authorizedNetwork", "connectMode", "transitEncryptionMode", "reservedIpRange",
         "locationId", "alternativeLocationId", "customerManagedKey")),
    CONTAINER_CLUSTER: (
        "container/resource_container_cluster",
        ("location", "network", "subnetwork", "networkingMode", "datapathProvider", "ipAllocationPolicy",
         "initialNodeCount", "clusterIpv4Cidr", "defaultMaxPodsPerNode", "enableAutopilot", "enableTpu",
         "enableKubernetesAlpha", "confidentialNodes", "privateClusterConfig.masterIpv4CidrBlock",
         "privateClusterConfig.privateEndpointSubnetwork", "nodePool", "description",
         "masterAuth.clientCertificateConfig")),
    NODE_POOL: (
        "container/resource_container_node_pool",
        ("cluster", "location", "initialNodeCount", "maxPodsPerNode", "namePrefix", "placementPolicy",
         "queuedProvisioning", "networkConfig.podRange", "networkConfig.podIpv4CidrBlock",
         "networkConfig.createPodRange", "networkConfig.subnetwork",
         # node_config.go
         "nodeConfig.oauthScopes", "nodeConfig.serviceAccount", "nodeConfig.spot", "nodeConfig.preemptible",
         "nodeConfig.shieldedInstanceConfig", "nodeConfig.metadata", "nodeConfig.minCpuPlatform",
         "nodeConfig.guestAccelerator", "nodeConfig.localSsdCount", "nodeConfig.bootDiskKmsKey",
         "nodeConfig.sandboxConfig", "nodeConfig.reservationAffinity", "nodeConfig.advancedMachineFeatures")),
    SECRET_MANAGER_SECRET: (
        "secretmanager/resource_secret_manager_secret", ("secretId", "replication", "tags")),
    SECRET_VERSION: (
        "secretmanager/resource_secret_manager_secret_version", ("secret", "secretData", "isSecretDataBase64")),
    GOOGLE_SERVICE_ACCOUNT: ("resourcemanager/resource_google_service_account", ("accountId",)),
    SERVICE_NETWORKING_CONNECTION: (
        "servicenetworking/resource_service_networking_connection", ("network", "service")),
}
_IAM_MEMBER = ("../tpgiamresource/resource_iam_member", ("member", "role", "condition"))
_IAM_PARENTS = {PROJECT_IAM_MEMBER: ("project",), SERVICE_ACCOUNT_IAM_MEMBER: ("serviceAccountId",),
                SECRET_IAM_MEMBER: ("secretId",), CLOUD_RUN_IAM_MEMBER: ("name", "location")}

# Kubernetes kind -> create-only paths besides metadata.name and metadata.namespace (K8S).
_K8S: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec.selector",), "DaemonSet": ("spec.selector",),
    "StatefulSet": ("spec.selector", "spec.serviceName", "spec.volumeClaimTemplates", "spec.podManagementPolicy",
                    "spec.revisionHistoryLimit"),
    "Service": ("spec.clusterIP",), "Secret": ("type", "stringData", "data"), "ConfigMap": ("data", "binaryData"),
    "Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    "RoleBinding": ("roleRef",), "ClusterRoleBinding": ("roleRef",),
}

STATEFUL: dict[str, str] = {
    REDIS: "the session store: every session and stream in it is lost",
    CONTAINER_CLUSTER: "the GKE cluster: every workload on it is recreated",
    NODE_POOL: "the node pool: every pod on it is evicted",
    SECRET_MANAGER_SECRET: "the secret: all its versions are destroyed",
}
"""Types whose replacement loses state, and what is lost; a diff flags their replacement at the top."""


def create_only(type_: str, inputs: Optional[dict] = None) -> tuple[tuple[str, ...], Optional[str]]:
    """The create-only input paths of ``type_`` and their source; ``((), None)`` when unknown.

    ``inputs`` gives a Kubernetes object's ``kind`` when the type token is a CRD's.
    """
    if type_ in _GCP:
        source, paths = _GCP[type_]
        return ("name", "project", *paths), TF.format(source)
    if type_ in _IAM_PARENTS:
        source, paths = _IAM_MEMBER
        return (*_IAM_PARENTS[type_], *paths), TF.format(source)
    if type_ == HELM_V3_RELEASE:
        return ("name", "namespace"), HELM
    if type_.startswith("kubernetes:") and not type_.startswith("kubernetes:helm.sh"):
        kind = (inputs or {}).get("kind") or type_.rsplit(":", 1)[-1]
        return ("metadata.name", "metadata.namespace", *_K8S.get(str(kind), ())), K8S
    if type_.startswith("gcp:"):
        return ("name",), "a Google Cloud resource's name is its id; TF marks it ForceNew on every resource type"
    return (), None


def forces_replacement(path: Iterable, paths: Iterable[str]) -> Optional[str]:
    """The create-only path (of ``paths``) that ``path`` (keys and list indexes) falls under, else None."""
    keys = [p for p in path if not isinstance(p, int)]
    for candidate in paths:
        parts = candidate.split(".")
        if keys[:len(parts)] == parts:
            return candidate
    return None
