"""GkeCluster: a regional GKE Standard cluster for MCP servers behind a mesh.

Private nodes, Workload Identity, a release channel, Dataplane V2 (``ADVANCED_DATAPATH``, which
enforces Kubernetes NetworkPolicy), the Gateway API, a control plane reachable only from
``master_authorized_networks`` (or only privately), application-layer secrets encryption with a
Cloud KMS key, and optional Binary Authorization, on the VPC from :class:`~mcp_affinity.Network`.
One autoscaling node pool with its own least-privilege service account. A
``pulumi_kubernetes.Provider`` built from the cluster's outputs authenticates with
``gke-gcloud-auth-plugin`` (https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl).

Workload Identity's pool ``PROJECT.svc.id.goog`` exists only once a cluster with Workload Identity
exists, so :attr:`GkeCluster.workload_pool` is taken from the cluster's output: an IAM binding that
names it waits for the cluster (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
"""

from __future__ import annotations

import re
from typing import Literal, Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import Field, model_validator

from .naming import GKE_CLUSTER, RFC1035, SERVICE_ACCOUNT, PhysicalName, physical_name
from .network import NetworkRef, RangeName, check_no_overlap
from .settings import Bool, Int, IPv4Cidr, Model, Name, Region, Settings

# Least privilege for nodes: https://cloud.google.com/kubernetes-engine/docs/how-to/hardening-your-cluster#use_least_privilege_sa
NODE_ROLES = ["roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer",
              "roles/stackdriver.resourceMetadata.writer"]


class NodePoolArgs(Model):
    """The autoscaling node pool.

    - ``machine_type``: Compute Engine machine type of the nodes.
    - ``min_nodes`` / ``max_nodes``: total node bounds across the zones.
    - ``disk_size_gb``: boot disk per node, GiB.
    - ``spot``: Spot VMs (cheaper, may be reclaimed).
    """

    machine_type: str = Field(default="e2-standard-4", pattern=r"^[a-z][a-z0-9]*-[a-z0-9-]+$")
    min_nodes: Int = Field(default=1, ge=0, le=1000)
    max_nodes: Int = Field(default=6, ge=1, le=1000)
    disk_size_gb: Int = Field(default=100, ge=10, le=65536)
    spot: Bool = False

    @model_validator(mode="after")
    def _bounds(self) -> "NodePoolArgs":
        if self.min_nodes > self.max_nodes:
            raise ValueError("minNodes is larger than maxNodes")
        return self


class GkeClusterArgs(Settings):
    """Settings of :class:`GkeCluster`.

    - ``region`` / ``zones``: a regional cluster and the zones of its nodes; the network needs a
      subnet in ``region``.
    - ``pods_range`` / ``services_range``: names of that subnet's secondary ranges for pods and services.
    - ``node_pool``: the autoscaling node pool.
    - ``master_cidr``: a /28 for the control plane's private endpoint (must not overlap the subnets).
    - ``master_authorized_networks``: name -> CIDR allowed to reach the public endpoint; empty
      means no address outside Google Cloud may reach it.
    - ``private_endpoint``: turn the public endpoint off; ``pulumi up`` must then run inside the VPC.
    - ``release_channel``: ``RAPID``, ``REGULAR`` or ``STABLE``.
    - ``secrets_encryption``: encrypt Kubernetes Secrets with a Cloud KMS key the component creates.
    - ``binary_authorization``: enforce the project's Binary Authorization policy.
    - ``image_repositories``: Artifact Registry repositories (``LOCATION/REPOSITORY``) the nodes
      may pull from; the node account gets ``roles/artifactregistry.reader`` on these only.
    - ``rbac_security_group``: the Google Group that nests the groups RBAC bindings name
      (``gke-security-groups@YOUR-DOMAIN``; https://cloud.google.com/kubernetes-engine/docs/how-to/google-groups-rbac),
      or unset.
    """

    region: Region
    zones: list[str] = Field(min_length=1, max_length=10)
    pods_range: RangeName = "pods"
    services_range: RangeName = "services"
    master_cidr: IPv4Cidr = "172.16.0.0/28"
    master_authorized_networks: dict[Name, IPv4Cidr] = Field(default_factory=dict)
    private_endpoint: Bool = False
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    node_pool: NodePoolArgs = Field(default_factory=NodePoolArgs)
    secrets_encryption: Bool = True
    binary_authorization: Bool = False
    rbac_security_group: Optional[str] = Field(
        default=None, pattern=r"^gke-security-groups@[a-z0-9]([a-z0-9.-]*[a-z0-9])?\.[a-z]{2,63}$", description=(
            "Google Groups for RBAC: gke-security-groups@YOUR-DOMAIN, the group nesting those RBAC bindings name."))
    image_repositories: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> "GkeClusterArgs":
        if self.project is None:
            raise ValueError("project is needed: Workload Identity's pool is PROJECT.svc.id.goog")
        if not self.master_cidr.endswith("/28"):
            raise ValueError("masterCidr must be a /28")
        for zone in self.zones:
            if not zone.startswith(self.region + "-") or len(zone) != len(self.region) + 2:
                raise ValueError(f"zone {zone!r} is not a zone of region {self.region!r} (e.g. {self.region}-b)")
        if len(set(self.zones)) != len(self.zones):
            raise ValueError("zones lists a zone twice")
        for repository in self.image_repositories:
            if not re.fullmatch(r"[a-z0-9-]+/[a-z0-9]([a-z0-9-]*[a-z0-9])?", repository):
                raise ValueError(f"imageRepositories: {repository!r} is not LOCATION/REPOSITORY")
        return self

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names: cluster, node pool, node service account, KMS key ring and key."""
        p = self.prefix
        names = {
            "cluster": physical_name(GKE_CLUSTER, "gcp:container/cluster:Cluster", p, name),
            "pool": physical_name(GKE_CLUSTER, "gcp:container/nodePool:NodePool", p, name, "pool"),
            "nodes": physical_name(SERVICE_ACCOUNT, "gcp:serviceaccount/account:Account", p, name, "nodes"),
        }
        if self.secrets_encryption:
            names["keyring"] = physical_name(RFC1035, "gcp:kms/keyRing:KeyRing", p, name)
            names["key"] = physical_name(RFC1035, "gcp:kms/cryptoKey:CryptoKey", p, name, "secrets")
        return names

    def check_ranges(self, subnet_ranges: list[tuple[str, str]]) -> None:
        """Raise ``ValueError`` if ``master_cidr`` overlaps one of ``(key, cidr)``."""
        check_no_overlap([("masterCidr", self.master_cidr), *subnet_ranges])


class GkeCluster(pulumi.ComponentResource):
    """A private, Workload-Identity-enabled regional GKE cluster and a Kubernetes provider for it.

    Context: ``network`` (the subnet of ``args.region`` carries nodes, pods and services).

    Outputs: ``cluster_name``, ``cluster_id`` (``projects/P/locations/L/clusters/C``), ``endpoint``,
    ``workload_pool`` (from the cluster, so bindings wait for it), ``kubernetes_provider`` (pass it
    through ``opts`` or hand the cluster itself to :class:`Mesh` and :class:`McpMeshService`),
    ``node_pool`` (what workloads must wait for: the pool starts with no nodes).

    Raises ``ValueError`` when the network has no subnet in ``args.region``.
    """

    cluster_name: pulumi.Output[str]
    cluster_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    workload_pool: pulumi.Output[str]
    kubernetes_provider: k8s.Provider
    node_pool: gcp.container.NodePool

    def __init__(self, name: str, args: GkeClusterArgs, *, network: NetworkRef,
                 opts: Optional[pulumi.ResourceOptions] = None):
        if args.region not in network.subnet_ids:
            raise ValueError(f"the network has no subnet in {args.region} (regions: {network.regions})")
        names = args.names(name)
        super().__init__("mcp-affinity:index:GkeCluster", name, None, opts)
        self._args, self._names = args, names
        nodes = self._node_account(name)
        key = self._secrets_key(name) if args.secrets_encryption else None
        cluster = gcp.container.Cluster(
            name,
            name=names["cluster"].value,
            project=args.project,
            location=args.region,
            node_locations=args.zones,
            network=network.network_id,
            subnetwork=network.subnet_ids[args.region],
            networking_mode="VPC_NATIVE",
            ip_allocation_policy={"cluster_secondary_range_name": args.pods_range,
                                  "services_secondary_range_name": args.services_range},
            private_cluster_config={"enable_private_nodes": True, "enable_private_endpoint": args.private_endpoint,
                                    "master_ipv4_cidr_block": args.master_cidr},
            master_authorized_networks_config={
                "cidr_blocks": [{"display_name": k, "cidr_block": c} for k, c in sorted(args.master_authorized_networks.items())],
                "gcp_public_cidrs_access_enabled": False,
            },
            # Enabling Workload Identity creates the pool; bindings take it from the output below.
            workload_identity_config={"workload_pool": f"{args.project}.svc.id.goog"},
            release_channel={"channel": args.release_channel},
            datapath_provider="ADVANCED_DATAPATH",
            gateway_api_config={"channel": "CHANNEL_STANDARD"},
            database_encryption={"state": "ENCRYPTED", "key_name": key.id} if key else {"state": "DECRYPTED"},
            binary_authorization={"evaluation_mode": "PROJECT_SINGLETON_POLICY_ENFORCE"} if args.binary_authorization else None,
            # Pod-to-pod traffic on one node goes through the VPC too, so flow logs see it.
            enable_intranode_visibility=True,
            # No client certificate: it never expires and cannot be revoked; callers use IAM.
            master_auth={"client_certificate_config": {"issue_client_certificate": False}},
            authenticator_groups_config={"security_group": args.rbac_security_group} if args.rbac_security_group else None,
            # The default pool cannot be configured as we need; replace it with ours.
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=args.deletion_protection,
            resource_labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection,
                                        depends_on=[key] if key else []),
        )
        self.node_pool = self._pool(name, cluster, nodes)
        self.cluster_name = cluster.name
        self.cluster_id = cluster.id
        self.endpoint = cluster.endpoint
        self.workload_pool = cluster.workload_identity_config.apply(lambda c: c.workload_pool if c else None)
        self.kubernetes_provider = k8s.Provider(name, kubeconfig=_kubeconfig(cluster), enable_server_side_apply=True,
                                                opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"cluster_name": self.cluster_name, "cluster_id": self.cluster_id,
                               "endpoint": self.endpoint, "workload_pool": self.workload_pool,
                               "kubernetes_provider": self.kubernetes_provider})

    def _node_account(self, name: str) -> gcp.serviceaccount.Account:
        args, child = self._args, pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(f"{name}-nodes", account_id=self._names["nodes"].value, project=args.project,
                                             display_name="GKE nodes (least privilege)", opts=child)
        for role in NODE_ROLES:
            gcp.projects.IAMMember(f"{name}-nodes-{role.split('/')[1]}", project=args.project, role=role,
                                   member=account.member, opts=child)
        for repository in args.image_repositories:
            location, repo = repository.split("/")
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-nodes-pull-{location}-{repo}", project=args.project, location=location, repository=repo,
                role="roles/artifactregistry.reader", member=account.member, opts=child)
        return account

    def _secrets_key(self, name: str) -> gcp.kms.CryptoKey:
        """A KMS key for application-layer secrets encryption; GKE's service agent may use it
        (https://cloud.google.com/kubernetes-engine/docs/how-to/encrypting-secrets)."""
        args, child = self._args, pulumi.ResourceOptions(parent=self)
        ring = gcp.kms.KeyRing(name, name=self._names["keyring"].value, project=args.project, location=args.region,
                               opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection))
        key = gcp.kms.CryptoKey(name, name=self._names["key"].value, key_ring=ring.id, rotation_period="7776000s",
                                labels=args.labels, opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection))
        project = gcp.organizations.get_project_output(project_id=args.project)
        gcp.kms.CryptoKeyIAMMember(
            f"{name}-gke-agent", crypto_key_id=key.id, role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=project.number.apply(lambda n: f"serviceAccount:service-{n}@container-engine-robot.iam.gserviceaccount.com"),
            opts=child)
        return key

    def _pool(self, name, cluster, nodes) -> gcp.container.NodePool:
        args, pool = self._args, self._args.node_pool
        return gcp.container.NodePool(
            name,
            name=self._names["pool"].value,
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
                "tags": [self._names["cluster"].value],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    @property
    def node_tag(self) -> str:
        """The network tag on every node: firewall rules target the cluster's nodes with it."""
        return self._names["cluster"].value


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
