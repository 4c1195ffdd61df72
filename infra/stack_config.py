"""The stack file's schema, derived from the components' settings, and the one validation pass.

Every key of ``stacks/Pulumi.<stack>.yaml`` in the ``mcp-affinity`` namespace is a field of a
component's settings (``services.<name>`` is :class:`~mcp_affinity.CloudRunMcpServiceArgs` plus its
load-balancer route), with the component's types, defaults and camelCase names. The four common
settings (prefix, project, labels, deletion protection) are set once, at the top.

:func:`load` reads the configuration, validates every component's settings and the rules across
them, and returns :class:`StackSettings`; any fault raises :class:`~mcp_affinity.ConfigError`
naming the stack, the key path as written in the stack file and what is allowed, before a single
resource is registered. It is one pass: every fault of the file is reported at once, the faults of
each component's own settings and the rules across components together.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Optional

import pulumi
from pydantic import AfterValidator, BeforeValidator, Field

from mcp_affinity import GlobalHttpsLoadBalancerArgs, NetworkArgs, SessionStoreArgs
from mcp_affinity.config import namespace_values, secret_top_keys
from mcp_affinity.pulumi_shim import config_values
from mcp_affinity.settings import Bool, Labels, Model, Name, Prefix, config_model
from monitoring import MonitoringConfig, settings as monitoring_settings
from platforms import PLATFORMS
from problems import Problems, validate_fields

NAMESPACE = "mcp-affinity"
KNOWN_NAMESPACES = ("mcp-affinity", "gcp", "kubernetes", "pulumi")

NetworkConfig = config_model(NetworkArgs)
SessionStoreConfig = config_model(SessionStoreArgs)
ServiceConfig = PLATFORMS["cloud-run"].ServiceConfig
GkeConfig = PLATFORMS["gke"].GkeConfig
MeshServiceConfig = PLATFORMS["gke"].MeshServiceConfig
LoadBalancerConfig = config_model(GlobalHttpsLoadBalancerArgs, exclude=frozenset({
    "prefix", "project", "labels", "deletion_protection", "routes", "oauth_routes"}))


def _empty_is_absent(value: Any) -> Any:
    # Pulumi.yaml declares these optional objects with default {}: {} means "not set".
    return None if value == {} else value


def _unique(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("lists a platform twice")
    return value


class StackConfig(Model):
    """All ``mcp-affinity:*`` keys of a stack file."""

    environment: Literal["dev", "staging", "prod"] = Field(
        description="`dev`, `staging` or `prod`; prod requires deletion protection, two regions or more and a "
                    "`STANDARD_HA` store.")
    prefix: Prefix = Field(
        description="the first part of every physical name (1 to 20 characters); names are "
                    "`{prefix}-{component}-...`.")
    labels: Labels = Field(
        default_factory=dict,
        description="extra labels on every resource (`app` and `environment` are set by the stack and may not be "
                    "given here).")
    deletion_protection: Bool = Field(
        default=False,
        description="protect stateful resources (platform flags and Pulumi `protect`).")
    network: NetworkConfig = Field(description="the VPC (`Network`).")  # type: ignore[valid-type]
    session_store: Annotated[Optional[SessionStoreConfig], BeforeValidator(_empty_is_absent)] = Field(
        default=None,
        description="Memorystore for Redis; created when a service needs it (session store or notification broker), "
                    "with these settings.")  # type: ignore[valid-type]
    load_balancer: LoadBalancerConfig = Field(
        description="the global external Application Load Balancer; its routes come from the services.")  # type: ignore[valid-type]
    platforms: Annotated[list[Literal[tuple(PLATFORMS)]], AfterValidator(_unique)] = Field(
        default=["cloud-run"], min_length=1,
        description="where MCP services run (`cloud-run`, `gke`); each platform adds its keys.")
    services: dict[Name, ServiceConfig] = Field(
        default_factory=dict,
        description="Cloud Run MCP services by name (`CloudRunMcpService` settings plus their route).")  # type: ignore[valid-type]
    gke: Annotated[Optional[GkeConfig], BeforeValidator(_empty_is_absent)] = Field(
        default=None,
        description="the GKE cluster (`GkeCluster` settings) with its mesh, gateway and autoneg.")  # type: ignore[valid-type]
    mesh_services: dict[Name, MeshServiceConfig] = Field(
        default_factory=dict,
        description="MCP services on GKE by name (`McpMeshService` settings).")  # type: ignore[valid-type]
    monitoring: Annotated[Optional[MonitoringConfig], BeforeValidator(_empty_is_absent)] = Field(
        default=None,
        description="the dashboard and alert policies (`McpMonitoring` settings); on in staging and prod unless "
                    "`enabled: false`, off in dev unless `enabled: true`.")  # type: ignore[valid-type]


RESERVED_LABELS = ("app", "environment")
"""Labels the stack sets itself: ``environment`` decides what the policy pack treats as production."""

TEXT_KEYS = frozenset({"prefix", "environment"})
"""Top-level keys whose value is text: kept as written, never JSON-decoded (``prefix: "null"``)."""

PLACEHOLDER_COMMON = {"prefix": "mcp", "project": "placeholder-project", "labels": {}, "deletionProtection": False}
"""Stand-ins for common values that are missing or refused (already reported), so every component's
own rules still run in the same pass."""


@dataclass
class StackSettings:
    """Every component's validated settings, ready for wiring (no resource exists yet)."""

    config: StackConfig
    network: NetworkArgs
    session_store: Optional[SessionStoreArgs]
    load_balancer: GlobalHttpsLoadBalancerArgs
    platforms: dict[str, Any] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()
    monitoring: Optional[Any] = None


def load(stack: Optional[str] = None) -> StackSettings:
    """Read and validate the current stack's configuration in one pass; raise ConfigError listing
    every fault, each under the key path as written in the stack file."""
    stack = stack or pulumi.get_stack()
    raw = namespace_values(NAMESPACE, TEXT_KEYS)
    problems = Problems(stack, NAMESPACE, secret_top_keys(NAMESPACE), raw)
    _check_namespaces(problems)
    project = pulumi.Config("gcp").get("project")
    if not project:
        problems.items.append(("gcp:project", "missing: set it with pulumi config set gcp:project PROJECT_ID"))
    config = validate_fields(StackConfig, raw, problems)
    settings = _settings(config, project, problems)
    problems.raise_if_any()
    return settings


def _check_namespaces(problems: Problems) -> None:
    """A key under an unknown namespace (``mcp-afinity:prefix``) is reported, never ignored."""
    keys = config_values()
    for key in sorted(keys):
        namespace = key.partition(":")[0]
        if namespace not in KNOWN_NAMESPACES:
            close = difflib.get_close_matches(namespace, KNOWN_NAMESPACES, n=1)
            hint = f"; did you mean {close[0]}:?" if close else f"; known: {', '.join(KNOWN_NAMESPACES)}"
            problems.items.append((key, f"unknown namespace {namespace!r}{hint}"))


def _common(config: StackConfig, project: Optional[str], problems: Problems) -> dict:
    """The four common settings; stand-ins where a value is missing or refused (reported already)."""
    for label in RESERVED_LABELS:
        if label in (config.labels or {}):
            problems.add(f"labels.{label}", f"{label} is set by the stack (environment from mcp-affinity:environment); "
                         "remove it, or use another label name")
    labels = {k: v for k, v in (config.labels or {}).items() if k not in RESERVED_LABELS}
    labels = {"app": "mcp-affinity", "environment": config.environment or "dev", **labels}
    values = {"prefix": config.prefix, "project": project, "labels": labels,
              "deletionProtection": config.deletion_protection}
    return {k: PLACEHOLDER_COMMON[k] if v is None else v for k, v in values.items()}


def _settings(config: StackConfig, project: Optional[str], problems: Problems) -> StackSettings:
    common = _common(config, project, problems)
    network = problems.build("network", NetworkArgs, {**_dump(config.network), **common}) if config.network else None
    platforms = {}
    for name, platform in PLATFORMS.items():
        if name in (config.platforms or ()):
            platforms[name] = platform.settings(config, common, problems, network)
        for key in platform.keys_set(config):
            if config.platforms is not None and name not in config.platforms:
                problems.add(key, f"set, but platforms does not include {name}: add {name} to platforms")
    store = _store(config, common, network, platforms, problems)
    if store is None and network is not None and "private_services_access" not in config.network.model_fields_set:
        # Nothing connects through private services access: do not reserve a range nor peer for it.
        network = network.model_copy(update={"private_services_access": False})
    load_balancer = _load_balancer(config, common, platforms, problems)
    settings = StackSettings(config, network, store, load_balancer, platforms, problems.secret_keys,
                             monitoring_settings(config, common, problems))
    if config.environment == "prod":
        _check_prod(settings, problems)
    if config.prefix is not None:
        _check_names(settings, problems)
    return settings


def _store(config: StackConfig, common: dict, network: Optional[NetworkArgs], platforms: dict,
           problems: Problems) -> Optional[SessionStoreArgs]:
    """The store's settings when a service needs one; its rules across the network."""
    needs_store = any(PLATFORMS[n].needs_store(s) for n, s in platforms.items() if s is not None)
    if config.session_store is None and not needs_store:
        return None
    if not needs_store:
        problems.add("sessionStore", "set, but no service uses a store (stateless services without notificationBroker)",
                     after=("services", "meshServices"))
    values = _dump(config.session_store) if config.session_store is not None else {}
    store = problems.build("sessionStore", SessionStoreArgs, {**values, **common})
    if network is not None and store is not None:
        if store.region and store.region not in network.regions:
            problems.add("sessionStore.region", f"{store.region!r} has no subnet; network regions: {', '.join(network.regions)}")
        if network.existing_network is None and not network.private_services_access:
            problems.add("network.privateServicesAccess", "the session store connects through private services access, "
                         "which a new VPC does not have yet: set it true (false only for an existingNetwork that has it)")
    return store


def _load_balancer(config: StackConfig, common: dict, platforms: dict,
                   problems: Problems) -> Optional[GlobalHttpsLoadBalancerArgs]:
    """The load balancer with every platform's routes; a fault in a route is reported under the
    key that defined it (``services.tools.hosts.0``), not under ``loadBalancer``."""
    routes, owners, where = {}, {}, {}
    for name, platform_settings in platforms.items():
        if platform_settings is None:
            continue
        for key, (route, locate) in PLATFORMS[name].routes(platform_settings).items():
            if key in routes:
                problems.add(f"services.{key}", f"the name {key!r} is the load-balancer route of platform {name}; rename the service")
                continue
            routes[key], owners[key], where[key] = route, name, locate
    for key, route in routes.items():
        for method_key, method in route.get("methodRoutes", {}).items():
            if method.get("service") in owners and owners[method["service"]] != owners[key]:
                problems.add(where[key](["methodRoutes", method_key, "service"]),
                             f"{method['service']!r} is a route of platform {owners[method['service']]}, not a service "
                             f"of {owners[key]}")
    if config.load_balancer is None or not routes:
        return None

    def remap(loc: list[str]) -> str:
        if len(loc) >= 2 and loc[0] == "routes" and loc[1] in where:
            return where[loc[1]](loc[2:])
        return ".".join(["loadBalancer", *loc])

    # Routes whose server is an OAuth resource server: their metadata URLs are routed to them.
    oauth = sorted(k for k, (args, *_) in (platforms.get("cloud-run") or {}).items()
                   if args is not None and args.access.mode.value == "oauth")
    return problems.build("loadBalancer", GlobalHttpsLoadBalancerArgs,
                          {**_dump(config.load_balancer), **common, "routes": routes, "oauthRoutes": oauth},
                          remap=remap)


def _dump(model) -> dict:
    return model.model_dump(by_alias=True, exclude_unset=True, mode="python")


def _check_prod(settings: StackSettings, problems: Problems) -> None:
    """Production invariants: deletion protection, two regions or more, a replicated store."""
    if not settings.config.deletion_protection:
        problems.add("deletionProtection", "must be true when environment is prod")
    if settings.network is not None and len(settings.network.regions) < 2:
        problems.add("network", "prod needs subnets in two regions or more", after=("network",))
    if settings.session_store is not None and settings.session_store.tier != "STANDARD_HA":
        problems.add("sessionStore.tier", "prod needs STANDARD_HA (no in-place change between tiers later)")


def _check_names(settings: StackSettings, problems: Problems) -> None:
    """Every physical name follows its resource type's rule, and no two resources of one type share one."""
    owners: dict[tuple[str, str], str] = {}
    for key, names in _named_components(settings):
        try:
            physical_names = names()
        except ValueError as error:
            problems.add(key, str(error))
            continue
        for physical in physical_names.values():
            ident = (physical.type, physical.value)
            if owners.setdefault(ident, key) != key:
                problems.add(key, f"the name {physical.value!r} ({physical.type}) is also used by {owners[ident]}")


def _named_components(settings: StackSettings):
    """(config key, function returning the component's physical names) for every valid component."""
    if settings.network is not None:
        yield "network", lambda: settings.network.names("network")
    if settings.session_store is not None:
        yield "sessionStore", lambda: settings.session_store.names("sessions")
    if settings.load_balancer is not None:
        yield "loadBalancer", lambda: settings.load_balancer.names("lb")
    for name, platform_settings in settings.platforms.items():
        if platform_settings is not None and settings.network is not None:
            yield from PLATFORMS[name].named_components(platform_settings, settings.network)
