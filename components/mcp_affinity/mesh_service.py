"""McpMeshService: one MCP server on GKE behind the mesh, routed as its session mode needs.

On GKE every replica is a pod the proxy can address, so the mesh can keep a session where it is:
- ``shared-sessions``: a ``DestinationRule`` hashes the session header
  (``consistentHash.httpHeaderName``; https://istio.io/latest/docs/reference/config/networking/destination-rule/):
  any pod can serve a session, the hash adds locality for its streams.
- ``in-memory-sessions`` with ``pinning: learned``: an HAProxy StatefulSet in front of the pods
  learns each session's pod from the response and pins its later requests there, for every client
  (:mod:`mcp_affinity.pinning_proxy`).
- ``in-memory-sessions`` with ``pinning: cookie``: Istio persistent sessions (the Service label
  ``istio.io/persistent-session: <cookie>``; istiod needs ``PILOT_ENABLE_PERSISTENT_SESSION_FILTER``,
  experimental, ``pilot/pkg/features/experimental.go``) pin each client that keeps cookies to the
  pod that served its ``initialize``. Hashing alone is refused: it pins a session to *a* pod, not
  to its creator (measured: see :data:`mcp_affinity.affinity.HASHING_LOSES_SESSIONS`).
- ``stateless``: least-request balancing; nothing to pin.

It is closed to the rest of the cluster: strict mutual TLS (``PeerAuthentication``), an
``AuthorizationPolicy`` that admits only the ingress gateway's identity, and a Kubernetes
``NetworkPolicy`` (enforced by Dataplane V2) admitting only the gateway's namespace.

Ambient mode (checked against Istio 1.30.3): policies bound to a waypoint are enforced only on
traffic through it, and "ingress gateways bypass waypoints by default"
(https://istio.io/latest/docs/ambient/usage/waypoint/). So the Service carries
``istio.io/ingress-use-waypoint: "true"`` (read by istiod, ``pilot/pkg/serviceregistry/ambient/ambientindex.go``);
the namespace's waypoint (a ``Gateway`` of class ``istio-waypoint`` named ``waypoint``, whose
service account istiod names after it) admits only the ingress gateway's identity and holds the
token checks (``targetRefs`` to the waypoint); the pods admit only the waypoint's identity
(ztunnel sees the waypoint, not the gateway, as the source); and the NetworkPolicies admit HBONE's
port 15008, over which ambient traffic arrives, from the waypoint (and the waypoint from the
gateway), plus the kubelet's probes, which Istio's CNI rewrites to come from 169.254.7.127
(https://istio.io/latest/docs/ambient/usage/networkpolicy/; ``cni/README.md``, ``HOST_PROBE_SNAT_IP``).
``pinning: learned`` is refused in ambient mode: the proxy calls pods by their addresses, past the
waypoint, a path this package does not make safe.

The gateway's backend service enforces IAP and the Cloud Armor rules for every mesh service behind
it, so a service refuses a mesh whose gateway does not carry its ``access`` (``iap`` with the same
members and clients, or no IAP) and its ``edge`` rules (:class:`~mcp_affinity.gateway_backend.GatewayAccess`;
:func:`gateway_access` builds what the platform needs from the services' settings).

Requests of MCP 2026-07-28 carry ``Mcp-Method`` / ``Mcp-Name``; ``method_routes`` send some of them
to another mesh service with ``VirtualService`` ``http[].match[].headers``.

Deploys: with learned pinning and ``session_drain_seconds`` (default 1800 s) a terminating pod keeps
serving the sessions pinned to it and takes no new ones (:mod:`mcp_affinity.pinning_proxy` says
how); its grace period is the session drain plus 30 s to stop, at most an hour, which GKE honours
on node upgrades; cluster-autoscaler scale-down honours only 10 minutes
(https://cloud.google.com/kubernetes-engine/docs/how-to/extended-duration-pods). The terminating
pods keep their proxy slots, so the proxy has 3 x ``max_replicas`` of them (two deploys per window),
and every pod must fit one DNS answer, which the proxy asks for over TCP too (65535 bytes: 1363
``max_replicas`` with a drain for a 45-character name, above the field's limit of 1000; beyond is refused,
:func:`proxy_faults`; :mod:`mcp_affinity.pinning_proxy`, "Slots during a drain"). A blue/green pair
of Deployments was not chosen: it doubles the pods on every deploy and needs the package, not
Kubernetes, to retire the old colour, with the same grace limits on evictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import AbstractSet, Literal, Mapping, Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from . import affinity, sources
from .access import AccessArgs, AccessMode
from .affinity import METHOD_HEADER, MODERN_VERSIONS, NAME_HEADER, VERSION_HEADER, HeaderName, SessionMode, StoreRole
from .gateway_backend import GatewayAccess
from .gke_cluster import ClusterRef, kubernetes_options
from .limits import Env, Memory, Quantity
from . import secret_env as secret_env_module
from .secret_env import SecretEnv
from .load_balancer import Domain, MethodRouteArgs, check_hosts_once, check_method_matches
from .mesh import MeshRef
from .mesh_access import check_mesh_access, token_policies
from .naming import KUBERNETES, SERVICE_ACCOUNT, PhysicalName, physical_name
from . import pinning_proxy
from .security_policy import EdgeArgs, EdgeScopeArgs
from .session_store import SessionStoreRef
from .settings import Bool, Faults, Int, Name, Port, Settings, StrInput, UrlPath, takes_settings
from .wire import GOOGLE_SERVICE_ACCOUNT, K8S_SERVICE, NAMESPACE

SECRET_NAME = "mcp-redis"

ISTIO_PORTS = frozenset({15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090})
"""Ports the Istio sidecar uses in the pod (https://istio.io/latest/docs/ops/deployment/application-requirements/#ports-used-by-istio)."""

HBONE_PORT = 15008
PROBE_SNAT_CIDR = "169.254.7.127/32"
WAYPOINT = "waypoint"
"""Ambient mode: HBONE's port, the source of the kubelet's probes after Istio's CNI rewrote them
(https://istio.io/latest/docs/ambient/usage/networkpolicy/), and the waypoint's name, which is
also its service account's (istio/istio 1.30.3 ``pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go``)."""
WAYPOINT_LABEL = "gateway.networking.k8s.io/gateway-name"


SHUTDOWN_MARGIN_SECONDS = 30
"""After a session drain the server gets SIGTERM and this long to stop before the grace period ends."""

MAX_GRACE_SECONDS = 3600
"""The longest grace period GKE honours when it upgrades a node (one hour); cluster-autoscaler
scale-down honours only 10 minutes (https://cloud.google.com/kubernetes-engine/docs/how-to/extended-duration-pods)."""

DEFAULT_SESSION_DRAIN_SECONDS = 1800
"""Default ``sessionDrainSeconds`` with learned pinning: the idle-session timeout of FastMCP and the SDKs."""

LEARNED_ONLY = frozenset({"pinning_replicas", "session_idle_seconds", "stream_timeout_seconds",
                          "pinning_max_sessions", "pinning_max_connections"})
"""Settings of the pinning proxy: refused without ``pinning: learned``, where they would do nothing."""


class McpMeshServiceArgs(Settings):
    """Settings of :class:`McpMeshService`."""

    image: str = Field(min_length=1, max_length=1024, pattern=r"^[^\s]+$", description="the container image.")
    session_mode: SessionMode = Field(
        description="what the server does with sessions (see \"Which mode for my server?\").")
    pinning: Optional[Literal["learned", "cookie"]] = Field(
        default=None,
        description="for `in-memory-sessions`: `learned` (a proxy learns each session's pod from the response; every"
                    " client) or `cookie` (Istio persistent sessions; clients that keep cookies).")
    pinning_replicas: Int = Field(
        default=2, ge=1, le=9,
        description="proxy replicas for `pinning: learned` (1 to 9; they share the pins); refused with another "
                    "pinning.")
    cookie_name: str = Field(
        default=affinity.DEFAULT_COOKIE, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the persistent-session cookie of `pinning: cookie`; refused with another pinning.")
    acknowledge: list[Literal["cookie-clients-only", "unauthenticated", "access-widened"]] = Field(
        default_factory=list,
        description="`cookie-clients-only` accepts that `pinning: cookie` keeps sessions only for clients that keep "
                    "cookies (measured: clients without a cookie jar lose them); `unauthenticated` a `public` service "
                    "(required by the stack in staging and prod); `access-widened` a production deploy that widens "
                    "who may call (remove it after that deploy).")
    secret_env: SecretEnv = Field(
        default_factory=dict,
        description="environment variables read from Secret Manager: `NAME: {secret: ID, version: N}`, synced into "
                    "the Kubernetes Secret `{name}-env` by GKE's secret synchronization (needs `gke.secretSync`); the "
                    "pods' Workload Identity gets `roles/secretmanager.secretAccessor` on each secret.")
    access: AccessArgs = Field(
        description="who may call the service: `iap`, `iam`, `oauth` or `public` (see \"Who can call my server?\"); "
                    "required. On GKE `iap` sits on the gateway's backend service (shared by every mesh service); "
                    "`iam`, and `oauth` with `jwt`, are checked in the mesh in front of the server.")
    edge: EdgeArgs = Field(
        default_factory=EdgeArgs,
        description="this service's rules in the gateway's Cloud Armor policy, scoped to its hosts.")
    notification_broker: Bool = Field(
        default=False,
        description="a `stateless` server fans notifications out through Redis.")
    session_header: HeaderName = Field(
        default=affinity.DEFAULT_SESSION_HEADER,
        description="the session header, passed as `MCP_SESSION_HEADER` and hashed for `shared-sessions`.")
    hosts: list[Domain] = Field(
        min_length=1,
        description="host names the gateway routes to this service (each on a certificate, none twice).")
    method_routes: dict[Name, MethodRouteArgs] = Field(
        default_factory=dict,
        description="key -> `MethodRouteArgs`: MCP methods sent to another mesh service (`service` names it).")
    port: Port = Field(default=8080, description="the container's port.")
    cpu: Quantity = Field(default="500m", description="CPU request per pod (a Kubernetes quantity such as `500m`).")
    memory: Memory = Field(default="512Mi", description="memory request and limit per pod, in Mi or Gi.")
    min_replicas: Int = Field(
        default=2, ge=1, le=1000,
        description="fewest pods (HorizontalPodAutoscaler, CPU target 70 %).")
    max_replicas: Int = Field(
        default=10, ge=1, le=1000,
        description="most pods (HorizontalPodAutoscaler, CPU target 70 %). With `pinning: learned` the proxy's "
                    "one DNS answer, which it asks for over TCP (65535 bytes, about 4090 addresses), must hold every "
                    "pod: with a session drain this version's and two draining sets (3 x maxReplicas), without one "
                    "maxReplicas plus the 25 % rollout surge; both fit at 1000.")
    drain_seconds: Int = Field(
        default=3600, ge=30, le=3600,
        description="graceful termination: the pod and its sidecar keep serving open streams this long (30 to 3600 "
                    "s, default 3600, as long as a Cloud Run request may last).")
    session_drain_seconds: Optional[Int] = Field(
        default=None, ge=0,
        description="`pinning: learned`: after a deploy, pods of the old version keep serving the sessions pinned "
                    "to them this long while terminating, and take no new ones (default "
                    f"{DEFAULT_SESSION_DRAIN_SECONDS} s, the SDKs' idle-session timeout; at most "
                    f"{MAX_GRACE_SECONDS - SHUTDOWN_MARGIN_SECONDS} s, as GKE node upgrades honour one hour of grace; "
                    "cluster-autoscaler scale-down only 10 minutes). 0: a deploy ends every session, as before. "
                    "Refused for other modes and pinnings.")
    health_path: UrlPath = Field(
        default="/healthz",
        description="HTTP path of the startup, readiness and liveness probes.")
    env: Env = Field(default_factory=dict, description="extra environment variables.")
    session_idle_seconds: Int = Field(
        default=1800, ge=60, le=86400,
        description="`pinning: learned`: a pin expires after its session was idle this long; match the server's "
                    "idle-session timeout (1800 s in FastMCP and the SDKs).")
    stream_timeout_seconds: Int = Field(
        default=3600, ge=30, le=86400,
        description="`pinning: learned`: the longest a request or stream may stay silent through the proxy.")
    pinning_max_sessions: Int = Field(
        default=100_000, ge=1000, le=10_000_000,
        description="`pinning: learned`: pins each proxy replica holds; with `pinningMaxConnections` it sets the "
                    "proxy's memory (32 MiB + 256 B per pin + 33 KiB per connection).")
    pinning_max_connections: Int = Field(
        default=2000, ge=100, le=100_000,
        description="`pinning: learned`: concurrent connections per proxy replica (`maxconn`; the file-descriptor "
                    "limit is derived from it).")

    @model_validator(mode="after")
    def _rules(self) -> "McpMeshServiceArgs":
        faults = Faults("McpMeshServiceArgs")
        if self.min_replicas > self.max_replicas:
            faults.add("minReplicas", f"{self.min_replicas} is larger than maxReplicas {self.max_replicas}")
        if self.port in ISTIO_PORTS:
            faults.add("port", f"port {self.port} is used by the Istio sidecar")
        faults.check("notificationBroker", lambda: affinity.store_role(self.session_mode, self.notification_broker))
        faults.check(("access", "members"), lambda: check_mesh_access(self.access))
        self._check_pinning(faults)
        self._check_drain(faults)
        check_hosts_once(self.hosts, faults)
        check_method_matches(self.method_routes, faults)
        for variable in sorted(set(self.env) & set(self.secret_env)):
            faults.add(("secretEnv", variable), f"{variable} is also in env: set it in one of them")
        faults.raise_if_any()
        return self

    def _check_pinning(self, faults: Faults) -> None:
        if self.session_mode is SessionMode.IN_MEMORY_SESSIONS and self.pinning is None:
            faults.add("pinning",
                       "in-memory sessions must reach the pod that created them: set pinning: learned (every "
                       "client) or cookie (clients that keep cookies). Hashing the header does not do it: "
                       f"{affinity.HASHING_LOSES_SESSIONS}")
        if self.pinning == "cookie" and "cookie-clients-only" not in self.acknowledge:
            faults.add("acknowledge",
                       "pinning: cookie keeps sessions only for clients that keep cookies (the official Python "
                       "SDK does, mcp-remote since August 2026, many clients do not): use pinning: learned, "
                       "or add acknowledge: [cookie-clients-only]")
        if self.pinning is not None and self.session_mode is not SessionMode.IN_MEMORY_SESSIONS:
            faults.add("pinning", "pinning goes with sessionMode in-memory-sessions; other modes need none")
        if self.pinning != "learned":
            for field in sorted(LEARNED_ONLY & self.model_fields_set):
                key = to_camel(field)
                faults.add(key, f"{key} goes with pinning: learned (the pinning proxy); remove it")
        if "cookie_name" in self.model_fields_set and self.pinning != "cookie":
            faults.add("cookieName", "cookieName goes with pinning: cookie; remove it")

    def _check_drain(self, faults: Faults) -> None:
        if "session_drain_seconds" not in self.model_fields_set:
            return
        if self.session_mode is not SessionMode.IN_MEMORY_SESSIONS:
            faults.add("sessionDrainSeconds", f"a {self.session_mode.value} server keeps no session in one pod's "
                       "memory, so a deploy ends none (stateless: no session; shared-sessions: they live in the "
                       "store): remove sessionDrainSeconds")
        elif self.pinning != "learned":
            faults.add("sessionDrainSeconds", "sessionDrainSeconds goes with pinning: learned: only the pinning "
                       "proxy keeps sending a session's requests to a terminating pod (Istio's cookie pinning "
                       "does not): use pinning: learned, or remove sessionDrainSeconds")
        elif self.session_drain + SHUTDOWN_MARGIN_SECONDS > MAX_GRACE_SECONDS:
            faults.add("sessionDrainSeconds", f"{self.session_drain} s plus {SHUTDOWN_MARGIN_SECONDS} s to shut down is "
                       f"longer than GKE honours when it upgrades a node ({MAX_GRACE_SECONDS} s of grace; "
                       f"cluster-autoscaler scale-down honours 600 s; {sources.GKE_EXTENDED_DURATION_PODS}): at most "
                       f"{MAX_GRACE_SECONDS - SHUTDOWN_MARGIN_SECONDS}")

    @property
    def session_drain(self) -> int:
        """``sessionDrainSeconds`` as planned: by default 1800 s with learned pinning, else 0."""
        if self.session_drain_seconds is not None:
            return self.session_drain_seconds
        return DEFAULT_SESSION_DRAIN_SECONDS if self.pinning == "learned" else 0

    def deploy_impact(self) -> str:
        """One line for the plan (``meshServiceDeploys``): what a deploy does to live sessions."""
        if self.session_mode is not SessionMode.IN_MEMORY_SESSIONS:
            return f"a deploy ends no session ({self.session_mode.value}: none lives in one pod's memory)"
        if not self.session_drain:
            return "a deploy ends the sessions of every replaced pod: clients re-initialize on the new pods"
        return (f"a deploy drains for {round(self.session_drain / 60)} min: old pods keep serving the sessions pinned "
                f"to them while terminating (grace {self.grace_seconds} s), new sessions start on new pods; then "
                "those sessions re-initialize (a cluster-autoscaler scale-down drains at most 10 min)")

    @property
    def grace_seconds(self) -> int:
        """The pods' ``terminationGracePeriodSeconds``: the stream drain, or the session drain plus
        time to shut down, whichever is longer."""
        drain = self.session_drain
        return max(self.drain_seconds, drain + SHUTDOWN_MARGIN_SECONDS) if drain else self.drain_seconds

    @property
    def store_role(self) -> StoreRole:
        return affinity.store_role(self.session_mode, self.notification_broker)

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names: the Google service account and the namespace ``{prefix}-{name}``.

        The objects inside the namespace are named after the service (``{name}``, and with learned
        pinning ``{name}-pinning``, ``{name}-pods``, ``{name}-pinning-peers``): unique in their
        namespace, checked against Kubernetes' rule here but not returned (they share no scope with
        another component). Raises ``ValueError`` naming the rule a name breaks.
        """
        inside = [name] + ([f"{name}-pinning-peers", f"{name}-pods"] if self.pinning == "learned" else [])
        for value in inside:
            physical_name(KUBERNETES, K8S_SERVICE, value)
        return {"account": physical_name(SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT, self.prefix, name, "gke"),
                "namespace": physical_name(KUBERNETES, NAMESPACE, self.prefix, name)}


@dataclass(frozen=True)
class McpMeshServiceRef:
    """What others take from a mesh service: ``service_host`` (``NAME.NAMESPACE.svc.cluster.local``,
    a method route's target), ``namespace`` and ``google_service_account`` (its identity, for grants)."""

    service_host: StrInput
    namespace: StrInput
    google_service_account: StrInput


def method_target_faults(name: str, args: McpMeshServiceArgs, services: AbstractSet[str]) -> list[tuple[str, str]]:
    """``(key under the service, message)`` for each method route of service ``name`` whose target is
    not another of ``services`` (the mesh services of the same mesh)."""
    return [(f"methodRoutes.{key}.service", f"{route.service!r} is not another mesh service; mesh services: "
             f"{', '.join(sorted(services - {name})) or 'none'}")
            for key, route in sorted(args.method_routes.items())
            if route.service not in services or route.service == name]


def edge_scope(args: McpMeshServiceArgs) -> EdgeScopeArgs:
    """The service's rules in the gateway's Cloud Armor policy: its ``edge``, scoped to its hosts,
    with the methods it routes gated on the protocol version."""
    return EdgeScopeArgs(edge=args.edge, hosts=args.hosts, scoped=True,
                         oauth_metadata=args.access.mode is AccessMode.OAUTH,
                         routed_methods=sorted({route.method for route in args.method_routes.values()}))


def gateway_access(services: Mapping[str, McpMeshServiceArgs]) -> dict:
    """``iap`` and ``edge_scopes`` for the gateway's backend service
    (:class:`~mcp_affinity.MeshGatewayBackend`, :class:`~mcp_affinity.McpGkePlatform`) from the
    settings of the mesh services behind it, name -> settings.

    Raises ``ValueError`` when some but not all of them are ``iap``, or ``iap`` with different
    members or clients: IAP sits on the one backend service they share.
    """
    iap = [args.access for args in services.values() if args.access.mode is AccessMode.IAP]
    if iap and any(args.access != iap[0] for args in services.values()):
        raise ValueError("IAP sits on the gateway's backend service, which every mesh service shares: when one "
                         "mesh service is iap, all must be iap with the same members and programmaticClients")
    return {"iap": iap[0] if iap else None, "edge_scopes": {name: edge_scope(args) for name, args in services.items()}}


def gateway_faults(name: str, args: McpMeshServiceArgs, gateway: Optional[GatewayAccess]) -> list[tuple[str, str]]:
    """``(key, message)`` for each promise of service ``name`` that its gateway's backend service
    (``gateway``; None: not one the package made) does not keep: IAP and its members and clients
    exactly as ``access`` says, and its ``edge`` rules in the Cloud Armor policy."""
    iap = args.access if args.access.mode is AccessMode.IAP else None
    enforced = gateway.iap if gateway is not None else None
    faults = []
    if iap is not None and gateway is None:
        faults.append(("access", "iap needs the gateway's backend service to carry IAP, and this mesh has none made "
                                 "by the package (give Mesh gateway_backend=..., or use McpGkePlatform)"))
    elif iap != enforced:
        has = f"IAP ({enforced.summary()})" if enforced is not None else "no IAP"
        faults.append(("access", f"access {args.access.summary()} but the gateway's backend service, which every "
                                 f"mesh service shares, has {has}: give the platform this service "
                                 "(McpGkePlatform(..., mesh_services=...)) or the same access"))
    explicit = "edge" in args.model_fields_set
    if gateway is None or gateway.edge_scopes is None:
        if explicit:
            faults.append(("edge", "the gateway's Cloud Armor policy is not the package's (securityPolicy of your own, "
                                   "or no gateway backend made by the package): these rules would do nothing"))
    elif gateway.edge_scopes.get(name) != edge_scope(args):
        faults.append(("edge", f"the gateway's Cloud Armor policy does not carry {name}'s rules for its hosts "
                               f"{', '.join(args.hosts)}: give the platform this service (McpGkePlatform(..., "
                               "mesh_services=...) or MeshGatewayBackend(..., **gateway_access(...)))"))
    return faults


class McpMeshService(pulumi.ComponentResource):
    """Namespace, identity, Deployment, Service, HPA, PDB, routing and isolation for one MCP server.

    Context: ``cluster`` (:class:`~mcp_affinity.gke_cluster.ClusterRef`: Kubernetes provider unless
    ``opts.providers`` names another, node pool, workload pool), ``mesh``
    (:class:`~mcp_affinity.mesh.MeshRef`: gateway, data plane, control plane to wait for),
    ``session_store`` (needed when the store role is not ``none``), ``route_hosts`` (mesh service
    name -> its in-cluster host, for ``method_routes``) and ``secret_env`` (names in ``env`` whose
    values become Pulumi secrets).

    Outputs: ``namespace`` (``{prefix}-{name}``), ``service_host`` (``NAME.NAMESPACE.svc.cluster.local``)
    and ``google_service_account``.

    Raises ``ValueError`` for a missing store or route host, ``pinning: cookie`` on a mesh without
    the persistent-session filter, or no Kubernetes provider; a ``pydantic.ValidationError`` with
    every fault, each under its key, for an ``access`` or ``edge`` the mesh's gateway does not
    enforce (:func:`gateway_faults`) and ``pinning: learned`` in ambient mode.
    """

    namespace: pulumi.Output[str]
    service_host: pulumi.Output[str]
    google_service_account: pulumi.Output[str]

    @takes_settings
    def __init__(self, name: str, args: McpMeshServiceArgs, *, cluster: ClusterRef, mesh: MeshRef,
                 session_store: Optional[SessionStoreRef] = None,
                 route_hosts: Optional[Mapping[str, str]] = None, secret_env: AbstractSet[str] = frozenset(),
                 opts: Optional[pulumi.ResourceOptions] = None):
        if args.store_role is not StoreRole.NONE and session_store is None:
            raise ValueError(f"session mode {args.session_mode.value} needs a session_store")
        for key, message in method_target_faults(name, args, set(route_hosts or {})):
            raise ValueError(f"{key}: {message}")
        if args.pinning == "cookie" and not mesh.persistent_session_filter:
            raise ValueError("pinning: cookie needs the mesh's persistentSessionFilter")
        check_context(name, args, mesh)
        if args.secret_env and not cluster.secret_sync:
            raise ValueError("secretEnv needs the cluster's secret synchronization (GkeClusterArgs secret_sync)")
        plain = secret_env_module.plain_secret_faults({k: v for k, v in args.env.items() if k not in secret_env})
        if plain:
            raise ValueError("; ".join(f"env.{variable}: {message}" for variable, message in plain))
        names = args.names(name)
        super().__init__("mcp-affinity:index:McpMeshService", name, None, kubernetes_options(opts, cluster))
        self._name, self._args, self._mesh = name, args, mesh
        self._store = session_store if args.store_role is not StoreRole.NONE else None
        self._route_hosts, self._secret_env = dict(route_hosts or {}), secret_env
        self._namespace = names["namespace"].value
        self.namespace = pulumi.Output.from_input(self._namespace)
        self.service_host = pulumi.Output.from_input(service_host(args.prefix, name))
        account = self._identity(names, cluster)
        self.google_service_account = account.email
        base = pulumi.ResourceOptions(parent=self, depends_on=[*cluster.ready, *mesh.ready])
        namespace = k8s.core.v1.Namespace(name, metadata={"name": self._namespace, "labels": self._mesh_labels()},
                                          opts=base)
        self._k8s = pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(depends_on=[namespace]))
        self._objects(account)
        self.register_outputs({"namespace": self.namespace, "service_host": self.service_host,
                               "google_service_account": self.google_service_account})

    def ref(self) -> McpMeshServiceRef:
        """This service as method routes and grants take it."""
        return McpMeshServiceRef(self.service_host, self.namespace, self.google_service_account)

    def _mesh_labels(self) -> dict[str, str]:
        if self._ambient:
            return {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"}
        return {"istio-injection": "enabled"}

    def _identity(self, names, cluster: ClusterRef) -> gcp.serviceaccount.Account:
        """A Google service account bound to the Kubernetes one by Workload Identity; the member
        names the pool from the cluster's output, so the binding waits for the cluster."""
        args, child = self._args, pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(self._name, account_id=names["account"].value, project=args.project,
                                             display_name=f"GKE MCP service {self._name}", opts=child)
        gcp.serviceaccount.IAMMember(
            f"{self._name}-workload-identity", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
            member=pulumi.Output.format("serviceAccount:{0}[{1}/{2}]", cluster.workload_pool, self._namespace, self._name),
            opts=child,
        )
        return account

    def _meta(self, name: Optional[str] = None, labels: Optional[dict] = None) -> dict:
        return {"name": name or self._name, "namespace": self._namespace, "labels": {"app": self._name, **(labels or {})}}

    def _objects(self, account: gcp.serviceaccount.Account) -> None:
        args, name, opts = self._args, self._name, self._k8s
        k8s.core.v1.ServiceAccount(name, metadata={**self._meta(), "annotations": {
            "iam.gke.io/gcp-service-account": account.email}}, opts=opts)
        self._synced = None
        if args.secret_env:
            self._synced, ready = secret_env_module.gke_secret_sync(
                self, name, secret_env=args.secret_env, project=args.project, namespace=self._namespace, account=name,
                google_account=account.member, opts=opts)
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=ready))
        if self._store is not None:
            k8s.core.v1.Secret(name, metadata=self._meta(SECRET_NAME), type="Opaque", string_data={
                "url": pulumi.Output.secret(self._store.connection_url), "ca.crt": self._store.ca_certificate},
                opts=opts)
        k8s.apps.v1.Deployment(name, metadata=self._meta(labels=args.access.marks(args.acknowledge)),
                               spec=self._deployment_spec(), opts=opts)
        service_labels = {"istio.io/persistent-session": args.cookie_name} if args.pinning == "cookie" else {}
        if self._ambient:  # else the ingress gateway calls the pods past the waypoint's checks
            service_labels["istio.io/ingress-use-waypoint"] = "true"
        learned = args.pinning == "learned"
        # With learned pinning the service's front door is the proxy; the pods sit behind it.
        k8s.core.v1.Service(name, metadata=self._meta(labels=service_labels), spec={
            "selector": {"app": self.proxy_name if learned else name},
            "ports": [{"name": "http", "port": 80, "targetPort": pinning_proxy.SERVE_PORT if learned else args.port,
                       "appProtocol": "http"}],
        }, opts=opts)
        if learned:
            self._pinning_proxy()
        k8s.autoscaling.v2.HorizontalPodAutoscaler(name, metadata=self._meta(), spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": args.min_replicas, "maxReplicas": args.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                          "target": {"type": "Utilization", "averageUtilization": 70}}}],
        }, opts=opts)
        k8s.policy.v1.PodDisruptionBudget(name, metadata=self._meta(), spec={
            "maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}}, opts=opts)
        self._routing()
        self._isolation()

    @property
    def proxy_name(self) -> str:
        return f"{self._name}-pinning"

    def _pinning_proxy(self) -> None:
        """The learned-pinning HAProxy: config, headless Services for pods and peers, StatefulSet."""
        args, proxy, opts = self._args, self.proxy_name, self._k8s
        pods, peers = f"{self._name}-pods", f"{proxy}-peers"
        slots = pinning_proxy.server_slots(args.max_replicas, bool(args.session_drain))
        sizing = pinning_proxy.ProxySizing(args.pinning_max_sessions, args.pinning_max_connections, slots)
        self.haproxy_config = pinning_proxy.haproxy_config(
            name=proxy, namespace=self._namespace, pods_service=pods, peers_service=peers,
            replicas=args.pinning_replicas, header=args.session_header, port=args.port,
            max_servers=slots, stream_timeout_seconds=args.stream_timeout_seconds,
            session_idle_seconds=args.session_idle_seconds, sizing=sizing,
            drain_check_path=args.health_path if args.session_drain else None)
        k8s.core.v1.ConfigMap(proxy, metadata=self._meta(proxy), data={"haproxy.cfg": self.haproxy_config}, opts=opts)
        ports = [{"name": "http", "port": args.port, "targetPort": args.port, "appProtocol": "http"}]
        if args.session_drain:
            # Declared so that the mesh carries the proxy's checks to it (mTLS) like any service port.
            ports.append({"name": "http-drain-signal", "port": pinning_proxy.DRAIN_SIGNAL_PORT, "appProtocol": "http"})
            k8s.core.v1.ConfigMap(f"{self._name}-drain-signal", metadata=self._meta(f"{self._name}-drain-signal"),
                                  data={"haproxy.cfg": pinning_proxy.drain_signal_config(
                                      listen_port=pinning_proxy.DRAIN_SIGNAL_PORT, server_port=args.port)}, opts=opts)
        # With a drain, terminating pods stay in DNS (CoreDNS publishes only ready endpoints) so their
        # pins keep reaching them; new pods get no session before their check passes.
        k8s.core.v1.Service(pods, metadata=self._meta(pods), spec={
            "clusterIP": "None", "selector": {"app": self._name}, "publishNotReadyAddresses": bool(args.session_drain),
            "ports": ports}, opts=opts)
        k8s.core.v1.Service(peers, metadata=self._meta(peers, {"app": proxy}), spec={
            "clusterIP": "None", "selector": {"app": proxy}, "publishNotReadyAddresses": True,
            "ports": [{"name": "tcp-peers", "port": pinning_proxy.PEER_PORT, "appProtocol": "tcp"},
                      {"name": "http-handover", "port": pinning_proxy.SERVE_PORT, "appProtocol": "http"}]}, opts=opts)
        k8s.core.v1.ServiceAccount(proxy, metadata=self._meta(proxy, {"app": proxy}), opts=opts)
        # Ready once the peers had their chance to hand over the pins, and while a pod is up;
        # alive as long as HAProxy answers (an outage of the pods must not restart the proxy).
        ready = {"httpGet": {"path": "/healthz", "port": pinning_proxy.HEALTH_PORT}, "periodSeconds": 5,
                 "initialDelaySeconds": pinning_proxy.READY_DELAY_SECONDS}
        alive = {"tcpSocket": {"port": pinning_proxy.HEALTH_PORT}, "periodSeconds": 10}
        memory = f"{sizing.memory_mib}Mi"
        k8s.apps.v1.StatefulSet(proxy, metadata=self._meta(proxy, {"app": proxy}), spec={
            "serviceName": peers,
            "replicas": args.pinning_replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": proxy}},
            "template": {
                "metadata": {"labels": {"app": proxy}, "annotations": {"proxy.istio.io/config": json.dumps(
                    {"terminationDrainDuration": f"{args.drain_seconds}s"})}},
                "spec": {
                    "serviceAccountName": proxy,
                    "terminationGracePeriodSeconds": args.drain_seconds,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 99, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "haproxy", "image": pinning_proxy.PROXY_IMAGE,
                        # Fills in the pod's name server, which the resolvers ask over UDP and TCP.
                        "command": pinning_proxy.start_command(),
                        "ports": [{"name": "http", "containerPort": pinning_proxy.SERVE_PORT},
                                  {"name": "peers", "containerPort": pinning_proxy.PEER_PORT},
                                  {"name": "health", "containerPort": pinning_proxy.HEALTH_PORT}],
                        "readinessProbe": ready, "livenessProbe": alive,
                        "resources": {"requests": {"cpu": "100m", "memory": memory}, "limits": {"memory": memory}},
                        "volumeMounts": [{"name": "config", "mountPath": "/usr/local/etc/haproxy", "readOnly": True}],
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": proxy}}],
                },
            },
        }, opts=opts)
        k8s.policy.v1.PodDisruptionBudget(proxy, metadata=self._meta(proxy, {"app": proxy}), spec={
            "maxUnavailable": 1, "selector": {"matchLabels": {"app": proxy}}}, opts=opts)

    def _env(self) -> list[dict]:
        args = self._args
        env = [{"name": "MCP_SESSION_MODE", "value": args.session_mode.value},
               {"name": "MCP_SESSION_HEADER", "value": args.session_header}]
        if self._store is not None:
            variable = "MCP_SESSION_STORE_URL" if args.store_role is StoreRole.SESSION_STORE else "MCP_NOTIFICATION_BROKER_URL"
            env.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "url"}}})
            env.append({"name": "MCP_REDIS_CA_CERT", "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "ca.crt"}}})
        for key, value in sorted(args.env.items()):
            env.append({"name": key, "value": pulumi.Output.secret(value) if key in self._secret_env else value})
        if self._synced is not None:
            env += secret_env_module.kubernetes_env(self._args.secret_env, self._synced)
        return env

    def _deployment_spec(self) -> dict:
        args, name = self._args, self._name
        probe = {"httpGet": {"path": args.health_path, "port": "http"}, "periodSeconds": 5}
        # The sidecar must drain as long as the app, or it cuts the streams the app still serves.
        proxy_config = json.dumps({"terminationDrainDuration": f"{args.grace_seconds}s"})
        return {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"proxy.istio.io/config": proxy_config}},
                "spec": {
                    "serviceAccountName": name,
                    "terminationGracePeriodSeconds": args.grace_seconds,
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": name}},
                    }],
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "mcp",
                        "image": args.image,
                        "ports": [{"name": "http", "containerPort": args.port}],
                        "env": self._env(),
                        "resources": {"requests": {"cpu": args.cpu, "memory": args.memory},
                                      "limits": {"memory": args.memory}},
                        "startupProbe": {**probe, "failureThreshold": 24},
                        "readinessProbe": probe,
                        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
                        # Let endpoints and proxies stop sending new requests before shutdown starts;
                        # with a session drain, keep serving pinned sessions that long.
                        "lifecycle": {"preStop": {"sleep": {"seconds": args.session_drain or 10}}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                    }, *self._drain_signal()],
                    **self._drain_signal_volume(),
                },
            },
        }

    def _drain_signal(self) -> list[dict]:
        """With a session drain, the container the pinning proxy checks the pod through; it has no
        ``preStop`` so it stops when termination starts (:mod:`mcp_affinity.pinning_proxy`)."""
        if not self._args.session_drain:
            return []
        return [{
            "name": pinning_proxy.DRAIN_SIGNAL_CONTAINER, "image": pinning_proxy.PROXY_IMAGE,
            "args": ["-f", pinning_proxy.CONFIG_PATH],
            "ports": [{"name": "drain-signal", "containerPort": pinning_proxy.DRAIN_SIGNAL_PORT}],
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}},
            "volumeMounts": [{"name": "drain-signal", "mountPath": "/usr/local/etc/haproxy", "readOnly": True}],
            # The image's user is named (haproxy, uid 99): runAsNonRoot needs the number.
            "securityContext": {"runAsUser": 99, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
        }]

    def _drain_signal_volume(self) -> dict:
        if not self._args.session_drain:
            return {}
        return {"volumes": [{"name": "drain-signal", "configMap": {"name": f"{self._name}-drain-signal"}}]}

    def traffic_policy(self) -> dict:
        """The DestinationRule's traffic policy for this service's session mode."""
        if self._args.session_mode is SessionMode.SHARED_SESSIONS:
            return {"loadBalancer": {"consistentHash": {"httpHeaderName": self._args.session_header}}}
        return {"loadBalancer": {"simple": "LEAST_REQUEST"}}

    def _routing(self) -> None:
        args, name, opts = self._args, self._name, self._k8s
        k8s.apiextensions.CustomResource(
            f"{name}-policy", api_version="networking.istio.io/v1", kind="DestinationRule", metadata=self._meta(),
            spec={"host": self.service_host, "trafficPolicy": self.traffic_policy()}, opts=opts)
        http = [self._method_route(key, route) for key, route in
                sorted(args.method_routes.items(), key=lambda kv: (kv[1].name is None, kv[0]))]
        # No timeout: leaving it out means none (a "0s" timeout is refused by Istio's CRD), so the
        # mesh never cuts a server-sent-event stream.
        http.append({"name": "default", "route": [{"destination": {"host": self.service_host, "port": {"number": 80}}}]})
        k8s.apiextensions.CustomResource(
            f"{name}-route", api_version="networking.istio.io/v1", kind="VirtualService", metadata=self._meta(),
            spec={"hosts": sorted(args.hosts), "gateways": [self._mesh.gateway], "http": http}, opts=opts)
        if self._ambient:
            k8s.apiextensions.CustomResource(
                f"{name}-waypoint", api_version="gateway.networking.k8s.io/v1", kind="Gateway",
                metadata={**self._meta(WAYPOINT), "labels": {"istio.io/waypoint-for": "service"}},
                spec={"gatewayClassName": "istio-waypoint",
                      "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}]},
                opts=opts)

    @property
    def _ambient(self) -> bool:
        return self._mesh.data_plane == "ambient"

    def _method_route(self, key: str, route: MethodRouteArgs) -> dict:
        headers = {METHOD_HEADER.lower(): {"exact": route.method}}
        if route.name is not None:
            headers[NAME_HEADER.lower()] = {"exact": route.name}
        # Only requests that claim MCP 2026-07-28 or later (RE2, full match); older ones stay on the
        # default route, and the gateway's Cloud Armor policy refuses them (security_policy).
        headers[VERSION_HEADER.lower()] = {"regex": MODERN_VERSIONS}
        return {"name": key, "match": [{"headers": headers}],
                "route": [{"destination": {"host": self._route_hosts[route.service], "port": {"number": 80}}}]}

    def _isolation(self) -> None:
        """Only the ingress gateway may call this service (with learned pinning: the gateway may call
        the proxy, only the proxy may call the pods): strict mTLS, identity checks, NetworkPolicies."""
        args, name, opts = self._args, self._name, self._k8s
        k8s.apiextensions.CustomResource(
            f"{name}-mtls", api_version="security.istio.io/v1", kind="PeerAuthentication", metadata=self._meta(),
            spec={"mtls": {"mode": "STRICT"}}, opts=opts)
        gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self._mesh.gateway_namespace}}}
        if args.pinning == "learned":
            proxy = self.proxy_name
            proxy_principal = f"cluster.local/ns/{self._namespace}/sa/{proxy}"
            self._admit(f"{name}-from-proxy", name, [proxy_principal], [{"podSelector": {"matchLabels": {"app": proxy}}}],
                        args.port)
            if args.session_drain:  # the proxy's health checks reach each pod's drain signal
                self._admit(f"{name}-drain-check", name, [proxy_principal],
                            [{"podSelector": {"matchLabels": {"app": proxy}}}], pinning_proxy.DRAIN_SIGNAL_PORT)
            self._admit(f"{proxy}-from-gateway", proxy, [self._mesh.gateway_principal], [gateway], pinning_proxy.SERVE_PORT)
            self._admit(f"{proxy}-peers", proxy, [proxy_principal], [{"podSelector": {"matchLabels": {"app": proxy}}}],
                        pinning_proxy.PEER_PORT, policy_name=f"{proxy}-peers")
            if args.pinning_replicas > 1:  # a replica hands unpinned requests to the others
                self._admit(f"{proxy}-handover", proxy, [proxy_principal],
                            [{"podSelector": {"matchLabels": {"app": proxy}}}], pinning_proxy.SERVE_PORT)
        elif self._ambient:
            self._ambient_isolation(gateway)
        else:
            self._admit(f"{name}-from-gateway", name, [self._mesh.gateway_principal], [gateway], args.port)
        self._token_checks()

    def _ambient_isolation(self, gateway: dict) -> None:
        """Ambient mode: the gateway reaches the waypoint, only the waypoint reaches the pods; both
        over HBONE (15008), the pods' probes from Istio's rewritten source."""
        args, name = self._args, self._name
        waypoint_principal = f"cluster.local/ns/{self._namespace}/sa/{WAYPOINT}"
        waypoint_pods = {"podSelector": {"matchLabels": {WAYPOINT_LABEL: WAYPOINT}}}
        self._admit(f"{name}-from-waypoint", name, [waypoint_principal], [waypoint_pods], args.port)
        k8s.apiextensions.CustomResource(
            f"{name}-waypoint-from-gateway", api_version="security.istio.io/v1", kind="AuthorizationPolicy",
            metadata=self._meta(f"{WAYPOINT}-from-gateway"),
            spec={**self._waypoint_target, "action": "ALLOW",
                  "rules": [{"from": [{"source": {"principals": [self._mesh.gateway_principal]}}]}]},
            opts=self._k8s)
        k8s.networking.v1.NetworkPolicy(f"{name}-waypoint-from-gateway", metadata=self._meta(f"{WAYPOINT}-from-gateway"), spec={
            "podSelector": {"matchLabels": {WAYPOINT_LABEL: WAYPOINT}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [gateway], "ports": [{"protocol": "TCP", "port": HBONE_PORT}]}]}, opts=self._k8s)

    @property
    def _waypoint_target(self) -> dict:
        """``targetRefs`` binding a policy to the namespace's waypoint (its enforcer in ambient mode)."""
        return {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": WAYPOINT}]}

    def _token_checks(self) -> None:
        """The callers' token checks (:mod:`mcp_affinity.mesh_access`) on the pods the gateway calls, or
        in ambient mode on the namespace's waypoint, which every request passes."""
        args, name = self._args, self._name
        learned = args.pinning == "learned"
        front, port = (self.proxy_name, pinning_proxy.SERVE_PORT) if learned else (name, args.port)
        ambient = self._ambient
        target = self._waypoint_target if ambient else {"selector": {"matchLabels": {"app": front}}}
        for kind, suffix, spec in token_policies(args.hosts, args.access, None if ambient else port):
            k8s.apiextensions.CustomResource(
                f"{name}-{suffix}", api_version="security.istio.io/v1", kind=kind, metadata=self._meta(f"{name}-{suffix}"),
                spec={**target, **spec}, opts=self._k8s)

    def _admit(self, resource: str, app: str, principals: list[str], peers: list[dict], port: int,
               policy_name: Optional[str] = None) -> None:
        """Pods labelled ``app`` accept ``port`` only from ``principals`` (mTLS) and ``peers`` (NetworkPolicy;
        in ambient mode on HBONE's port, and the kubelet's probes from Istio's rewritten source)."""
        selector = {"matchLabels": {"app": app}}
        meta = self._meta(policy_name or resource)
        k8s.apiextensions.CustomResource(
            resource, api_version="security.istio.io/v1", kind="AuthorizationPolicy", metadata=meta,
            spec={"selector": selector, "action": "ALLOW", "rules": [{
                "from": [{"source": {"principals": principals}}], "to": [{"operation": {"ports": [str(port)]}}]}]},
            opts=self._k8s)
        ingress = [{"from": peers, "ports": [{"protocol": "TCP", "port": port}]}]
        if self._ambient:
            ingress = [{"from": peers, "ports": [{"protocol": "TCP", "port": HBONE_PORT}]},
                       {"from": [{"ipBlock": {"cidr": PROBE_SNAT_CIDR}}], "ports": [{"protocol": "TCP", "port": port}]}]
        k8s.networking.v1.NetworkPolicy(resource, metadata=meta, spec={
            "podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress}, opts=self._k8s)


def check_context(name: str, args: McpMeshServiceArgs, mesh: MeshRef) -> None:
    """Raise one ``pydantic.ValidationError`` (title ``McpMeshService``) for every setting of
    service ``name`` that ``mesh`` cannot keep: :func:`gateway_faults`, ``pinning: learned`` in
    ambient mode (the proxy calls pods past the waypoint), and a ``maxReplicas`` whose pods the
    proxy's DNS answer cannot carry (:func:`proxy_faults`)."""
    faults = Faults("McpMeshService")
    for key, message in (gateway_faults(name, args, mesh.gateway_access) + data_plane_faults(args, mesh.data_plane)
                         + proxy_faults(name, args)):
        faults.add(key, message)
    faults.raise_if_any()


def data_plane_faults(args: McpMeshServiceArgs, data_plane: str) -> list[tuple[str, str]]:
    """``(key, message)`` for settings the mesh's ``data_plane`` cannot keep safe: ``pinning: learned``
    in ambient mode, whose proxy calls the pods by their addresses, past the waypoint."""
    if data_plane == "ambient" and args.pinning == "learned":
        return [("pinning", "pinning: learned is refused in ambient mode: the proxy calls the pods by their "
                            "addresses, past the waypoint that holds the access checks; use dataPlane sidecar")]
    return []


def proxy_faults(name: str, args: McpMeshServiceArgs) -> list[tuple[str, str]]:
    """``(key, message)`` when the pinning proxy of service ``name`` could not get all the pods it
    must route to in one DNS answer (:func:`mcp_affinity.pinning_proxy.dns_fault`)."""
    if args.pinning != "learned":
        return []
    host = f"{name}-pods.{args.prefix}-{name}.svc.cluster.local"
    fault = pinning_proxy.dns_fault(host, args.max_replicas, bool(args.session_drain))
    return [("maxReplicas", fault)] if fault else []


def service_host(prefix: str, name: str) -> str:
    """The in-cluster host of mesh service ``name``: ``NAME.PREFIX-NAME.svc.cluster.local``."""
    return f"{name}.{prefix}-{name}.svc.cluster.local"
