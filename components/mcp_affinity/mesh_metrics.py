"""McpMeshMetrics: what Managed Service for Prometheus scrapes of one mesh service, and the MCP
dimensions Istio adds to its request metrics there.

Per mesh service namespace (``{prefix}-{name}``), with monitoring on:

- a ``Telemetry`` (telemetry.istio.io/v1) adding ``mcp_method`` and ``mcp_name`` to Istio's
  standard request metrics (``istio_requests_total``, ``istio_request_duration_milliseconds``),
  taken from the ``Mcp-Method`` / ``Mcp-Name`` request headers MCP 2026-07-28 clients send
  (``metrics[].overrides[].tagOverrides``, values in Istio's attribute expressions such as
  ``request.headers['mcp-method']``: https://istio.io/latest/docs/tasks/observability/metrics/customize-metrics/,
  https://istio.io/latest/docs/reference/config/telemetry/). A request without the header gets
  ``unknown``: istiod passes ``value`` to the stats filter unchanged as the tag's CEL expression
  (https://github.com/istio/istio/blob/1.30.3/pilot/pkg/model/telemetry.go#L1021-L1027), a bare
  index into ``request.headers`` fails on a missing header (CEL: no such key), and the filter
  records a failed evaluation as ``unknown``
  (https://github.com/istio/proxy/blob/1.30.3/source/extensions/filters/http/istio_stats/istio_stats.cc#L641-L650;
  istio/proxy 1.30.3 is the proxy Istio 1.30.3 ships). Keep the bare index: a default such as
  ``'mcp-method' in request.headers ? ... : 'none'`` changes the value the dashboards read, and
  ``has(request.headers['mcp-method'])`` does not parse (CEL's ``has`` takes a field selection
  only), for which the filter drops the added tag without an error
  (https://github.com/istio/proxy/blob/1.30.3/source/extensions/filters/http/istio_stats/istio_stats.cc#L564-L574).
- a ``PodMonitoring`` (monitoring.googleapis.com/v1) of the front workload's sidecar (the pods the
  gateway calls: the pinning proxy with ``pinning: learned``, else the server pods), port 15090
  (``http-envoy-prom``) ``/stats/prometheus``, where Envoy reports those metrics as the
  destination; and with ``pinning: learned`` one of the proxies' HAProxy exporter (port
  :data:`~mcp_affinity.pinning_proxy.HEALTH_PORT`, 8404, ``/metrics``)
  (https://cloud.google.com/stackdriver/docs/managed-prometheus/setup-managed,
  https://cloud.google.com/stackdriver/docs/managed-prometheus/exporters/istio).
- the managed collectors (pods of namespace ``gmp-system``) admitted to those ports. 15090 is
  outside the sidecar's inbound capture (Istio excludes its own ports), so a ``NetworkPolicy`` is
  all it needs. The HAProxy exporter sits behind the sidecar, whose strict mutual TLS the
  collectors cannot speak (they hold no mesh certificate): a ``PeerAuthentication`` of the proxy's
  pods keeps STRICT but makes that one port PERMISSIVE (``portLevelMtls`` applies only with a
  workload ``selector``: https://istio.io/latest/docs/reference/config/security/peer_authentication/),
  an ``AuthorizationPolicy`` admits ``GET /metrics`` on it (a plain-text caller has no principal),
  and the ``NetworkPolicy`` admits only ``gmp-system`` there. ``/healthz`` and every other port
  stay as :class:`~mcp_affinity.McpMeshService` closed them.

Managed collection must be on in the cluster (``GkeCluster`` sets
``monitoring_config.managed_prometheus.enabled``).
"""

from __future__ import annotations

from typing import Annotated, Optional

import pulumi
import pulumi_kubernetes as k8s
from pydantic import Field, Strict

from . import pinning_proxy
from .affinity import METHOD_HEADER, NAME_HEADER
from .gke_cluster import ClusterRef, kubernetes_options
from .settings import Settings, takes_settings

COLLECTOR_NAMESPACE = "gmp-system"
"""Where GKE runs the managed Prometheus collectors."""

ENVOY_METRICS_PORT = 15090
"""The sidecar's Prometheus port (``http-envoy-prom`` on the injected ``istio-proxy`` container).
Scrapes name ports by number: a ``PodMonitoring`` takes either, and a number does not depend on the
injector's port names."""

DIMENSIONS = {"mcp_method": METHOD_HEADER, "mcp_name": NAME_HEADER}
"""Metric label -> the request header it is taken from."""

ISTIO_METRICS = ("REQUEST_COUNT", "REQUEST_DURATION")
"""The standard metrics that get the dimensions: ``istio_requests_total`` and
``istio_request_duration_milliseconds``."""


def telemetry_spec() -> dict:
    """The ``Telemetry`` spec: each of :data:`DIMENSIONS` added to :data:`ISTIO_METRICS` on the
    server side (the sidecar reporting as the destination)."""
    tags = {label: {"operation": "UPSERT", "value": f"request.headers['{header.lower()}']"}
            for label, header in DIMENSIONS.items()}
    return {"metrics": [{"providers": [{"name": "prometheus"}], "overrides": [
        {"match": {"metric": metric, "mode": "SERVER"}, "tagOverrides": tags} for metric in ISTIO_METRICS]}]}


def pod_monitoring_spec(app: str, port: int, path: str, interval_seconds: int) -> dict:
    """A ``PodMonitoring`` spec scraping ``path`` on container port ``port`` (a number) of pods
    labelled ``app`` every ``interval_seconds``."""
    return {"selector": {"matchLabels": {"app": app}},
            "endpoints": [{"port": port, "path": path, "scheme": "http", "interval": f"{interval_seconds}s"}]}


class McpMeshMetricsArgs(Settings):
    """Settings of :class:`McpMeshMetrics`."""

    scrape_interval_seconds: Annotated[int, Strict(), Field(ge=5, le=300)] = Field(
        default=30, description="how often the managed collectors scrape each pod (5 to 300 s; billed per sample).")


class McpMeshMetrics(pulumi.ComponentResource):
    """The ``Telemetry``, ``PodMonitoring`` objects and collector admissions of one mesh service
    (``args``: :class:`McpMeshMetricsArgs`).

    Context: ``namespace`` (the service's, which must exist: pass its component in
    ``opts.depends_on``), ``front`` (the ``app`` label of the pods the gateway calls), ``proxy``
    (the pinning proxy's ``app`` label, or None without ``pinning: learned``) and ``cluster``
    (:class:`~mcp_affinity.gke_cluster.ClusterRef`, for its Kubernetes provider). Istio sidecar
    data plane only (the pods carry ``istio-proxy``).

    Outputs: ``scraped`` (``app`` label -> the paths scraped on its pods).
    """

    scraped: pulumi.Output[dict]

    @takes_settings
    def __init__(self, name: str, args: McpMeshMetricsArgs, *, namespace: str, front: str, proxy: Optional[str],
                 cluster: ClusterRef, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("mcp-affinity:index:McpMeshMetrics", name, None, kubernetes_options(opts, cluster))
        self._name, self._namespace, self._args = name, namespace, args
        # Like every Kubernetes object of the package, wait for the node pool, and for the namespace.
        after = (opts.depends_on if isinstance(opts.depends_on, list) else [opts.depends_on]) \
            if opts and opts.depends_on else []
        self._child = pulumi.ResourceOptions(parent=self, depends_on=[*cluster.ready, *after])
        self._custom(f"{name}-mcp-dimensions", "telemetry.istio.io/v1", "Telemetry", "mcp-dimensions", telemetry_spec())
        self._custom(f"{name}-sidecar-metrics", "monitoring.googleapis.com/v1", "PodMonitoring", f"{front}-sidecar",
                     pod_monitoring_spec(front, ENVOY_METRICS_PORT, "/stats/prometheus", args.scrape_interval_seconds))
        self._admit_collectors(f"{name}-sidecar-metrics", front, ENVOY_METRICS_PORT)
        scraped = {front: ["/stats/prometheus"]}
        if proxy is not None:
            self._proxy_exporter(proxy)
            scraped[proxy] = ["/metrics"]
        self.scraped = pulumi.Output.from_input(scraped)
        self.register_outputs({"scraped": self.scraped})

    def _custom(self, resource: str, api_version: str, kind: str, name: str, spec: dict) -> None:
        k8s.apiextensions.CustomResource(resource, api_version=api_version, kind=kind, spec=spec, metadata={
            "name": name, "namespace": self._namespace, "labels": {"app": self._name}}, opts=self._child)

    def _admit_collectors(self, resource: str, app: str, port: int) -> None:
        """Pods labelled ``app`` also accept ``port`` from the managed collectors (NetworkPolicies add up)."""
        collectors = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": COLLECTOR_NAMESPACE}}}
        k8s.networking.v1.NetworkPolicy(resource, metadata={
            "name": f"{app}-from-collectors-{port}", "namespace": self._namespace, "labels": {"app": self._name}}, spec={
            "podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [collectors], "ports": [{"protocol": "TCP", "port": port}]}]}, opts=self._child)

    def _proxy_exporter(self, proxy: str) -> None:
        """The HAProxy exporter scraped in plain text through the proxy's sidecar (module docstring)."""
        port = pinning_proxy.HEALTH_PORT
        selector = {"matchLabels": {"app": proxy}}
        self._custom(f"{self._name}-proxy-metrics", "monitoring.googleapis.com/v1", "PodMonitoring", proxy,
                     pod_monitoring_spec(proxy, port, "/metrics", self._args.scrape_interval_seconds))
        self._custom(f"{self._name}-proxy-metrics-mtls", "security.istio.io/v1", "PeerAuthentication",
                     f"{proxy}-metrics", {"selector": selector, "mtls": {"mode": "STRICT"},
                                          "portLevelMtls": {str(port): {"mode": "PERMISSIVE"}}})
        self._custom(f"{self._name}-proxy-metrics-allow", "security.istio.io/v1", "AuthorizationPolicy",
                     f"{proxy}-metrics", {"selector": selector, "action": "ALLOW", "rules": [{"to": [{"operation": {
                         "ports": [str(port)], "methods": ["GET"], "paths": ["/metrics"]}}]}]})
        self._admit_collectors(f"{self._name}-proxy-metrics", proxy, port)


def front_app(name: str, learned: bool) -> tuple[str, Optional[str]]:
    """(the ``app`` label of the pods the gateway calls, the pinning proxy's or None) of mesh service ``name``."""
    proxy = f"{name}-pinning" if learned else None
    return proxy or name, proxy

