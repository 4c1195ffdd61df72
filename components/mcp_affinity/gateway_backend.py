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

Access: the backend service always has a Cloud Armor policy (the package's, built from the mesh
services' ``edge``, a default one when none is given, or your own ``security_policy``) and IAP when
the mesh services behind it are ``iap``. :class:`GatewayAccess` says what it enforces; mesh services
check it (:class:`~mcp_affinity.McpMeshService`) and the mesh verifies IAP's signed header at the
gateway with its :attr:`GatewayAccess.iap_audience`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp
from pydantic import Field

from . import access_bindings
from .access import AccessArgs, AccessMode
from .autoneg import autoneg_annotation
from .gke_cluster import ClusterRef
from .naming import RFC1035, PhysicalName, physical_name
from .network import NetworkRef
from .security_policy import EdgePolicy, EdgePolicyArgs, EdgeScopeArgs, SecurityPolicyId, looser_limits, show_limit
from .settings import Int, Settings, StrInput, takes_settings
from .wire import BACKEND, FIREWALL, HEALTH_CHECK, SECURITY_POLICY

# Google front ends and health checkers (https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges).
GOOGLE_LB_RANGES = ["35.191.0.0/16", "130.211.0.0/22"]
GATEWAY_PORT = 80
STATUS_PORT = 15021
"""The gateway serves on 80 and answers readiness on its status port 15021 (``/healthz/ready``)."""

DEFAULT_SCOPE = "default"
"""The scope of the default policy a gateway gets when no mesh service's ``edge`` is given: an
unscoped per-client limit, and browsers' requests (any ``Origin``) refused, as no host is known."""


@dataclass(frozen=True)
class GatewayAccess:
    """What the gateway's backend service enforces for every mesh service behind it.

    - ``iap``: the ``access`` of IAP on it (mode ``iap``, its members and OAuth clients), or None.
    - ``edge_scopes``: mesh service -> its rules in the package's Cloud Armor policy (``{}`` or the
      :data:`DEFAULT_SCOPE` alone: a default policy); None: a policy of your own
      (``security_policy``), whose rules the package does not know.
    - ``iap_audience``: with ``iap``, the audience of IAP's signed header
      ``/projects/PROJECT_NUMBER/global/backendServices/BACKEND_SERVICE_ID``
      (https://cloud.google.com/iap/docs/signed-headers-howto).
    - ``security_policy``: the Cloud Armor policy on the backend service (the package's id, or yours).
    """

    iap: Optional[AccessArgs] = None
    edge_scopes: Optional[Mapping[str, EdgeScopeArgs]] = None
    iap_audience: Optional[StrInput] = None
    security_policy: Optional[StrInput] = None


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
    - ``access``: what the backend service enforces (:class:`GatewayAccess`); None for one made
      elsewhere, which mesh services then treat as enforcing nothing they can rely on.
    """

    backend_service_id: StrInput
    annotations: Mapping[str, StrInput]
    ready: Sequence[pulumi.Resource] = ()
    access: Optional[GatewayAccess] = None


class MeshGatewayBackend(pulumi.ComponentResource):
    """Firewall rule (Google's ranges to the cluster's nodes, serving and status ports only),
    health check and a backend service the autoneg controller fills.

    Context: ``network`` (:class:`~mcp_affinity.network.NetworkRef`) and ``cluster``
    (:class:`~mcp_affinity.gke_cluster.ClusterRef`, its node tag); ``iap`` (the ``access`` of mesh
    services behind IAP, mode ``iap``, or None) and ``edge_scopes`` (mesh service -> its Cloud Armor
    rules, scoped to its hosts; :func:`~mcp_affinity.mesh_service.gateway_access` builds both from
    the mesh services' settings). Without ``edge_scopes`` or ``security_policy`` the backend
    service still gets a policy: the :data:`DEFAULT_SCOPE` one. With ``security_policy`` the scopes
    are not used, and :attr:`GatewayAccess.edge_scopes` is None: a mesh service that sets its own
    ``edge`` then refuses this gateway.
    The package's policy has one per-client limit, the strictest of the scopes' ``rateLimit``: each
    scope whose own limit is looser gets a plan warning (:func:`warn_looser_limits`).

    Outputs: ``backend_service_id`` and ``gateway_annotations`` (the gateway Service's annotations:
    GKE's ``cloud.google.com/neg`` and the autoneg controller's ``controller.autoneg.dev/neg``
    naming this backend service); :meth:`ref` bundles them, with the backend service to wait for
    and what it enforces (:class:`GatewayAccess`).

    Raises ``ValueError`` for an ``iap`` whose mode is not ``iap``.
    """

    backend_service_id: pulumi.Output[str]
    gateway_annotations: pulumi.Output[dict[str, str]]

    @takes_settings
    def __init__(self, name: str, args: MeshGatewayBackendArgs, *, network: NetworkRef, cluster: ClusterRef,
                 iap: Optional[AccessArgs] = None, edge_scopes: Optional[Mapping[str, EdgeScopeArgs]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        if iap is not None and iap.mode is not AccessMode.IAP:
            raise ValueError(f"iap: the gateway's IAP takes an access of mode iap, not {iap.mode.value}")
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
        policy = args.security_policy or self._edge_policy(name, args, edge_scopes)
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
            security_policy=policy,
            **(access_bindings.backend_iap(iap) if iap else {}),
            # The autoneg controller adds the gateway's NEGs as GKE creates them.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["backends"]),
        )
        self._backend = backend
        self._annotations = autoneg_annotation(names["backend"].value, GATEWAY_PORT,
                                               max_rate_per_endpoint=args.max_rate_per_endpoint)
        if iap is not None:
            access_bindings.grant(self, name, iap, project=args.project, services={}, backends={name: backend})
        scopes = None if args.security_policy else dict(edge_scopes or {})
        self._access = GatewayAccess(iap, scopes, iap_audience(args.project, backend) if iap else None, policy)
        self.backend_service_id = backend.id
        self.gateway_annotations = pulumi.Output.from_input(self._annotations)
        self.register_outputs({"backend_service_id": self.backend_service_id,
                               "gateway_annotations": self.gateway_annotations})

    def _edge_policy(self, name: str, args: MeshGatewayBackendArgs,
                     scopes: Optional[Mapping[str, EdgeScopeArgs]]) -> pulumi.Output[str]:
        """The package's Cloud Armor policy: each mesh service's rules scoped to its hosts, or the
        default scope when none is given (a backend service never goes without a policy)."""
        policy = EdgePolicy(name, EdgePolicyArgs(prefix=args.prefix, project=args.project, labels=args.labels,
                                                 scopes=dict(scopes) if scopes else {DEFAULT_SCOPE: EdgeScopeArgs()}),
                            opts=pulumi.ResourceOptions(parent=self))
        warn_looser_limits(self, scopes or {})
        return policy.policy_id

    def ref(self) -> MeshGatewayBackendRef:
        """This backend service as the mesh's gateway takes it."""
        return MeshGatewayBackendRef(self.backend_service_id, self._annotations, (self._backend,), self._access)


def warn_looser_limits(parent: pulumi.Resource, scopes: Mapping[str, EdgeScopeArgs]) -> None:
    """Warn, once per mesh service, when its ``edge.rateLimit`` is looser than the gateway's one
    per-client limit (the strictest of the mesh services', :func:`~mcp_affinity.security_policy.looser_limits`):
    its clients get the stricter limit. Documented behaviour, so a warning, not a refusal."""
    for service, holder, limit in looser_limits(scopes):
        own = scopes[service].edge
        default = "" if "rate_limit" in own.model_fields_set else " (the default)"
        pulumi.log.warn(f"meshServices.{service}.edge.rateLimit {show_limit(own.rate_limit)}{default} is looser than the "
                        f"gateway's {show_limit(limit)} (meshServices.{holder}): clients of {service} get "
                        f"{show_limit(limit)}; mesh services share the gateway's Cloud Armor policy and its one "
                        "per-client limit, the strictest of theirs (set the same rateLimit, or serve it from a gateway of "
                        "its own: another stack)",
                        resource=parent)


def iap_audience(project: Optional[str], backend: gcp.compute.BackendService) -> pulumi.Output[str]:
    """IAP's signed-header audience for ``backend``: ``/projects/PROJECT_NUMBER/global/backendServices/ID``,
    the project's number and the backend service's numeric id (``generated_id``), both known after
    apply (https://cloud.google.com/iap/docs/signed-headers-howto)."""
    number = gcp.organizations.get_project_output(project_id=project).number
    return pulumi.Output.format("/projects/{0}/global/backendServices/{1}", number, backend.generated_id)
