"""Mesh: a service mesh that can hash on a request header, and its ingress gateway.

Istio hashes on a header with a DestinationRule's
``trafficPolicy.loadBalancer.consistentHash.httpHeaderName``, in sidecar mode and at its ingress
gateway (https://istio.io/latest/docs/reference/config/networking/destination-rule/). In ambient
mode ztunnel is L4 only; only a waypoint proxy applies it (https://ambientmesh.io/docs/traffic/).
Linkerd has no header-based consistent hashing (linkerd/linkerd2#4956, #11043), so it is refused.

Two ways in: ``istio`` installs pinned Helm charts (base, istiod, gateway); ``cloud-service-mesh``
enables Google's managed mesh through the fleet API and installs only the gateway chart. The
gateway is a ClusterIP Service exposed as standalone zonal NEGs that the gke-autoneg-controller
attaches to the load balancer's backend service: nothing reaches it but Google's front ends.
A NetworkPolicy holds that inside the cluster too: the gateway's pods admit Google's front ends
and health checkers (35.191.0.0/16, 130.211.0.0/22,
https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges) on the serving
and status ports only; the kubelet's probes come from the node, which NetworkPolicy always admits
(https://kubernetes.io/docs/concepts/services-networking/network-policies/), and nothing in the
mesh calls the gateway. When the backend service has IAP, the gateway verifies IAP's signed
header ``x-goog-iap-jwt-assertion`` (issuer ``https://cloud.google.com/iap``, Google's keys, the
backend service's audience) and refuses a request without a valid one (403), so a request that
reached the gateway past the load balancer carries no identity
(https://cloud.google.com/iap/docs/signed-headers-howto). IAP signs with ES256, which Envoy's JWT
filter supports (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter).

Facts checked in istio/istio at tag ``ISTIO_VERSION`` (``manifests/charts``): istiod reads its
values at the top level since 1.24 (``autoscaleMin``, ``env``); a proxy drains
``terminationDrainDuration`` (default 5 s, ``pkg/config/mesh/mesh.go``) after shutdown starts,
set per pod with the ``proxy.istio.io/config`` annotation; the gateway chart labels its pods
``istio: <release name without "istio-">``.

Names: the gateway's namespace and release are ``{prefix}-{name}-gateway``. The control plane
keeps Istio's own names (namespace ``istio-system``, releases ``base``, ``istiod``, ``cni``,
``ztunnel``): its CRDs, webhooks and cluster roles exist once per cluster whatever the release is
called, so one mesh per cluster is the rule; and the ``base`` chart installs the CRDs as templates
of its release (``manifests/charts/base/templates/crds.yaml``), which a renamed release could not
take over: Helm refuses a resource whose ``meta.helm.sh/release-name`` names another release
(helm/helm ``pkg/action/validate.go``, "invalid ownership metadata").
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated, Literal, Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import BeforeValidator, Field, model_validator

from .autoneg import AutonegControllerRef
from .gateway_backend import GATEWAY_PORT, GOOGLE_LB_RANGES, STATUS_PORT, GatewayAccess, MeshGatewayBackendRef
from .gke_cluster import ClusterRef, kubernetes_options
from .naming import HELM_RELEASE, KUBERNETES, RFC1035, PhysicalName, physical_name
from .settings import Bool, Faults, Int, Settings, takes_settings
from .wire import GKE_HUB_MEMBERSHIP, HELM_V3_RELEASE, NAMESPACE

ISTIO_VERSION = "1.30.3"
"""The Istio release whose charts are installed: the latest patch of the newest supported minor
(August 2026: 1.28.10, 1.29.6, 1.30.3). Changed here only."""

ISTIO_CHARTS = "https://istio-release.storage.googleapis.com/charts"
CONTROL_PLANE_NAMESPACE = "istio-system"

IAP_ISSUER = "https://cloud.google.com/iap"
IAP_JWKS = "https://www.gstatic.com/iap/verify/public_key-jwk"
IAP_HEADER = "x-goog-iap-jwt-assertion"
"""IAP's signed header: issuer, keys (JWK) and header (https://cloud.google.com/iap/docs/signed-headers-howto)."""

REFUSED_MESHES = {
    "linkerd": "Linkerd cannot hash on a request header (\"Linkerd doesn't support session stickiness "
               "today\", https://github.com/linkerd/linkerd2/issues/4956); choose istio or cloud-service-mesh",
    "gke-gateway": "GKE Gateway's GCPBackendPolicy lists HEADER_FIELD but has no field for the header name; "
                   "choose istio or cloud-service-mesh",
}


def _refuse_mesh(value: object) -> object:
    if isinstance(value, str) and value in REFUSED_MESHES:
        raise ValueError(f"mesh '{value}' is refused: {REFUSED_MESHES[value]}")
    return value


MeshKind = Annotated[Literal["istio", "cloud-service-mesh"], BeforeValidator(_refuse_mesh)]
"""A mesh that can hash on a request header; the meshes of :data:`REFUSED_MESHES` are refused with the reason."""


class MeshArgs(Settings):
    """Settings of :class:`Mesh`."""

    kind: MeshKind = Field(
        default="istio",
        description="`istio` (Helm charts) or `cloud-service-mesh` (fleet API, managed control plane); `linkerd` and"
                    " `gke-gateway` are refused with the reason.")
    version: str = Field(
        default=ISTIO_VERSION, pattern=r"^1\.\d+\.\d+$",
        description="the Istio charts' version (default: the pinned, checked one).")
    data_plane: Literal["sidecar", "ambient"] = Field(
        default="sidecar",
        description="sidecar proxies, or ambient mode (with `waypoint`).")
    waypoint: Bool = Field(
        default=False,
        description="a waypoint proxy per namespace; ambient needs it, because only a waypoint applies layer-7 "
                    "routing such as header hashing.")
    gateway_replicas: Int = Field(
        default=2, ge=1, le=100,
        description="minimum ingress gateway pods (the chart's HPA).")
    drain_seconds: Int = Field(
        default=3600, ge=5, le=3600,
        description="how long a stopping gateway pod keeps serving open streams (5 to 3600 s): its grace period and "
                    "its proxy's `terminationDrainDuration`.")
    persistent_session_filter: Bool = Field(
        default=False,
        description="turn on istiod's `PILOT_ENABLE_PERSISTENT_SESSION_FILTER` (experimental) so Services labelled "
                    "`istio.io/persistent-session` pin clients by cookie.")
    fleet_feature: Bool = Field(
        default=True,
        description="with `cloud-service-mesh`, create the project's `servicemesh` fleet feature (one per project: a"
                    " second mesh in the same project sets this false).")

    @model_validator(mode="after")
    def _data_plane(self) -> "MeshArgs":
        faults = Faults("MeshArgs")
        if self.data_plane == "ambient" and not self.waypoint:
            faults.add("waypoint",
                       "dataPlane 'ambient' without a waypoint cannot hash on a header: ztunnel is L4 only "
                       "(https://ambientmesh.io/docs/traffic/); set waypoint: true or use dataPlane 'sidecar'")
        if self.data_plane == "ambient" and self.kind != "istio":
            faults.add("dataPlane", "dataPlane 'ambient' is offered with kind 'istio' only")
        if self.persistent_session_filter and self.kind != "istio":
            faults.add("persistentSessionFilter", "persistentSessionFilter needs kind 'istio' (an istiod setting)")
        faults.raise_if_any()
        return self

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names: the gateway's namespace and Helm release (``{prefix}-{name}-gateway``)
        and, for Cloud Service Mesh, the fleet membership."""
        names = {"gateway_namespace": physical_name(KUBERNETES, NAMESPACE, self.prefix, name, "gateway"),
                 "gateway": physical_name(HELM_RELEASE, HELM_V3_RELEASE, self.prefix, name, "gateway")}
        if self.kind == "cloud-service-mesh":
            names["membership"] = physical_name(RFC1035, GKE_HUB_MEMBERSHIP, self.prefix, name)
        return names


@dataclass(frozen=True)
class MeshRef:
    """What a mesh service takes from the mesh.

    - ``gateway``: the Istio Gateway services bind to, ``NAMESPACE/NAME``.
    - ``gateway_namespace``: its namespace (NetworkPolicies admit it).
    - ``gateway_principal``: the gateway's mTLS identity, ``cluster.local/ns/NAMESPACE/sa/NAME``.
    - ``data_plane``: ``sidecar`` or ``ambient`` (decides a namespace's labels and a waypoint).
    - ``persistent_session_filter``: istiod pins by cookie (``pinning: cookie`` needs it).
    - ``ready``: what workloads wait for: the control plane and the gateway.
    - ``gateway_access``: what the gateway's backend service enforces
      (:class:`~mcp_affinity.gateway_backend.GatewayAccess`); None when the mesh has no backend
      service made by the package (mesh services then refuse ``iap`` and their own ``edge``).
    """

    gateway: str
    gateway_namespace: str
    gateway_principal: str
    data_plane: str = "sidecar"
    persistent_session_filter: bool = False
    ready: Sequence[pulumi.Resource] = ()
    gateway_access: Optional[GatewayAccess] = None


class Mesh(pulumi.ComponentResource):
    """The mesh control plane and an ingress gateway reachable only through standalone NEGs.

    Context: ``cluster`` (:class:`~mcp_affinity.gke_cluster.ClusterRef`: its Kubernetes provider,
    unless ``opts.providers`` names another, and its node pool, which every chart waits for);
    ``gateway_backend`` (:class:`~mcp_affinity.gateway_backend.MeshGatewayBackendRef`: the gateway
    Service's annotations expose it as NEGs that the autoneg controller attaches to that backend
    service) and with it ``autoneg`` (:class:`~mcp_affinity.autoneg.AutonegControllerRef`: the
    gateway waits for the controller, whose finalizer must outlive the Service).

    Outputs: ``gateway`` (``NAMESPACE/NAME``, the Istio Gateway services bind to),
    ``gateway_namespace``, ``gateway_principal`` (the gateway's mTLS identity) and ``data_plane``;
    :meth:`ref` bundles them with the resources workloads wait for.

    Raises ``ValueError`` for a gateway backend without the autoneg controller, or no Kubernetes provider.
    """

    gateway: pulumi.Output[str]
    gateway_namespace: pulumi.Output[str]
    gateway_principal: pulumi.Output[str]
    data_plane: pulumi.Output[str]

    @takes_settings
    def __init__(self, name: str, args: MeshArgs, *, cluster: ClusterRef,
                 gateway_backend: Optional[MeshGatewayBackendRef] = None,
                 autoneg: Optional[AutonegControllerRef] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        if gateway_backend is not None and autoneg is None:
            raise ValueError("a gateway with a backend service needs the autoneg controller (autoneg=...): it "
                             "attaches the gateway's NEGs, and the gateway Service must wait for it")
        names = args.names(name)
        super().__init__("mcp-affinity:index:Mesh", name, None, kubernetes_options(opts, cluster))
        self._args, self._names, self._cluster = args, names, cluster
        namespace, release = names["gateway_namespace"].value, names["gateway"].value
        access = gateway_backend.access if gateway_backend else None
        self._ref = MeshRef(f"{namespace}/{release}", namespace, f"cluster.local/ns/{namespace}/sa/{release}",
                            args.data_plane, args.persistent_session_filter, gateway_access=access)
        k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=list(cluster.ready))
        control = self._istio(name, k8s_opts) if args.kind == "istio" else self._managed(name)
        annotations = dict(gateway_backend.annotations) if gateway_backend else {}
        waits = [*(gateway_backend.ready if gateway_backend else ()), *(autoneg.ready if autoneg else ())]
        gateway = self._gateway(name, annotations, [*control, *waits], k8s_opts)
        self._ready = (*control, gateway, *self._gateway_guards(name, access, gateway, k8s_opts))
        self.gateway, self.gateway_namespace, self.gateway_principal, self.data_plane = (
            pulumi.Output.from_input(v) for v in (self._ref.gateway, namespace, self._ref.gateway_principal,
                                                  args.data_plane))
        self.register_outputs({"gateway": self.gateway, "gateway_namespace": self.gateway_namespace,
                               "gateway_principal": self.gateway_principal, "data_plane": self.data_plane})

    def ref(self) -> MeshRef:
        """This mesh as mesh services take it."""
        return dataclasses.replace(self._ref, ready=self._ready)

    def _chart(self, name: str, chart: str, namespace: str, values: dict, opts, depends=()) -> k8s.helm.v3.Release:
        return k8s.helm.v3.Release(
            f"{name}-{chart}",
            name=chart if chart != "gateway" else self._names["gateway"].value,
            chart=chart,
            version=self._args.version,
            repository_opts={"repo": ISTIO_CHARTS},
            namespace=namespace,
            create_namespace=True,
            atomic=True,
            values=values,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(depends))),
        )

    def istiod_values(self) -> dict:
        """istiod chart values: top-level keys, as the chart reads them since 1.24."""
        args = self._args
        values: dict = {"autoscaleMin": 2}
        if args.data_plane == "ambient":
            values["profile"] = "ambient"
        if args.persistent_session_filter:
            values["env"] = {"PILOT_ENABLE_PERSISTENT_SESSION_FILTER": "true"}
        return values

    def _istio(self, name: str, opts) -> list[pulumi.Resource]:
        ambient = self._args.data_plane == "ambient"
        base = self._chart(name, "base", CONTROL_PLANE_NAMESPACE, {}, opts)
        istiod = self._chart(name, "istiod", CONTROL_PLANE_NAMESPACE, self.istiod_values(), opts, [base])
        if not ambient:
            return [base, istiod]
        cni = self._chart(name, "cni", CONTROL_PLANE_NAMESPACE, {"profile": "ambient"}, opts, [istiod])
        ztunnel = self._chart(name, "ztunnel", CONTROL_PLANE_NAMESPACE, {}, opts, [cni])
        return [base, istiod, cni, ztunnel]

    def _managed(self, name: str) -> list[pulumi.Resource]:
        """Cloud Service Mesh through the fleet API (https://cloud.google.com/service-mesh/docs)."""
        args, child = self._args, pulumi.ResourceOptions(parent=self)
        membership = gcp.gkehub.Membership(
            f"{name}-membership", membership_id=self._names["membership"].value, project=args.project, location="global",
            endpoint={"gke_cluster": {"resource_link": pulumi.Output.concat("//container.googleapis.com/",
                                                                            self._cluster.cluster_id)}},
            opts=child,
        )
        feature = (gcp.gkehub.Feature(f"{name}-servicemesh", name="servicemesh", project=args.project,
                                      location="global", opts=child).name if args.fleet_feature else "servicemesh")
        binding = gcp.gkehub.FeatureMembership(
            f"{name}-servicemesh", project=args.project, location="global", feature=feature,
            membership=membership.membership_id, mesh={"management": "MANAGEMENT_AUTOMATIC"}, opts=child,
        )
        return [membership, binding]

    def gateway_values(self, annotations: Mapping[str, pulumi.Input[str]]) -> dict:
        """Gateway chart values: a ClusterIP Service (annotated as NEGs), a drain as long as streams."""
        drain = self._args.drain_seconds
        return {
            "service": {"type": "ClusterIP", "annotations": dict(annotations)},
            "autoscaling": {"minReplicas": self._args.gateway_replicas},
            "podAnnotations": {"proxy.istio.io/config": json.dumps({"terminationDrainDuration": f"{drain}s"})},
            "terminationGracePeriodSeconds": drain,
        }

    def _gateway(self, name, annotations, depends, opts) -> pulumi.Resource:
        namespace, release_name = self._names["gateway_namespace"].value, self._names["gateway"].value
        release = self._chart(name, "gateway", namespace, self.gateway_values(annotations), opts, depends)
        return k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="networking.istio.io/v1",
            kind="Gateway",
            metadata={"name": release_name, "namespace": namespace},
            spec={
                "selector": {"istio": release_name.removeprefix("istio-")},
                # Plain HTTP is safe here: the Service is ClusterIP, reached only by Google's front ends
                # through NEGs after the load balancer terminated TLS.
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[release])),
        )

    def _gateway_guards(self, name: str, access: Optional[GatewayAccess], gateway: pulumi.Resource,
                        opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """The gateway pods' NetworkPolicy and, behind IAP, the check of IAP's signed header."""
        namespace, release = self._names["gateway_namespace"].value, self._names["gateway"].value
        labels = {"istio": release.removeprefix("istio-")}
        meta = {"name": release, "namespace": namespace}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[gateway]))
        guards: list[pulumi.Resource] = [k8s.networking.v1.NetworkPolicy(
            f"{name}-gateway", metadata=meta, spec=gateway_network_policy(labels), opts=opts)]
        if access is not None and access.iap is not None:
            for kind, suffix, spec in iap_header_policies(access.iap_audience):
                guards.append(k8s.apiextensions.CustomResource(
                    f"{name}-gateway-{suffix}", api_version="security.istio.io/v1", kind=kind,
                    metadata={**meta, "name": f"{release}-{suffix}"},
                    spec={"selector": {"matchLabels": labels}, **spec}, opts=opts))
        return guards


def gateway_network_policy(labels: Mapping[str, str]) -> dict:
    """A NetworkPolicy spec: the gateway pods labelled ``labels`` admit only Google's front ends and
    health checkers, on the serving port and the status port (the load balancer's health check)."""
    return {"podSelector": {"matchLabels": dict(labels)}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": cidr}} for cidr in GOOGLE_LB_RANGES],
                         "ports": [{"protocol": "TCP", "port": port} for port in (GATEWAY_PORT, STATUS_PORT)]}]}


def iap_header_policies(audience: pulumi.Input[str]) -> list[tuple[str, str, dict]]:
    """``(kind, suffix, spec)`` of the objects verifying IAP's signed header at the gateway, without
    their selector: a ``RequestAuthentication`` reading only ``x-goog-iap-jwt-assertion`` (issuer,
    keys, ``audience`` of the backend service; the header stays for the server to read) and a
    ``DENY`` policy refusing a request without a principal IAP signed (Istio answers 403;
    https://istio.io/latest/docs/reference/config/security/request_authentication/)."""
    rule = {"issuer": IAP_ISSUER, "jwksUri": IAP_JWKS, "audiences": [audience],
            "fromHeaders": [{"name": IAP_HEADER}], "forwardOriginalToken": True}
    deny = {"action": "DENY", "rules": [{"from": [{"source": {"notRequestPrincipals": [f"{IAP_ISSUER}/*"]}}]}]}
    return [("RequestAuthentication", "iap-jwt", {"jwtRules": [rule]}),
            ("AuthorizationPolicy", "iap-required", deny)]
