"""The mcp-affinity stack program: validate every setting, then wire the components in one pass.

1. :func:`stack_config.load` reads the ``mcp-affinity:*`` keys, validates each component's settings
   and the rules across them; a fault stops here with a ConfigError, before any resource exists.
2. :func:`build` creates Network -> SessionStore -> each platform's components -> load balancer.
"""

from typing import Any

import pulumi

from mcp_affinity import GlobalHttpsLoadBalancer, Network, SessionStore
from platforms import PLATFORMS
from platforms.context import SharedContext
from apis import required_apis
from monitoring import targets as monitoring_targets
from mcp_affinity.monitoring import McpMonitoring
from stack_config import StackSettings, load


def build(settings: StackSettings) -> dict[str, Any]:
    """Create every component of the stack; return the stack outputs."""
    network = Network("network", settings.network)
    outputs: dict[str, Any] = {}
    store_ref = None
    if settings.session_store is not None:
        store = SessionStore("sessions", settings.session_store, network=network.ref())
        store_ref = store.ref()
        outputs.update(sessionStoreHost=store.host, sessionStoreSecret=store.secret_id)
    context = SharedContext(network.ref(), store_ref, settings.secret_keys, settings.monitoring is not None)
    backends: dict[str, Any] = {}
    for name, platform_settings in settings.platforms.items():
        platform_backends, platform_outputs = PLATFORMS[name].build(platform_settings, context)
        backends.update(platform_backends)
        outputs.update(platform_outputs)
    lb = GlobalHttpsLoadBalancer("lb", settings.load_balancer, backends=backends)
    outputs["loadBalancerIp"] = lb.ip_address
    if settings.monitoring is not None:
        watch = McpMonitoring("monitoring", settings.monitoring, targets=monitoring_targets(settings))
        outputs.update(monitoringDashboard=watch.dashboard_id, monitoringAlerts=watch.alerts)
    outputs["requiredApis"] = required_apis(settings)
    return outputs


for key, value in build(load()).items():
    pulumi.export(key, value)
