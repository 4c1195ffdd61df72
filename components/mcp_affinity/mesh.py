"""Mesh: a service mesh that can hash on the MCP session header, and its ingress gateway.

Istio hashes on a header with a DestinationRule's
``trafficPolicy.loadBalancer.consistentHash.httpHeaderName``, in sidecar mode and at its ingress
gateway (https://istio.io/latest/docs/reference/config/networking/destination-rule/). In ambient
mode ztunnel is L4 only; only a waypoint proxy applies it (https://ambientmesh.io/docs/traffic/).
Linkerd has no header-based consistent hashing (linkerd/linkerd2#4956, #11043), so it is refused.

Two ways in: ``istio`` installs pinned Helm charts (base, istiod, gateway); ``cloud-service-mesh``
enables Google's managed mesh through the fleet API and installs only the gateway chart.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import Field, field_validator

from ._args import Args, Prefix, Region, StrInput

ISTIO_CHARTS = "https://istio-release.storage.googleapis.com/charts"
ISTIO_VERSION = "1.28.1"
GATEWAY_NAMESPACE = "istio-ingress"
GATEWAY_NAME = "mcp-gateway"

REFUSED_MESHES = {
    "linkerd": "Linkerd cannot hash on a request header (\"Linkerd doesn't support session stickiness "
               "today\", https://github.com/linkerd/linkerd2/issues/4956); choose istio or cloud-service-mesh",
    "gke-gateway": "GKE Gateway's GCPBackendPolicy lists HEADER_FIELD but has no field for the header name; "
                   "choose istio or cloud-service-mesh",
}


def check_mesh_kind(value: str) -> str:
    """Return ``value`` if the mesh can hash on a header; raise ``ValueError`` saying why not."""
    if value in REFUSED_MESHES:
        raise ValueError(f"mesh '{value}' is refused: {REFUSED_MESHES[value]}")
    if value not in ("istio", "cloud-service-mesh"):
        raise ValueError(f"unknown mesh {value!r}; allowed: istio, cloud-service-mesh")
    return value


class MeshArgs(Args):
    """Arguments of :class:`Mesh`.

    - ``kind``: ``istio`` (Helm charts pinned to ``version``) or ``cloud-service-mesh`` (fleet
      API, managed control plane); ``linkerd`` and ``gke-gateway`` are refused with the reason.
    - ``data_plane``: ``sidecar`` or ``ambient``; ambient needs ``waypoint=True`` because only a
      waypoint applies header hashing.
    - ``provider``: the cluster's ``pulumi_kubernetes.Provider`` (``GkeCluster.provider``); ``cluster_id`` its
      ``projects/P/locations/L/clusters/C`` id (for the fleet membership).
    - ``gateway_replicas``: minimum ingress gateway pods (spread over zones by the chart's HPA).
    - ``gateway_neg``: also expose the gateway as standalone zonal NEGs named
      ``PREFIX-gateway`` (for :class:`GlobalHttpsLoadBalancer` in front).
    """

    prefix: Prefix
    project: str
    region: Region
    cluster_id: StrInput
    provider: Any
    kind: str = "istio"
    version: str = Field(default=ISTIO_VERSION, pattern=r"^\d+\.\d+\.\d+$")
    data_plane: Literal["sidecar", "ambient"] = "sidecar"
    waypoint: bool = False
    gateway_replicas: int = Field(default=2, ge=1, le=100)
    gateway_neg: bool = False

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return check_mesh_kind(value)

    def model_post_init(self, _context: object) -> None:
        if self.data_plane == "ambient" and not self.waypoint:
            raise ValueError(
                "data_plane 'ambient' without a waypoint cannot hash on a header: ztunnel is L4 only "
                "(https://ambientmesh.io/docs/traffic/); set waypoint=True or use data_plane 'sidecar'")
        if self.data_plane == "ambient" and self.kind != "istio":
            raise ValueError("data_plane 'ambient' is offered with kind 'istio' only")


class MeshRef(Args):
    """What a workload needs from the mesh: the Istio Gateway (``NAMESPACE/NAME``) it binds to,
    the data plane (``sidecar`` or ``ambient``) and the resources to wait for."""

    gateway: str
    data_plane: Literal["sidecar", "ambient"]
    ready: list[Any] = Field(default_factory=list)


class Mesh(pulumi.ComponentResource):
    """The mesh control plane and an ingress gateway on a static regional address.

    Outputs: ``gateway_address`` (static IP), ``gateway`` (``istio-ingress/mcp-gateway``, the Istio
    Gateway that services bind to), ``gateway_neg_name`` (or None), ``data_plane``, and
    ``ready`` (resources that workloads depend on).
    """

    gateway_address: pulumi.Output[str]

    def __init__(self, name: str, args: MeshArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:Mesh", name, None, opts)
        self._args = args
        self.data_plane = args.data_plane
        self.gateway = f"{GATEWAY_NAMESPACE}/{GATEWAY_NAME}"
        self.gateway_neg_name = f"{args.prefix}-gateway" if args.gateway_neg else None
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        control = self._istio(name, k8s_opts) if args.kind == "istio" else self._managed(name)
        address = gcp.compute.Address(
            f"{name}-gateway", name=f"{args.prefix}-gateway", project=args.project, region=args.region,
            address_type="EXTERNAL", network_tier="PREMIUM", opts=pulumi.ResourceOptions(parent=self),
        )
        gateway = self._gateway(name, address, control, k8s_opts)
        self.ready = [*control, gateway]
        self.gateway_address = address.address
        self.register_outputs({"gateway_address": self.gateway_address, "gateway": self.gateway})

    def ref(self) -> MeshRef:
        """This mesh as :class:`McpMeshService` takes it."""
        return MeshRef(gateway=self.gateway, data_plane=self.data_plane, ready=self.ready)

    def _chart(self, name: str, chart: str, namespace: str, values: dict, opts, depends=()) -> k8s.helm.v3.Release:
        return k8s.helm.v3.Release(
            f"{name}-{chart}",
            name=chart if chart != "gateway" else GATEWAY_NAME,
            chart=chart,
            version=self._args.version,
            repository_opts={"repo": ISTIO_CHARTS},
            namespace=namespace,
            create_namespace=True,
            atomic=True,
            values=values,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(depends))),
        )

    def _istio(self, name: str, opts) -> list[pulumi.Resource]:
        ambient = self._args.data_plane == "ambient"
        profile = {"profile": "ambient"} if ambient else {}
        base = self._chart(name, "base", "istio-system", {}, opts)
        istiod = self._chart(name, "istiod", "istio-system", {**profile, "pilot": {"autoscaleMin": 2}}, opts, [base])
        if not ambient:
            return [base, istiod]
        cni = self._chart(name, "cni", "istio-system", profile, opts, [istiod])
        ztunnel = self._chart(name, "ztunnel", "istio-system", {}, opts, [cni])
        return [base, istiod, cni, ztunnel]

    def _managed(self, name: str) -> list[pulumi.Resource]:
        """Cloud Service Mesh through the fleet API (https://cloud.google.com/service-mesh/docs)."""
        args, child = self._args, pulumi.ResourceOptions(parent=self)
        membership = gcp.gkehub.Membership(
            f"{name}-membership", membership_id=f"{args.prefix}-gke", project=args.project, location="global",
            endpoint={"gke_cluster": {"resource_link": pulumi.Output.concat("//container.googleapis.com/", args.cluster_id)}},
            opts=child,
        )
        feature = gcp.gkehub.Feature(f"{name}-servicemesh", name="servicemesh", project=args.project,
                                     location="global", opts=child)
        binding = gcp.gkehub.FeatureMembership(
            f"{name}-servicemesh", project=args.project, location="global", feature=feature.name,
            membership=membership.membership_id, mesh={"management": "MANAGEMENT_AUTOMATIC"}, opts=child,
        )
        return [membership, feature, binding]

    def _gateway(self, name, address, control, opts) -> pulumi.Resource:
        annotations = {}
        if self.gateway_neg_name:
            annotations["cloud.google.com/neg"] = (
                '{"exposed_ports": {"80": {"name": "%s"}}}' % self.gateway_neg_name)
        release = self._chart(name, "gateway", GATEWAY_NAMESPACE, {
            "service": {"type": "LoadBalancer", "loadBalancerIP": address.address, "annotations": annotations},
            "autoscaling": {"minReplicas": self._args.gateway_replicas},
            # A draining gateway keeps open SSE streams going for up to an hour.
            "terminationGracePeriodSeconds": 3600,
        }, opts, control)
        return k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="networking.istio.io/v1",
            kind="Gateway",
            metadata={"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
            spec={
                "selector": {"istio": GATEWAY_NAME.removeprefix("istio-")},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[release])),
        )
