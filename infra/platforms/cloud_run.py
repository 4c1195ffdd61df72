"""The Cloud Run platform: ``services.<name>`` -> CloudRunMcpService, one load-balancer route each."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional

from mcp_affinity import CloudRunMcpService, CloudRunMcpServiceArgs, NetworkArgs, RouteArgs, StoreRole
from mcp_affinity import cloud_run_shards
from mcp_affinity.secret_env import plain_secret_faults
from mcp_affinity.access import AccessMode
from mcp_affinity.route_access import access_key, route_faults
from mcp_affinity.cloud_run_service import edge_scope
from mcp_affinity.security_policy import service_limit_faults, threshold_faults
from mcp_affinity.settings import config_model

from .context import SharedContext

KEYS = ("services",)
# session_shards: derived from pinning: shards, never written in a stack file.
ROUTE_FIELDS = set(RouteArgs.model_fields) - {"session_shards"}
ServiceConfig = config_model(CloudRunMcpServiceArgs, name="ServiceConfig", extra={
    name: (field.annotation, field) for name, field in RouteArgs.model_fields.items() if name in ROUTE_FIELDS})
"""``services.<name>``: the service's settings plus its load-balancer route (hosts, pathPrefixes, methodRoutes)."""

ROUTE_KEYS = frozenset(RouteArgs.model_fields[name].alias for name in ROUTE_FIELDS)


def keys_set(config) -> list[str]:
    return ["services"] if config.services else []


def settings(config, common: dict, problems, network: Optional[NetworkArgs]) -> Optional[dict[str, tuple]]:
    """Each service's (settings or None, route values, served hosts, the program's clock reading),
    validated under ``services.<name>``; the route's own rules run in the load balancer, which
    reports them under the same key. One clock reading serves the routes and the shards, so both
    agree on which generations still drain."""
    if not config.services:
        if "services" not in problems.refused_tops:
            problems.add("services", "platforms includes cloud-run: define at least one service")
        return None
    result, served, now = {}, served_hosts(config), datetime.now(timezone.utc)
    for name, service in sorted(config.services.items()):
        key = f"services.{name}"
        values = service.model_dump(by_alias=True, exclude_unset=True)
        route = {k: v for k, v in values.items() if k in ROUTE_KEYS}
        args = problems.build(key, CloudRunMcpServiceArgs, {**{k: v for k, v in values.items() if k not in route}, **common})
        if args is not None and args.pinning == "shards" and network is not None:
            route["sessionShards"] = cloud_run_shards.route_shards(args, args.regions or network.regions, now)
        if args is not None and network is not None:
            check_thresholds(key, args, network, problems)
            extra = set(args.regions or []) - set(network.regions)
            if extra:
                problems.add(f"{key}.regions", f"{sorted(extra)} have no subnet; network regions: {', '.join(network.regions)}",
                             after=("network",))
        if config.environment == "prod" and args is not None and args.regions is not None and len(args.regions) < 2:
            problems.add(f"{key}.regions", "prod runs each service in two regions or more")
        if args is not None:
            check_access(key, args.access, args.acknowledge, served[name], config.environment, problems)
            check_edge_limits(key, args, served[name], route, problems)
        check_plain_secrets(key, "services", getattr(service, "env", None) or {}, problems)
        result[name] = (args, route, served[name], now)
    check_method_routes(result, problems)
    if network is not None:
        sharded = {name: (args, args.regions or network.regions) for name, (args, *_) in result.items()
                   if args is not None and args.pinning == "shards"}
        for name, message in sorted(cloud_run_shards.check_revision_tags(sharded, now).items()):
            problems.add(f"services.{name}.shards", message)
    return result


def check_method_routes(services: dict[str, tuple], problems) -> None:
    """Each method route crosses only to a service whose access is identical and whose edge is at least
    as strict (:mod:`mcp_affinity.route_access`); refused under ``services.<name>.methodRoutes.<key>``."""
    for name, (args, route, served, _) in sorted(services.items()):
        for key, method in sorted((route.get("methodRoutes") or {}).items()):
            target = services.get(method.get("service"))
            if args is None or target is None or target[0] is None:
                continue  # not a service of this platform, or refused already: reported elsewhere
            other = target[0]
            siblings = {f"https://{h}" for s, r, *_ in services.values()
                        if s is not None and access_key(s.access) == access_key(args.access) for h in r.get("hosts") or []}
            fault = route_faults(name, args.access, method["service"], other.access,
                                 (args.edge, args.edge.origins(served), other.edge, other.edge.origins(target[2])),
                                 (args.security_policy, other.security_policy), method["method"], method.get("name"),
                                 siblings)
            if fault:
                problems.add(f"services.{name}.methodRoutes.{key}", fault)


def needs_store(services: dict[str, tuple]) -> bool:
    return any(args is not None and args.store_role is not StoreRole.NONE for args, *_ in services.values())


def routes(services: dict[str, tuple]) -> dict[str, tuple[dict, Callable[[list[str]], str]]]:
    """Route key -> (route values, function from a fault's location in the route to its config key)."""
    return {name: (route, lambda loc, name=name: ".".join([f"services.{name}", *loc]))
            for name, (_, route, *_) in services.items()}


def named_components(services: dict[str, tuple], network: NetworkArgs) -> Iterator[tuple[str, Any]]:
    for name, (args, *_) in services.items():
        if args is not None:
            yield f"services.{name}", lambda args=args, name=name: args.names(name, args.regions or network.regions)


def build(services: dict[str, tuple], context: SharedContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create the services; return (backend service id by route key, stack outputs)."""
    created = {
        name: CloudRunMcpService(name, args, network=context.network, session_store=context.session_store,
                                 secret_env=context.secret_env("services", args.env), hosts=hosts, now=now,
                                 routed_methods=[m["method"] for m in route.get("methodRoutes", {}).values()])
        for name, (args, route, hosts, now) in sorted(services.items())
    }
    backends = {name: service.shard_backend_service_ids or service.backend_service_id for name, service in created.items()}
    outputs = {"serviceUrls": {name: service.service_urls for name, service in created.items()},
               "serviceAccess": {name: args.access.summary() for name, (args, *_) in sorted(services.items())},
               "serviceDeploys": {name: cloud_run_shards.deploy_impact(args, now)
                                  for name, (args, _, _, now) in sorted(services.items())}}
    # What each sharded service holds, and its ingress configuration in plain text: the secret's
    # payload is masked in a plan, and the configuration holds nothing secret.
    shards = {name: cloud_run_shards.plan_summary(args, len(created[name].service_urls) // args.shards, now)
              for name, (args, _, _, now) in sorted(services.items()) if args.pinning == "shards"}
    if shards:
        outputs["sessionShards"] = shards
    return backends, outputs


def _hosts(item) -> list[str]:
    # A partly refused service or load balancer (already reported) may lack keys: read what is there.
    return list(getattr(item, "hosts", None) or [])


def served_hosts(config) -> dict[str, list[str]]:
    """The hosts the load balancer serves each service on: its own, those of services that send it
    MCP methods, and for a path-prefixed service (or the named default route) the certificate
    domains no service claims."""
    claimed = {h for s in config.services.values() for h in _hosts(s)}
    claimed |= {h for s in (config.mesh_services or {}).values() for h in _hosts(s)}
    load_balancer = config.load_balancer
    certificates = (getattr(load_balancer, "certificates", None) or {}) if load_balancer is not None else {}
    default_route = getattr(load_balancer, "default_route", None) if load_balancer is not None else None
    shared = {d for domains in certificates.values() for d in domains} - claimed
    served = {}
    for name, service in config.services.items():
        hosts = set(_hosts(service))
        hosts |= {h for other in config.services.values() for m in (getattr(other, "method_routes", None) or {}).values()
                  if getattr(m, "service", None) == name for h in _hosts(other)}
        if getattr(service, "path_prefixes", None) and not _hosts(service) or default_route == name:
            hosts |= shared
        served[name] = sorted(hosts)
    return served


def check_thresholds(key: str, args, network: NetworkArgs, problems) -> None:
    """A sharded service's rate limits hold over all its shards' backend services: refuse one that
    would round to 0 per shard (:func:`mcp_affinity.security_policy.threshold_faults`)."""
    if args.pinning == "shards" and args.security_policy is None:
        backends = len(args.regions or network.regions) * args.shards
        for location, message in threshold_faults(args.edge, backends):
            problems.add(".".join([f"{key}.edge", *location]), message)


def check_edge_limits(key: str, args, hosts: list[str], route: dict, problems) -> None:
    """The service's Cloud Armor rules, as the component writes them for its served ``hosts`` and
    method routes, fit Cloud Armor's limits (:func:`mcp_affinity.security_policy.limit_faults`)."""
    if args.security_policy is not None:
        return  # a policy of the user's own: the package writes no rule
    try:
        scope = edge_scope(args, hosts, [m.get("method") for m in (route.get("methodRoutes") or {}).values()])
    except ValueError:
        return  # a refused host or method: the load balancer reports it under its key
    for location, message in service_limit_faults(scope):
        problems.add(f"{key}.{location}", message)


def check_access(key: str, access, acknowledge, hosts: list[str], environment: str, problems) -> None:
    """Rules across settings: ``public`` needs ``acknowledge: [unauthenticated]`` in staging and prod;
    ``iam`` needs hosts (the audiences of the callers' ID tokens)."""
    if access.mode is AccessMode.PUBLIC and environment not in (None, "dev") and "unauthenticated" not in acknowledge:
        problems.add(f"{key}.access", f"public lets anyone on the internet call the service; in {environment} add "
                     "acknowledge: [unauthenticated], or pick iap, iam or oauth")
    if access.mode is AccessMode.IAM and not hosts:
        problems.add(f"{key}.access", "iam: callers mint ID tokens for https://HOST; give the service hosts")


def check_plain_secrets(key: str, top: str, env: dict, problems) -> None:
    """An ``env`` value that detect-secrets flags is refused under ``{key}.env.NAME`` (the value is
    never shown). Under a top-level key holding a ``secure:`` value Pulumi hands the program every
    value of that key decrypted and marks them all secret, so the program cannot tell a plain value
    from a secure one there; all of them reach the resources as secrets and are masked."""
    if top in problems.secret_keys:
        return
    for variable, message in plain_secret_faults(env):
        problems.add(f"{key}.env.{variable}", message)
