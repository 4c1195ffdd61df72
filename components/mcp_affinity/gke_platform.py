"""McpGkePlatform: a GKE cluster ready for MCP mesh services, wired in the order GKE needs.

One component for what a GKE stack needs before its first :class:`~mcp_affinity.McpMeshService`:
the cluster (:class:`~mcp_affinity.GkeCluster`), the gke-autoneg-controller
(:class:`~mcp_affinity.AutonegController`), the load balancer's backend service for the mesh's
gateway (:class:`~mcp_affinity.MeshGatewayBackend`) and the mesh with its ingress gateway
(:class:`~mcp_affinity.Mesh`). The order is fixed by platform facts, not taste:

- GKE creates a Service's standalone NEGs only once the Service exists, so a backend service made
  by Pulumi cannot name them; the autoneg controller attaches them as they appear, and the gateway
  Service (which carries its finalizer) waits for the controller and the backend service
  (https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg;
  https://github.com/GoogleCloudPlatform/gke-autoneg-controller).
- Workload Identity's pool ``PROJECT.svc.id.goog`` exists only once the cluster does: every
  binding takes it from the cluster's output
  (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
- Everything in the cluster waits for the node pool, which starts with no nodes.

The children are named ``{name}`` (the cluster), ``{name}-autoneg``, ``{name}-gateway`` and
``{name}-mesh``; their physical names follow (``{prefix}-{name}-gateway``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
from pydantic import Field, model_validator

from .access import AccessArgs
from .autoneg import AutonegController, AutonegControllerArgs
from .gateway_backend import GatewayAccess, MeshGatewayBackend, MeshGatewayBackendArgs
from .gke_cluster import ClusterRef, GkeCluster, GkeClusterArgs
from .mesh import Mesh, MeshArgs, MeshRef
from .mesh_service import McpMeshServiceArgs, gateway_access
from .network import NetworkRef
from .security_policy import EdgeScopeArgs
from .settings import COMMON_FIELDS, Settings, StrInput, config_model

ClusterSettings = config_model(GkeClusterArgs, name="GkeClusterSettings")
MeshSettings = config_model(MeshArgs, name="MeshSettings")
GatewaySettings = config_model(MeshGatewayBackendArgs, exclude=COMMON_FIELDS | {"drain_seconds"},
                               name="MeshGatewayBackendSettings")
AutonegSettings = config_model(AutonegControllerArgs, name="AutonegControllerSettings")


class McpGkePlatformArgs(Settings):
    """Settings of :class:`McpGkePlatform`: the common settings once, then each part's own.

    - ``cluster``: :class:`~mcp_affinity.GkeClusterArgs` without the common settings (``region``
      and ``zones`` are required).
    - ``mesh``: :class:`~mcp_affinity.MeshArgs` (default: Istio, sidecars).
    - ``gateway``: :class:`~mcp_affinity.MeshGatewayBackendArgs`; its connection draining is the
      mesh's ``drain_seconds``, so a draining gateway and the load balancer let streams end together.
    - ``autoneg``: :class:`~mcp_affinity.AutonegControllerArgs`. Its ``watch_namespaces`` defaults
      to the gateway's namespace, the only one with a Service it must act on (anyone who may
      annotate a watched Service may attach NEGs to any backend service of the project,
      gke-autoneg-controller README.md, "Security considerations"); a list without it is refused,
      as the gateway's NEGs would never be attached.

    Each part's own rules run when these settings are made (``pydantic.ValidationError``).
    """

    cluster: ClusterSettings
    mesh: MeshSettings = Field(default_factory=MeshSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    autoneg: AutonegSettings = Field(default_factory=AutonegSettings)

    @model_validator(mode="after")
    def _parts(self) -> "McpGkePlatformArgs":
        self.parts()  # each part's own rules, before any resource exists
        return self

    def parts(self, name: Optional[str] = None) -> dict[str, Settings]:
        """Each part's settings, with the common settings: ``cluster``, ``mesh``, ``gateway``, ``autoneg``.

        With the platform's ``name``, the autoneg controller watches the gateway's namespace by
        default; raises ``ValueError`` when ``autoneg.watch_namespaces`` leaves it out.
        """
        common = {n: getattr(self, n) for n in COMMON_FIELDS}
        mesh = MeshArgs(**self.mesh.model_dump(exclude_unset=True), **common)
        autoneg = self.autoneg.model_dump(exclude_unset=True)
        if name is not None:
            gateway_namespace = mesh.names(f"{name}-mesh")["gateway_namespace"].value
            autoneg.setdefault("watch_namespaces", [gateway_namespace])
            if gateway_namespace not in autoneg["watch_namespaces"]:
                raise ValueError(f"autoneg.watch_namespaces leaves out the gateway's namespace "
                                 f"{gateway_namespace!r}: its NEGs would never be attached")
        return {
            "cluster": GkeClusterArgs(**self.cluster.model_dump(exclude_unset=True), **common),
            "mesh": mesh,
            "gateway": MeshGatewayBackendArgs(**self.gateway.model_dump(exclude_unset=True), **common,
                                              drain_seconds=mesh.drain_seconds),
            "autoneg": AutonegControllerArgs(**autoneg, **common),
        }


@dataclass(frozen=True)
class McpGkePlatformRef:
    """What mesh services and the load balancer take from the platform: ``cluster``
    (:class:`~mcp_affinity.gke_cluster.ClusterRef`), ``mesh`` (:class:`~mcp_affinity.mesh.MeshRef`),
    ``backend_service_id`` (the gateway's backend service, a load-balancer backend) and
    ``gateway_access`` (what that backend service enforces: IAP and its members, the Cloud Armor
    rules; :class:`~mcp_affinity.gateway_backend.GatewayAccess`)."""

    cluster: ClusterRef
    mesh: MeshRef
    backend_service_id: StrInput
    gateway_access: Optional[GatewayAccess] = None


class McpGkePlatform(pulumi.ComponentResource):
    """A GKE cluster, its autoneg controller, the gateway's backend service and the mesh.

    Context: ``network`` (:class:`~mcp_affinity.network.NetworkRef`; a subnet in the cluster's
    region with the secondary ranges it names); ``mesh_services`` (name -> the settings of each
    :class:`~mcp_affinity.McpMeshService` it will serve), from which the gateway's backend service
    takes IAP (when they are ``iap``) and each one's Cloud Armor rules scoped to its hosts; or the
    same given as ``iap`` and ``edge_scopes`` (:class:`~mcp_affinity.MeshGatewayBackend`). Without
    either the backend service gets the default policy, and a mesh service refuses a gateway that
    does not carry its ``access`` and ``edge``. Providers: a Google Cloud or Kubernetes provider
    in ``opts.providers`` reaches every child (Pulumi passes a component's providers on); without
    a Kubernetes provider the cluster's own is used.

    Outputs: ``cluster_name``, ``workload_pool``, ``backend_service_id`` and ``gateway``
    (``NAMESPACE/NAME`` of the Istio Gateway); :meth:`ref` bundles what mesh services take.

    Raises ``ValueError`` when the network has no subnet in the cluster's region, when
    ``autoneg.watch_namespaces`` leaves out the gateway's namespace, when ``mesh_services`` mix
    IAP settings (:func:`~mcp_affinity.mesh_service.gateway_access`) or come with ``iap`` or
    ``edge_scopes``.
    """

    cluster_name: pulumi.Output[str]
    workload_pool: pulumi.Output[str]
    backend_service_id: pulumi.Output[str]
    gateway: pulumi.Output[str]

    def __init__(self, name: str, args: McpGkePlatformArgs, *, network: NetworkRef,
                 mesh_services: Optional[Mapping[str, McpMeshServiceArgs]] = None,
                 iap: Optional[AccessArgs] = None, edge_scopes: Optional[Mapping[str, EdgeScopeArgs]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        if mesh_services is not None:
            if iap is not None or edge_scopes is not None:
                raise ValueError("give mesh_services, or iap and edge_scopes, not both: the gateway takes them "
                                 "from the mesh services")
            access = gateway_access(mesh_services)
            iap, edge_scopes = access["iap"], access["edge_scopes"]
        parts = args.parts(name)
        super().__init__("mcp-affinity:index:McpGkePlatform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gke = GkeCluster(name, parts["cluster"], network=network, opts=child)
        cluster = gke.ref()
        autoneg = AutonegController(f"{name}-autoneg", parts["autoneg"], cluster=cluster, opts=child)
        gateway = MeshGatewayBackend(f"{name}-gateway", parts["gateway"], network=network, cluster=cluster,
                                     iap=iap, edge_scopes=edge_scopes, opts=child)
        mesh = Mesh(f"{name}-mesh", parts["mesh"], cluster=cluster, gateway_backend=gateway.ref(),
                    autoneg=autoneg.ref(), opts=child)
        mesh_ref = mesh.ref()
        self._ref = McpGkePlatformRef(cluster, mesh_ref, gateway.backend_service_id, mesh_ref.gateway_access)
        self.cluster_name = gke.cluster_name
        self.workload_pool = gke.workload_pool
        self.backend_service_id = gateway.backend_service_id
        self.gateway = mesh.gateway
        self.register_outputs({"cluster_name": self.cluster_name, "workload_pool": self.workload_pool,
                               "backend_service_id": self.backend_service_id, "gateway": self.gateway})

    def ref(self) -> McpGkePlatformRef:
        """The platform as mesh services and the load balancer take it."""
        return self._ref
