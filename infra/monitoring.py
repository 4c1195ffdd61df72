"""The stack's ``monitoring`` key: on by default in staging and prod, off in dev, and what it watches.

:func:`settings` validates the key into :class:`~mcp_affinity.monitoring.MonitoringArgs` (None
when monitoring is off); :func:`targets` names what the stack runs (backend services, Cloud Run
services and shards, pinning proxies, the store) from the validated settings, so the dashboard
and alert policies watch exactly what the stack creates.
"""

from __future__ import annotations

from typing import Any, Optional

from mcp_affinity.mesh_metrics import front_app
from mcp_affinity.monitoring import MeshTarget, MonitoringArgs, MonitoringTargets, ProxyTarget, ServiceTarget
from mcp_affinity.settings import config_model

MonitoringConfig = config_model(MonitoringArgs)

DEFAULT_ON = frozenset({"staging", "prod"})
"""Environments where monitoring is on unless ``monitoring.enabled: false``."""


def settings(config, common: dict, problems) -> Optional[MonitoringArgs]:
    """``monitoring`` validated with the common values; None when off (unset in dev, or ``enabled: false``)."""
    values = config.monitoring.model_dump(by_alias=True, exclude_unset=True) if config.monitoring else {}
    enabled = values.get("enabled")
    if enabled is None:
        enabled = config.environment in DEFAULT_ON
    args = problems.build("monitoring", MonitoringArgs, {**values, **common, "enabled": enabled})
    return args if args is not None and args.enabled else None


def targets(settings: Any) -> MonitoringTargets:
    """What the stack's monitoring watches, from its validated settings (physical names)."""
    services: dict[str, ServiceTarget] = {}
    for name, (args, *_) in sorted((settings.platforms.get("cloud-run") or {}).items()):
        names = args.names(name, args.regions or settings.network.regions)
        if args.pinning == "shards":
            services[name] = ServiceTarget(
                tuple(v.value for k, v in names.items() if k.startswith("backend-")),
                tuple(v.value for k, v in names.items() if k.startswith("service-s")), sharded=True)
        else:
            services[name] = ServiceTarget((names["backend"].value,), (names["service"].value,))
    gke = settings.platforms.get("gke")
    proxies: dict[str, ProxyTarget] = {}
    meshes: dict[str, MeshTarget] = {}
    if gke:
        # Every mesh service sits behind the gateway's one backend service.
        services["gke"] = ServiceTarget((gke["gateway"].names("gateway")["backend"].value,))
        if gke["mesh"].data_plane == "sidecar":  # what McpMeshMetrics scrapes (infra/platforms/gke.py)
            for name, args in sorted(gke["services"].items()):
                namespace, learned = args.names(name)["namespace"].value, args.pinning == "learned"
                meshes[name] = MeshTarget(namespace, front_app(name, learned)[0])
                if learned:
                    proxies[name] = ProxyTarget(namespace, args.pinning_replicas)
    store = settings.session_store.names("sessions")["instance"].value if settings.session_store else None
    certificates = {key: tuple(domains) for key, domains in sorted(settings.load_balancer.certificates.items())} \
        if settings.load_balancer is not None else {}
    return MonitoringTargets(services, proxies, store, certificates, meshes)
