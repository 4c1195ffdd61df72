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
``{name}-mesh``; their physical names follow (``{prefix}-{name}-gateway``, ...). A program that
created the four parts itself, at the stack's root, moves them under the platform with ``adopt``:
each part keeps its name (so its physical names) and gets an alias to its old URN, so ``pulumi up``
replaces nothing (https://www.pulumi.com/docs/iac/operations/stack-management/refactoring-with-aliases/,
"Wrapping resources in a component").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Optional

import pulumi
from pydantic import Field, ValidationError, model_validator

from .access import AccessArgs
from .autoneg import AutonegController, AutonegControllerArgs
from .errors import written_path
from .gateway_backend import GatewayAccess, MeshGatewayBackend, MeshGatewayBackendArgs
from .gke_cluster import ClusterRef, GkeCluster, GkeClusterArgs
from .mesh import Mesh, MeshArgs, MeshRef
from .mesh_service import McpMeshServiceArgs, gateway_access
from .network import NetworkRef
from .security_policy import EdgeScopeArgs
from .settings import COMMON_FIELDS, Faults, Settings, StrInput, config_model, nested_validation, takes_settings

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

    def parts(self, name: Optional[str] = None, mesh_name: Optional[str] = None) -> dict[str, Settings]:
        """Each part's settings, with the common settings: ``cluster``, ``mesh``, ``gateway``, ``autoneg``.

        With the platform's ``name`` (and ``mesh_name``, the Mesh's own, ``{name}-mesh`` by default),
        the autoneg controller watches the gateway's namespace by default, and a list without it
        is refused. Raises ``pydantic.ValidationError`` with every part's faults under its key
        (``cluster.zones.1``).
        """
        faults = Faults("McpGkePlatformArgs")
        with nested_validation():  # each part's faults join this model's, under the part's key
            common = {n: getattr(self, n) for n in COMMON_FIELDS}
            mesh = _part(faults, "mesh", MeshArgs, {**self.mesh.model_dump(exclude_unset=True), **common})
            autoneg = self.autoneg.model_dump(exclude_unset=True)
            if name is not None and mesh is not None:
                gateway_namespace = mesh.names(mesh_name or f"{name}-mesh")["gateway_namespace"].value
                autoneg.setdefault("watch_namespaces", [gateway_namespace])
                if gateway_namespace not in autoneg["watch_namespaces"]:
                    faults.add(("autoneg", "watchNamespaces"), f"leaves out the gateway's namespace "
                               f"{gateway_namespace!r}: its NEGs would never be attached")
            drain = mesh.drain_seconds if mesh is not None else MeshArgs.model_fields["drain_seconds"].default
            parts = {
                "cluster": _part(faults, "cluster", GkeClusterArgs, {**self.cluster.model_dump(exclude_unset=True), **common}),
                "mesh": mesh,
                "gateway": _part(faults, "gateway", MeshGatewayBackendArgs,
                                 {**self.gateway.model_dump(exclude_unset=True), **common, "drain_seconds": drain}),
                "autoneg": _part(faults, "autoneg", AutonegControllerArgs, {**autoneg, **common}),
            }
        faults.raise_if_any()
        return parts


def _part(faults: Faults, key: str, model: type[Settings], values: dict) -> Optional[Settings]:
    """``model(**values)``, or None with each fault recorded under ``key``."""
    try:
        return model(**values)
    except ValidationError as error:
        for item in error.errors():
            faults.add((key, *written_path(model, item["loc"])), item["msg"].removeprefix("Value error, "))
        return None


Part = Literal["cluster", "autoneg", "gateway", "mesh"]
"""The four parts of :class:`McpGkePlatform`, as ``adopt`` names them."""


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

    ``adopt`` (part -> name, e.g. ``{"cluster": "gke", "autoneg": "autoneg", "gateway": "gateway",
    "mesh": "mesh"}``): parts your program created before at the stack's root, under those names.
    Each adopted part keeps its name and gets ``pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)``;
    its children inherit the alias, so every URN the stack holds still matches and ``pulumi up``
    moves the resources under the platform without replacing or deleting any (Pulumi's
    "Refactoring with aliases", above). ``infra/`` adopts its former top-level ``gke``,
    ``autoneg``, ``gateway`` and ``mesh``.

    Raises :class:`~mcp_affinity.errors.SettingsError` when the network has no subnet in the
    cluster's region, when ``autoneg.watch_namespaces`` leaves out the gateway's namespace, when
    ``mesh_services`` mix IAP settings (:func:`~mcp_affinity.mesh_service.gateway_access`) or come
    with ``iap`` or ``edge_scopes``.
    """

    cluster_name: pulumi.Output[str]
    workload_pool: pulumi.Output[str]
    backend_service_id: pulumi.Output[str]
    gateway: pulumi.Output[str]

    @takes_settings
    def __init__(self, name: str, args: McpGkePlatformArgs, *, network: NetworkRef,
                 mesh_services: Optional[Mapping[str, McpMeshServiceArgs]] = None,
                 iap: Optional[AccessArgs] = None, edge_scopes: Optional[Mapping[str, EdgeScopeArgs]] = None,
                 adopt: Optional[Mapping[Part, str]] = None, opts: Optional[pulumi.ResourceOptions] = None):
        if mesh_services is not None:
            if iap is not None or edge_scopes is not None:
                raise ValueError("give mesh_services, or iap and edge_scopes, not both: the gateway takes them "
                                 "from the mesh services")
            access = gateway_access(mesh_services)
            iap, edge_scopes = access["iap"], access["edge_scopes"]
        names = part_names(name, adopt)
        parts = args.parts(name, names["mesh"])
        super().__init__("mcp-affinity:index:McpGkePlatform", name, None, opts)

        def child(part: str) -> pulumi.ResourceOptions:
            moved = [pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)] if adopt and part in adopt else None
            return pulumi.ResourceOptions(parent=self, aliases=moved)

        gke = GkeCluster(names["cluster"], parts["cluster"], network=network, opts=child("cluster"))
        cluster = gke.ref()
        autoneg = AutonegController(names["autoneg"], parts["autoneg"], cluster=cluster, opts=child("autoneg"))
        gateway = MeshGatewayBackend(names["gateway"], parts["gateway"], network=network, cluster=cluster,
                                     iap=iap, edge_scopes=edge_scopes, opts=child("gateway"))
        mesh = Mesh(names["mesh"], parts["mesh"], cluster=cluster, gateway_backend=gateway.ref(),
                    autoneg=autoneg.ref(), opts=child("mesh"))
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


def part_names(name: str, adopt: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The names of the platform's children: ``{name}``, ``{name}-autoneg``, ``{name}-gateway`` and
    ``{name}-mesh``, or the name ``adopt`` gives a part; ``ValueError`` for an unknown part."""
    names = {"cluster": name, "autoneg": f"{name}-autoneg", "gateway": f"{name}-gateway", "mesh": f"{name}-mesh"}
    unknown = sorted(set(adopt or {}) - set(names))
    if unknown:
        raise ValueError(f"adopt: unknown part {', '.join(unknown)}; parts: {', '.join(names)}")
    return {**names, **(adopt or {})}
