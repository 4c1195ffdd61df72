"""CloudRunMcpService: one MCP server on Cloud Run in several regions, behind one backend service.

Per region: a Cloud Run v2 service reachable only from internal traffic and Cloud Load Balancing
(``INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER``, https://cloud.google.com/run/docs/securing/ingress),
with Direct VPC egress (https://cloud.google.com/run/docs/configuring/networking-best-practices)
and a serverless NEG. One global ``EXTERNAL_MANAGED`` backend service holds every region's NEG.
It has no health check and no ``timeout_sec``: Google rejects both for serverless NEGs; the
request timeout is the Cloud Run ``template.timeout``, at most 3600 s
(https://cloud.google.com/run/docs/configuring/request-timeout), the longest a stream lives.

A serverless NEG addresses a service, never an instance, and Google documents load-balancer
session affinity as unsupported there (https://cloud.google.com/run/docs/configuring/session-affinity).
So on Cloud Run the only pinning is Cloud Run's own session-affinity cookie, for clients that keep
cookies: a server with in-memory sessions runs on one instance unless the user acknowledges that.
"""

from __future__ import annotations

from typing import AbstractSet, Annotated, Literal, Optional, Sequence

import pulumi
import pulumi_gcp as gcp
from pydantic import Field, Strict, model_validator

from . import access_bindings, affinity, sources
from .access import AccessArgs, AccessMode
from .affinity import HeaderName, SessionMode, StoreRole
from .limits import CpuCount, Env, Memory, check_cloud_run_resources
from .naming import CLOUD_RUN_SERVICE, RFC1035, SERVICE_ACCOUNT, PhysicalName, physical_name
from .network import NetworkRef
from .security_policy import EdgeArgs, EdgePolicy, EdgePolicyArgs, EdgeScopeArgs
from .session_store import SessionStoreRef
from .settings import Bool, Int, Port, Region, Settings, UrlPath

# What CI changes when it deploys a new image itself (gcloud run deploy and friends).
CI_OWNED_PATHS = ["template.containers[0].image", "template.revision", "template.annotations", "client", "clientVersion"]

Acknowledgement = Literal["cookie-clients-only", "lb-hash-unsupported", "unauthenticated"]
"""What a user may acknowledge: in-memory sessions pinned only for clients that keep cookies;
a load-balancer hash that Google documents as unsupported on serverless NEGs; a ``public`` service
(required by the stack in staging and prod)."""


class CloudRunMcpServiceArgs(Settings):
    """Settings of :class:`CloudRunMcpService`.

    - ``image``: container image.
    - ``image_managed_by_ci``: Pulumi sets the image once and then ignores image and revision
      drift, so CI can deploy new images.
    - ``session_mode``: what the server does with sessions (see "Which mode for my server?").
      ``in-memory-sessions`` is pinned only by Cloud Run's session-affinity cookie: more than one
      instance (``max_instances`` > 1 or several regions) needs ``acknowledge: [cookie-clients-only]``.
    - ``notification_broker``: a ``stateless`` server fans ``subscriptions/listen`` notifications out
      through the Redis store (``MCP_NOTIFICATION_BROKER_URL``).
    - ``session_header``: the session header (default ``Mcp-Session-Id``), passed as ``MCP_SESSION_HEADER``.
    - ``load_balancer_hash``: hash the header at the backend service (``shared-sessions`` only); Google
      documents it as unsupported on serverless NEGs, so it needs ``acknowledge: [lb-hash-unsupported]``.
    - ``acknowledge``: what you accept knowingly: ``cookie-clients-only`` (in-memory sessions on more
      than one instance survive only for clients that keep cookies), ``lb-hash-unsupported``.
    - ``regions``: where it runs; unset runs it in every region of the network.
    - ``port``: the container's port (Cloud Run sends requests there).
    - ``timeout_seconds``: request timeout, 1 to 3600 s (default 3600, for streams).
    - ``concurrency``: requests per instance, 1 to 1000 (https://cloud.google.com/run/docs/about-concurrency).
    - ``min_instances`` / ``max_instances``: per region.
    - ``cpu``: vCPUs per instance: 1, 2, 4, 6, 8, or 0.08 to under 1 with concurrency 1.
    - ``memory``: per instance, in Mi or Gi, within Cloud Run's range for the CPU.
    - ``startup_probe_path``: HTTP path for the startup probe; None probes the TCP port.
    - ``env``: extra environment variables (not Cloud Run's reserved names nor this package's ``MCP_*``).
    - ``access``: who may call (:class:`~mcp_affinity.access.AccessArgs`: ``iap``, ``iam``, ``oauth``,
      ``public``); required. The invoker check is on for ``iap`` and ``iam``; ingress admits only the
      load balancer and the VPC in every mode.
    - ``edge``: the Cloud Armor policy the package makes (:class:`~mcp_affinity.security_policy.EdgeArgs`).
    - ``log_sample_rate``: share of requests the backend service logs (0.0 to 1.0).
    - ``security_policy``: your own Cloud Armor policy id for the backend service instead of ``edge``.
    """

    image: str = Field(min_length=1, max_length=1024, pattern=r"^[^\s]+$")
    session_mode: SessionMode
    notification_broker: Bool = False
    session_header: HeaderName = affinity.DEFAULT_SESSION_HEADER
    load_balancer_hash: Bool = False
    acknowledge: list[Acknowledgement] = Field(default_factory=list)
    regions: Optional[list[Region]] = Field(default=None, min_length=1)
    port: Port = 8080
    timeout_seconds: Int = Field(default=3600, ge=1, le=3600)
    concurrency: Int = Field(default=80, ge=1, le=1000)
    min_instances: Int = Field(default=0, ge=0, le=1000)
    max_instances: Int = Field(default=10, ge=1, le=1000)
    cpu: CpuCount = "1"
    memory: Memory = "512Mi"
    startup_probe_path: Optional[UrlPath] = None
    env: Env = Field(default_factory=dict)
    image_managed_by_ci: Bool = False
    access: AccessArgs = Field(description="Who may call the service: iap, iam, oauth or public.")
    edge: EdgeArgs = Field(default_factory=EdgeArgs, description=(
        "The Cloud Armor policy the package makes: Origin allowlist, rate limits, WAF."))
    log_sample_rate: Annotated[float, Strict()] = Field(default=1.0, ge=0.0, le=1.0)
    security_policy: Optional[str] = Field(default=None, min_length=1, description=(
        "Your own Cloud Armor policy id for the backend service, instead of the one edge describes."))

    @model_validator(mode="after")
    def _rules(self) -> "CloudRunMcpServiceArgs":
        if self.min_instances > self.max_instances:
            raise ValueError("minInstances is larger than maxInstances")
        if self.regions is not None and len(set(self.regions)) != len(self.regions):
            raise ValueError("regions lists a region twice")
        check_cloud_run_resources(self.cpu, self.memory, self.concurrency)
        affinity.store_role(self.session_mode, self.notification_broker)
        self._check_pinning()
        if self.security_policy is not None and "edge" in self.model_fields_set:
            raise ValueError("edge describes the policy the package makes; with securityPolicy (your own) leave edge out")
        return self

    def _check_pinning(self) -> None:
        ack = set(self.acknowledge)
        if self.load_balancer_hash:
            if self.session_mode is SessionMode.IN_MEMORY_SESSIONS:
                raise ValueError(f"loadBalancerHash cannot keep in-memory sessions: {affinity.HASHING_LOSES_SESSIONS}")
            if self.session_mode is SessionMode.STATELESS:
                raise ValueError("loadBalancerHash: a stateless server has no session to hash")
            if "lb-hash-unsupported" not in ack:
                raise ValueError(
                    "loadBalancerHash on Cloud Run: Google documents load-balancer session affinity as not "
                    f"supported on serverless NEGs ({sources.CLOUD_RUN_SESSION_AFFINITY}) and consistent hashing "
                    f"only for INTERNAL_MANAGED / INTERNAL_SELF_MANAGED backend services ({sources.BACKEND_SERVICE_API}); "
                    "to set it anyway add acknowledge: [lb-hash-unsupported]")
        several = self.max_instances > 1 or self.regions is None or len(self.regions) > 1
        if self.session_mode is SessionMode.IN_MEMORY_SESSIONS and several and "cookie-clients-only" not in ack:
            raise ValueError(
                "in-memory sessions on Cloud Run are pinned only by Cloud Run's session-affinity cookie, which "
                "works only for clients that keep cookies (the official Python SDK does, mcp-remote since "
                f"August 2026, many clients do not; {sources.CLOUD_RUN_SESSION_AFFINITY}). Run one instance "
                "(maxInstances: 1 and one region in regions), or add acknowledge: [cookie-clients-only]")

    @property
    def store_role(self) -> StoreRole:
        """What the Redis store is to this service (none, session store or notification broker)."""
        return affinity.store_role(self.session_mode, self.notification_broker)

    def names(self, name: str, regions: list[str]) -> dict[str, PhysicalName]:
        """Physical names: service account, Cloud Run service, a NEG per region, backend service."""
        p = self.prefix
        names = {
            "account": physical_name(SERVICE_ACCOUNT, "gcp:serviceaccount/account:Account", p, name),
            "service": physical_name(CLOUD_RUN_SERVICE, "gcp:cloudrunv2/service:Service", p, name),
            "backend": physical_name(RFC1035, "gcp:compute/backendService:BackendService", p, name),
        }
        if self.security_policy is None:
            names["policy"] = physical_name(RFC1035, "gcp:compute/securityPolicy:SecurityPolicy", p, name, "armor")
        for region in regions:
            names[f"neg-{region}"] = physical_name(
                RFC1035, "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup", p, name, region)
        return names


class CloudRunMcpService(pulumi.ComponentResource):
    """An MCP server (streamable HTTP) on Cloud Run in each region, behind one backend service.

    Context: ``network`` (subnets for Direct VPC egress), ``session_store`` (needed when the
    service's store role is not ``none``), ``secret_env`` (names in ``env`` whose values become
    Pulumi secrets, e.g. from a ``secure:`` stack value), ``hosts`` (the hosts the load balancer
    serves it on: default allowed origins, and custom audiences for ``iam``).

    Outputs: ``service_urls`` (region -> run.app URL, unreachable from the internet because of
    ingress), ``service_account_email``, ``neg_ids`` (region -> serverless NEG id) and
    ``backend_service_id`` for :class:`~mcp_affinity.load_balancer.GlobalHttpsLoadBalancer`.

    Raises ``ValueError`` when a region is not in the network, a needed store is missing, or
    ``access: iam`` has no hosts.
    """

    service_urls: dict[str, pulumi.Output[str]]
    neg_ids: dict[str, pulumi.Output[str]]
    service_account_email: pulumi.Output[str]
    backend_service_id: pulumi.Output[str]

    def __init__(self, name: str, args: CloudRunMcpServiceArgs, *, network: NetworkRef,
                 session_store: Optional[SessionStoreRef] = None, secret_env: AbstractSet[str] = frozenset(),
                 hosts: Sequence[str] = (), opts: Optional[pulumi.ResourceOptions] = None):
        regions = sorted(args.regions or network.regions)
        missing = set(regions) - set(network.regions)
        if missing:
            raise ValueError(f"regions {sorted(missing)} have no subnet in the network ({network.regions})")
        if args.store_role is not StoreRole.NONE and session_store is None:
            raise ValueError(f"session mode {args.session_mode.value} with store role {args.store_role.value} needs a session_store")
        if args.access.mode is AccessMode.IAM and not hosts:
            raise ValueError("access iam needs the hosts the load balancer serves the service on (custom audiences)")
        super().__init__("mcp-affinity:index:CloudRunMcpService", name, None, opts)
        self._args, self._names = args, args.names(name, regions)
        self._store = session_store if args.store_role is not StoreRole.NONE else None
        self._secret_env, self._hosts = secret_env, sorted(hosts)
        account = gcp.serviceaccount.Account(
            name, account_id=self._names["account"].value, project=args.project,
            display_name=f"Cloud Run MCP service {name}", opts=pulumi.ResourceOptions(parent=self),
        )
        self.service_account_email = account.email
        grants = []
        if self._store is not None:
            grants.append(gcp.secretmanager.SecretIamMember(
                f"{name}-store-url", secret_id=self._store.secret_id, role="roles/secretmanager.secretAccessor",
                member=account.member, opts=pulumi.ResourceOptions(parent=self),
            ))
        services = {region: self._service(name, region, network, account.email, grants) for region in regions}
        negs = {region: self._neg(name, region, service) for region, service in services.items()}
        self.service_urls = {region: service.uri for region, service in services.items()}
        self.neg_ids = {region: neg.id for region, neg in negs.items()}
        backend = self._backend(name, negs)
        access_bindings.grant(self, name, args.access, project=args.project, services=services, backend=backend)
        self.backend_service_id = backend.id
        self.register_outputs({
            "service_urls": self.service_urls,
            "neg_ids": self.neg_ids,
            "service_account_email": self.service_account_email,
            "backend_service_id": self.backend_service_id,
        })

    def _service(self, name, region, network: NetworkRef, email, grants) -> gcp.cloudrunv2.Service:
        args = self._args
        return gcp.cloudrunv2.Service(
            f"{name}-{region}",
            name=self._names["service"].value,
            location=region,
            project=args.project,
            ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            invoker_iam_disabled=not access_bindings.invoker_check(args.access),
            custom_audiences=access_bindings.custom_audiences(args.access, self._hosts) or None,
            deletion_protection=args.deletion_protection,
            labels={**args.labels, **args.access.marks(args.acknowledge)},
            template={
                "service_account": email,
                "timeout": f"{args.timeout_seconds}s",
                "max_instance_request_concurrency": args.concurrency,
                # Cloud Run's cookie affinity: the only pinning it has; nothing to pin when stateless.
                "session_affinity": args.session_mode is not SessionMode.STATELESS,
                "scaling": {"min_instance_count": args.min_instances, "max_instance_count": args.max_instances},
                "vpc_access": {
                    "network_interfaces": [{"network": network.network_id, "subnetwork": network.subnet_ids[region]}],
                    "egress": "PRIVATE_RANGES_ONLY",
                },
                "containers": [self._container()],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=grants,
                                        ignore_changes=CI_OWNED_PATHS if args.image_managed_by_ci else []),
        )

    def _container(self) -> dict:
        args = self._args
        envs: list[dict] = [{"name": "MCP_SESSION_MODE", "value": args.session_mode.value},
                            {"name": "MCP_SESSION_HEADER", "value": args.session_header}]
        if self._store is not None:
            variable = ("MCP_SESSION_STORE_URL" if args.store_role is StoreRole.SESSION_STORE
                        else "MCP_NOTIFICATION_BROKER_URL")
            envs.append({"name": variable, "value_source": {"secret_key_ref": {
                "secret": self._store.secret_id, "version": self._store.secret_version}}})
            envs.append({"name": "MCP_REDIS_CA_CERT", "value": self._store.ca_certificate})
        for key, value in sorted(args.env.items()):
            envs.append({"name": key, "value": pulumi.Output.secret(value) if key in self._secret_env else value})
        probe = ({"http_get": {"path": args.startup_probe_path, "port": args.port}}
                 if args.startup_probe_path else {"tcp_socket": {"port": args.port}})
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
            name=self._names[f"neg-{region}"].value,
            project=self._args.project,
            region=region,
            network_endpoint_type="SERVERLESS",
            cloud_run={"service": service.name},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _backend(self, name, negs) -> gcp.compute.BackendService:
        args = self._args
        hashing = {}
        if args.load_balancer_hash:
            affinity.warn_header_hash_on_serverless(name, self)
            hashing = affinity.backend_hash_settings(args.session_header)
        # No health_checks and no timeout_sec: both are rejected for serverless NEG backends.
        return gcp.compute.BackendService(
            name,
            name=self._names["backend"].value,
            project=args.project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTPS",
            backends=[{"group": neg.id} for _, neg in sorted(negs.items())],
            log_config={"enable": True, "sample_rate": args.log_sample_rate},
            security_policy=args.security_policy or self._edge_policy(name),
            **access_bindings.backend_iap(args.access),
            **hashing,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _edge_policy(self, name: str) -> pulumi.Output[str]:
        """The package's Cloud Armor policy for this service's backend (its only scope)."""
        args = self._args
        scope = EdgeScopeArgs(edge=args.edge, hosts=self._hosts, oauth_metadata=args.access.mode is AccessMode.OAUTH)
        policy = EdgePolicy(name, EdgePolicyArgs(prefix=args.prefix, project=args.project, labels=args.labels,
                                                 scopes={name: scope}), opts=pulumi.ResourceOptions(parent=self))
        return policy.policy_id
