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
    CloudRunMcpService, CloudRunMcpServiceArgs, ConfigError, ExistingNetworkArgs,
    GlobalHttpsLoadBalancer, GlobalHttpsLoadBalancerArgs, Network, NetworkArgs, RouteArgs,
    SessionStore, SessionStoreArgs, SessionStoreRef, SubnetArgs,
)
from mcp_affinity.errors import describe_validation_error
from stack_config import NAMESPACE, StackConfig

PENDING = "<pending>"


class _Sources:
    """Where component args take other components' outputs from."""

    def __init__(self, network_id: Any, subnet_ids: Any, connection: Optional[pulumi.Resource],
                 store: SessionStoreRef, backend_ids: Any):
        self.network_id, self.subnet_ids, self.connection = network_id, subnet_ids, connection
        self.store, self.backend_ids = store, backend_ids


def _pending() -> _Sources:
    store = SessionStoreRef(secret_id=PENDING, secret_version=PENDING, ca_certificate=PENDING)
    return _Sources(PENDING, defaultdict(lambda: PENDING), None, store, defaultdict(lambda: PENDING))


def build(config: StackConfig) -> dict[str, Any]:
    """Create every component of the stack; return the stack outputs."""
    args = _Args(config)
    args.check_all(_pending())
    network = Network("network", args.network())
    src = _Sources(network.network_id, network.subnet_ids, network.private_services_connection, None, {})  # type: ignore[arg-type]
    store = SessionStore("session-store", args.store(src))
    src.store = store.ref()
    services = {name: CloudRunMcpService(name, args.service(name, src)) for name in sorted(config.services)}
    src.backend_ids = {name: svc.backend_service_id for name, svc in services.items()}
    lb = GlobalHttpsLoadBalancer("load-balancer", args.load_balancer(src))
    return {
        "loadBalancerIp": lb.ip_address,
        "serviceUrls": {name: svc.service_urls for name, svc in services.items()},
        "sessionStoreHost": store.host,
        "sessionStoreSecret": store.secret_id,
    }


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
        self.load_balancer(src)

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
            routes={
                name: RouteArgs(backend_service=src.backend_ids[name], hosts=s.hosts, path_prefixes=s.path_prefixes)
                for name, s in sorted(c.services.items())
            },
        ))


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
