"""The GKE platform: one cluster, its mesh and gateway, and ``meshServices.<name>`` behind it.

The load balancer reaches every mesh service through one route, ``gke``: the gateway's backend
service, whose NEGs the autoneg controller attaches as GKE creates them.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from pydantic import Field

from mcp_affinity import (
    COMMON_FIELDS, AutonegController, AutonegControllerArgs, GkeCluster, GkeClusterArgs, McpMeshService,
    McpMeshServiceArgs, Mesh, MeshArgs, MeshGatewayBackend, MeshGatewayBackendArgs, NetworkArgs, RouteArgs,
    StoreRole,
)
from mcp_affinity.access import AccessMode
from mcp_affinity.mesh_service import service_host
from mcp_affinity.security_policy import EdgeScopeArgs
from mcp_affinity.settings import config_model

from . import cloud_run
from .context import SharedContext

KEYS = ("gke", "meshServices")
ROUTE = "gke"

MeshConfig = config_model(MeshArgs, exclude=COMMON_FIELDS | {"persistent_session_filter"})
GatewayConfig = config_model(MeshGatewayBackendArgs, exclude=COMMON_FIELDS | {"drain_seconds"})
AutonegConfig = config_model(AutonegControllerArgs)
GkeConfig = config_model(GkeClusterArgs, name="GkeConfig", extra={
    "mesh": (MeshConfig, Field(default_factory=MeshConfig)),
    "gateway": (GatewayConfig, Field(default_factory=GatewayConfig)),
    "autoneg": (AutonegConfig, Field(default_factory=AutonegConfig)),
}, doc="""
    - ``mesh``: the service mesh and its ingress gateway.
    - ``gateway``: the load balancer's backend service in front of the gateway.
    - ``autoneg``: the gke-autoneg-controller that attaches the gateway's NEGs to that backend service.
""")
"""``gke``: the cluster's settings plus ``mesh``, ``gateway`` (its backend service) and ``autoneg``."""
MeshServiceConfig = config_model(McpMeshServiceArgs, name="MeshServiceConfig")

_PARTS = {"mesh", "gateway", "autoneg"}


def keys_set(config) -> bool:
    return config.gke is not None or bool(config.mesh_services)


def settings(config, common: dict, problems, network: Optional[NetworkArgs]) -> Optional[dict[str, Any]]:
    """The cluster, mesh, gateway backend, autoneg and mesh services' settings."""
    if config.gke is None or not config.mesh_services:
        problems.add("gke" if config.gke is None else "meshServices",
                     "platforms includes gke: set gke and at least one entry of meshServices")
        return None
    gke = config.gke.model_dump(by_alias=True, exclude_unset=True)
    parts = {part: gke.pop(part, {}) for part in _PARTS}
    cluster = problems.build("gke", GkeClusterArgs, {**gke, **common})
    services = {name: problems.build(f"meshServices.{name}", McpMeshServiceArgs,
                                     {**service.model_dump(by_alias=True, exclude_unset=True), **common})
                for name, service in sorted(config.mesh_services.items())}
    cookie = any(s is not None and s.pinning == "cookie" for s in services.values())
    mesh = problems.build("gke.mesh", MeshArgs, {**parts["mesh"], **common, "persistentSessionFilter": cookie})
    drain = mesh.drain_seconds if mesh is not None else 3600
    gateway = problems.build("gke.gateway", MeshGatewayBackendArgs, {**parts["gateway"], **common, "drainSeconds": drain})
    autoneg = problems.build("gke.autoneg", AutonegControllerArgs, {**parts["autoneg"], **common})
    if cluster is not None and network is not None:
        _check_network(cluster, network, problems)
    for name, service in services.items():
        for key, route in (service.method_routes.items() if service else []):
            if route.service not in services or route.service == name:
                problems.add(f"meshServices.{name}.methodRoutes.{key}.service", f"{route.service!r} is not another mesh service")
    _check_access(config.environment, services, problems)
    return {"cluster": cluster, "mesh": mesh, "gateway": gateway, "autoneg": autoneg, "services": services}


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
    subnet = network.subnets.get(cluster.region)
    if network.existing_network is None:
        if subnet is None:
            problems.add("gke.region", f"{cluster.region!r} has no subnet; network regions: {', '.join(network.regions)}")
            return
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
    return any(s.store_role is not StoreRole.NONE for s in parts["services"].values())


def routes(parts: dict[str, Any]) -> dict[str, RouteArgs]:
    hosts = sorted({h for s in parts["services"].values() for h in s.hosts})
    return {ROUTE: RouteArgs(hosts=hosts)}


def named_components(parts: dict[str, Any], network: NetworkArgs) -> Iterator[tuple[str, Any]]:
    yield "gke", lambda: parts["cluster"].names("gke")
    yield "gke.mesh", lambda: parts["mesh"].names("mesh")
    yield "gke.gateway", lambda: parts["gateway"].names("gateway")
    yield "gke.autoneg", lambda: parts["autoneg"].names("autoneg")
    for name, args in parts["services"].items():
        yield f"meshServices.{name}", lambda args=args, name=name: args.names(name)


def build(parts: dict[str, Any], context: SharedContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cluster, autoneg, gateway backend, mesh, then services; return (backends, outputs)."""
    cluster = GkeCluster("gke", parts["cluster"], network=context.network)
    autoneg = AutonegController("autoneg", parts["autoneg"], workload_pool=cluster.workload_pool,
                                kubernetes_provider=cluster.kubernetes_provider, depends_on=[cluster.node_pool])
    services_args = parts["services"]
    iap = next((s.access for s in services_args.values() if s.access.mode is AccessMode.IAP), None)
    scopes = {name: EdgeScopeArgs(edge=s.edge, hosts=s.hosts, scoped=True, oauth_metadata=s.access.mode is AccessMode.OAUTH)
              for name, s in services_args.items()}
    gateway = MeshGatewayBackend("gateway", parts["gateway"], network=context.network, cluster=cluster,
                                 iap=iap, edge_scopes=scopes)
    mesh = Mesh("mesh", parts["mesh"], cluster=cluster, gateway_annotations=gateway.gateway_annotations,
                gateway_depends_on=[*autoneg.ready, gateway.backend])
    hosts = {name: service_host(name) for name in parts["services"]}
    services = {
        name: McpMeshService(name, args, cluster=cluster, mesh=mesh, session_store=context.session_store,
                             route_hosts=hosts, secret_env=context.secret_env("meshServices", args.env))
        for name, args in sorted(parts["services"].items())
    }
    outputs = {"gkeCluster": cluster.cluster_name,
               "meshServiceHosts": {name: service.service_host for name, service in services.items()},
               "meshServiceAccess": {name: args.access.summary() for name, args in sorted(services_args.items())}}
    return {ROUTE: gateway.backend_service_id}, outputs
