"""McpMonitoring: a Cloud Monitoring dashboard and PromQL alert policies over what the package runs.

What it watches (:class:`MonitoringTargets`, plain physical names known before any resource exists):
the load balancer's backend services (one per service, one per shard), the Cloud Run services
(each shard's one instance), the learned-pinning proxies on GKE (their stick table) and the
session store (Memorystore for Redis).

Every panel and every alert is a PromQL expression built here once (:func:`panels`,
:func:`alert_rules`); the same strings go to the dashboard, to the alert policies
(``conditionPrometheusQueryLanguage``) and to a Prometheus rule file (:func:`rules_file`) that
``promtool`` checks and a real Prometheus evaluates in the tests.

Metric names follow Google's mapping of Cloud Monitoring metrics to PromQL: the first ``/``
becomes ``:``, every other special character ``_``; a distribution is a histogram with ``_bucket``;
``monitored_resource`` names the resource type
(https://cloud.google.com/monitoring/promql/promql-mapping). The metrics and their labels:

- ``loadbalancing.googleapis.com/https/request_count`` and ``.../https/total_latencies`` (ms) on
  ``https_lb_rule``, labels ``backend_target_name``, ``response_code``, ``response_code_class``
  (https://cloud.google.com/monitoring/api/metrics_gcp_i_o#gcp-loadbalancing,
  https://cloud.google.com/load-balancing/docs/https/https-logging-monitoring).
- ``run.googleapis.com/container/instance_count`` on ``cloud_run_revision``, labels
  ``service_name``, ``location`` (https://cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-run).
- ``redis.googleapis.com/stats/memory/usage_ratio`` and ``.../clients/connected`` on
  ``redis_instance``, label ``instance_id`` (https://cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-redis).
- HAProxy's Prometheus exporter on the pinning proxies (``haproxy_sticktable_used``,
  ``haproxy_sticktable_size``, ``haproxy_backend_redispatch_warnings_total``,
  ``haproxy_backend_http_responses_total``), scraped by Managed Service for Prometheus, which
  adds the pod's ``namespace`` (https://cloud.google.com/stackdriver/docs/managed-prometheus/setup-managed).
- Istio's ``istio_requests_total`` and ``istio_request_duration_milliseconds`` (ms, a histogram)
  as the mesh services' front sidecars report them (``reporter="destination"``), with the
  ``mcp_method`` and ``mcp_name`` dimensions :class:`~mcp_affinity.McpMeshMetrics` adds
  (https://istio.io/latest/docs/reference/config/metrics/).

Two log-based metrics (:func:`log_metrics`) add what no built-in metric carries:

- ``{prefix}/mcp.lb.request.count`` over the load balancer's request logs (``resource.type =
  "http_load_balancer"``): per backend service, ``httpRequest.status``, ``jsonPayload.statusDetails``
  (``handled_by_identity_aware_proxy`` marks IAP's answers), and Cloud Armor's
  ``jsonPayload.enforcedSecurityPolicy.outcome`` and ``jsonPayload.previewSecurityPolicy.outcome``
  (a rule in preview that would have denied). Fields from
  https://cloud.google.com/load-balancing/docs/https/https-logging-monitoring and
  https://cloud.google.com/armor/docs/request-logging; the logs are sampled at the backend
  service's ``logSampleRate``.
- ``{prefix}/mcp.server.operation.duration`` (ms, a distribution, after OpenTelemetry's
  ``mcp.server.operation.duration``) over the shard ingress containers' JSON log lines
  (``resource.type = "cloud_run_revision"``, https://cloud.google.com/run/docs/logging): per
  ``mcp_method_name``, ``gen_ai_tool_name`` and ``mcp_session_verdict`` (``own``, ``foreign``,
  ``none``), fields :data:`~mcp_affinity.cloud_run_shards.LOG_FORMAT` writes.

A log-based metric reads in PromQL as ``logging_googleapis_com:user_{name}`` with every special
character ``_``.

A managed certificate has no metric of its status: an HTTPS uptime check per certificate domain
validates the certificate the load balancer serves (``validateSsl``; any HTTP status passes, so
IAP or a server's 404 do not count), and ``McpCertificateNotActive`` fires while a domain's
checks fail (a certificate still ``PROVISIONING`` serves none that validates). Uptime checks and
their alert follow https://cloud.google.com/monitoring/uptime-checks and its alerting page; the
condition is a threshold on ``monitoring.googleapis.com/uptime_check/check_passed``, which is
boolean, not PromQL.

Alert policies take PromQL conditions (``conditionPrometheusQueryLanguage``:
https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies#prometheusquerylanguagecondition);
metric validation is off so a policy over a metric that has no data yet (a new exporter) applies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Optional

import pulumi
import pulumi_gcp as gcp
from pydantic import Field, Strict

from .settings import Bool, Model, Name, Settings, matching, takes_settings

LB_REQUESTS = 'loadbalancing_googleapis_com:https_request_count{{monitored_resource="https_lb_rule",backend_target_name=~"{backends}"{extra}}}'
LB_LATENCY = ('loadbalancing_googleapis_com:https_total_latencies_bucket'
              '{{monitored_resource="https_lb_rule",backend_target_name=~"{backends}"}}')
RUN_INSTANCES = 'run_googleapis_com:container_instance_count{{monitored_resource="cloud_run_revision",service_name=~"{services}"}}'
REDIS_MEMORY = 'redis_googleapis_com:stats_memory_usage_ratio{{monitored_resource="redis_instance",instance_id=~".*/{instance}"}}'
REDIS_CLIENTS = 'redis_googleapis_com:clients_connected{{monitored_resource="redis_instance",instance_id=~".*/{instance}"}}'
PINS_USED = 'haproxy_sticktable_used{{namespace="{namespace}",name="{table}"}}'
PINS_SIZE = 'haproxy_sticktable_size{{namespace="{namespace}",name="{table}"}}'
REDISPATCHES = 'haproxy_backend_redispatch_warnings_total{{namespace="{namespace}",proxy="{backend}"}}'
HANDOVER_4XX = 'haproxy_backend_http_responses_total{{namespace="{namespace}",proxy="handover",code="4xx"}}'

ISTIO_REQUESTS, ISTIO_LATENCY = "istio_requests_total", "istio_request_duration_milliseconds_bucket"
"""Istio's standard request metrics as the sidecar reports them (https://istio.io/latest/docs/reference/config/metrics/)."""

LB_LOG_METRIC = "{prefix}/mcp.lb.request.count"
SHARD_LOG_METRIC = "{prefix}/mcp.server.operation.duration"

WINDOW = "5m"
"""The rate window of every expression (Cloud Monitoring samples these metrics every 60 s)."""

PIN_TABLE, PIN_BACKEND = "replicas", "replicas"
"""The pinning proxy's stick table and backend (``pinning_proxy.haproxy_config``)."""

CERTIFICATE_ALERT = "McpCertificateNotActive"
CERTIFICATE_SUMMARY = "HTTPS checks of a certificate domain fail (certificate not ACTIVE or not valid)"
CERTIFICATE_RUNBOOK = ("A Google-managed certificate turns ACTIVE only once each domain's DNS A record points at the "
                       "load balancer (the loadBalancerIp output): check the records and the certificate's status "
                       "(gcloud compute ssl-certificates describe); provisioning takes up to 60 minutes after DNS.")

RULE_GROUP = "mcp-affinity"
EVALUATION_INTERVAL_SECONDS = 60


# https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.notificationChannels
# projects/[PROJECT_ID_OR_NUMBER]/notificationChannels/[CHANNEL_ID]; channel ids are numbers.
ChannelId = Annotated[str, Strict(), matching(
    r"projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)/notificationChannels/[0-9]+",
    "a notification channel: write projects/PROJECT_ID/notificationChannels/CHANNEL_ID (a numeric id, as gcloud "
    "beta monitoring channels list shows)")]
Ratio = Annotated[float, Strict(), Field(gt=0, lt=1)]
Rate = Annotated[float, Strict(), Field(gt=0, le=10000)]
"""A number, never a text such as "0.5" (which YAML would give for a quoted value)."""


class ThresholdsArgs(Model):
    """When each alert fires (its expression's comparison)."""

    error_ratio: Ratio = Field(default=0.05, description="share of requests answered 5xx (0 to 1, exclusive).")
    lost_sessions_per_second: Rate = Field(
        default=0.1, description="404s per second on a service: MCP's answer to a session the server does not "
                                 "hold (above 0, at most 10000).")
    denials_per_second: Rate = Field(
        default=1.0, description="403 and 429 per second on a service (Cloud Armor, IAP, limits), and ids no "
                                 "pinning proxy knows (above 0, at most 10000).")
    pin_table_ratio: Ratio = Field(default=0.8, description="pins in use over the stick table's size (0 to 1).")
    store_memory_ratio: Ratio = Field(default=0.8, description="the store's memory usage ratio (0 to 1).")
    for_seconds: Annotated[int, Strict(), Field(ge=0, le=86400)] = Field(
        default=300, description="how long an expression must hold before its alert fires (0 to 86400 s).")


class MonitoringArgs(Settings):
    """Settings of :class:`McpMonitoring`."""

    enabled: Optional[Bool] = Field(
        default=None,
        description="build the dashboard and alert policies; unset: on in staging and prod, off in dev.")
    notification_channels: dict[Name, ChannelId] = Field(
        default_factory=dict,
        description="channels every alert notifies, by a name of yours "
                    "(`projects/PROJECT_ID/notificationChannels/CHANNEL_ID`); none: incidents show in the console only.")
    thresholds: ThresholdsArgs = Field(default_factory=ThresholdsArgs, description="when each alert fires.")


@dataclass(frozen=True)
class ServiceTarget:
    """One MCP service behind the load balancer: its backend services (one, or one per shard) and
    its Cloud Run services (none on GKE; one per shard index with ``pinning: shards``)."""

    backend_services: tuple[str, ...]
    cloud_run_services: tuple[str, ...] = ()
    sharded: bool = False


@dataclass(frozen=True)
class ProxyTarget:
    """A learned-pinning proxy on GKE: its namespace and replica count (with two or more, ids no
    replica knows are handed over, and counted).

    Its alerts read the proxies' HAProxy exporter (port 8404, ``/metrics``) as Managed Service for
    Prometheus labels it (``namespace``, ``pod``): give proxy targets only where something scrapes
    them (:class:`~mcp_affinity.McpMeshMetrics` does, and admits the collectors)."""

    namespace: str
    replicas: int


@dataclass(frozen=True)
class MeshTarget:
    """A mesh service whose front pods' sidecars are scraped with the MCP dimensions
    (:class:`~mcp_affinity.McpMeshMetrics`): its ``namespace`` and the ``app`` label of the pods
    the gateway calls (``workload``; Istio's ``destination_workload`` is the Deployment's or
    StatefulSet's name, which the package makes equal to it)."""

    namespace: str
    workload: str


@dataclass(frozen=True)
class MonitoringTargets:
    """What :class:`McpMonitoring` watches: services by name, pinning proxies by mesh service name
    and the store's Memorystore instance name (or None)."""

    services: dict[str, ServiceTarget] = field(default_factory=dict)
    proxies: dict[str, ProxyTarget] = field(default_factory=dict)
    store_instance: Optional[str] = None
    certificates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Google-managed certificates by key: their domains, each checked over HTTPS."""
    meshes: dict[str, MeshTarget] = field(default_factory=dict)
    """Mesh services by name whose Istio request metrics carry ``mcp_method`` and ``mcp_name``."""

    def empty(self) -> bool:
        return not (self.services or self.proxies or self.store_instance or self.certificates or self.meshes)


@dataclass(frozen=True)
class Panel:
    """A dashboard chart: ``queries`` (legend -> PromQL), the ``threshold`` line (or None) and its
    ``direction`` (``ABOVE``/``BELOW``), the ``target`` it watches and the y-axis ``unit``."""

    title: str
    target: str
    queries: dict[str, str]
    unit: str
    threshold: Optional[float] = None
    direction: str = "ABOVE"


@dataclass(frozen=True)
class AlertRule:
    """A Prometheus alerting rule and the alert policy made of it: ``alert`` (its rule name, unique
    per target), ``expr`` (PromQL ending in its comparison with ``threshold``), ``for_seconds``,
    ``target``, ``summary`` and ``runbook`` (what to do when it fires)."""

    alert: str
    target: str
    expr: str
    threshold: float
    for_seconds: int
    summary: str
    runbook: str


@dataclass(frozen=True)
class LogMetric:
    """A log-based metric: ``name``, Logging ``filter``, ``labels`` (label -> extractor),
    ``value`` (the extractor of a distribution's value, or None for a counter) and ``unit``."""

    name: str
    description: str
    filter: str
    labels: dict[str, str]
    value: Optional[str] = None
    unit: str = "1"

    @property
    def promql_name(self) -> str:
        """``logging_googleapis_com:user_`` + the name with each special character ``_``
        (https://cloud.google.com/monitoring/promql/promql-mapping)."""
        return "logging_googleapis_com:user_" + re.sub(r"[^A-Za-z0-9_]", "_", self.name)


def log_metrics(args: MonitoringArgs, targets: MonitoringTargets) -> list[LogMetric]:
    """The log-based metrics the panels and alerts read: load-balancer requests of the watched
    backend services, and with shards the ingress containers' operations."""
    backends = sorted(b for s in targets.services.values() for b in s.backend_services)
    metrics = []
    if backends:
        metrics.append(LogMetric(
            LB_LOG_METRIC.format(prefix=args.prefix), "MCP requests at the load balancer: status, IAP, Cloud Armor",
            f'resource.type="http_load_balancer" AND resource.labels.backend_service_name=~"^({_alternatives(backends)})$"',
            {"backend": "EXTRACT(resource.labels.backend_service_name)", "status": "EXTRACT(httpRequest.status)",
             "status_details": "EXTRACT(jsonPayload.statusDetails)",
             "armor_outcome": "EXTRACT(jsonPayload.enforcedSecurityPolicy.outcome)",
             "preview_outcome": "EXTRACT(jsonPayload.previewSecurityPolicy.outcome)"}))
    shards = sorted(c for s in targets.services.values() if s.sharded for c in s.cloud_run_services)
    if shards:
        metrics.append(LogMetric(
            SHARD_LOG_METRIC.format(prefix=args.prefix), "MCP operations at the shard ingress: method, tool, session verdict",
            f'resource.type="cloud_run_revision" AND resource.labels.service_name=~"^({_alternatives(shards)})$" '
            "AND jsonPayload.mcp_session_verdict:*",
            {"mcp_method_name": "EXTRACT(jsonPayload.mcp_method_name)", "gen_ai_tool_name": "EXTRACT(jsonPayload.gen_ai_tool_name)",
             "mcp_session_verdict": "EXTRACT(jsonPayload.mcp_session_verdict)"},
            value="EXTRACT(jsonPayload.duration_ms)", unit="ms"))
    return metrics


def _alternatives(names) -> str:
    """A regex matching exactly ``names`` (physical names hold no regex metacharacter but ``-``)."""
    return "|".join(sorted(names))


def _rate(selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({selector}[{WINDOW}]))"


def _service_queries(service: ServiceTarget) -> dict[str, str]:
    backends = _alternatives(service.backend_services)
    requests = LB_REQUESTS.format(backends=backends, extra="")
    errors = LB_REQUESTS.format(backends=backends, extra=',response_code_class="500"')
    return {
        "errors": f"{_rate(errors, 'backend_target_name')} / {_rate(requests, 'backend_target_name')}",
        "lost": _rate(LB_REQUESTS.format(backends=backends, extra=',response_code="404"'), "backend_target_name"),
        "denied": _rate(LB_REQUESTS.format(backends=backends, extra=',response_code=~"403|429"'), "backend_target_name"),
        "classes": _rate(requests, "response_code_class"),
        "instances": (f"sum by (service_name, location) ({RUN_INSTANCES.format(services=_alternatives(service.cloud_run_services))})"
                      if service.cloud_run_services else ""),
    }


def _latency(backends: str, quantile: float) -> str:
    return f"histogram_quantile({quantile}, {_rate(LB_LATENCY.format(backends=backends), 'le')})"


def panels(args: MonitoringArgs, targets: MonitoringTargets) -> list[Panel]:
    """The dashboard's charts, per service, per pinning proxy and for the store, in order."""
    t, result = args.thresholds, []
    for name, service in sorted(targets.services.items()):
        q, backends = _service_queries(service), _alternatives(service.backend_services)
        result += [
            Panel(f"{name}: requests by response class", name, {"${response_code_class}": q["classes"]}, "1/s"),
            Panel(f"{name}: latency p50 / p95 / p99", name,
                  {f"p{round(x * 100)}": _latency(backends, x) for x in (0.5, 0.95, 0.99)}, "ms"),
            Panel(f"{name}: 5xx ratio", name, {"${backend_target_name}": q["errors"]}, "1", t.error_ratio),
            Panel(f"{name}: sessions lost (404)", name, {"${backend_target_name}": q["lost"]}, "1/s",
                  t.lost_sessions_per_second),
            Panel(f"{name}: denied (403, 429)", name, {"${backend_target_name}": q["denied"]}, "1/s",
                  t.denials_per_second),
        ]
        result += _log_panels(args, name, service)
        if q["instances"]:
            result.append(Panel(f"{name}: instances" + (" per shard (exactly 1)" if service.sharded else ""), name,
                                {"${service_name} ${location}": q["instances"]}, "1",
                                1 if service.sharded else None, "BELOW"))
    for name, mesh in sorted(targets.meshes.items()):
        result += _mesh_panels(name, mesh)
    for name, proxy in sorted(targets.proxies.items()):
        result.append(Panel(f"{name}: pins in use / table size", name,
                            {"${pod}": _pin_ratio(proxy)}, "1", t.pin_table_ratio))
    if targets.store_instance:
        store = targets.store_instance
        result += [Panel("session store: memory usage ratio", store,
                         {"memory": f"max({REDIS_MEMORY.format(instance=store)})"}, "1", t.store_memory_ratio),
                   Panel("session store: connected clients", store,
                         {"clients": f"sum({REDIS_CLIENTS.format(instance=store)})"}, "1")]
    return result


def _lb_log(args: MonitoringArgs, service: ServiceTarget, extra: str) -> str:
    name = LogMetric(LB_LOG_METRIC.format(prefix=args.prefix), "", "", {}).promql_name
    return f'{name}{{backend=~"{_alternatives(service.backend_services)}"{extra}}}'


def _shard_log(args: MonitoringArgs, service: ServiceTarget, suffix: str, extra: str = "") -> str:
    name = LogMetric(SHARD_LOG_METRIC.format(prefix=args.prefix), "", "", {}).promql_name
    return (f'{name}_{suffix}{{monitored_resource="cloud_run_revision",'
            f'service_name=~"{_alternatives(service.cloud_run_services)}"{extra}}}')


def _log_panels(args: MonitoringArgs, name: str, service: ServiceTarget) -> list[Panel]:
    """Panels over the log-based metrics: Cloud Armor and IAP at the load balancer; per MCP method,
    tool and session verdict behind shards."""
    panels_ = [
        Panel(f"{name}: Cloud Armor denials and WAF preview matches", name, {
            "denied": _rate(_lb_log(args, service, ',armor_outcome="DENY"'), "status"),
            "preview would deny": _rate(_lb_log(args, service, ',preview_outcome="DENY"'), "status")}, "1/s"),
        Panel(f"{name}: IAP refusals", name, {
            "${status}": _rate(_lb_log(args, service, ',status_details="handled_by_identity_aware_proxy",status=~"4.."'),
                               "status")}, "1/s"),
    ]
    if service.sharded:
        panels_ += [
            Panel(f"{name}: requests by MCP method and session verdict", name, {
                "${mcp_method_name} ${mcp_session_verdict}": _rate(_shard_log(args, service, "count"),
                                                                     "mcp_method_name, mcp_session_verdict")}, "1/s"),
            Panel(f"{name}: p95 latency by MCP method and tool", name, {
                "${mcp_method_name} ${gen_ai_tool_name}": "histogram_quantile(0.95, " + _rate(
                    _shard_log(args, service, "bucket"), "le, mcp_method_name, gen_ai_tool_name") + ")"}, "ms"),
        ]
    return panels_


def _istio(metric: str, mesh: MeshTarget, extra: str = "") -> str:
    return (f'{metric}{{reporter="destination",destination_workload_namespace="{mesh.namespace}",'
            f'destination_workload="{mesh.workload}"{extra}}}')


def _mesh_panels(name: str, mesh: MeshTarget) -> list[Panel]:
    """Per MCP method (and tool) from Istio's request metrics with the ``mcp_method`` and
    ``mcp_name`` dimensions (:func:`~mcp_affinity.mesh_metrics.telemetry_spec`)."""
    requests = _istio(ISTIO_REQUESTS, mesh)
    errors = _istio(ISTIO_REQUESTS, mesh, ',response_code=~"5.."')
    latency = _rate(_istio(ISTIO_LATENCY, mesh), "le, mcp_method")
    return [
        Panel(f"{name}: requests by MCP method", name, {"${mcp_method}": _rate(requests, "mcp_method")}, "1/s"),
        Panel(f"{name}: tool calls by tool", name, {
            "${mcp_name}": _rate(_istio(ISTIO_REQUESTS, mesh, ',mcp_method="tools/call"'), "mcp_name")}, "1/s"),
        Panel(f"{name}: 5xx ratio by MCP method", name, {
            "${mcp_method}": f"{_rate(errors, 'mcp_method')} / {_rate(requests, 'mcp_method')}"}, "1"),
        Panel(f"{name}: latency p50 / p95 / p99 by MCP method", name, {
            f"p{round(x * 100)} ${{mcp_method}}": f"histogram_quantile({x}, {latency})" for x in (0.5, 0.95, 0.99)},
            "ms"),
    ]


def _pin_ratio(proxy: ProxyTarget) -> str:
    used = PINS_USED.format(namespace=proxy.namespace, table=PIN_TABLE)
    size = PINS_SIZE.format(namespace=proxy.namespace, table=PIN_TABLE)
    return f"max by (pod) ({used} / {size})"


def alert_rules(args: MonitoringArgs, targets: MonitoringTargets) -> list[AlertRule]:
    """Every alert, per service, per pinning proxy and for the store; raises ``ValueError`` when
    there is nothing to watch."""
    if targets.empty():
        raise ValueError("monitoring is on but there is nothing to watch: no service, pinning proxy or store")
    t, wait, rules = args.thresholds, args.thresholds.for_seconds, []
    for name, service in sorted(targets.services.items()):
        q = _service_queries(service)
        rules += [
            AlertRule("McpErrorRatio", name, f"{q['errors']} > {t.error_ratio}", t.error_ratio, wait,
                      f"{name}: more than {t.error_ratio:.0%} of requests answered 5xx",
                      "Read the service's logs (Cloud Run revision or pods) for the failing requests; a deploy "
                      "in progress or a full session store (the store panels) are the usual causes; roll back if a "
                      "new revision is to blame."),
            AlertRule("McpSessionsLost", name, f"{q['lost']} > {t.lost_sessions_per_second}",
                      t.lost_sessions_per_second, wait,
                      f"{name}: more than {t.lost_sessions_per_second}/s requests answered 404 (session not found)",
                      "Clients hold sessions the server no longer has and must re-initialize: look for instances "
                      "or pods restarted or scaled in (instances panel), a shard without its instance, or a "
                      "deploy; a flood of made-up ids shows in the denials panel at the same time."),
            AlertRule("McpDenialSurge", name, f"{q['denied']} > {t.denials_per_second}", t.denials_per_second, wait,
                      f"{name}: more than {t.denials_per_second}/s requests refused with 403 or 429",
                      "Read the load balancer's request logs (jsonPayload.enforcedSecurityPolicy, statusDetails): "
                      "an attack or a misbehaving client is throttled as designed; a caller refused by mistake "
                      "needs its IAP/IAM access or the service's edge limits changed."),
        ]
        if service.sharded:
            foreign = _rate(_shard_log(args, service, "count", ',mcp_session_verdict="foreign"'), "service_name")
            rules.append(AlertRule(
                "McpForeignShardKeys", name, f"{foreign} > {t.denials_per_second}", t.denials_per_second, wait,
                f"{name}: requests carry session ids of no shard of theirs",
                "The shard ingress answered 404 to ids that are not its own: made-up ids (a scan or a broken client), "
                "or a URL map that sends a shard's key elsewhere (read the planned route rules). Read the shard "
                "logs' mcp_session_verdict and the callers in the load balancer's logs."))
            rules.append(AlertRule(
                "McpShardWithoutInstance", name, f"{q['instances']} < 1", 1, wait,
                f"{name}: a shard runs no instance",
                "The shard's sessions are gone and its share of new sessions fails until Cloud Run starts its "
                "instance again: read the shard's Cloud Run revision status and logs (quota, image, startup probe)."))
    for name, proxy in sorted(targets.proxies.items()):
        rules += _proxy_rules(args, name, proxy)
    if targets.store_instance:
        store = targets.store_instance
        rules.append(AlertRule(
            "McpStoreMemoryHigh", "session-store", f"max({REDIS_MEMORY.format(instance=store)}) > {t.store_memory_ratio}",
            t.store_memory_ratio, wait, f"the session store uses more than {t.store_memory_ratio:.0%} of its memory",
            "Raise sessionStore.memorySizeGb (an in-place resize) or shorten the servers' session lifetime; a full "
            "store evicts or refuses writes and sessions break."))
    return rules


def _proxy_rules(args: MonitoringArgs, name: str, proxy: ProxyTarget) -> list[AlertRule]:
    t, wait = args.thresholds, args.thresholds.for_seconds
    lost = _rate(REDISPATCHES.format(namespace=proxy.namespace, backend=PIN_BACKEND), "namespace")
    rules = [
        AlertRule("McpPinTableFull", name, f"{_pin_ratio(proxy)} > {t.pin_table_ratio}", t.pin_table_ratio, wait,
                  f"{name}: a pinning proxy's table is over {t.pin_table_ratio:.0%} full",
                  "When the table is full the oldest pins go first and their sessions are lost: raise "
                  "pinningMaxSessions (the proxy's memory grows with it) or lower sessionIdleSeconds."),
        AlertRule("McpPinnedSessionsLost", name, f"{lost} > {t.lost_sessions_per_second}",
                  t.lost_sessions_per_second, wait,
                  f"{name}: requests of pinned sessions found their pod gone",
                  "A pod holding sessions stopped (crash, eviction, scale-in, deploy): those sessions re-initialize. "
                  "Read the pods' restarts and events; keep minReplicas up and deploys rare if it repeats."),
    ]
    if proxy.replicas > 1:
        unknown = _rate(HANDOVER_4XX.format(namespace=proxy.namespace), "namespace")
        rules.append(AlertRule(
            "McpUnknownSessionIds", name, f"{unknown} > {t.denials_per_second}", t.denials_per_second, wait,
            f"{name}: requests carry session ids no proxy replica knows",
            "Either pins expired (sessionIdleSeconds shorter than the clients' idle time) or someone sends made-up "
            "session ids: read the proxy logs for the callers, and limit them at the edge."))
    return rules


def alert_summary(rules: list[AlertRule]) -> dict[str, list[str]]:
    """Target -> ``"McpSessionsLost: <summary>"`` per alert, in order: what a plan shows."""
    summary: dict[str, list[str]] = {}
    for rule in rules:
        summary.setdefault(rule.target, []).append(f"{rule.alert}: {rule.summary.removeprefix(rule.target + ': ')}")
    return summary


def rules_file(rules: list[AlertRule], interval_seconds: int = EVALUATION_INTERVAL_SECONDS,
               for_seconds: Optional[int] = None) -> str:
    """A Prometheus rule file (YAML; JSON is YAML) of ``rules`` in one group, for ``promtool`` and a
    real Prometheus; ``for_seconds`` overrides every rule's ``for`` (a test's short hold)."""
    group = {"name": RULE_GROUP, "interval": f"{interval_seconds}s", "rules": [
        {"alert": rule.alert, "expr": rule.expr,
         "for": f"{rule.for_seconds if for_seconds is None else for_seconds}s",
         "labels": {"target": rule.target}, "annotations": {"summary": rule.summary, "runbook": rule.runbook}}
        for rule in rules]}
    return json.dumps({"groups": [group]}, indent=2) + "\n"


def dashboard_json(title: str, panel_list: list[Panel], labels: dict[str, str]) -> dict:
    """The Monitoring API's ``Dashboard`` (https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.dashboards):
    a 48-column mosaic, two charts per row, each a PromQL ``xyChart``."""
    tiles = []
    for index, panel in enumerate(panel_list):
        # A fixed name is the series' legend; a query of many series keeps Monitoring's own legend
        # (its labels), named here only for the reader ("${label}").
        chart = {"dataSets": [{"timeSeriesQuery": {"prometheusQuery": query, "unitOverride": panel.unit},
                               "plotType": "LINE", **({} if legend.startswith("${") else {"legendTemplate": legend})}
                              for legend, query in panel.queries.items()],
                 "yAxis": {"label": panel.unit, "scale": "LINEAR"}}
        if panel.threshold is not None:
            chart["thresholds"] = [{"value": panel.threshold, "color": "RED", "direction": panel.direction,
                                    "label": "alert"}]
        tiles.append({"xPos": 24 * (index % 2), "yPos": 16 * (index // 2), "width": 24, "height": 16,
                      "widget": {"title": panel.title, "xyChart": chart}})
    return {"displayName": title, "mosaicLayout": {"columns": 48, "tiles": tiles},
            "labels": {key: "" for key in sorted(labels)}}


class McpMonitoring(pulumi.ComponentResource):
    """A dashboard and one alert policy per :func:`alert_rules` entry, notifying
    ``notification_channels``.

    Context: ``targets`` (:class:`MonitoringTargets`). Raises ``ValueError`` when ``targets`` is empty.

    Outputs: ``dashboard_id``, ``alert_policy_names`` (rule name/target -> policy name),
    ``alerts`` (target -> one line per alert: its name and when it fires; for plans and docs) and
    ``prometheus_rules`` (:func:`rules_file` of the same expressions).
    """

    dashboard_id: pulumi.Output[str]
    alert_policy_names: pulumi.Output[dict]
    alerts: pulumi.Output[dict]
    prometheus_rules: pulumi.Output[str]

    @takes_settings
    def __init__(self, name: str, args: MonitoringArgs, *, targets: MonitoringTargets,
                 opts: Optional[pulumi.ResourceOptions] = None):
        rules = alert_rules(args, targets)  # raises before anything is registered
        super().__init__("mcp-affinity:index:McpMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        metrics = [self._log_metric(name, args, metric, child) for metric in log_metrics(args, targets)]
        certificates = {key: self._certificate(name, args, key, domains, child)
                        for key, domains in sorted(targets.certificates.items())}
        # The dashboard and policies read the log-based metrics: create those first.
        child = pulumi.ResourceOptions(parent=self, depends_on=metrics)
        body = dashboard_json(f"{args.prefix} MCP services", panels(args, targets), args.labels)
        dashboard = gcp.monitoring.Dashboard(name, project=args.project, dashboard_json=json.dumps(body, sort_keys=True),
                                             opts=child)
        policies = {f"{rule.target}/{rule.alert}": self._policy(name, args, rule, child) for rule in rules}
        policies.update({f"{key}/{CERTIFICATE_ALERT}": policy for key, policy in certificates.items()})
        self.dashboard_id = dashboard.id
        self.alert_policy_names = pulumi.Output.all(**{k: p.name for k, p in policies.items()})
        self.prometheus_rules = pulumi.Output.from_input(rules_file(rules))
        summary = alert_summary(rules)
        for key in sorted(targets.certificates):
            summary[f"certificate {key}"] = [f"{CERTIFICATE_ALERT}: {CERTIFICATE_SUMMARY}"]
        self.alerts = pulumi.Output.from_input(summary)
        self.register_outputs({"dashboard_id": self.dashboard_id, "alert_policy_names": self.alert_policy_names,
                               "alerts": self.alerts, "prometheus_rules": self.prometheus_rules})

    @staticmethod
    def _certificate(name: str, args: MonitoringArgs, key: str, domains: tuple[str, ...],
                     child) -> gcp.monitoring.AlertPolicy:
        """An HTTPS uptime check per domain of certificate ``key`` and the policy over them."""
        checks = [gcp.monitoring.UptimeCheckConfig(
            f"{name}-{key}-{index}", project=args.project, display_name=f"{args.prefix} certificate {key}: {domain}",
            period="300s", timeout="10s",
            monitored_resource={"type": "uptime_url", "labels": {"host": domain, "project_id": args.project}}
            if args.project else {"type": "uptime_url", "labels": {"host": domain}},
            http_check={"path": "/", "port": 443, "use_ssl": True, "validate_ssl": True, "request_method": "GET",
                        "accepted_response_status_codes": [{"status_class": "STATUS_CLASS_ANY"}]},
            opts=child) for index, domain in enumerate(domains)]
        hosts = " OR ".join(f'resource.label.host="{domain}"' for domain in domains)
        return gcp.monitoring.AlertPolicy(
            f"{name}-{key}-certificate", project=args.project, combiner="OR",
            display_name=f"{args.prefix} certificate {key}: {CERTIFICATE_SUMMARY}",
            conditions=[{"display_name": f"certificate {key}: {CERTIFICATE_SUMMARY}", "condition_threshold": {
                "filter": f'metric.type="monitoring.googleapis.com/uptime_check/check_passed" AND '
                          f'resource.type="uptime_url" AND ({hosts})',
                "aggregations": [{"alignment_period": "1200s", "per_series_aligner": "ALIGN_NEXT_OLDER",
                                  "cross_series_reducer": "REDUCE_COUNT_FALSE", "group_by_fields": ["resource.label.host"]}],
                "comparison": "COMPARISON_GT", "threshold_value": 1, "duration": f"{args.thresholds.for_seconds}s"}}],
            documentation={"mime_type": "text/markdown", "subject": f"{args.prefix}: certificate {key} not valid",
                           "content": f"certificate {key}: {CERTIFICATE_SUMMARY}.\n\nRunbook: {CERTIFICATE_RUNBOOK}"},
            notification_channels=[args.notification_channels[k] for k in sorted(args.notification_channels)],
            user_labels=args.labels, opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=checks)))

    @staticmethod
    def _log_metric(name: str, args: MonitoringArgs, metric: LogMetric, child) -> gcp.logging.Metric:
        kind = "DISTRIBUTION" if metric.value else "INT64"
        return gcp.logging.Metric(
            f"{name}-{metric.name.rsplit('/', 1)[1].replace('.', '-')}", name=metric.name, project=args.project,
            description=metric.description, filter=metric.filter, label_extractors=metric.labels,
            value_extractor=metric.value,
            bucket_options={"exponential_buckets": {"num_finite_buckets": 24, "growth_factor": 2, "scale": 1}}
            if metric.value else None,
            metric_descriptor={"metric_kind": "DELTA", "value_type": kind, "unit": metric.unit,
                               "labels": [{"key": key, "value_type": "STRING"} for key in metric.labels]},
            opts=child)

    @staticmethod
    def _policy(name: str, args: MonitoringArgs, rule: AlertRule, child) -> gcp.monitoring.AlertPolicy:
        slug = re.sub(r"(?<!^)(?=[A-Z])", "-", rule.alert.removeprefix("Mcp")).lower()
        return gcp.monitoring.AlertPolicy(
            f"{name}-{rule.target}-{slug}", project=args.project, combiner="OR",
            display_name=f"{args.prefix} {rule.summary}",
            conditions=[{"display_name": rule.summary, "condition_prometheus_query_language": {
                "query": rule.expr, "duration": f"{rule.for_seconds}s",
                "evaluation_interval": f"{EVALUATION_INTERVAL_SECONDS}s", "alert_rule": rule.alert,
                "rule_group": RULE_GROUP, "labels": {"target": rule.target}, "disable_metric_validation": True}}],
            documentation={"mime_type": "text/markdown", "subject": f"{args.prefix}: {rule.summary}",
                           "content": f"{rule.summary}.\n\nRunbook: {rule.runbook}"},
            notification_channels=[args.notification_channels[k] for k in sorted(args.notification_channels)],
            user_labels=args.labels, opts=child)
