"""The stack file's schema, derived from the components' settings, and the one validation pass.

Every key of ``stacks/Pulumi.<stack>.yaml`` in the ``mcp-affinity`` namespace is a field of a
component's settings (``services.<name>`` is :class:`~mcp_affinity.CloudRunMcpServiceArgs` plus its
load-balancer route), with the component's types, defaults and camelCase names. The four common
settings (prefix, project, labels, deletion protection) are set once, at the top.

:func:`load` reads the configuration, validates every component's settings and the rules across
them, and returns :class:`StackSettings`; any fault raises :class:`~mcp_affinity.ConfigError`
naming the stack, the key path as written in the stack file and what is allowed, before a single
resource is registered.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pulumi
from pydantic import BaseModel, Field, ValidationError, field_validator

from mcp_affinity import (
    ConfigError, GlobalHttpsLoadBalancerArgs, NetworkArgs, RouteArgs, SessionStoreArgs,
)
from mcp_affinity.config import namespace_values, secret_top_keys
from mcp_affinity.errors import describe_validation_error
from mcp_affinity.settings import Bool, Labels, Model, Name, Prefix, config_model
from platforms import PLATFORMS

NAMESPACE = "mcp-affinity"
KNOWN_NAMESPACES = ("mcp-affinity", "gcp", "kubernetes", "pulumi")

NetworkConfig = config_model(NetworkArgs)
SessionStoreConfig = config_model(SessionStoreArgs)
ServiceConfig = PLATFORMS["cloud-run"].ServiceConfig
GkeConfig = PLATFORMS["gke"].GkeConfig
MeshServiceConfig = PLATFORMS["gke"].MeshServiceConfig
LoadBalancerConfig = config_model(GlobalHttpsLoadBalancerArgs, exclude=frozenset({
    "prefix", "project", "labels", "deletion_protection", "routes", "oauth_routes"}))


class StackConfig(Model):
    """All ``mcp-affinity:*`` keys of a stack file.

    - ``environment``: ``dev``, ``staging`` or ``prod``; prod requires deletion protection, two
      regions or more and a ``STANDARD_HA`` store.
    - ``prefix``: the first part of every physical name (1 to 20 characters); names are
      ``{prefix}-{component}-...``.
    - ``labels``: extra labels on every resource (``app`` and ``environment`` are always set).
    - ``deletion_protection``: protect stateful resources (platform flags and Pulumi ``protect``).
    - ``network``: the VPC (``Network``).
    - ``session_store``: Memorystore for Redis; created when a service needs it (session store or
      notification broker), with these settings.
    - ``load_balancer``: the global external Application Load Balancer; its routes come from the services.
    - ``platforms``: where MCP services run (``cloud-run``, ``gke``); each platform adds its keys.
    - ``services``: Cloud Run MCP services by name (``CloudRunMcpService`` settings plus their route).
    - ``gke``: the GKE cluster (``GkeCluster`` settings) with its mesh, gateway and autoneg.
    - ``mesh_services``: MCP services on GKE by name (``McpMeshService`` settings).
    """

    environment: Literal["dev", "staging", "prod"]
    prefix: Prefix
    labels: Labels = Field(default_factory=dict)
    deletion_protection: Bool = False
    network: NetworkConfig  # type: ignore[valid-type]
    session_store: Optional[SessionStoreConfig] = None  # type: ignore[valid-type]
    load_balancer: LoadBalancerConfig  # type: ignore[valid-type]
    platforms: list[Literal[tuple(PLATFORMS)]] = Field(default=["cloud-run"], min_length=1)  # type: ignore[valid-type]
    services: dict[Name, ServiceConfig] = Field(default_factory=dict)  # type: ignore[valid-type]
    gke: Optional[GkeConfig] = None  # type: ignore[valid-type]
    mesh_services: dict[Name, MeshServiceConfig] = Field(default_factory=dict)  # type: ignore[valid-type]

    @field_validator("session_store", "gke", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: Any) -> Any:
        # Pulumi.yaml declares these optional objects with default {}: {} means "not set".
        return None if value == {} else value

    @field_validator("platforms")
    @classmethod
    def _unique_platforms(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("platforms lists a platform twice")
        return value


@dataclass
class StackSettings:
    """Every component's validated settings, ready for wiring (no resource exists yet)."""

    config: StackConfig
    network: NetworkArgs
    session_store: Optional[SessionStoreArgs]
    load_balancer: GlobalHttpsLoadBalancerArgs
    platforms: dict[str, Any] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()


class Problems:
    """Faults found by the validation pass, each under the config key it concerns."""

    def __init__(self, stack: str, secret_keys: frozenset[str] = frozenset()):
        self.stack, self.items, self.secret_keys = stack, [], secret_keys

    def add(self, key: str, message: str) -> None:
        self.items.append((f"{NAMESPACE}:{key}", message))

    def build(self, key: str, model: type[BaseModel], values: dict) -> Any:
        """``model(**values)``, or None with each fault recorded under ``key``."""
        try:
            return model.model_validate(values)
        except ValidationError as error:
            # A key holding a secure value never echoes values: any of them may be the secret.
            secret = key.split(".")[0] in self.secret_keys or (not key and bool(self.secret_keys))
            self.items += describe_validation_error(error, model, f"{NAMESPACE}:{key}", show_input=not secret)
        except ValueError as error:
            self.add(key, str(error))
        return None

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.stack, self.items)


def load(stack: Optional[str] = None) -> StackSettings:
    """Read and validate the current stack's configuration; raise ConfigError on any fault."""
    stack = stack or pulumi.get_stack()
    problems = Problems(stack, secret_top_keys(NAMESPACE))
    raw = namespace_values(NAMESPACE)
    _check_namespaces(problems)
    project = pulumi.Config("gcp").get("project")
    if not project:
        problems.items.append(("gcp:project", "missing: set it with pulumi config set gcp:project PROJECT_ID"))
    config = problems.build("", StackConfig, raw)
    problems.raise_if_any()
    settings = _settings(config, project, problems)
    problems.raise_if_any()
    return settings


def _check_namespaces(problems: Problems) -> None:
    """A key under an unknown namespace (``mcp-afinity:prefix``) is reported, never ignored."""
    from pulumi.runtime import config as runtime_config

    keys = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    for key in sorted(keys):
        namespace = key.partition(":")[0]
        if namespace not in KNOWN_NAMESPACES:
            close = difflib.get_close_matches(namespace, KNOWN_NAMESPACES, n=1)
            hint = f"; did you mean {close[0]}:?" if close else f"; known: {', '.join(KNOWN_NAMESPACES)}"
            problems.items.append((key, f"unknown namespace {namespace!r}{hint}"))


def _settings(config: StackConfig, project: str, problems: Problems) -> StackSettings:
    labels = {"app": "mcp-affinity", "environment": config.environment, **config.labels}
    common = {"prefix": config.prefix, "project": project, "labels": labels,
              "deletionProtection": config.deletion_protection}
    network = problems.build("network", NetworkArgs, {**_dump(config.network), **common})
    platforms = {}
    for name, platform in PLATFORMS.items():
        if name in config.platforms:
            platforms[name] = platform.settings(config, common, problems, network)
        elif platform.keys_set(config):
            problems.add(platform.KEYS[0], f"set, but platforms does not include {name}")
    needs_store = any(PLATFORMS[n].needs_store(s) for n, s in platforms.items() if s is not None)
    store = None
    if config.session_store is not None or needs_store:
        if not needs_store:
            problems.add("sessionStore", "set, but no service uses a store (stateless services without notificationBroker)")
        values = _dump(config.session_store) if config.session_store is not None else {}
        store = problems.build("sessionStore", SessionStoreArgs, {**values, **common})
    # Rules across components need every component's own settings valid first.
    problems.raise_if_any()
    _check_hosts(config, problems)
    problems.raise_if_any()
    routes: dict[str, RouteArgs] = {}
    for name, platform_settings in platforms.items():
        if platform_settings is not None:
            for key, route in PLATFORMS[name].routes(platform_settings).items():
                if key in routes:
                    problems.add(f"services.{key}", f"the name {key!r} is the load-balancer route of platform {name}; rename the service")
                routes[key] = route
    oauth = sorted(k for k, s in config.services.items() if s.access.mode.value == "oauth")
    load_balancer = problems.build("loadBalancer", GlobalHttpsLoadBalancerArgs, {
        **_dump(config.load_balancer), **common, "routes": {k: r.model_dump(by_alias=True) for k, r in routes.items()},
        "oauthRoutes": oauth})
    settings = StackSettings(config, network, store, load_balancer, platforms, problems.secret_keys)
    if network is not None and store is not None and store.region and store.region not in network.regions:
        problems.add("sessionStore.region", f"{store.region!r} has no subnet; network regions: {', '.join(network.regions)}")
    if not problems.items:
        _check_prod(settings, problems)
        _check_names(settings, problems)
    return settings


def _check_hosts(config: StackConfig, problems: Problems) -> None:
    """Each host on one service only and on a certificate, each shared path prefix on one service
    only: reported where the host or path is written (the load balancer repeats these checks)."""
    covered = {d for domains in config.load_balancer.certificates.values() for d in domains}
    seen: dict[str, str] = {}
    written = [(f"services.{n}.hosts", h) for n, s in sorted(config.services.items()) for h in s.hosts]
    written += [(f"meshServices.{n}.hosts", h) for n, s in sorted(config.mesh_services.items()) for h in s.hosts]
    written += [(f"services.{n}.pathPrefixes", p) for n, s in sorted(config.services.items()) if not s.hosts
                for p in s.path_prefixes]
    for key, value in written:
        if key.endswith(".hosts") and value not in covered:
            problems.add(key, f"{value} is on no certificate: add it to loadBalancer.certificates")
        if seen.setdefault(value, key) != key:
            problems.add(key, f"{value} is also routed by {seen[value]}")


def _dump(model: BaseModel) -> dict:
    return model.model_dump(by_alias=True, exclude_unset=True, mode="python")


def _check_prod(settings: StackSettings, problems: Problems) -> None:
    """Production invariants: deletion protection, two regions or more, a replicated store."""
    if settings.config.environment != "prod":
        return
    if not settings.config.deletion_protection:
        problems.add("deletionProtection", "must be true when environment is prod")
    if len(settings.network.regions) < 2:
        problems.add("network", "prod needs subnets in two regions or more")
    if settings.session_store is not None and settings.session_store.tier != "STANDARD_HA":
        problems.add("sessionStore.tier", "prod needs STANDARD_HA (no in-place change between tiers later)")


BASE_APIS = ("compute", "iam", "cloudresourcemanager", "run", "secretmanager")
STORE_APIS = ("redis", "servicenetworking")
GKE_APIS = ("container", "cloudkms", "artifactregistry")
MESH_APIS = ("gkehub", "mesh")


def required_apis(settings: StackSettings) -> list[str]:
    """The Google Cloud APIs this stack's resources need (``SERVICE.googleapis.com``), sorted:
    enable them once per project before the first ``pulumi up``."""
    apis = set(BASE_APIS)
    if settings.session_store is not None or settings.network.private_services_access:
        apis.update(STORE_APIS)
    gke = settings.platforms.get("gke")
    if gke:
        apis.update(GKE_APIS)
        if gke["mesh"].kind == "cloud-service-mesh":
            apis.update(MESH_APIS)
        if gke["cluster"].binary_authorization:
            apis.add("binaryauthorization")
    if _uses_iap(settings):
        apis.add("iap")
    return sorted(f"{api}.googleapis.com" for api in apis)


def _uses_iap(settings: StackSettings) -> bool:
    services = [s.access for s in settings.config.services.values()]
    services += [s.access for s in settings.config.mesh_services.values()]
    return any(a.mode.value == "iap" for a in services)


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
    """(config key, function returning the component's physical names) for every component."""
    yield "network", lambda: settings.network.names("network")
    if settings.session_store is not None:
        yield "sessionStore", lambda: settings.session_store.names("sessions")
    yield "loadBalancer", lambda: settings.load_balancer.names("lb")
    for name, platform_settings in settings.platforms.items():
        if platform_settings is not None:
            yield from PLATFORMS[name].named_components(platform_settings, settings.network)
