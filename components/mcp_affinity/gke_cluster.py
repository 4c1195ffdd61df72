"""GkeCluster: a regional GKE Standard cluster for MCP servers behind a mesh.

Private nodes, Workload Identity (``PROJECT.svc.id.goog``), a release channel, Dataplane V2
(``ADVANCED_DATAPATH``) and the Gateway API, on the VPC from :class:`~mcp_affinity.Network`
with VPC-native secondary ranges. One autoscaling node pool with its own least-privilege service
account. A ``pulumi_kubernetes.Provider`` built from the cluster's outputs authenticates with
``gke-gcloud-auth-plugin`` (https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl).
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import Field, field_validator

from ._args import Args, Prefix, Region, StrInput

NODE_ROLES = ["roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer",
              "roles/artifactregistry.reader", "roles/stackdriver.resourceMetadata.writer"]


class NodePoolArgs(Args):
    """The autoscaling node pool: machine type and total node bounds across the zones."""

    machine_type: str = "e2-standard-4"
    min_nodes: int = Field(default=1, ge=0, le=1000)
    max_nodes: int = Field(default=6, ge=1, le=1000)
    disk_size_gb: int = Field(default=100, ge=10, le=65536)
    spot: bool = False


class GkeClusterArgs(Args):
    """Arguments of :class:`GkeCluster`.

    - ``project``: the project id; Workload Identity's pool is ``PROJECT.svc.id.goog``.
    - ``region`` / ``zones``: a regional cluster and the zones of its nodes.
    - ``network_id`` / ``subnet_id``: the VPC subnet; ``pods_range`` / ``services_range`` name
      its secondary ranges.
    - ``master_cidr``: a /28 for the control plane's private endpoint.
    - ``release_channel``: ``RAPID``, ``REGULAR`` or ``STABLE``.
    - ``deletion_protection``: refuse deletion (GKE's flag and Pulumi ``protect``).
    """

    prefix: Prefix
    project: str
    region: Region
    zones: list[str] = Field(min_length=1)
    network_id: StrInput
    subnet_id: StrInput
    pods_range: str = "pods"
    services_range: str = "services"
    master_cidr: str = "172.16.0.0/28"
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    node_pool: NodePoolArgs = NodePoolArgs()
    deletion_protection: bool = False
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("master_cidr")
    @classmethod
    def _master(cls, value: str) -> str:
        if ipaddress.ip_network(value).prefixlen != 28:
            raise ValueError("master_cidr must be a /28")
        return value

    def model_post_init(self, _context: object) -> None:
        for zone in self.zones:
            if not zone.startswith(self.region + "-"):
                raise ValueError(f"zone {zone!r} is not in region {self.region!r}")
        if self.node_pool.min_nodes > self.node_pool.max_nodes:
            raise ValueError("node_pool.min_nodes is larger than node_pool.max_nodes")


class GkeCluster(pulumi.ComponentResource):
    """A private, Workload-Identity-enabled regional GKE cluster and a Kubernetes provider for it.

    Outputs: ``name``, ``cluster_id`` (``projects/P/locations/L/clusters/C``), ``endpoint``, ``workload_pool`` and ``provider`` (a
    ``pulumi_kubernetes.Provider`` that later components pass as their ``provider``).
    """

    name: pulumi.Output[str]
    cluster_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    workload_pool: str
    provider: k8s.Provider

    def __init__(self, name: str, args: GkeClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:GkeCluster", name, None, opts)
        self.workload_pool = f"{args.project}.svc.id.goog"
        nodes = self._node_account(name, args)
        cluster = gcp.container.Cluster(
            name,
            name=f"{args.prefix}-gke",
            project=args.project,
            location=args.region,
            node_locations=args.zones,
            network=args.network_id,
            subnetwork=args.subnet_id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy={"cluster_secondary_range_name": args.pods_range,
                                  "services_secondary_range_name": args.services_range},
            private_cluster_config={"enable_private_nodes": True, "enable_private_endpoint": False,
                                    "master_ipv4_cidr_block": args.master_cidr},
            workload_identity_config={"workload_pool": self.workload_pool},
            release_channel={"channel": args.release_channel},
            datapath_provider="ADVANCED_DATAPATH",
            gateway_api_config={"channel": "CHANNEL_STANDARD"},
            # The default pool cannot be configured as we need; replace it with ours.
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=args.deletion_protection,
            resource_labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection),
        )
        self._node_pool(name, args, cluster, nodes)
        self.name = cluster.name
        self.cluster_id = cluster.id
        self.endpoint = cluster.endpoint
        self.provider = k8s.Provider(
            name,
            kubeconfig=_kubeconfig(cluster),
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.name, "endpoint": self.endpoint, "workload_pool": self.workload_pool})

    def _node_account(self, name: str, args: GkeClusterArgs) -> gcp.serviceaccount.Account:
        account = gcp.serviceaccount.Account(
            f"{name}-nodes", account_id=f"{args.prefix}-gke-nodes"[:30], project=args.project,
            display_name="GKE nodes (least privilege)", opts=pulumi.ResourceOptions(parent=self),
        )
        for role in NODE_ROLES:
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[1]}", project=args.project, role=role, member=account.member,
                opts=pulumi.ResourceOptions(parent=self),
            )
        return account

    def _node_pool(self, name, args: GkeClusterArgs, cluster, nodes) -> gcp.container.NodePool:
        pool = args.node_pool
        return gcp.container.NodePool(
            name,
            name=f"{args.prefix}-pool",
            project=args.project,
            location=args.region,
            cluster=cluster.name,
            autoscaling={"total_min_node_count": pool.min_nodes, "total_max_node_count": pool.max_nodes,
                         "location_policy": "BALANCED"},
            management={"auto_repair": True, "auto_upgrade": True},
            node_config={
                "machine_type": pool.machine_type,
                "disk_size_gb": pool.disk_size_gb,
                "spot": pool.spot,
                "service_account": nodes.email,
                "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                "workload_metadata_config": {"mode": "GKE_METADATA"},
                "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
                "labels": args.labels,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )


def _kubeconfig(cluster: gcp.container.Cluster) -> pulumi.Output[str]:
    """A kubeconfig that gets tokens from gke-gcloud-auth-plugin, never a stored credential."""
    return pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth).apply(
        lambda v: _kubeconfig_text(v[0], v[1], (v[2] or {}).get("cluster_ca_certificate", "")
                                   if isinstance(v[2], dict) else getattr(v[2], "cluster_ca_certificate", ""))
    )


def _kubeconfig_text(name: str, endpoint: str, ca: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: https://{endpoint}
    certificate-authority-data: {ca}
contexts:
- name: {name}
  context: {{cluster: {name}, user: {name}}}
current-context: {name}
users:
- name: {name}
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      installHint: Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)
      provideClusterInfo: true
"""
