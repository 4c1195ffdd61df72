"""The Cloud Run platform: ``services.<name>`` -> CloudRunMcpService, one load-balancer route each."""

from __future__ import annotations

from typing import Any, Iterator, Optional


from mcp_affinity import CloudRunMcpService, CloudRunMcpServiceArgs, NetworkArgs, RouteArgs, StoreRole
from mcp_affinity.access import AccessMode
from mcp_affinity.settings import config_model

from .context import SharedContext

KEYS = ("services",)
ServiceConfig = config_model(CloudRunMcpServiceArgs, name="ServiceConfig", extra={
    name: (field.annotation, field) for name, field in RouteArgs.model_fields.items()}, doc=RouteArgs.__doc__)
"""``services.<name>``: the service's settings plus its load-balancer route (hosts, pathPrefixes, methodRoutes)."""

ROUTE_FIELDS = set(RouteArgs.model_fields)


def keys_set(config) -> bool:
    return bool(config.services)


def settings(config, common: dict, problems, network: Optional[NetworkArgs]) -> Optional[dict[str, tuple]]:
    """Each service's (settings, route, served hosts), validated under ``services.<name>``."""
    if not config.services:
        problems.add("services", "platforms includes cloud-run: define at least one service")
        return None
    result, served = {}, served_hosts(config)
    for name, service in sorted(config.services.items()):
        key = f"services.{name}"
        values = service.model_dump(by_alias=True, exclude_unset=True)
        route_values = {k: v for k, v in values.items() if k in {RouteArgs.model_fields[f].alias for f in ROUTE_FIELDS}}
        args = problems.build(key, CloudRunMcpServiceArgs, {**{k: v for k, v in values.items() if k not in route_values}, **common})
        route = problems.build(key, RouteArgs, route_values)
        if args is None or route is None:
            continue
        if network is not None:
            extra = set(args.regions or []) - set(network.regions)
            if extra:
                problems.add(f"{key}.regions", f"{sorted(extra)} have no subnet; network regions: {', '.join(network.regions)}")
        if config.environment == "prod" and args.regions is not None and len(args.regions) < 2:
            problems.add(f"{key}.regions", "prod runs each service in two regions or more")
        check_access(key, args.access, args.acknowledge, served[name], config.environment, problems)
        result[name] = (args, route, served[name])
    return result


def needs_store(services: dict[str, tuple]) -> bool:
    return any(args.store_role is not StoreRole.NONE for args, *_ in services.values())


def routes(services: dict[str, tuple]) -> dict[str, RouteArgs]:
    return {name: route for name, (_, route, _) in services.items()}


def named_components(services: dict[str, tuple], network: NetworkArgs) -> Iterator[tuple[str, Any]]:
    for name, (args, *_) in services.items():
        yield f"services.{name}", lambda args=args, name=name: args.names(name, args.regions or network.regions)


def build(services: dict[str, tuple], context: SharedContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create the services; return (backend service id by route key, stack outputs)."""
    created = {
        name: CloudRunMcpService(name, args, network=context.network, session_store=context.session_store,
                                 secret_env=context.secret_env("services", args.env), hosts=hosts)
        for name, (args, _, hosts) in sorted(services.items())
    }
    backends = {name: service.backend_service_id for name, service in created.items()}
    return backends, {"serviceUrls": {name: service.service_urls for name, service in created.items()},
                      "serviceAccess": {name: args.access.summary() for name, (args, *_) in sorted(services.items())}}


def served_hosts(config) -> dict[str, list[str]]:
    """The hosts the load balancer serves each service on: its own, those of services that send it
    MCP methods, and for a path-prefixed service the certificate domains no service claims."""
    claimed = {h for s in config.services.values() for h in s.hosts}
    claimed |= {h for s in config.mesh_services.values() for h in s.hosts}
    shared = {d for domains in config.load_balancer.certificates.values() for d in domains} - claimed
    served = {}
    for name, service in config.services.items():
        hosts = set(service.hosts)
        hosts |= {h for other in config.services.values() for m in other.method_routes.values()
                  if m.service == name for h in other.hosts}
        if service.path_prefixes and not service.hosts or config.load_balancer.default_route == name:
            hosts |= shared
        served[name] = sorted(hosts)
    return served


def check_access(key: str, access, acknowledge, hosts: list[str], environment: str, problems) -> None:
    """Rules across settings: ``public`` needs ``acknowledge: [unauthenticated]`` in staging and prod;
    ``iam`` needs hosts (the audiences of the callers' ID tokens)."""
    if access.mode is AccessMode.PUBLIC and environment != "dev" and "unauthenticated" not in acknowledge:
        problems.add(f"{key}.access", f"public lets anyone on the internet call the service; in {environment} add "
                     "acknowledge: [unauthenticated], or pick iap, iam or oauth")
    if access.mode is AccessMode.IAM and not hosts:
        problems.add(f"{key}.access", "iam: callers mint ID tokens for https://HOST; give the service hosts")
