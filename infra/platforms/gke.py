"""The GKE platform: one cluster, its mesh and gateway, and ``meshServices.<name>`` behind it.

The load balancer reaches every mesh service through one route, ``gke``: the gateway's backend
service, whose NEGs the autoneg controller attaches as GKE creates them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import pulumi
from pydantic import Field

from mcp_affinity import (
    COMMON_FIELDS, AutonegControllerArgs, GkeClusterArgs, McpGkePlatform, McpGkePlatformArgs, McpMeshService,
    McpMeshServiceArgs, MeshArgs, MeshGatewayBackendArgs, NetworkArgs, StoreRole,
)
from mcp_affinity.access import AccessMode
from mcp_affinity.mesh_metrics import McpMeshMetrics, McpMeshMetricsArgs, front_app
from mcp_affinity.mesh_service import (data_plane_faults, edge_scope, gateway_access, method_target_faults,
                                         proxy_faults, service_host)
from mcp_affinity.security_policy import service_limit_faults
from mcp_affinity.route_access import route_faults
from mcp_affinity.settings import config_model

from . import cloud_run
from .context import SharedContext

KEYS = ("gke", "meshServices")
ROUTE = "gke"

MeshConfig = config_model(MeshArgs, exclude=COMMON_FIELDS | {"persistent_session_filter"})
GatewayConfig = config_model(MeshGatewayBackendArgs, exclude=COMMON_FIELDS | {"drain_seconds"})
AutonegConfig = config_model(AutonegControllerArgs)
GkeConfig = config_model(GkeClusterArgs, name="GkeConfig", extra={
    "mesh": (MeshConfig, Field(default_factory=MeshConfig, description="the service mesh and its ingress gateway.")),
    "gateway": (GatewayConfig, Field(default_factory=GatewayConfig,
                                     description="the load balancer's backend service in front of the gateway.")),
    "autoneg": (AutonegConfig, Field(default_factory=AutonegConfig, description=(
        "the gke-autoneg-controller that attaches the gateway's NEGs to that backend service."))),
})
"""``gke``: the cluster's settings plus ``mesh``, ``gateway`` (its backend service) and ``autoneg``."""
MeshServiceConfig = config_model(McpMeshServiceArgs, name="MeshServiceConfig")

_PARTS = {"mesh", "gateway", "autoneg"}


def keys_set(config) -> list[str]:
    return [key for key, value in (("gke", config.gke), ("meshServices", config.mesh_services)) if value]


def settings(config, common: dict, problems, network: Optional[NetworkArgs]) -> Optional[dict[str, Any]]:
    """The cluster, mesh, gateway backend, autoneg and mesh services' settings (None where refused)."""
    for key in KEYS:
        if key not in keys_set(config) and key not in problems.refused_tops:
            problems.add(key, "platforms includes gke: set gke and at least one entry of meshServices")
    services = {name: problems.build(f"meshServices.{name}", McpMeshServiceArgs,
                                     {**service.model_dump(by_alias=True, exclude_unset=True), **common})
                for name, service in sorted(config.mesh_services.items())}
    if config.gke is None:
        return None
    gke = config.gke.model_dump(by_alias=True, exclude_unset=True)
    parts = {part: gke.pop(part, {}) for part in _PARTS}
    cluster = problems.build("gke", GkeClusterArgs, {**gke, **common})
    cookie = any(s is not None and s.pinning == "cookie" for s in services.values())
    mesh = problems.build("gke.mesh", MeshArgs, {**parts["mesh"], **common, "persistentSessionFilter": cookie})
    drain = mesh.drain_seconds if mesh is not None else 3600
    gateway = problems.build("gke.gateway", MeshGatewayBackendArgs, {**parts["gateway"], **common, "drainSeconds": drain})
    autoneg = problems.build("gke.autoneg", AutonegControllerArgs, {**parts["autoneg"], **common})
    if cluster is not None and network is not None:
        _check_network(cluster, network, problems)
    if autoneg is not None and mesh is not None and "watch_namespaces" in autoneg.model_fields_set:
        gateway_namespace = mesh.names(ADOPTED["mesh"])["gateway_namespace"].value  # the Mesh that build() makes
        if gateway_namespace not in autoneg.watch_namespaces:
            problems.add("gke.autoneg.watchNamespaces", f"leaves out the gateway's namespace {gateway_namespace}: "
                         "the controller would never attach the gateway's NEGs; add it")
    for name, service in sorted(config.mesh_services.items()):
        cloud_run.check_plain_secrets(f"meshServices.{name}", "meshServices", getattr(service, "env", None) or {}, problems)
    for name, service in services.items():
        for key, message in (method_target_faults(name, service, set(services)) if service else []):
            problems.add(f"meshServices.{name}.{key}", message)
        for key, route in sorted(service.method_routes.items()) if service else []:
            target = services.get(route.service)
            # The gateway's IAP and host-scoped Cloud Armor rules stay the host's: access alone can differ.
            fault = route_faults(name, service.access, route.service, target.access, None, (None, None),
                                 route.method, route.name) if target is not None and route.service != name else None
            if fault:
                problems.add(f"meshServices.{name}.methodRoutes.{key}", fault)
        for key, message in (data_plane_faults(service, mesh.data_plane) if service and mesh else []):
            problems.add(f"meshServices.{name}.{key}", message)
        for key, message in (proxy_faults(name, service) if service else []):
            problems.add(f"meshServices.{name}.{key}", message)
    _check_access(config.environment, services, problems)
    for name, service in services.items():
        if service is not None and service.secret_env and cluster is not None and not cluster.secret_sync:
            problems.add(f"meshServices.{name}.secretEnv", "GKE reads secretEnv through its secret synchronization: "
                         "set gke.secretSync: true (GKE 1.33 or later)")
    if gateway is None or not gateway.security_policy:
        # The gateway's policy holds every mesh service's rules, each scoped to its hosts.
        for name, service in services.items():
            for key, message in service_limit_faults(edge_scope(service)) if service else []:
                problems.add(f"meshServices.{name}.{key}", message)
    if gateway is not None and gateway.security_policy:
        for name in [n for n, s in services.items() if s is not None and "edge" in s.model_fields_set]:
            problems.add(f"meshServices.{name}.edge", "does nothing: gke.gateway.securityPolicy puts a policy of your "
                         "own on the gateway's backend service; drop one")
    platform = None
    if None not in (cluster, mesh, gateway, autoneg):
        platform = problems.build("gke", McpGkePlatformArgs, platform_values(cluster, mesh, gateway, autoneg))
    return {"cluster": cluster, "mesh": mesh, "gateway": gateway, "autoneg": autoneg, "platform": platform,
            "services": services,
            "hosts": {name: service.model_dump(by_alias=True, exclude_unset=True).get("hosts", [])
                      for name, service in sorted(config.mesh_services.items())}}


def _check_access(environment: str, services: dict, problems) -> None:
    """``public`` needs the acknowledgement in staging and prod; IAP sits on the one gateway backend
    service, so mesh services behind it must all be ``iap`` with the same members and clients."""
    valid = {n: s for n, s in services.items() if s is not None}
    for name, service in valid.items():
        cloud_run.check_access(f"meshServices.{name}", service.access, service.acknowledge, service.hosts,
                               environment, problems)
    iap = {n: s.access for n, s in valid.items() if s.access.mode is AccessMode.IAP}
    first = next(iter(iap.values()), None)
    for name, service in valid.items():
        if first is not None and service.access != first:
            problems.add(f"meshServices.{name}.access", "IAP sits on the gateway's backend service, which every mesh "
                         "service shares: when one mesh service is iap, all must be iap with the same members and "
                         "programmaticClients")


def _check_network(cluster: GkeClusterArgs, network: NetworkArgs, problems) -> None:
    if cluster.region not in network.regions:
        problems.add("gke.region", f"{cluster.region!r} has no subnet; network regions: {', '.join(network.regions)}",
                     after=("network",))
    elif network.existing_network is None:
        subnet = network.subnets[cluster.region]
        missing = {cluster.pods_range, cluster.services_range} - set(subnet.secondary_ranges)
        if missing:
            problems.add(f"network.subnets.{cluster.region}.secondaryRanges", f"needs {sorted(missing)} for GKE")
        try:
            cluster.check_ranges(network.ranges("network."))
        except ValueError as error:
            problems.add("gke.masterCidr", str(error))
    if not network.cloud_nat:
        problems.add("network.cloudNat", "GKE's nodes are private and Istio's images come from docker.io: "
                     "set cloudNat: true so the nodes can pull them")


def needs_store(parts: dict[str, Any]) -> bool:
    return any(s is not None and s.store_role is not StoreRole.NONE for s in parts["services"].values())


def routes(parts: dict[str, Any]) -> dict[str, tuple[dict, Callable[[list[str]], str]]]:
    """One route, ``gke``, with every mesh service's hosts; a fault at one of its hosts is reported
    under the mesh service that lists it."""
    owners = [(name, index) for name, hosts in parts["hosts"].items()
              for index, host in enumerate(hosts) if host not in hosts[:index]]
    hosts = [parts["hosts"][name][index] for name, index in owners]
    if not hosts:
        return {}

    def locate(loc: list[str]) -> str:
        if len(loc) >= 2 and loc[0] == "hosts" and loc[1].isdigit() and int(loc[1]) < len(owners):
            name, index = owners[int(loc[1])]
            return f"meshServices.{name}.hosts.{index}"
        return "meshServices"

    return {ROUTE: ({"hosts": hosts}, locate)}


def named_components(parts: dict[str, Any], network: NetworkArgs) -> Iterator[tuple[str, Any]]:
    components = [("gke", parts["cluster"], "gke"), ("gke.mesh", parts["mesh"], "mesh"),
                  ("gke.gateway", parts["gateway"], "gateway"), ("gke.autoneg", parts["autoneg"], "autoneg")]
    components += [(f"meshServices.{name}", args, name) for name, args in parts["services"].items()]
    for key, args, name in components:
        if args is not None:
            yield key, lambda args=args, name=name: args.names(name)


ADOPTED = {"cluster": "gke", "autoneg": "autoneg", "gateway": "gateway", "mesh": "mesh"}
"""The names the platform's parts had when this program created them at the stack's root (before
issue 21): :class:`McpGkePlatform` keeps them and aliases each to its old URN, so a stack created
before moves under the platform without a replacement."""


def platform_values(cluster: GkeClusterArgs, mesh: MeshArgs, gateway: MeshGatewayBackendArgs,
                    autoneg: AutonegControllerArgs) -> dict[str, Any]:
    """The validated parts as :class:`McpGkePlatformArgs` takes them: the common settings once, then
    each part's own as written (the gateway's draining is the mesh's, which the platform passes on)."""
    own = {key: part.model_dump(exclude=COMMON_FIELDS | {"drain_seconds"}, exclude_unset=True)
           for key, part in (("cluster", cluster), ("mesh", mesh), ("gateway", gateway), ("autoneg", autoneg))}
    return {**{n: getattr(cluster, n) for n in COMMON_FIELDS}, **own}


def build(parts: dict[str, Any], context: SharedContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """The platform (cluster, autoneg, gateway backend, mesh), then services; return (backends, outputs)."""
    services_args = parts["services"]
    platform = McpGkePlatform("gke", parts["platform"], network=context.network, **gateway_access(services_args),
                              adopt=ADOPTED)
    ref = platform.ref()
    hosts = {name: service_host(args.prefix, name) for name, args in services_args.items()}
    services = {
        name: McpMeshService(name, args, cluster=ref.cluster, mesh=ref.mesh, session_store=context.session_store,
                             route_hosts=hosts, secret_env=context.secret_env("meshServices", args.env))
        for name, args in sorted(parts["services"].items())
    }
    if context.monitoring and parts["mesh"].data_plane == "sidecar":
        for name, service in services.items():
            args = services_args[name]
            front, proxy = front_app(name, args.pinning == "learned")
            McpMeshMetrics(name, McpMeshMetricsArgs(prefix=args.prefix, project=args.project, labels=args.labels),
                           namespace=args.names(name)["namespace"].value, front=front, proxy=proxy,
                           cluster=ref.cluster, opts=pulumi.ResourceOptions(depends_on=[service]))
    outputs = {"gkeCluster": platform.cluster_name,
               "meshServiceHosts": {name: service.service_host for name, service in services.items()},
               "meshServiceAccess": {name: args.access.summary() for name, args in sorted(services_args.items())},
               "meshServiceDeploys": {name: args.deploy_impact() for name, args in sorted(services_args.items())}}
    return {ROUTE: platform.backend_service_id}, outputs
