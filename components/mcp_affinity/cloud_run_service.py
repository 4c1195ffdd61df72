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
So on Cloud Run the instance-level pinning is Cloud Run's own session-affinity cookie, for clients
that keep cookies: a server with in-memory sessions runs on one instance unless the user
acknowledges that, or runs as session shards (``pinning: shards``, :mod:`mcp_affinity.cloud_run_shards`):
one-instance services the load balancer pins by the session header, for every client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AbstractSet, Annotated, Literal, Mapping, Optional, Sequence

import pulumi
import pulumi_gcp as gcp
from pydantic import AwareDatetime, Field, Strict, model_validator

from . import access_bindings, affinity, cloud_run_shards, sources
from . import secret_env as secret_env_module
from .access import AccessArgs, AccessMode
from .affinity import HeaderName, SessionMode, StoreRole
from .limits import CpuCount, Env, Memory, check_cloud_run_resources
from .secret_env import SecretEnv
from .naming import CLOUD_RUN_SERVICE, RFC1035, SECRET, SERVICE_ACCOUNT, PhysicalName, physical_name
from .network import NetworkRef
from .security_policy import EdgeArgs, EdgePolicy, EdgePolicyArgs, EdgeScopeArgs, SecurityPolicyId
from .session_store import SessionStoreRef
from .settings import Bool, Faults, Int, Model, Port, Region, Settings, StrInput, UrlPath, takes_settings
from .wire import BACKEND, CLOUD_RUN, GOOGLE_SERVICE_ACCOUNT, NEG, SECRET_MANAGER_SECRET, SECURITY_POLICY

# What CI changes when it deploys a new image itself (gcloud run deploy and friends).
CI_OWNED_PATHS = ["template.containers[0].image", "template.revision", "template.annotations", "client", "clientVersion"]

Acknowledgement = Literal["cookie-clients-only", "lb-hash-unsupported", "unauthenticated", "access-widened"]
"""What a user may acknowledge: in-memory sessions pinned only for clients that keep cookies;
a load-balancer hash that Google documents as unsupported on serverless NEGs; a ``public`` service
(required by the stack in staging and prod); a production deploy that widens who may call
(:mod:`mcp_affinity.impact`)."""


DEFAULT_URI_REASON = "mcp-affinity/default-uri-reason"
"""The Cloud Run service annotation that records why its run.app URL is left on."""


class DefaultUriArgs(Model):
    """Whether the ``run.app`` URL answers. Off by default: ingress ``internal-and-cloud-load-balancing``
    still admits requests from the project's VPC on that URL, past the load balancer's IAP and Cloud
    Armor; ``default_uri_disabled`` turns it off (https://cloud.google.com/run/docs/securing/ingress)."""

    enabled: Bool = Field(
        default=False,
        description="leave the run.app URL on (reachable from the VPC, past IAP and Cloud Armor); needs `reason`.")
    reason: Optional[Annotated[str, Strict(), Field(min_length=10, max_length=500)]] = Field(
        default=None,
        description="why the run.app URL stays on (10 to 500 characters), recorded on the Cloud Run service as the "
                    f"annotation `{DEFAULT_URI_REASON}`.")

    @model_validator(mode="after")
    def _rules(self) -> "DefaultUriArgs":
        faults = Faults("DefaultUriArgs")
        if self.enabled and self.reason is None:
            faults.add("reason", "enabled: true leaves the run.app URL open to the VPC, past IAP and Cloud Armor; "
                                 "write the reason (10 characters or more)")
        if self.reason is not None and not self.enabled:
            faults.add("reason", "reason goes with enabled: true only")
        faults.raise_if_any()
        return self


class CloudRunMcpServiceArgs(Settings):
    """Settings of :class:`CloudRunMcpService`."""

    image: str = Field(min_length=1, max_length=1024, pattern=r"^[^\s]+$", description="the container image.")
    session_mode: SessionMode = Field(
        description="what the server does with sessions (see \"Which mode for my server?\"). `in-memory-sessions` is "
                    "pinned only by Cloud Run's session-affinity cookie: more than one instance (`maxInstances` > 1"
                    " or several regions) needs `acknowledge: [cookie-clients-only]`.")
    notification_broker: Bool = Field(
        default=False,
        description="a `stateless` server fans `subscriptions/listen` notifications out through the Redis store "
                    "(`MCP_NOTIFICATION_BROKER_URL`).")
    session_header: HeaderName = Field(
        default=affinity.DEFAULT_SESSION_HEADER,
        description="the session header (default `Mcp-Session-Id`), passed as `MCP_SESSION_HEADER`.")
    load_balancer_hash: Bool = Field(
        default=False,
        description="hash the header at the backend service (`shared-sessions` only); Google documents it as "
                    "unsupported on serverless NEGs, so it needs `acknowledge: [lb-hash-unsupported]`.")
    acknowledge: list[Acknowledgement] = Field(
        default_factory=list,
        description="what you accept knowingly: `cookie-clients-only` (in-memory sessions on more than one instance "
                    "survive only for clients that keep cookies), `lb-hash-unsupported` (a load-balancer hash Google "
                    "documents as unsupported on serverless NEGs), `unauthenticated` (a `public` service; required by "
                    "the stack in staging and prod), `access-widened` (a production deploy that widens who may "
                    "call: remove it after that deploy).")
    regions: Optional[list[Region]] = Field(
        default=None, min_length=1,
        description="where it runs; unset runs it in every region of the network.")
    port: Port = Field(default=8080, description="the container's port (Cloud Run sends requests there).")
    timeout_seconds: Int = Field(
        default=3600, ge=1, le=3600,
        description="request timeout, 1 to 3600 s (default 3600, for streams).")
    concurrency: Int = Field(
        default=80, ge=1, le=1000,
        description="requests per instance, 1 to 1000 (https://cloud.google.com/run/docs/about-concurrency).")
    min_instances: Int = Field(default=0, ge=0, le=1000, description="instances kept warm, per region (0 to 1000).")
    max_instances: Int = Field(
        default=10, ge=1, le=1000,
        description="most instances per region (1 to 1000); Cloud Run may exceed it briefly.")
    cpu: CpuCount = Field(
        default="1",
        description="vCPUs per instance: 1, 2, 4, 6, 8, or 0.08 to under 1 with concurrency 1.")
    memory: Memory = Field(
        default="512Mi",
        description="per instance, in Mi or Gi, within Cloud Run's range for the CPU.")
    startup_probe_path: Optional[UrlPath] = Field(
        default=None,
        description="HTTP path for the startup probe; None probes the TCP port.")
    env: Env = Field(
        default_factory=dict,
        description="extra environment variables (not Cloud Run's reserved names nor this package's `MCP_*`).")
    secret_env: SecretEnv = Field(
        default_factory=dict,
        description="environment variables read from Secret Manager: `NAME: {secret: ID, version: N}`; the "
                    "service's account gets `roles/secretmanager.secretAccessor` on each secret. A plain `env` value "
                    "that detect-secrets flags is refused.")
    default_uri: DefaultUriArgs = Field(
        default_factory=DefaultUriArgs,
        description="the run.app URL is off (`defaultUriDisabled`): only the load balancer reaches the service. "
                    "`{enabled: true, reason: ...}` leaves it on.")
    image_managed_by_ci: Bool = Field(
        default=False,
        description="Pulumi sets the image once and then ignores image and revision drift, so CI can deploy new "
                    "images.")
    access: AccessArgs = Field(
        description="who may call the service: `iap`, `iam`, `oauth` or `public` (see \"Who can call my server?\"); "
                    "required. The invoker check is on for `iap` and `iam`; ingress admits only the load balancer "
                    "and the VPC in every mode, and the run.app URL is off (`defaultUri`).")
    edge: EdgeArgs = Field(
        default_factory=EdgeArgs,
        description="the Cloud Armor policy the package makes for the backend service(s): Origin allowlist, rate "
                    "limits, WAF.")
    log_sample_rate: Annotated[float, Strict()] = Field(
        default=1.0, ge=0.0, le=1.0,
        description="share of requests the backend service logs (0.0 to 1.0).")
    security_policy: Optional[SecurityPolicyId] = Field(
        default=None,
        description="your own Cloud Armor security policy for the backend service(s) "
                    "(`projects/P/global/securityPolicies/NAME` or its name) instead of the one `edge` describes; "
                    "unset: the package makes one.")
    # Session shards (cloud_run_shards): fields and rules live there.
    pinning: Optional[Literal["shards"]] = Field(
        default=None,
        description="`shards` runs `in-memory-sessions` as session shards, pinned by the load balancer on the session "
                    "header for every client; unset leaves in-memory sessions to Cloud Run's cookie.")
    shards: Optional[Int] = Field(
        default=None, ge=1, le=cloud_run_shards.MAX_SHARDS,
        description="with `pinning: shards`, one-instance Cloud Run services per region; all of them always run "
                    "(cost: regions x shards instances); capacity is regions x shards x concurrency.")
    shard_prefix_by: cloud_run_shards.ShardPrefixBy = Field(
        default="proxy",
        description="who puts the shard key before session ids: `proxy` (an HAProxy ingress container in each "
                    "shard) or `server` (the server must start every id it mints with `MCP_SESSION_ID_PREFIX`; one "
                    "that ignores it loses sessions to the weighted default route).")
    session_drain_seconds: Optional[Int] = Field(
        default=None, ge=0,
        description="with `pinning: shards`: after a deploy, sessions created before it keep reaching the "
                    "revision that holds them this long while new sessions start on the new one (0 to "
                    f"{cloud_run_shards.MAX_DRAIN_SECONDS} s; default {cloud_run_shards.DEFAULT_DRAIN_SECONDS}, the SDKs' "
                    "idle-session timeout, or 0 with `imageManagedByCi`; see \"Sessions across deploys\"). 0: a deploy "
                    "ends every session, as before. Refused for other modes.")
    generations: dict[Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,3})$")], AwareDatetime] = Field(
        default_factory=dict,
        description="with a drain: generation number -> when it was deployed (UTC, e.g. `2026-12-06T20:00:00Z`); "
                    "the highest takes new sessions. A deploy adds an entry with the new image; a generation's "
                    "route, NEG, backend and tag go at the first `pulumi up` after the next one's time + "
                    "`sessionDrainSeconds`.")

    @model_validator(mode="after")
    def _rules(self) -> "CloudRunMcpServiceArgs":
        faults = Faults("CloudRunMcpServiceArgs")
        if self.min_instances > self.max_instances:
            faults.add("minInstances", f"{self.min_instances} is larger than maxInstances {self.max_instances}")
        if self.regions is not None and len(set(self.regions)) != len(self.regions):
            faults.add("regions", "regions lists a region twice")
        faults.check("cpu", lambda: check_cloud_run_resources(self.cpu, self.memory, self.concurrency))
        for variable in sorted(set(self.env) & set(self.secret_env)):
            faults.add(("secretEnv", variable), f"{variable} is also in env: set it in one of them")
        faults.check("notificationBroker", lambda: affinity.store_role(self.session_mode, self.notification_broker))
        faults.check("pinning", lambda: cloud_run_shards.check_settings(self))
        for key, message in cloud_run_shards.check_drain(self):
            faults.add(key, message)
        if self.security_policy is not None and "edge" in self.model_fields_set:
            faults.add("edge", "edge describes the policy the package makes; with securityPolicy (your own) leave edge out")
        if self.pinning is None:
            self._check_pinning(faults)
        faults.raise_if_any()
        return self

    def _check_pinning(self, faults: Faults) -> None:
        ack = set(self.acknowledge)
        if self.load_balancer_hash:
            if self.session_mode is SessionMode.IN_MEMORY_SESSIONS:
                faults.add("loadBalancerHash", f"loadBalancerHash cannot keep in-memory sessions: {affinity.HASHING_LOSES_SESSIONS}")
            elif self.session_mode is SessionMode.STATELESS:
                faults.add("loadBalancerHash", "loadBalancerHash: a stateless server has no session to hash")
            elif "lb-hash-unsupported" not in ack:
                faults.add("loadBalancerHash",
                           "loadBalancerHash on Cloud Run: Google documents load-balancer session affinity as not "
                           f"supported on serverless NEGs ({sources.CLOUD_RUN_SESSION_AFFINITY}) and consistent hashing "
                           f"only for INTERNAL_MANAGED / INTERNAL_SELF_MANAGED backend services ({sources.BACKEND_SERVICE_API}); "
                           "to set it anyway add acknowledge: [lb-hash-unsupported]")
        several = self.max_instances > 1 or self.regions is None or len(self.regions) > 1
        if self.session_mode is SessionMode.IN_MEMORY_SESSIONS and several and "cookie-clients-only" not in ack:
            faults.add("sessionMode",
                       "in-memory sessions on Cloud Run are pinned only by Cloud Run's session-affinity cookie, which "
                       "works only for clients that keep cookies (the official Python SDK does, mcp-remote since "
                       f"August 2026, many clients do not; {sources.CLOUD_RUN_SESSION_AFFINITY}). Shard the sessions "
                       "(pinning: shards, shards: N: one-instance services the load balancer picks by session id, "
                       "any client), run one instance (maxInstances: 1 and one region in regions), or add "
                       "acknowledge: [cookie-clients-only]")

    @property
    def store_role(self) -> StoreRole:
        """What the Redis store is to this service (none, session store or notification broker)."""
        return affinity.store_role(self.session_mode, self.notification_broker)

    @property
    def session_drain(self) -> int:
        """``sessionDrainSeconds`` as planned: the default is 1800 s for shards whose revisions the
        stack makes, else 0."""
        if self.session_drain_seconds is not None:
            return self.session_drain_seconds
        shards = self.pinning == "shards" and not self.image_managed_by_ci
        return cloud_run_shards.DEFAULT_DRAIN_SECONDS if shards else 0

    def names(self, name: str, regions: list[str]) -> dict[str, PhysicalName]:
        """Physical names: service account, Cloud Run service, a NEG per region, backend service;
        with shards a Cloud Run service per index, a NEG and a backend service per shard key."""
        p = self.prefix
        names = {"account": physical_name(SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT, p, name)}
        if self.pinning == "shards":
            return {**names, **self._shard_names(name, regions)}
        names["service"] = physical_name(CLOUD_RUN_SERVICE, CLOUD_RUN, p, name)
        names["backend"] = physical_name(RFC1035, BACKEND, p, name)
        if self.security_policy is None:
            names["policy"] = physical_name(RFC1035, SECURITY_POLICY, p, name, "armor")
        for region in regions:
            names[f"neg-{region}"] = physical_name(RFC1035, NEG, p, name, region)
        return names

    def _shard_names(self, name: str, regions: list[str]) -> dict[str, PhysicalName]:
        p, names = self.prefix, {}
        if self.shard_prefix_by == "proxy":
            names["proxy-config"] = physical_name(SECRET, SECRET_MANAGER_SECRET, p, name, "shard-proxy")
        # Traffic tags (gen0 .. gen9999) fit Cloud Run's 46 characters of service name plus tag: the
        # service name is the account id ({prefix}-{name}, at most 30) plus -s{index} (at most 5).
        numbers = cloud_run_shards.generation_numbers(self.generations)
        for index in range(self.shards or 0):
            names[f"service-s{index}"] = physical_name(CLOUD_RUN_SERVICE, CLOUD_RUN, p, name, f"s{index}")
        for generation in (numbers if self.session_drain else [None]):
            for key in cloud_run_shards.shard_keys(regions, self.shards or 0, generation):
                names[f"backend-{key}"] = physical_name(RFC1035, BACKEND, p, name, key)
                names[f"neg-{key}"] = physical_name(RFC1035, NEG, p, name, key)
        return names


@dataclass(frozen=True)
class CloudRunMcpServiceRef:
    """What others take from a Cloud Run MCP service: ``backend_service_id`` (a load-balancer
    backend), ``service_account_email`` (its identity, for grants) and ``service_urls`` (region ->
    run.app URL)."""

    backend_service_id: StrInput
    service_account_email: StrInput
    service_urls: Mapping[str, StrInput]


class CloudRunMcpService(pulumi.ComponentResource):
    """An MCP server (streamable HTTP) on Cloud Run in each region, behind one backend service.

    Context: ``network`` (subnets for Direct VPC egress), ``session_store`` (needed when the
    service's store role is not ``none``), ``secret_env`` (names in ``env`` whose values become
    Pulumi secrets, e.g. from a ``secure:`` stack value), ``hosts`` (the hosts the load balancer
    serves it on: default allowed origins, and custom audiences for ``iam``), ``routed_methods``
    (MCP methods the load balancer's method routes send from those hosts to other services: its
    Cloud Armor policy refuses requests naming them without MCP 2026-07-28).

    Outputs: ``service_urls`` (region -> run.app URL, unreachable from the internet because of
    ingress), ``service_account_email``, ``neg_ids`` (region -> serverless NEG id) and
    ``backend_service_id`` for :class:`~mcp_affinity.load_balancer.GlobalHttpsLoadBalancer`. With
    ``pinning: shards`` ``service_urls`` is keyed by ``{region}-s{index}``, ``neg_ids`` by serving shard
    key (with a drain, each draining generation's and the current one's), ``backend_service_id`` is
    None and ``shard_backend_service_ids`` maps each serving shard key to its backend service id (else
    it is empty). ``now`` (context, default the clock) decides which generations still drain.

    Raises ``ValueError`` when a region is not in the network, a needed store is missing,
    ``access: iam`` has no hosts, or an ``env`` value not named in ``secret_env`` looks like a secret
    to detect-secrets (:func:`mcp_affinity.secret_env.plain_secret_faults`; the value is never shown).
    """

    service_urls: dict[str, pulumi.Output[str]]
    neg_ids: dict[str, pulumi.Output[str]]
    service_account_email: pulumi.Output[str]
    backend_service_id: Optional[pulumi.Output[str]]
    shard_backend_service_ids: dict[str, pulumi.Output[str]]

    @takes_settings
    def __init__(self, name: str, args: CloudRunMcpServiceArgs, *, network: NetworkRef,
                 session_store: Optional[SessionStoreRef] = None, secret_env: AbstractSet[str] = frozenset(),
                 hosts: Sequence[str] = (), routed_methods: Sequence[str] = (), now: Optional[datetime] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        regions = sorted(args.regions or network.regions)
        missing = set(regions) - set(network.regions)
        if missing:
            raise ValueError(f"regions {sorted(missing)} have no subnet in the network ({network.regions})")
        if args.store_role is not StoreRole.NONE and session_store is None:
            raise ValueError(f"session mode {args.session_mode.value} with store role {args.store_role.value} needs a session_store")
        if args.access.mode is AccessMode.IAM and not hosts:
            raise ValueError("access iam needs the hosts the load balancer serves the service on (custom audiences)")
        plain = secret_env_module.plain_secret_faults({k: v for k, v in args.env.items() if k not in secret_env})
        if plain:
            raise ValueError("; ".join(f"env.{variable}: {message}" for variable, message in plain))
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
        grants += secret_env_module.grant_access(self, name, args.secret_env, account.member, args.project)
        self._policy_id = args.security_policy or self._edge_policy(
            name, len(regions) * args.shards if args.pinning == "shards" else 1, routed_methods)
        if args.pinning == "shards":
            services, negs, backends = cloud_run_shards.build(self, name, regions, network, account, grants,
                                                            now or datetime.now(timezone.utc))
            self.backend_service_id = None
            granted = {f"{name}-{key}": backend for key, backend in backends.items()}
        else:
            services = {region: self._service(name, region, network, account.email, grants) for region in regions}
            negs = {region: self._neg(name, region, service) for region, service in services.items()}
            backend = self._backend(name, negs)
            self.backend_service_id, backends, granted = backend.id, {}, {name: backend}
        access_bindings.grant(self, name, args.access, project=args.project, services=services, backends=granted)
        self.service_urls = {key: service.uri for key, service in services.items()}
        self.neg_ids = {key: neg.id for key, neg in negs.items()}
        self.shard_backend_service_ids = {key: backend.id for key, backend in backends.items()}
        self.register_outputs({
            "service_urls": self.service_urls,
            "neg_ids": self.neg_ids,
            "service_account_email": self.service_account_email,
            "backend_service_id": self.backend_service_id,
            "shard_backend_service_ids": self.shard_backend_service_ids,
        })

    def ref(self) -> CloudRunMcpServiceRef:
        """This service as the load balancer and grants take it."""
        return CloudRunMcpServiceRef(self.backend_service_id, self.service_account_email, self.service_urls)

    def _service(self, name, region, network: NetworkRef, email, grants,
                 shard: Optional[tuple[str, str, dict, dict]] = None,
                 guard: Optional[pulumi.Resource] = None) -> gcp.cloudrunv2.Service:
        """The region's Cloud Run service; ``shard`` is (key, physical name, whole template
        (:meth:`_template`), service arguments such as ``traffics``, ``labels`` added to the service's)
        of a shard, ``guard`` its generation guard (:mod:`mcp_affinity.generation_guard`), which must
        pass before it changes."""
        args = self._args
        key, physical, template, shard_args = shard or (region, self._names["service"].value,
                                                        self._template(region, network, email), {})
        shard_args = dict(shard_args)
        labels = {**args.labels, **args.access.marks(args.acknowledge), **shard_args.pop("labels", {})}
        return gcp.cloudrunv2.Service(
            f"{name}-{key}",
            name=physical,
            location=region,
            project=args.project,
            ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            # The run.app URL admits the VPC past IAP and Cloud Armor (ingress docs): off unless a reason is given.
            default_uri_disabled=not args.default_uri.enabled,
            annotations={DEFAULT_URI_REASON: args.default_uri.reason} if args.default_uri.enabled else None,
            invoker_iam_disabled=not access_bindings.invoker_check(args.access),
            custom_audiences=access_bindings.custom_audiences(args.access, self._hosts) or None,
            deletion_protection=args.deletion_protection,
            labels=labels,
            template=template,
            **shard_args,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*grants, *([guard] if guard else [])],
                                        ignore_changes=CI_OWNED_PATHS if args.image_managed_by_ci else []),
        )

    def _template(self, region, network: NetworkRef, email, shard_template: Optional[dict] = None) -> dict:
        """The Cloud Run ``template`` of the region's service, ``shard_template`` entries on top."""
        args = self._args
        return {
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
            **(shard_template or {}),
        }

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
        envs += secret_env_module.cloud_run_env(args.secret_env)
        probe = ({"http_get": {"path": args.startup_probe_path, "port": args.port}}
                 if args.startup_probe_path else {"tcp_socket": {"port": args.port}})
        return {
            "image": args.image,
            "ports": {"container_port": args.port},
            "resources": {"limits": {"cpu": args.cpu, "memory": args.memory}},
            "envs": envs,
            "startup_probe": {**probe, "period_seconds": 5, "timeout_seconds": 3, "failure_threshold": 24},
        }

    def _neg(self, name, region, service, key: Optional[str] = None,
             tag: Optional[str] = None) -> gcp.compute.RegionNetworkEndpointGroup:
        """The serverless NEG of ``service``; ``tag`` pins it to one generation's tagged revision."""
        key = key or region
        return gcp.compute.RegionNetworkEndpointGroup(
            f"{name}-{key}",
            name=self._names[f"neg-{key}"].value,
            project=self._args.project,
            region=region,
            network_endpoint_type="SERVERLESS",
            cloud_run={"service": service.name, **({"tag": tag} if tag else {})},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _backend(self, name, negs, key: Optional[str] = None) -> gcp.compute.BackendService:
        """The backend service holding ``negs``; ``key`` names a shard's own backend service."""
        args = self._args
        hashing = {}
        if args.load_balancer_hash:
            affinity.warn_header_hash_on_serverless(name, self)
            hashing = affinity.backend_hash_settings(args.session_header)
        # No health_checks and no timeout_sec: both are rejected for serverless NEG backends.
        return gcp.compute.BackendService(
            f"{name}-{key}" if key else name,
            name=self._names[f"backend-{key}" if key else "backend"].value,
            project=args.project,
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTPS",
            backends=[{"group": neg.id} for _, neg in sorted(negs.items())],
            log_config={"enable": True, "sample_rate": args.log_sample_rate},
            security_policy=self._policy_id,
            **access_bindings.backend_iap(args.access, args.project),
            **hashing,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _edge_policy(self, name: str, backend_services: int, routed_methods: Sequence[str]) -> pulumi.Output[str]:
        """The package's Cloud Armor policy for this service's backend services (its only scope);
        thresholds hold over all ``backend_services`` (the shards), methods routed from its hosts
        are gated on the protocol version (:mod:`mcp_affinity.security_policy`)."""
        args = self._args
        scope = edge_scope(args, self._hosts, routed_methods)
        policy = EdgePolicy(name, EdgePolicyArgs(prefix=args.prefix, project=args.project, labels=args.labels,
                                                 scopes={name: scope}, backend_services=backend_services),
                            opts=pulumi.ResourceOptions(parent=self))
        return policy.policy_id


def edge_scope(args: CloudRunMcpServiceArgs, hosts: Sequence[str], routed_methods: Sequence[str]) -> EdgeScopeArgs:
    """The service's rules in its Cloud Armor policy: its ``edge``, unscoped (the policy is its own),
    Origins defaulting to its served ``hosts``, the ``routed_methods`` of its method routes gated on the
    protocol version."""
    return EdgeScopeArgs(edge=args.edge, hosts=sorted(hosts), oauth_metadata=args.access.mode is AccessMode.OAUTH,
                         routed_methods=sorted(set(routed_methods)))
