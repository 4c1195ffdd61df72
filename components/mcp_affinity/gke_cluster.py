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

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Literal, Optional, Sequence

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import AfterValidator, Field, Strict, model_validator

from .naming import GKE_CLUSTER, RFC1035, SERVICE_ACCOUNT, PhysicalName, physical_name
from .network import NetworkRef, RangeName, check_no_overlap
from .settings import Bool, Faults, Int, IPv4Cidr, Model, Name, Region, Settings, StrInput, check_cidr, takes_settings
from .wire import (CONTAINER_CLUSTER, GOOGLE_SERVICE_ACCOUNT, KMS_CRYPTO_KEY, KMS_KEY_RING, KUBERNETES_PROVIDER, MASKED,
                   NODE_POOL)

# Least privilege for nodes: https://cloud.google.com/kubernetes-engine/docs/how-to/hardening-your-cluster#use_least_privilege_sa
NODE_ROLES = ["roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer",
              "roles/stackdriver.resourceMetadata.writer"]


MACHINE_FAMILIES = ("e2", "n1", "n2", "n2d", "n4", "n4a", "n4d", "c2", "c2d", "c3", "c3d", "c4", "c4a", "c4d",
                    "t2a", "t2d", "m1", "m2", "m3", "m4", "x4", "a2", "a3", "a4", "a4x", "g2", "g4", "h3", "h4d", "z3")
"""Compute Engine machine families (https://cloud.google.com/compute/docs/machine-resource)."""

MACHINE_TYPE = (r"^(?:e2-(?:micro|small|medium)"
                rf"|(?:{'|'.join(MACHINE_FAMILIES)})-(?:standard|highmem|highcpu|megamem|ultramem|hypermem|highgpu|"
                r"megagpu|ultragpu|edgegpu)-[1-9][0-9]*(?:-lssd|-metal|-nolssd)?"
                rf"|(?:{'|'.join(MACHINE_FAMILIES)})-custom-[1-9][0-9]*-[1-9][0-9]*(?:-ext)?)$")
"""A predefined machine type ``FAMILY-TYPE-VCPUS`` (``e2-standard-4``, ``c3-highmem-8-lssd``), a shared-core
``e2-micro|small|medium``, or a custom one ``FAMILY-custom-VCPUS-MEMORY_MIB`` of a family above
(https://cloud.google.com/compute/docs/machine-resource, /compute/docs/instances/creating-instance-with-custom-machine-type)."""


def _check_machine_type(value: str) -> str:
    if not re.fullmatch(MACHINE_TYPE, value):
        raise ValueError(f"{value!r} is not a Compute Engine machine type such as e2-standard-4 (families: "
                         f"{', '.join(MACHINE_FAMILIES)}; https://cloud.google.com/compute/docs/machine-resource)")
    return value


AUTHORIZED_NETWORKS = "https://cloud.google.com/kubernetes-engine/docs/how-to/authorized-networks"


def _authorized_cidr(value: str) -> str:
    # A secure value reads as the plan's placeholder; `pulumi up` gets and checks the real one.
    return value if value == MASKED else check_cidr(value)


OPEN_PREFIX = 8
"""An authorized network broader than a /8 (more addresses than any one organization holds) opens
the control plane to much of the internet: it needs ``acknowledge: [control-plane-internet]``."""

AuthorizedCidr = Annotated[str, Strict(), AfterValidator(_authorized_cidr)]
"""An IPv4 CIDR range allowed to reach the control plane; may be a ``secure:`` value."""


class NodePoolArgs(Model):
    """The autoscaling node pool."""

    machine_type: Annotated[str, Strict(), AfterValidator(_check_machine_type)] = Field(
        default="e2-standard-4",
        description="Compute Engine machine type of the nodes (`FAMILY-TYPE-VCPUS`, `e2-micro`, `e2-small`, "
                    "`e2-medium` or `FAMILY-custom-VCPUS-MIB`).")
    min_nodes: Int = Field(default=1, ge=0, le=1000, description="fewest nodes, in total across the zones.")
    max_nodes: Int = Field(default=6, ge=1, le=1000, description="most nodes, in total across the zones.")
    disk_size_gb: Int = Field(default=100, ge=10, le=65536, description="boot disk per node, GiB.")
    spot: Bool = Field(default=False, description="Spot VMs (cheaper, may be reclaimed).")

    @model_validator(mode="after")
    def _bounds(self) -> "NodePoolArgs":
        if self.min_nodes > self.max_nodes:
            faults = Faults("NodePoolArgs")
            faults.add("minNodes", f"{self.min_nodes} is larger than maxNodes {self.max_nodes}")
            faults.raise_if_any()
        return self


class GkeClusterArgs(Settings):
    """Settings of :class:`GkeCluster`."""

    region: Region = Field(description="the region of this regional cluster; the network needs a subnet there.")
    zones: list[str] = Field(
        min_length=1, max_length=10,
        description="the zones of the nodes, in `region` (e.g. `europe-west1-b`).")
    pods_range: RangeName = Field(default="pods", description="the name of the subnet's secondary range for pods.")
    services_range: RangeName = Field(
        default="services",
        description="the name of the subnet's secondary range for Services.")
    master_cidr: IPv4Cidr = Field(
        default="172.16.0.0/28",
        description="a /28 for the control plane's private endpoint (must not overlap the subnets).")
    master_authorized_networks: dict[Name, AuthorizedCidr] = Field(
        default_factory=dict,
        description="name -> CIDR allowed to reach the public endpoint (may be a secure value); empty means no "
                    "address outside Google Cloud may reach it; 0.0.0.0/0 is refused with `privateEndpoint`, and a "
                    "range broader than a /8 needs `acknowledge: [control-plane-internet]`.")
    acknowledge: list[Literal["control-plane-internet"]] = Field(
        default_factory=list,
        description="`control-plane-internet` accepts a `masterAuthorizedNetworks` range broader than a /8 (such as "
                    "0.0.0.0/0) on the public endpoint: the Kubernetes API then answers much of the internet.")
    private_endpoint: Bool = Field(
        default=False,
        description="turn the public endpoint off; `pulumi up` must then run inside the VPC.")
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = Field(
        default="REGULAR",
        description="the GKE release channel.")
    node_pool: NodePoolArgs = Field(default_factory=NodePoolArgs, description="the autoscaling node pool.")
    secrets_encryption: Bool = Field(
        default=True,
        description="encrypt Kubernetes Secrets with a Cloud KMS key the component creates.")
    binary_authorization: Bool = Field(
        default=False,
        description="enforce the project's Binary Authorization policy.")
    image_repositories: list[str] = Field(
        default_factory=list,
        description="Artifact Registry repositories (`LOCATION/REPOSITORY`) the nodes may pull from; the node "
                    "account gets `roles/artifactregistry.reader` on these only.")
    secret_sync: Bool = Field(
        default=False,
        description="GKE's secret synchronization and Secret Manager add-on (GKE 1.33+), which `secretEnv` of mesh "
                    "services needs (https://cloud.google.com/secret-manager/docs/sync-k8-secrets).")
    rbac_security_group: Optional[str] = Field(
        default=None, pattern=r"^gke-security-groups@[a-z0-9]([a-z0-9.-]*[a-z0-9])?\.[a-z]{2,63}$", description=(
            "Google Groups for RBAC: `gke-security-groups@YOUR-DOMAIN`, the group nesting the groups RBAC bindings "
            "name (https://cloud.google.com/kubernetes-engine/docs/how-to/google-groups-rbac); unset: off."))

    @model_validator(mode="after")
    def _rules(self) -> "GkeClusterArgs":
        faults = Faults("GkeClusterArgs")
        if self.project is None:
            faults.add("project", "project is needed: Workload Identity's pool is PROJECT.svc.id.goog")
        if not self.master_cidr.endswith("/28"):
            faults.add("masterCidr", "masterCidr must be a /28")
        for index, zone in enumerate(self.zones):
            if not zone.startswith(self.region + "-") or len(zone) != len(self.region) + 2:
                faults.add(("zones", index), f"zone {zone!r} is not a zone of region {self.region!r} (e.g. {self.region}-b)")
            elif zone in self.zones[:index]:
                faults.add(("zones", index), f"zone {zone} is listed twice")
        for index, repository in enumerate(self.image_repositories):
            if not re.fullmatch(r"[a-z0-9-]+/[a-z0-9]([a-z0-9-]*[a-z0-9])?", repository):
                faults.add(("imageRepositories", index), f"{repository!r} is not LOCATION/REPOSITORY")
        for key, cidr in self.master_authorized_networks.items():
            prefix = ipaddress.IPv4Network(cidr).prefixlen if cidr != MASKED else 32
            if self.private_endpoint and prefix == 0:
                faults.add(("masterAuthorizedNetworks", key), "0.0.0.0/0 with privateEndpoint: true: GKE refuses an "
                           f"authorized network open to every address on a private endpoint ({AUTHORIZED_NETWORKS})")
            elif prefix < OPEN_PREFIX and "control-plane-internet" not in self.acknowledge:
                faults.add(("masterAuthorizedNetworks", key), f"{cidr} opens the control plane's public endpoint to "
                           "much of the internet: list your own ranges, set privateEndpoint: true, or add "
                           "acknowledge: [control-plane-internet]")
        faults.raise_if_any()
        return self

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names: cluster, node pool, node service account, KMS key ring and key."""
        p = self.prefix
        names = {
            "cluster": physical_name(GKE_CLUSTER, CONTAINER_CLUSTER, p, name),
            "pool": physical_name(GKE_CLUSTER, NODE_POOL, p, name, "pool"),
            "nodes": physical_name(SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT, p, name, "nodes"),
        }
        if self.secrets_encryption:
            names["keyring"] = physical_name(RFC1035, KMS_KEY_RING, p, name)
            names["key"] = physical_name(RFC1035, KMS_CRYPTO_KEY, p, name, "secrets")
        return names

    def check_ranges(self, subnet_ranges: list[tuple[str, str]]) -> None:
        """Raise ``ValueError`` if ``master_cidr`` overlaps one of ``(key, cidr)``."""
        check_no_overlap([("masterCidr", self.master_cidr), *subnet_ranges])


@dataclass(frozen=True)
class ClusterRef:
    """What components running in a cluster take from it.

    - ``cluster_id``: ``projects/P/locations/L/clusters/C`` (Cloud Service Mesh's fleet membership).
    - ``workload_pool``: Workload Identity's pool ``PROJECT.svc.id.goog``, taken from the cluster's
      output so that a binding naming it waits for the cluster
      (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
    - ``node_tag``: the network tag on every node (firewall rules target the nodes with it).
    - ``kubernetes_provider``: the cluster's ``pulumi_kubernetes.Provider``; None for a cluster of
      another stack, whose provider the caller then passes in ``opts.providers``.
    - ``ready``: what Kubernetes objects wait for: the node pool (it starts with no nodes).

    Built by :meth:`GkeCluster.ref`, or by hand for a cluster created elsewhere.
    """

    cluster_id: StrInput
    workload_pool: StrInput
    node_tag: StrInput
    kubernetes_provider: Optional[pulumi.ProviderResource] = None
    ready: Sequence[pulumi.Resource] = ()
    secret_sync: bool = False
    """GKE's secret synchronization is on (``McpMeshService`` ``secretEnv`` needs it)."""


def kubernetes_options(opts: Optional[pulumi.ResourceOptions], cluster: ClusterRef) -> pulumi.ResourceOptions:
    """A component's options with a Kubernetes provider in ``providers``, which Pulumi passes on to
    every child created with ``parent=self`` (https://www.pulumi.com/docs/iac/concepts/options/providers/).

    A provider the caller gave (``opts.provider``, ``opts.providers``, or the parent's providers,
    as Pulumi resolves them) is kept; otherwise the cluster's. Raises ``ValueError`` when there is neither.
    """
    opts = opts or pulumi.ResourceOptions()
    given = list(opts.providers.values() if isinstance(opts.providers, dict) else opts.providers or [])
    given += [opts.provider] if opts.provider else []
    given += [opts.parent.get_provider(KUBERNETES_PROVIDER)] if opts.parent else []
    if any(p is not None and p.package == "kubernetes" for p in given):
        return opts
    if cluster.kubernetes_provider is None:
        raise ValueError("no Kubernetes provider: the cluster reference has none; pass one in opts.providers")
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[cluster.kubernetes_provider]))


class GkeCluster(pulumi.ComponentResource):
    """A private, Workload-Identity-enabled regional GKE cluster and a Kubernetes provider for it.

    Context: ``network`` (the subnet of ``args.region`` carries nodes, pods and services).

    Outputs: ``cluster_name``, ``cluster_id`` (``projects/P/locations/L/clusters/C``), ``endpoint``,
    ``workload_pool`` (from the cluster, so bindings wait for it), ``node_tag`` and
    ``kubernetes_provider``; :meth:`ref` bundles them, with the node pool workloads must wait for
    (it starts with no nodes), for the components that run in the cluster.

    Raises ``ValueError`` when the network has no subnet in ``args.region``.
    """

    cluster_name: pulumi.Output[str]
    cluster_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    workload_pool: pulumi.Output[str]
    node_tag: pulumi.Output[str]
    kubernetes_provider: k8s.Provider

    @takes_settings
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
            # Managed Service for Prometheus collects what PodMonitoring objects name (McpMeshMetrics);
            # on by default since GKE 1.27, set so a cluster where it was turned off gets it back
            # (https://cloud.google.com/stackdriver/docs/managed-prometheus/setup-managed).
            monitoring_config={"managed_prometheus": {"enabled": True}},
            gateway_api_config={"channel": "CHANNEL_STANDARD"},
            database_encryption={"state": "ENCRYPTED", "key_name": key.id} if key else {"state": "DECRYPTED"},
            binary_authorization={"evaluation_mode": "PROJECT_SINGLETON_POLICY_ENFORCE"} if args.binary_authorization else None,
            # Pod-to-pod traffic on one node goes through the VPC too, so flow logs see it.
            enable_intranode_visibility=True,
            # No client certificate: it never expires and cannot be revoked; callers use IAM.
            master_auth={"client_certificate_config": {"issue_client_certificate": False}},
            # Sync copies Secret Manager versions into Kubernetes Secrets (secretEnv); the add-on brings the
            # SecretProviderClass resource it reads.
            secret_sync_config={"enabled": True} if args.secret_sync else None,
            secret_manager_config={"enabled": True} if args.secret_sync else None,
            authenticator_groups_config={"security_group": args.rbac_security_group} if args.rbac_security_group else None,
            # The default pool cannot be configured as we need; replace it with ours.
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=args.deletion_protection,
            resource_labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection,
                                        depends_on=[key] if key else []),
        )
        self._node_pool = self._pool(name, cluster, nodes)
        self.cluster_name = cluster.name
        self.cluster_id = cluster.id
        self.endpoint = cluster.endpoint
        self.workload_pool = cluster.workload_identity_config.apply(lambda c: c.workload_pool if c else None)
        self.node_tag = pulumi.Output.from_input(names["cluster"].value)
        self.kubernetes_provider = k8s.Provider(name, kubeconfig=_kubeconfig(cluster), enable_server_side_apply=True,
                                                opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"cluster_name": self.cluster_name, "cluster_id": self.cluster_id,
                               "endpoint": self.endpoint, "workload_pool": self.workload_pool,
                               "node_tag": self.node_tag, "kubernetes_provider": self.kubernetes_provider})

    def ref(self) -> ClusterRef:
        """This cluster as the components that run in it take it."""
        return ClusterRef(self.cluster_id, self.workload_pool, self._names["cluster"].value,
                          self.kubernetes_provider, (self._node_pool,), secret_sync=self._args.secret_sync)

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
                "tags": [self._names["cluster"].value],  # the node tag (ClusterRef.node_tag)
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
