"""Builds the stack's components from a validated :class:`StackConfig`.

Every component's arguments are first built and validated against placeholders for the values
other components will output, so a fault (say, a service name too long for its service
account) stops the program before any resource is registered.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Optional

import pulumi
from pydantic import ValidationError

from mcp_affinity import (
    CloudRunMcpService, CloudRunMcpServiceArgs, ConfigError, ExistingNetworkArgs, GkeCluster,
    GkeClusterArgs, GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, McpMeshService,
    McpMeshServiceArgs, Mesh, MeshArgs, MeshGatewayBackend, MeshGatewayBackendArgs, MeshRef,
    Network, NetworkArgs, NodePoolArgs, RouteArgs, SessionStore, SessionStoreArgs, SessionStoreRef,
    SubnetArgs,
)
from mcp_affinity.errors import describe_validation_error
from stack_config import NAMESPACE, StackConfig

PENDING = "<pending>"


class _Sources:
    """Where component args take other components' outputs from; placeholders until they exist."""

    def __init__(self) -> None:
        self.network_id: Any = PENDING
        self.subnet_ids: Any = defaultdict(lambda: PENDING)
        self.connection: Optional[pulumi.Resource] = None
        self.store = SessionStoreRef(secret_id=PENDING, secret_version=PENDING, ca_certificate=PENDING)
        self.store_url: Any = PENDING
        self.backend_ids: Any = defaultdict(lambda: PENDING)
        self.cluster_id: Any = PENDING
        self.provider: Any = None
        self.mesh = MeshRef(gateway=PENDING, data_plane="sidecar")


def build(config: StackConfig) -> dict[str, Any]:
    """Create every component of the stack; return the stack outputs."""
    args = _Args(config)
    args.check_all(_Sources())
    src = _Sources()
    network = Network("network", args.network())
    src.network_id, src.subnet_ids = network.network_id, network.subnet_ids
    src.connection = network.private_services_connection
    store = SessionStore("session-store", args.store(src))
    src.store, src.store_url = store.ref(), store.connection_url
    outputs: dict[str, Any] = {"sessionStoreHost": store.host, "sessionStoreSecret": store.secret_id}
    services = {name: CloudRunMcpService(name, args.service(name, src)) for name in sorted(config.services)}
    src.backend_ids = {name: svc.backend_service_id for name, svc in services.items()}
    if services:
        outputs["serviceUrls"] = {name: svc.service_urls for name, svc in services.items()}
    if config.gke is not None:
        outputs.update(_build_gke(args, src))
    lb = GlobalHttpsLoadBalancer("load-balancer", args.load_balancer(src))
    outputs["loadBalancerIp"] = lb.ip_address
    return outputs


def _build_gke(args: "_Args", src: _Sources) -> dict[str, Any]:
    cluster = GkeCluster("gke", args.cluster(src))
    src.cluster_id, src.provider = cluster.cluster_id, cluster.provider
    mesh = Mesh("mesh", args.mesh(src))
    src.mesh = mesh.ref()
    mesh_services = {name: McpMeshService(name, args.mesh_service(name, src))
                     for name in sorted(args.config.mesh_services)}
    if args.config.gke.behind_load_balancer:
        src.backend_ids["gke"] = MeshGatewayBackend("gke-gateway", args.gateway_backend(src)).backend_service_id
    return {"gkeCluster": cluster.name, "meshGatewayIp": mesh.gateway_address,
            "meshServiceHosts": {name: svc.service_host for name, svc in mesh_services.items()}}


class _Args:
    """Component arguments for one stack, each validated under its config key."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.labels = {"app": "mcp-affinity", "environment": config.environment}

    def check_all(self, src: _Sources) -> None:
        self.network()
        self.store(src)
        for name in self.config.services:
            self.service(name, src)
        if self.config.gke is not None:
            self.cluster(src)
            self.mesh(src)
            for name in self.config.mesh_services:
                self.mesh_service(name, src)
            self.gateway_backend(src)
        self.load_balancer(src)

    @property
    def project(self) -> str:
        return pulumi.Config("gcp").get("project") or ""

    def cluster(self, src: _Sources) -> GkeClusterArgs:
        c, gke = self.config, self.config.gke
        return _checked("gke", lambda: GkeClusterArgs(
            prefix=c.prefix, project=self.project, region=gke.region, zones=gke.zones,
            network_id=src.network_id, subnet_id=src.subnet_ids[gke.region],
            deletion_protection=c.protected, labels=self.labels,
            node_pool=NodePoolArgs(**gke.node_pool.component_fields()),
            **gke.model_dump(exclude_none=True, include={"master_cidr", "release_channel"}),
        ))

    def mesh(self, src: _Sources) -> MeshArgs:
        c, gke = self.config, self.config.gke
        return _checked("gke.mesh", lambda: MeshArgs(
            prefix=c.prefix, project=self.project, region=gke.region, cluster_id=src.cluster_id,
            provider=src.provider, gateway_neg=gke.behind_load_balancer, **gke.mesh.component_fields(),
        ))

    def mesh_service(self, name: str, src: _Sources) -> McpMeshServiceArgs:
        c = self.config
        return _checked(f"meshServices.{name}", lambda: McpMeshServiceArgs(
            prefix=c.prefix, project=self.project, provider=src.provider, mesh=src.mesh,
            workload_pool=f"{self.project}.svc.id.goog", session_store=src.store, store_url=src.store_url,
            **c.mesh_services[name].component_fields(),
        ))

    def gateway_backend(self, src: _Sources) -> MeshGatewayBackendArgs:
        c = self.config
        return _checked("gke", lambda: MeshGatewayBackendArgs(
            prefix=c.prefix, project=self.project, network_id=src.network_id,
            neg_name=f"{c.prefix}-gateway", zones=c.gke.zones,
        ))

    def network(self) -> NetworkArgs:
        c, net = self.config, self.config.network
        values: dict[str, Any] = dict(prefix=c.prefix, private_services_access=net.private_services_access,
                                      private_services_prefix_length=net.private_services_prefix_length)
        if net.existing_network:
            values["existing"] = ExistingNetworkArgs(network=net.existing_network, subnets=net.existing_subnets)
        else:
            values["subnets"] = {r: SubnetArgs(ip_cidr_range=rc.subnet_cidr, secondary_ranges=rc.secondary_ranges)
                                 for r, rc in c.regions.items()}
        return _checked("network", lambda: NetworkArgs(**values))

    def store(self, src: _Sources) -> SessionStoreArgs:
        c = self.config
        return _checked("sessionStore", lambda: SessionStoreArgs(
            prefix=c.prefix,
            region=c.session_store.region or sorted(c.regions)[0],
            network_id=src.network_id,
            private_services_connection=src.connection,
            deletion_protection=c.protected,
            labels=self.labels,
            **c.session_store.component_fields(),
        ))

    def service(self, name: str, src: _Sources) -> CloudRunMcpServiceArgs:
        c, service = self.config, self.config.services[name]
        return _checked(f"services.{name}", lambda: CloudRunMcpServiceArgs(
            prefix=c.prefix,
            regions={r: src.subnet_ids[r] for r in (service.regions or sorted(c.regions))},
            network_id=src.network_id,
            session_store=src.store,
            deletion_protection=c.protected,
            labels=self.labels,
            **service.component_fields(),
        ), name_check=f"{c.prefix}-{name}")

    def load_balancer(self, src: _Sources) -> GlobalHttpsLoadBalancerArgs:
        c = self.config
        return _checked("loadBalancer", lambda: GlobalHttpsLoadBalancerArgs(
            prefix=c.prefix,
            certificates=c.load_balancer.certificates,
            default_route=c.load_balancer.default_route,
            labels=self.labels,
            routes=self.routes(src),
        ))

    def routes(self, src: _Sources) -> dict[str, RouteArgs]:
        c = self.config
        routes = {name: RouteArgs(backend_service=src.backend_ids[name], hosts=s.hosts, path_prefixes=s.path_prefixes)
                  for name, s in sorted(c.services.items())}
        if "gke" in c.routes():
            hosts = sorted({h for s in c.mesh_services.values() for h in s.hosts})
            routes["gke"] = RouteArgs(backend_service=src.backend_ids["gke"], hosts=hosts)
        return routes


def _checked(key: str, make: Callable[[], Any], name_check: Optional[str] = None) -> Any:
    """Build component args; a fault becomes a ConfigError named by the config key."""
    full_key = f"{NAMESPACE}:{key}"
    if name_check is not None and len(name_check) > 30:
        raise ConfigError(pulumi.get_stack(), [(full_key, f"'{name_check}' (prefix-service) exceeds 30 characters, "
                                                          "the limit of a service account id")])
    try:
        return make()
    except ValidationError as error:
        problems = describe_validation_error(error, type(None), full_key)  # type: ignore[arg-type]
        raise ConfigError(pulumi.get_stack(), problems) from None
    except ValueError as error:
        raise ConfigError(pulumi.get_stack(), [(full_key, str(error))]) from None
