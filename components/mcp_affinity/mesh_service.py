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

Requests of MCP 2026-07-28 carry ``Mcp-Method`` / ``Mcp-Name``; ``method_routes`` send some of them
to another mesh service with ``VirtualService`` ``http[].match[].headers``.
"""

from __future__ import annotations

import json
from typing import AbstractSet, Literal, Mapping, Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import Field, model_validator

from . import affinity
from .access import AccessArgs
from .affinity import METHOD_HEADER, NAME_HEADER, HeaderName, SessionMode, StoreRole
from .gke_cluster import GkeCluster
from .limits import Env, Memory, Quantity
from .load_balancer import Domain, MethodRouteArgs
from .mesh import Mesh
from .mesh_access import check_mesh_access, token_policies
from .naming import SERVICE_ACCOUNT, PhysicalName, physical_name
from . import pinning_proxy
from .security_policy import EdgeArgs
from .session_store import SessionStoreRef
from .settings import Bool, Int, Name, Port, Settings, UrlPath

SECRET_NAME = "mcp-redis"


class McpMeshServiceArgs(Settings):
    """Settings of :class:`McpMeshService`.

    - ``image``: container image.
    - ``port``: the container's port.
    - ``cpu`` / ``memory``: requests per pod (Kubernetes quantities; memory is also the limit).
    - ``health_path``: HTTP path of the startup, readiness and liveness probes.
    - ``env``: extra environment variables.
    - ``session_mode``: what the server does with sessions (see "Which mode for my server?").
    - ``session_header``: the session header, passed as ``MCP_SESSION_HEADER`` and hashed for ``shared-sessions``.
    - ``pinning``: for ``in-memory-sessions``: ``learned`` (a proxy learns each session's pod from
      the response; every client) or ``cookie`` (Istio persistent sessions; clients that keep cookies).
    - ``pinning_replicas``: proxy replicas for ``learned`` (1 to 9; they share the pins).
    - ``cookie_name``: the persistent-session cookie.
    - ``acknowledge``: ``cookie-clients-only`` accepts that ``pinning: cookie`` keeps sessions only
      for clients that keep cookies (measured: clients without a cookie jar lose them);
      ``unauthenticated`` a ``public`` service (required by the stack in staging and prod).
    - ``access``: who may call (:class:`~mcp_affinity.access.AccessArgs`); required. On GKE ``iap`` sits
      on the gateway's backend service (shared by every mesh service), ``iam`` and ``oauth`` with
      ``jwt`` are checked in the mesh in front of the server (:mod:`mcp_affinity.mesh_access`).
    - ``edge``: this service's rules in the gateway's Cloud Armor policy (scoped to its hosts).
    - ``notification_broker``: a ``stateless`` server fans notifications out through Redis.
    - ``hosts``: host names the gateway routes to this service.
    - ``method_routes``: key -> :class:`~mcp_affinity.load_balancer.MethodRouteArgs`: MCP methods
      sent to another mesh service (``service`` names it).
    - ``min_replicas`` / ``max_replicas``: HorizontalPodAutoscaler bounds (CPU target 70 %).
    - ``drain_seconds``: graceful termination: the pod and its sidecar keep serving open streams
      this long (30 to 3600 s, default 3600, as long as a Cloud Run request may last).
    """

    image: str = Field(min_length=1, max_length=1024, pattern=r"^[^\s]+$")
    session_mode: SessionMode
    pinning: Optional[Literal["learned", "cookie"]] = None
    pinning_replicas: Int = Field(default=2, ge=1, le=9)
    cookie_name: str = Field(default=affinity.DEFAULT_COOKIE, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    acknowledge: list[Literal["cookie-clients-only", "unauthenticated"]] = Field(default_factory=list)
    access: AccessArgs = Field(description="Who may call the service: iap, iam, oauth or public.")
    edge: EdgeArgs = Field(default_factory=EdgeArgs, description=(
        "This service's rules in the gateway's Cloud Armor policy, scoped to its hosts."))
    notification_broker: Bool = False
    session_header: HeaderName = affinity.DEFAULT_SESSION_HEADER
    hosts: list[Domain] = Field(min_length=1)
    method_routes: dict[Name, MethodRouteArgs] = Field(default_factory=dict)
    port: Port = 8080
    cpu: Quantity = "500m"
    memory: Memory = "512Mi"
    min_replicas: Int = Field(default=2, ge=1, le=1000)
    max_replicas: Int = Field(default=10, ge=1, le=1000)
    drain_seconds: Int = Field(default=3600, ge=30, le=3600)
    health_path: UrlPath = "/healthz"
    env: Env = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> "McpMeshServiceArgs":
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas is larger than maxReplicas")
        if self.port in (15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090):
            raise ValueError(f"port {self.port} is used by the Istio sidecar")
        affinity.store_role(self.session_mode, self.notification_broker)
        check_mesh_access(self.access)
        if self.session_mode is SessionMode.IN_MEMORY_SESSIONS and self.pinning is None:
            raise ValueError(
                "in-memory sessions must reach the pod that created them: set pinning: learned (every "
                "client) or cookie (clients that keep cookies). Hashing the header does not do it: "
                f"{affinity.HASHING_LOSES_SESSIONS}")
        if self.pinning == "cookie" and "cookie-clients-only" not in self.acknowledge:
            raise ValueError("pinning: cookie keeps sessions only for clients that keep cookies (the official Python "
                             "SDK does, mcp-remote since August 2026, many clients do not): use pinning: learned, "
                             "or add acknowledge: [cookie-clients-only]")
        if self.pinning is not None and self.session_mode is not SessionMode.IN_MEMORY_SESSIONS:
            raise ValueError("pinning goes with sessionMode in-memory-sessions; other modes need none")
        return self

    @property
    def store_role(self) -> StoreRole:
        return affinity.store_role(self.session_mode, self.notification_broker)

    def names(self, name: str) -> dict[str, PhysicalName]:
        """Physical names: the Google service account (Kubernetes names live in namespace ``mcp-NAME``)."""
        return {"account": physical_name(SERVICE_ACCOUNT, "gcp:serviceaccount/account:Account", self.prefix, name, "gke")}


class McpMeshService(pulumi.ComponentResource):
    """Namespace, identity, Deployment, Service, HPA, PDB, routing and isolation for one MCP server.

    Context: ``cluster`` (provider, node pool, workload pool), ``mesh`` (gateway, data plane,
    control plane to wait for), ``session_store`` (needed when the store role is not ``none``),
    ``route_hosts`` (mesh service name -> its in-cluster host, for ``method_routes``) and
    ``secret_env`` (names in ``env`` whose values become Pulumi secrets).

    Outputs: ``namespace``, ``service_host`` (``NAME.NAMESPACE.svc.cluster.local``) and
    ``google_service_account``.
    """

    def __init__(self, name: str, args: McpMeshServiceArgs, *, cluster: GkeCluster, mesh: Mesh,
                 session_store: Optional[SessionStoreRef] = None,
                 route_hosts: Optional[Mapping[str, str]] = None, secret_env: AbstractSet[str] = frozenset(),
                 opts: Optional[pulumi.ResourceOptions] = None):
        if args.store_role is not StoreRole.NONE and session_store is None:
            raise ValueError(f"session mode {args.session_mode.value} needs a session_store")
        missing = {m.service for m in args.method_routes.values()} - set(route_hosts or {})
        if missing:
            raise ValueError(f"method routes name unknown mesh services {sorted(missing)}")
        if args.pinning == "cookie" and not mesh.persistent_session_filter:
            raise ValueError("pinning: cookie needs the mesh's persistentSessionFilter")
        names = args.names(name)
        super().__init__("mcp-affinity:index:McpMeshService", name, None, opts)
        self._name, self._args, self._mesh = name, args, mesh
        self._store = session_store if args.store_role is not StoreRole.NONE else None
        self._route_hosts, self._secret_env = dict(route_hosts or {}), secret_env
        self.namespace = service_namespace(name)
        self.service_host = service_host(name)
        account = self._identity(names, cluster)
        self.google_service_account = account.email
        base = pulumi.ResourceOptions(parent=self, provider=cluster.kubernetes_provider,
                                      depends_on=[cluster.node_pool, *mesh.ready])
        namespace = k8s.core.v1.Namespace(name, metadata={"name": self.namespace, "labels": self._mesh_labels()},
                                          opts=base)
        self._k8s = pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(depends_on=[namespace]))
        self._objects(account)
        self.register_outputs({"namespace": self.namespace, "service_host": self.service_host,
                               "google_service_account": self.google_service_account})

    def _mesh_labels(self) -> dict[str, str]:
        if self._mesh.data_plane == "ambient":
            return {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"}
        return {"istio-injection": "enabled"}

    def _identity(self, names, cluster: GkeCluster) -> gcp.serviceaccount.Account:
        """A Google service account bound to the Kubernetes one by Workload Identity; the member
        names the pool from the cluster's output, so the binding waits for the cluster."""
        args, child = self._args, pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(self._name, account_id=names["account"].value, project=args.project,
                                             display_name=f"GKE MCP service {self._name}", opts=child)
        gcp.serviceaccount.IAMMember(
            f"{self._name}-workload-identity", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
            member=pulumi.Output.format("serviceAccount:{0}[{1}/{2}]", cluster.workload_pool, self.namespace, self._name),
            opts=child,
        )
        return account

    def _meta(self, name: Optional[str] = None, labels: Optional[dict] = None) -> dict:
        return {"name": name or self._name, "namespace": self.namespace, "labels": {"app": self._name, **(labels or {})}}

    def _objects(self, account: gcp.serviceaccount.Account) -> None:
        args, name, opts = self._args, self._name, self._k8s
        k8s.core.v1.ServiceAccount(name, metadata={**self._meta(), "annotations": {
            "iam.gke.io/gcp-service-account": account.email}}, opts=opts)
        if self._store is not None:
            k8s.core.v1.Secret(name, metadata=self._meta(SECRET_NAME), type="Opaque", string_data={
                "url": pulumi.Output.secret(self._store.connection_url), "ca.crt": self._store.ca_certificate},
                opts=opts)
        k8s.apps.v1.Deployment(name, metadata=self._meta(labels=args.access.marks(args.acknowledge)),
                               spec=self._deployment_spec(), opts=opts)
        service_labels = {"istio.io/persistent-session": args.cookie_name} if args.pinning == "cookie" else {}
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
        self.haproxy_config = pinning_proxy.haproxy_config(
            name=proxy, namespace=self.namespace, pods_service=pods, peers_service=peers,
            replicas=args.pinning_replicas, header=args.session_header, port=args.port,
            max_servers=args.max_replicas, timeout_seconds=args.drain_seconds)
        k8s.core.v1.ConfigMap(proxy, metadata=self._meta(proxy), data={"haproxy.cfg": self.haproxy_config}, opts=opts)
        k8s.core.v1.Service(pods, metadata=self._meta(pods), spec={
            "clusterIP": "None", "selector": {"app": self._name}, "publishNotReadyAddresses": False,
            "ports": [{"name": "http", "port": args.port, "targetPort": args.port, "appProtocol": "http"}]}, opts=opts)
        k8s.core.v1.Service(peers, metadata=self._meta(peers, {"app": proxy}), spec={
            "clusterIP": "None", "selector": {"app": proxy}, "publishNotReadyAddresses": True,
            "ports": [{"name": "tcp-peers", "port": pinning_proxy.PEER_PORT, "appProtocol": "tcp"}]}, opts=opts)
        k8s.core.v1.ServiceAccount(proxy, metadata=self._meta(proxy, {"app": proxy}), opts=opts)
        probe = {"httpGet": {"path": "/healthz", "port": pinning_proxy.HEALTH_PORT}, "periodSeconds": 5}
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
                        "args": ["-f", "/usr/local/etc/haproxy/haproxy.cfg"],
                        "ports": [{"name": "http", "containerPort": pinning_proxy.SERVE_PORT},
                                  {"name": "peers", "containerPort": pinning_proxy.PEER_PORT},
                                  {"name": "health", "containerPort": pinning_proxy.HEALTH_PORT}],
                        "readinessProbe": probe, "livenessProbe": {**probe, "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
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
        return env

    def _deployment_spec(self) -> dict:
        args, name = self._args, self._name
        probe = {"httpGet": {"path": args.health_path, "port": "http"}, "periodSeconds": 5}
        # The sidecar must drain as long as the app, or it cuts the streams the app still serves.
        proxy_config = json.dumps({"terminationDrainDuration": f"{args.drain_seconds}s"})
        return {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"proxy.istio.io/config": proxy_config}},
                "spec": {
                    "serviceAccountName": name,
                    "terminationGracePeriodSeconds": args.drain_seconds,
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
                        # Let endpoints and proxies stop sending new requests before shutdown starts.
                        "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        }

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
        if self._mesh.data_plane == "ambient":
            k8s.apiextensions.CustomResource(
                f"{name}-waypoint", api_version="gateway.networking.k8s.io/v1", kind="Gateway",
                metadata={**self._meta("waypoint"), "labels": {"istio.io/waypoint-for": "service"}},
                spec={"gatewayClassName": "istio-waypoint",
                      "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
                opts=opts)

    def _method_route(self, key: str, route: MethodRouteArgs) -> dict:
        headers = {METHOD_HEADER.lower(): {"exact": route.method}}
        if route.name is not None:
            headers[NAME_HEADER.lower()] = {"exact": route.name}
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
            proxy_principal = f"cluster.local/ns/{self.namespace}/sa/{proxy}"
            self._admit(f"{name}-from-proxy", name, [proxy_principal], [{"podSelector": {"matchLabels": {"app": proxy}}}],
                        args.port)
            self._admit(f"{proxy}-from-gateway", proxy, [self._mesh.gateway_principal], [gateway], pinning_proxy.SERVE_PORT)
            self._admit(f"{proxy}-peers", proxy, [proxy_principal], [{"podSelector": {"matchLabels": {"app": proxy}}}],
                        pinning_proxy.PEER_PORT, policy_name=f"{proxy}-peers")
        else:
            self._admit(f"{name}-from-gateway", name, [self._mesh.gateway_principal], [gateway], args.port)
        self._token_checks()

    def _token_checks(self) -> None:
        """The callers' token checks (:mod:`mcp_affinity.mesh_access`) on the pods the gateway calls, or
        in ambient mode on the Service (its waypoint enforces them)."""
        args, name = self._args, self._name
        learned = args.pinning == "learned"
        front, port = (self.proxy_name, pinning_proxy.SERVE_PORT) if learned else (name, args.port)
        ambient = self._mesh.data_plane == "ambient"
        target = ({"targetRefs": [{"kind": "Service", "group": "", "name": name}]} if ambient
                  else {"selector": {"matchLabels": {"app": front}}})
        for kind, suffix, spec in token_policies(args.hosts, args.access, None if ambient else port):
            k8s.apiextensions.CustomResource(
                f"{name}-{suffix}", api_version="security.istio.io/v1", kind=kind, metadata=self._meta(f"{name}-{suffix}"),
                spec={**target, **spec}, opts=self._k8s)

    def _admit(self, resource: str, app: str, principals: list[str], peers: list[dict], port: int,
               policy_name: Optional[str] = None) -> None:
        """Pods labelled ``app`` accept ``port`` only from ``principals`` (mTLS) and ``peers`` (NetworkPolicy)."""
        selector = {"matchLabels": {"app": app}}
        meta = self._meta(policy_name or resource)
        k8s.apiextensions.CustomResource(
            resource, api_version="security.istio.io/v1", kind="AuthorizationPolicy", metadata=meta,
            spec={"selector": selector, "action": "ALLOW", "rules": [{
                "from": [{"source": {"principals": principals}}], "to": [{"operation": {"ports": [str(port)]}}]}]},
            opts=self._k8s)
        k8s.networking.v1.NetworkPolicy(resource, metadata=meta, spec={
            "podSelector": selector, "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": port}]}]}, opts=self._k8s)


def service_namespace(name: str) -> str:
    """The namespace of mesh service ``name``."""
    return f"mcp-{name}"


def service_host(name: str) -> str:
    """The in-cluster host of mesh service ``name``: ``NAME.mcp-NAME.svc.cluster.local``."""
    return f"{name}.{service_namespace(name)}.svc.cluster.local"
