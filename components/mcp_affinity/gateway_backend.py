"""MeshGatewayBackend: a global backend service in front of the mesh's ingress gateway.

GKE exposes the gateway's ClusterIP Service as standalone zonal NEGs (``cloud.google.com/neg``,
https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg), created by GKE's NEG
controller only once the Service exists and only in zones with nodes. A backend service created
by Pulumi cannot name them before then, so this one starts with no backends and the
gke-autoneg-controller (:class:`~mcp_affinity.autoneg.AutonegController`) attaches each NEG as it
appears, read from the Service annotation :attr:`MeshGatewayBackend.gateway_annotations`.
Pulumi ignores the ``backends`` it adds.

No load-balancer affinity: gateway pods are interchangeable; the mesh does the routing.
``timeout_sec`` (for NEG backends the response timeout,
https://cloud.google.com/load-balancing/docs/backend-service#timeout-setting) and
``connection_draining_timeout_sec`` are the stream lifetime, so neither the load balancer nor a
draining gateway cuts a server-sent-event stream early.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp
from pydantic import Field

from . import access_bindings
from .access import AccessArgs
from .autoneg import autoneg_annotation
from .gke_cluster import ClusterRef
from .naming import RFC1035, PhysicalName, physical_name
from .network import NetworkRef
from .security_policy import EdgePolicy, EdgePolicyArgs, EdgeScopeArgs, SecurityPolicyId
from .settings import Int, Settings, StrInput, takes_settings
from .wire import BACKEND, FIREWALL, HEALTH_CHECK, SECURITY_POLICY

# Google front ends and health checkers (https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges).
GOOGLE_LB_RANGES = ["35.191.0.0/16", "130.211.0.0/22"]
GATEWAY_PORT = 80
STATUS_PORT = 15021
"""The gateway serves on 80 and answers readiness on its status port 15021 (``/healthz/ready``)."""


class MeshGatewayBackendArgs(Settings):
    """Settings of :class:`MeshGatewayBackend`."""

    timeout_seconds: Int = Field(
        default=3600, ge=1, le=3600,
        description="the backend's response timeout: the longest a stream lives (1 to 3600 s).")
    drain_seconds: Int = Field(
        default=3600, ge=0, le=3600,
        description="connection draining when a gateway endpoint goes away (0 to 3600 s).")
    max_rate_per_endpoint: Int = Field(
        default=1000, ge=1,
        description="requests per second per gateway pod before the load balancer spills over.")
    security_policy: Optional[SecurityPolicyId] = Field(
        default=None,
        description="your own Cloud Armor security policy for the gateway's backend service "
                    "(`projects/P/global/securityPolicies/NAME` or its name) instead of the one the mesh services' "
                    "`edge` describe; unset: the package makes one.")

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names: firewall rule, health check, backend service and the gateway's NEGs."""
        p = self.prefix
        return {
            "firewall": physical_name(RFC1035, FIREWALL, p, name, "lb"),
            "health_check": physical_name(RFC1035, HEALTH_CHECK, p, name),
            "backend": physical_name(RFC1035, BACKEND, p, name),
            "policy": physical_name(RFC1035, SECURITY_POLICY, p, name, "armor"),
        }


@dataclass(frozen=True)
class MeshGatewayBackendRef:
    """What the mesh's gateway takes from its backend service.

    - ``backend_service_id``: ``projects/P/global/backendServices/B``.
    - ``annotations``: the gateway Service's annotations (GKE's ``cloud.google.com/neg`` and the
      autoneg controller's ``controller.autoneg.dev/neg`` naming this backend service).
    - ``ready``: what the gateway Service waits for: the backend service (the autoneg controller
      reads it by name, https://github.com/GoogleCloudPlatform/gke-autoneg-controller).
    """

    backend_service_id: StrInput
    annotations: Mapping[str, StrInput]
    ready: Sequence[pulumi.Resource] = ()


class MeshGatewayBackend(pulumi.ComponentResource):
    """Firewall rule (Google's ranges to the cluster's nodes, serving and status ports only),
    health check and a backend service the autoneg controller fills.

    Context: ``network`` (:class:`~mcp_affinity.network.NetworkRef`) and ``cluster``
    (:class:`~mcp_affinity.gke_cluster.ClusterRef`, its node tag); ``iap`` (the ``access`` of mesh
    services behind IAP, or None) and ``edge_scopes`` (mesh service -> its Cloud Armor rules, scoped
    to its hosts; ignored with ``security_policy``).

    Outputs: ``backend_service_id`` and ``gateway_annotations`` (the gateway Service's annotations:
    GKE's ``cloud.google.com/neg`` and the autoneg controller's ``controller.autoneg.dev/neg``
    naming this backend service); :meth:`ref` bundles them, with the backend service to wait for.
    """

    backend_service_id: pulumi.Output[str]
    gateway_annotations: pulumi.Output[dict[str, str]]

    @takes_settings
    def __init__(self, name: str, args: MeshGatewayBackendArgs, *, network: NetworkRef, cluster: ClusterRef,
                 iap: Optional[AccessArgs] = None, edge_scopes: Optional[Mapping[str, EdgeScopeArgs]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        names = args.names(name)
        super().__init__("mcp-affinity:index:MeshGatewayBackend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gcp.compute.Firewall(
            name, name=names["firewall"].value, project=args.project, network=network.network_id,
            direction="INGRESS", source_ranges=GOOGLE_LB_RANGES, target_tags=[cluster.node_tag],
            allows=[{"protocol": "tcp", "ports": [str(GATEWAY_PORT), str(STATUS_PORT)]}], opts=child,
        )
        check = gcp.compute.HealthCheck(
            name, name=names["health_check"].value, project=args.project,
            http_health_check={"port": STATUS_PORT, "request_path": "/healthz/ready"}, opts=child,
        )
        backend = gcp.compute.BackendService(
            name,
            name=names["backend"].value,
            project=args.project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTP",
            timeout_sec=args.timeout_seconds,
            connection_draining_timeout_sec=args.drain_seconds,
            health_checks=check.id,
            log_config={"enable": True, "sample_rate": 1.0},
            security_policy=args.security_policy or self._edge_policy(name, args, edge_scopes),
            **(access_bindings.backend_iap(iap) if iap else {}),
            # The autoneg controller adds the gateway's NEGs as GKE creates them.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["backends"]),
        )
        self._backend = backend
        self._annotations = autoneg_annotation(names["backend"].value, GATEWAY_PORT,
                                               max_rate_per_endpoint=args.max_rate_per_endpoint)
        if iap is not None:
            access_bindings.grant(self, name, iap, project=args.project, services={}, backends={name: backend})
        self.backend_service_id = backend.id
        self.gateway_annotations = pulumi.Output.from_input(self._annotations)
        self.register_outputs({"backend_service_id": self.backend_service_id,
                               "gateway_annotations": self.gateway_annotations})

    def _edge_policy(self, name: str, args: MeshGatewayBackendArgs,
                     scopes: Optional[Mapping[str, EdgeScopeArgs]]) -> Optional[pulumi.Output[str]]:
        """The package's Cloud Armor policy: each mesh service's rules scoped to its hosts."""
        if not scopes:
            return None
        policy = EdgePolicy(name, EdgePolicyArgs(prefix=args.prefix, project=args.project, labels=args.labels,
                                                 scopes=dict(scopes)), opts=pulumi.ResourceOptions(parent=self))
        return policy.policy_id

    def ref(self) -> MeshGatewayBackendRef:
        """This backend service as the mesh's gateway takes it."""
        return MeshGatewayBackendRef(self.backend_service_id, self._annotations, (self._backend,))
