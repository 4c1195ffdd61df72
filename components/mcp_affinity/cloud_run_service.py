"""CloudRunMcpService: one MCP server on Cloud Run in several regions, behind one backend service.

Per region: a Cloud Run v2 service reachable only from internal traffic and Cloud Load Balancing
(``INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER``, https://cloud.google.com/run/docs/securing/ingress),
with Direct VPC egress to the session store
(https://cloud.google.com/run/docs/configuring/networking-best-practices) and a serverless NEG.
One global ``EXTERNAL_MANAGED`` backend service holds every region's NEG. It has no health check
and no ``timeout_sec``: Google rejects both for serverless NEGs; the request timeout is the Cloud
Run ``template.timeout``, at most 3600 s (https://cloud.google.com/run/docs/configuring/request-timeout),
long enough for a server-sent-event stream.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import Field

from . import affinity
from ._args import Args, StrInput, Concurrency, HeaderName, Instances, Memory, Mode, Port, Prefix, Region, TimeoutSeconds, UrlPath
from .affinity import AffinityMode
from .session_store import SessionStoreRef

# What CI changes when it deploys a new image itself (gcloud run deploy and friends).
CI_OWNED_PATHS = ["template.containers[0].image", "template.revision", "template.annotations", "client", "clientVersion"]


class CloudRunMcpServiceArgs(Args):
    """Arguments of :class:`CloudRunMcpService`.

    - ``regions``: region -> subnet id used for Direct VPC egress.
    - ``network_id``: the VPC of those subnets.
    - ``image``: container image; with ``image_managed_by_ci`` Pulumi sets it once and then
      ignores image and revision drift, so CI can deploy new images.
    - ``affinity_mode``: see :class:`~mcp_affinity.affinity.AffinityMode`; ``session_header`` is
      the header hashed by ``lb-header-hash`` (default ``Mcp-Session-Id``).
    - ``session_store``: a :class:`SessionStoreRef` (``SessionStore.ref()``); its URL reaches the container from Secret
      Manager as ``MCP_SESSION_STORE_URL``, its CA certificate as ``MCP_SESSION_STORE_CA_CERT``.
    - ``timeout_seconds``: request timeout, 1 to 3600 s (default 3600, for streams).
    - ``concurrency``: requests per instance, 1 to 1000 (Cloud Run default 80,
      https://cloud.google.com/run/docs/about-concurrency).
    - ``min_instances`` / ``max_instances``: per region.
    - ``cpu`` (vCPU, e.g. ``"1"``) and ``memory`` (e.g. ``"512Mi"``) per instance.
    - ``startup_probe_path``: HTTP path for the startup probe; None probes the TCP port.
    - ``public_invoker``: let the load balancer's unauthenticated requests in (Cloud Run IAM
      invoker check off); ingress still admits only the load balancer and the VPC.
    - ``log_sample_rate``: share of requests logged by the backend service (0.0 to 1.0).
    """

    prefix: Prefix
    regions: dict[Region, StrInput] = Field(min_length=1)
    network_id: StrInput
    image: str
    project: Optional[str] = None
    port: Port = 8080
    affinity_mode: Mode = AffinityMode.SHARED_STORE
    session_header: HeaderName = affinity.DEFAULT_SESSION_HEADER
    session_store: Optional[SessionStoreRef] = None
    timeout_seconds: TimeoutSeconds = 3600
    concurrency: Concurrency = 80
    min_instances: Instances = 0
    max_instances: Instances = 10
    cpu: str = "1"
    memory: Memory = "512Mi"
    startup_probe_path: Optional[UrlPath] = None
    env: dict[str, str] = Field(default_factory=dict)
    image_managed_by_ci: bool = False
    public_invoker: bool = True
    deletion_protection: bool = False
    log_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    security_policy: Optional[StrInput] = None
    labels: dict[str, str] = Field(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        if self.min_instances > self.max_instances:
            raise ValueError("min_instances is larger than max_instances")
        if self.affinity_mode is AffinityMode.SHARED_STORE and self.session_store is None:
            raise ValueError("affinity mode shared-store needs a session_store")


class CloudRunMcpService(pulumi.ComponentResource):
    """An MCP server (streamable HTTP) on Cloud Run in each region, behind one backend service.

    Outputs: ``service_urls`` (region -> run.app URL, unreachable from the internet because of
    ingress), ``service_account_email``, ``neg_ids`` (region -> serverless NEG id) and
    ``backend_service_id`` for :class:`~mcp_affinity.load_balancer.GlobalHttpsLoadBalancer`.

    With ``affinity_mode="lb-header-hash"`` it logs a warning (``pulumi.log.warn``) at every
    preview and update: https://cloud.google.com/run/docs/configuring/session-affinity.
    """

    service_urls: dict[str, pulumi.Output[str]]
    neg_ids: dict[str, pulumi.Output[str]]
    service_account_email: pulumi.Output[str]
    backend_service_id: pulumi.Output[str]

    def __init__(self, name: str, args: CloudRunMcpServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:CloudRunMcpService", name, None, opts)
        self._args = args
        self._full_name = f"{args.prefix}-{name}"
        if len(self._full_name) > 30:
            # Service account ids are 6 to 30 characters; the other names derive from the same.
            raise ValueError(f"'{self._full_name}' (prefix-name) is longer than 30 characters")
        account = gcp.serviceaccount.Account(
            name,
            account_id=self._full_name,
            project=args.project,
            display_name=f"Cloud Run MCP service {name}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.service_account_email = account.email
        grants = []
        if args.session_store is not None:
            grants.append(gcp.secretmanager.SecretIamMember(
                f"{name}-store-url",
                secret_id=args.session_store.secret_id,
                role="roles/secretmanager.secretAccessor",
                member=account.member,
                opts=pulumi.ResourceOptions(parent=self),
            ))
        services = {
            region: self._service(name, region, subnet, account.email, grants)
            for region, subnet in sorted(args.regions.items())
        }
        negs = {region: self._neg(name, region, service) for region, service in services.items()}
        self.service_urls = {region: service.uri for region, service in services.items()}
        self.neg_ids = {region: neg.id for region, neg in negs.items()}
        backend = self._backend(name, negs)
        self.backend_service_id = backend.id
        self.register_outputs({
            "service_urls": self.service_urls,
            "neg_ids": self.neg_ids,
            "service_account_email": self.service_account_email,
            "backend_service_id": self.backend_service_id,
        })

    def _service(self, name, region, subnet, email, grants) -> gcp.cloudrunv2.Service:
        args = self._args
        ignore = CI_OWNED_PATHS if args.image_managed_by_ci else []
        return gcp.cloudrunv2.Service(
            f"{name}-{region}",
            name=self._full_name,
            location=region,
            project=args.project,
            ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            invoker_iam_disabled=args.public_invoker,
            deletion_protection=args.deletion_protection,
            labels=args.labels,
            template={
                "service_account": email,
                "timeout": f"{args.timeout_seconds}s",
                "max_instance_request_concurrency": args.concurrency,
                # Cloud Run's own cookie affinity: best effort, helps clients that keep cookies.
                "session_affinity": True,
                "scaling": {"min_instance_count": args.min_instances, "max_instance_count": args.max_instances},
                "vpc_access": {
                    "network_interfaces": [{"network": args.network_id, "subnetwork": subnet}],
                    "egress": "PRIVATE_RANGES_ONLY",
                },
                "containers": [self._container()],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=grants, ignore_changes=ignore),
        )

    def _container(self) -> dict:
        args = self._args
        envs: list[dict] = [{"name": "MCP_SESSION_HEADER", "value": args.session_header}]
        store = args.session_store
        if store is not None:
            envs.append({
                "name": "MCP_SESSION_STORE_URL",
                "value_source": {"secret_key_ref": {"secret": store.secret_id, "version": store.secret_version}},
            })
            envs.append({"name": "MCP_SESSION_STORE_CA_CERT", "value": store.ca_certificate})
        envs += [{"name": k, "value": v} for k, v in sorted(args.env.items())]
        probe = (
            {"http_get": {"path": args.startup_probe_path, "port": args.port}}
            if args.startup_probe_path else {"tcp_socket": {"port": args.port}}
        )
        return {
            "image": args.image,
            "ports": {"container_port": args.port},
            "resources": {"limits": {"cpu": args.cpu, "memory": args.memory}},
            "envs": envs,
            "startup_probe": {**probe, "period_seconds": 5, "timeout_seconds": 3, "failure_threshold": 24},
        }

    def _neg(self, name, region, service) -> gcp.compute.RegionNetworkEndpointGroup:
        return gcp.compute.RegionNetworkEndpointGroup(
            f"{name}-{region}",
            name=f"{self._full_name}-{region}",
            project=self._args.project,
            region=region,
            network_endpoint_type="SERVERLESS",
            cloud_run={"service": service.name},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _backend(self, name, negs) -> gcp.compute.BackendService:
        args = self._args
        if args.affinity_mode is AffinityMode.LB_HEADER_HASH:
            affinity.warn_header_hash_on_serverless(name, self)
        # No health_checks and no timeout_sec: both are rejected for serverless NEG backends.
        return gcp.compute.BackendService(
            name,
            name=f"{self._full_name}-backend",
            project=args.project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTPS",
            backends=[{"group": neg.id} for _, neg in sorted(negs.items())],
            log_config={"enable": True, "sample_rate": args.log_sample_rate},
            security_policy=args.security_policy,
            **affinity.backend_affinity_settings(args.affinity_mode, args.session_header),
            opts=pulumi.ResourceOptions(parent=self),
        )
