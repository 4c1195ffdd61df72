"""McpMeshService: one MCP server on GKE, each session hashed to one pod by the mesh.

On GKE every replica is a pod the proxy can address, so header affinity is real: an Istio
``DestinationRule`` with ``trafficPolicy.loadBalancer.consistentHash.httpHeaderName`` sends every
request carrying the same ``Mcp-Session-Id`` to the same pod
(https://istio.io/latest/docs/reference/config/networking/destination-rule/#LoadBalancerSettings-ConsistentHashLB).
A request without the header (the first ``initialize``, and every request of the stateless
2026-07-28 protocol) yields no hash key, and Envoy's ring hash then picks a random host, so those
spread over all pods (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto#config-route-v3-routeaction-hashpolicy).
Keys move when pods come and go, so the session store still backs every session.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
from pydantic import Field

from . import affinity
from ._args import Args, HeaderName, Memory, Port, Prefix, StrInput, UrlPath
from .mesh import MeshRef
from .session_store import SessionStoreRef

SECRET_NAME = "mcp-session-store"


class McpMeshServiceArgs(Args):
    """Arguments of :class:`McpMeshService`.

    - ``mesh``: ``Mesh.ref()`` (gateway and data plane); ``provider``: ``GkeCluster.provider``.
    - ``workload_pool``: ``PROJECT.svc.id.goog`` from :class:`GkeCluster`.
    - ``session_store`` + ``store_url``: the store reference and its URL (a Pulumi secret, e.g.
      ``SessionStore.connection_url``); the URL reaches pods as Kubernetes Secret
      ``mcp-session-store`` (key ``url``, ``ca.crt``), the Google service account may also read the
      Secret Manager secret.
    - ``hosts``: host names the gateway routes to this service.
    - ``min_replicas`` / ``max_replicas``: HorizontalPodAutoscaler bounds (CPU target 70 %).
    - ``drain_seconds``: graceful termination: the pod and its sidecar keep serving open streams
      this long (default 3600 s, as long as a Cloud Run request may last).
    """

    prefix: Prefix
    project: str
    image: str
    provider: Any
    mesh: MeshRef
    workload_pool: str
    session_store: SessionStoreRef
    store_url: StrInput
    hosts: list[str] = Field(min_length=1)
    session_header: HeaderName = affinity.DEFAULT_SESSION_HEADER
    port: Port = 8080
    cpu: str = "500m"
    memory: Memory = "512Mi"
    min_replicas: int = Field(default=2, ge=1, le=1000)
    max_replicas: int = Field(default=10, ge=1, le=1000)
    drain_seconds: int = Field(default=3600, ge=30, le=86400)
    health_path: UrlPath = "/healthz"
    env: dict[str, str] = Field(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is larger than max_replicas")


class McpMeshService(pulumi.ComponentResource):
    """Namespace, identity, Deployment, Service, HPA, PDB, DestinationRule and VirtualService.

    Outputs: ``namespace``, ``service_host`` (``NAME.NAMESPACE.svc.cluster.local``, the
    DestinationRule's host) and ``google_service_account``.
    """

    def __init__(self, name: str, args: McpMeshServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:McpMeshService", name, None, opts)
        self._name, self._args = name, args
        self.namespace = f"mcp-{name}"
        self.service_host = f"{name}.{self.namespace}.svc.cluster.local"
        self._k8s = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=args.mesh.ready)
        account = self._identity()
        self.google_service_account = account.email
        namespace = k8s.core.v1.Namespace(name, metadata={"name": self.namespace, "labels": self._mesh_labels()},
                                          opts=self._k8s)
        self._k8s = pulumi.ResourceOptions.merge(self._k8s, pulumi.ResourceOptions(depends_on=[namespace]))
        self._objects(account)
        self.register_outputs({"namespace": self.namespace, "service_host": self.service_host,
                               "google_service_account": self.google_service_account})

    def _mesh_labels(self) -> dict[str, str]:
        if self._args.mesh.data_plane == "ambient":
            return {"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"}
        return {"istio-injection": "enabled"}

    def _identity(self) -> gcp.serviceaccount.Account:
        """A Google service account bound to the Kubernetes one by Workload Identity."""
        args, child = self._args, pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(self._name, account_id=f"{args.prefix}-{self._name}-gke"[:30],
                                             project=args.project, display_name=f"GKE MCP service {self._name}",
                                             opts=child)
        gcp.serviceaccount.IAMMember(
            f"{self._name}-workload-identity", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{args.workload_pool}[{self.namespace}/{self._name}]", opts=child,
        )
        gcp.secretmanager.SecretIamMember(
            f"{self._name}-store-url", secret_id=args.session_store.secret_id,
            role="roles/secretmanager.secretAccessor", member=account.member, opts=child,
        )
        return account

    def _meta(self, name: Optional[str] = None) -> dict:
        return {"name": name or self._name, "namespace": self.namespace, "labels": {"app": self._name}}

    def _objects(self, account: gcp.serviceaccount.Account) -> None:
        args, name, opts = self._args, self._name, self._k8s
        k8s.core.v1.ServiceAccount(name, metadata={**self._meta(), "annotations": {
            "iam.gke.io/gcp-service-account": account.email}}, opts=opts)
        k8s.core.v1.Secret(name, metadata=self._meta(SECRET_NAME), type="Opaque", string_data={
            "url": pulumi.Output.secret(args.store_url), "ca.crt": args.session_store.ca_certificate}, opts=opts)
        k8s.apps.v1.Deployment(name, metadata=self._meta(), spec=self._deployment_spec(), opts=opts)
        k8s.core.v1.Service(name, metadata=self._meta(), spec={
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": args.port, "appProtocol": "http"}],
        }, opts=opts)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(name, metadata=self._meta(), spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": args.min_replicas, "maxReplicas": args.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                          "target": {"type": "Utilization", "averageUtilization": 70}}}],
        }, opts=opts)
        k8s.policy.v1.PodDisruptionBudget(name, metadata=self._meta(), spec={
            "maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}}, opts=opts)
        self._istio_objects()

    def _deployment_spec(self) -> dict:
        args, name = self._args, self._name
        probe = {"httpGet": {"path": args.health_path, "port": "http"}, "periodSeconds": 5}
        env = [
            {"name": "MCP_SESSION_HEADER", "value": args.session_header},
            {"name": "MCP_SESSION_STORE_URL", "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "url"}}},
            {"name": "MCP_SESSION_STORE_CA_CERT", "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "ca.crt"}}},
            *({"name": k, "value": v} for k, v in sorted(args.env.items())),
        ]
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
                        "env": env,
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

    def _istio_objects(self) -> None:
        args, name, opts = self._args, self._name, self._k8s
        k8s.apiextensions.CustomResource(
            f"{name}-hash", api_version="networking.istio.io/v1", kind="DestinationRule", metadata=self._meta(),
            spec={"host": self.service_host, "trafficPolicy": {"loadBalancer": {
                "consistentHash": {"httpHeaderName": args.session_header}}}},
            opts=opts,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-route", api_version="networking.istio.io/v1", kind="VirtualService", metadata=self._meta(),
            spec={
                "hosts": sorted(args.hosts),
                "gateways": [args.mesh.gateway],
                # timeout 0s: no route timeout, so a server-sent-event stream is never cut by the mesh.
                "http": [{"route": [{"destination": {"host": self.service_host, "port": {"number": 80}}}],
                          "timeout": "0s"}],
            },
            opts=opts,
        )
        if args.mesh.data_plane == "ambient":
            k8s.apiextensions.CustomResource(
                f"{name}-waypoint", api_version="gateway.networking.k8s.io/v1", kind="Gateway",
                metadata={**self._meta("waypoint"), "labels": {"istio.io/waypoint-for": "service"}},
                spec={"gatewayClassName": "istio-waypoint",
                      "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
                opts=opts,
            )
