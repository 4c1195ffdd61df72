"""MeshGatewayBackend: a global backend service in front of the mesh's ingress gateway.

GKE creates standalone zonal NEGs for the gateway Service (``cloud.google.com/neg`` annotation,
https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg); this backend service holds
them so :class:`GlobalHttpsLoadBalancer` can serve GKE and Cloud Run on one domain. No
load-balancer affinity: the gateway pods are interchangeable, and the gateway's Envoy applies
the session-header hash. ``timeout_sec`` is 3600 s so the load balancer does not cut a
server-sent-event stream (for NEG backends it is the response timeout,
https://cloud.google.com/load-balancing/docs/backend-service#timeout-setting).
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import Field

from ._args import Args, Prefix, StrInput, TimeoutSeconds

# Google front ends and health checkers (https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges).
GOOGLE_LB_RANGES = ["35.191.0.0/16", "130.211.0.0/22"]
GATEWAY_PORTS = ["80", "8080", "15021"]


class MeshGatewayBackendArgs(Args):
    """Arguments: the project, the VPC, the gateway's NEG name, its zones and a stream timeout."""

    prefix: Prefix
    project: str
    network_id: StrInput
    neg_name: str
    zones: list[str] = Field(min_length=1)
    timeout_seconds: TimeoutSeconds = 3600
    max_rate_per_endpoint: int = Field(default=1000, ge=1)


class MeshGatewayBackend(pulumi.ComponentResource):
    """Health check, firewall rule for Google's load-balancer ranges and the backend service.

    Output: ``backend_service_id``.
    """

    backend_service_id: pulumi.Output[str]

    def __init__(self, name: str, args: MeshGatewayBackendArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:MeshGatewayBackend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gcp.compute.Firewall(
            name, name=f"{args.prefix}-allow-lb-to-gateway", project=args.project, network=args.network_id,
            direction="INGRESS", source_ranges=GOOGLE_LB_RANGES,
            allows=[{"protocol": "tcp", "ports": GATEWAY_PORTS}], opts=child,
        )
        check = gcp.compute.HealthCheck(
            name, name=f"{args.prefix}-gateway-ready", project=args.project,
            # Istio's gateway answers readiness on its status port, not on the serving port.
            http_health_check={"port": 15021, "request_path": "/healthz/ready"}, opts=child,
        )
        backend = gcp.compute.BackendService(
            name,
            name=f"{args.prefix}-gateway-backend",
            project=args.project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTP",
            timeout_sec=args.timeout_seconds,
            health_checks=check.id,
            log_config={"enable": True, "sample_rate": 1.0},
            backends=[{
                "group": f"projects/{args.project}/zones/{zone}/networkEndpointGroups/{args.neg_name}",
                "balancing_mode": "RATE",
                "max_rate_per_endpoint": args.max_rate_per_endpoint,
            } for zone in sorted(args.zones)],
            opts=child,
        )
        self.backend_service_id = backend.id
        self.register_outputs({"backend_service_id": self.backend_service_id})
