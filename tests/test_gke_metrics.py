"""Monitoring on GKE (#20): the MCP dimensions Istio adds (``Telemetry``), what Managed Service for
Prometheus scrapes (``PodMonitoring``), the collectors admitted to exactly those ports, and the
pinning-proxy alerts and per-method Istio panels planned over them.

Every object and expression is read from the planned resources; the custom resources are checked
against their CRDs (Istio 1.30.3, prometheus-engine's PodMonitoring: ``tests/schemas``) and the
PromQL by ``promtool``.
"""

from __future__ import annotations

import dataclasses
import subprocess

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel

from conftest import ROOT, plan_stack
from mcp_affinity import ISTIO_VERSION, mesh_metrics, pinning_proxy
from mcp_affinity.cli import find_project, run_plan
from schemas.istio_check import is_checked_type, validate_object
from schemas.validate import validate_kubernetes
from test_monitoring import planned_rules, policies, promtool, tiles, _write_rules  # noqa: F401 (fixture)

TELEMETRY = "kubernetes:telemetry.istio.io/v1:Telemetry"
POD_MONITORING = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"
PA = "kubernetes:security.istio.io/v1:PeerAuthentication"
AP = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CLUSTER = "gcp:container/cluster:Cluster"
COLLECTORS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gmp-system"}}}]


def _example_with_monitoring(name: str, tmp_path, monitoring: dict):
    config = yaml.safe_load((ROOT / "examples" / f"Pulumi.{name}.yaml").read_text())
    config["config"]["mcp-affinity:monitoring"] = monitoring
    (tmp_path / f"Pulumi.{name}-mon.yaml").write_text(yaml.safe_dump(config))
    return run_plan(dataclasses.replace(find_project(ROOT), stack_config_dir=tmp_path), f"{name}-mon")


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """The learned-pinning example (two proxy replicas) with monitoring on."""
    return _example_with_monitoring("gke-in-memory-learned", tmp_path_factory.mktemp("stacks"), {"enabled": True})


def _spec(plan, type_: str, name: str) -> dict:
    return plan.get(type_, name).inputs["spec"]


def test_the_cluster_has_managed_collection_on():
    (cluster,) = plan_stack("staging").by_type(CLUSTER)
    assert cluster.inputs["monitoringConfig"]["managedPrometheus"] == {"enabled": True}


def test_telemetry_adds_mcp_method_and_name_from_the_headers_to_the_request_metrics(learned):
    telemetry = plan_stack("staging").get(TELEMETRY, "notes-mcp-dimensions").inputs
    assert telemetry["metadata"]["namespace"] == "mcp-stg-notes" and telemetry["metadata"]["name"] == "mcp-dimensions"
    tags = {"mcp_method": {"operation": "UPSERT", "value": "request.headers['mcp-method']"},
            "mcp_name": {"operation": "UPSERT", "value": "request.headers['mcp-name']"}}
    assert telemetry["spec"] == {"metrics": [{"providers": [{"name": "prometheus"}], "overrides": [
        {"match": {"metric": "REQUEST_COUNT", "mode": "SERVER"}, "tagOverrides": tags},
        {"match": {"metric": "REQUEST_DURATION", "mode": "SERVER"}, "tagOverrides": tags}]}]}
    assert learned.get(TELEMETRY, "legacy-mcp-dimensions").inputs["metadata"]["namespace"] == "mcp-ex5-legacy"


def test_a_request_without_the_header_fails_the_tag_expression_which_istio_counts_as_unknown():
    """The planned values evaluate (CEL, cel-python) to the header and fail without it: the form whose
    failure Istio's stats filter records as ``unknown`` (``mesh_metrics`` docstring, at the pinned tag)."""
    tags = _spec(plan_stack("staging"), TELEMETRY, "notes-mcp-dimensions")["metrics"][0]["overrides"][0]["tagOverrides"]
    environment = celpy.Environment()
    for label, header in mesh_metrics.DIMENSIONS.items():
        program = environment.program(environment.compile(tags[label]["value"]))
        # Envoy's request.headers is keyed by lower-case names; a missing one is no key at all.
        assert program.evaluate({"request": json_to_cel({"headers": {header.lower(): "tools/call"}})}) == "tools/call"
        with pytest.raises(celpy.CELEvalError, match="no such key"):
            program.evaluate({"request": json_to_cel({"headers": {"other": "x"}})})
    # The citation holds for the Istio the package installs: re-read the stats filter when it moves.
    assert f"istio/proxy/blob/{ISTIO_VERSION}/" in mesh_metrics.__doc__ and f"istio/istio/blob/{ISTIO_VERSION}/" in mesh_metrics.__doc__

def test_monitoring_off_plans_nothing_to_scrape():
    plan = plan_stack("dev")
    assert not plan.by_type(TELEMETRY) and not plan.by_type(POD_MONITORING)


def test_the_front_sidecars_are_scraped_and_only_the_collectors_reach_their_port(learned):
    staging = plan_stack("staging")
    assert _spec(staging, POD_MONITORING, "notes-sidecar-metrics") == {
        "selector": {"matchLabels": {"app": "notes"}},
        "endpoints": [{"port": 15090, "path": "/stats/prometheus", "scheme": "http", "interval": "30s"}]}
    assert _spec(staging, NP, "notes-sidecar-metrics") == {
        "podSelector": {"matchLabels": {"app": "notes"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": COLLECTORS, "ports": [{"protocol": "TCP", "port": 15090}]}]}
    # With learned pinning the gateway calls the proxy: its sidecar reports the requests.
    assert _spec(learned, POD_MONITORING, "legacy-sidecar-metrics")["selector"] == {"matchLabels": {"app": "legacy-pinning"}}


def test_the_pinning_proxies_exporter_is_scraped_through_a_port_level_exception(learned):
    port = pinning_proxy.HEALTH_PORT
    proxy = {"matchLabels": {"app": "legacy-pinning"}}
    assert _spec(learned, POD_MONITORING, "legacy-proxy-metrics") == {
        "selector": proxy, "endpoints": [{"port": port, "path": "/metrics", "scheme": "http", "interval": "30s"}]}
    # The StatefulSet declares that container port.
    (haproxy,) = learned.get("kubernetes:apps/v1:StatefulSet", "legacy-pinning").inputs["spec"]["template"]["spec"]["containers"]
    assert {"name": "health", "containerPort": port} in haproxy["ports"]
    # Strict mTLS stays for every other port of the proxy; the collectors hold no mesh certificate.
    assert _spec(learned, PA, "legacy-proxy-metrics-mtls") == {
        "selector": proxy, "mtls": {"mode": "STRICT"}, "portLevelMtls": {str(port): {"mode": "PERMISSIVE"}}}
    assert _spec(learned, AP, "legacy-proxy-metrics-allow") == {"selector": proxy, "action": "ALLOW", "rules": [
        {"to": [{"operation": {"ports": [str(port)], "methods": ["GET"], "paths": ["/metrics"]}}]}]}
    assert _spec(learned, NP, "legacy-proxy-metrics") == {
        "podSelector": proxy, "policyTypes": ["Ingress"],
        "ingress": [{"from": COLLECTORS, "ports": [{"protocol": "TCP", "port": port}]}]}
    # No other policy of the proxy gains a source or a port.
    others = [r for r in learned.by_type(AP) if r.inputs["spec"].get("selector") == proxy and "metrics" not in r.name]
    assert others and all(r.inputs["spec"]["rules"][0]["from"][0]["source"]["principals"] for r in others)
    assert str(port) not in {p for r in others for p in r.inputs["spec"]["rules"][0]["to"][0]["operation"]["ports"]}


def test_every_new_object_is_valid_against_its_schema(learned):
    suffixes = ("-mcp-dimensions", "-sidecar-metrics", "-proxy-metrics", "-proxy-metrics-mtls", "-proxy-metrics-allow")
    kinds = []
    for plan in (learned, plan_stack("staging"), plan_stack("prod")):
        for resource in plan.resources:
            if resource.type.startswith("kubernetes:") and resource.name.endswith(suffixes):
                manifest = resource.manifest()
                errors = validate_object(manifest) if is_checked_type(resource.type) else validate_kubernetes(manifest)
                assert errors == [], (resource.name, errors)
                kinds.append(manifest["kind"])
    assert sorted(set(kinds)) == ["AuthorizationPolicy", "NetworkPolicy", "PeerAuthentication", "PodMonitoring", "Telemetry"]


def test_the_schema_check_refuses_a_podmonitoring_the_api_would():
    bad = {"apiVersion": "monitoring.googleapis.com/v1", "kind": "PodMonitoring",
           "metadata": {"name": "x", "namespace": "y"},
           "spec": {"selector": {"matchLabels": {"app": "x"}}, "endpoints": [{"port": 8404, "interval": "often", "proxyUrl": "not a url"}],
                    "scrapeAll": True}}
    errors = validate_object(bad)
    assert any("scrapeAll" in e for e in errors) and any("interval" in e for e in errors), errors
    assert any("proxyUrl" in e and "isURL" in e for e in errors), errors


# --- alerts and panels over what is scraped ------------------------------------------------------

NS = 'namespace="mcp-ex5-legacy"'
ISTIO = 'reporter="destination",destination_workload_namespace="mcp-ex5-legacy",destination_workload="legacy-pinning"'


def test_the_pinning_proxy_alerts_watch_the_scraped_exporter(learned):
    found = policies(learned)
    assert {k for k in found if k.startswith("legacy/")} == {
        "legacy/McpPinTableFull", "legacy/McpPinnedSessionsLost", "legacy/McpUnknownSessionIds"}
    assert found["legacy/McpPinTableFull"]["promql"]["query"] == (
        f'max by (pod) (haproxy_sticktable_used{{{NS},name="replicas"}} / '
        f'haproxy_sticktable_size{{{NS},name="replicas"}}) > 0.8')
    assert found["legacy/McpPinnedSessionsLost"]["promql"]["query"] == (
        f'sum by (namespace) (rate(haproxy_backend_redispatch_warnings_total{{{NS},proxy="replicas"}}[5m])) > 0.1')
    assert found["legacy/McpUnknownSessionIds"]["promql"]["query"] == (
        f'sum by (namespace) (rate(haproxy_backend_http_responses_total{{{NS},proxy="handover",code="4xx"}}[5m])) > 1.0')
    assert learned.outputs["monitoringAlerts"]["legacy"][0].startswith("McpPinTableFull: ")
    # The names the alerts select are the ones the shipped HAProxy configuration gives.
    config = learned.get("kubernetes:core/v1:ConfigMap", "legacy-pinning").inputs["data"]["haproxy.cfg"]
    assert "backend replicas" in config and "backend handover" in config and "stick-table" in config


def test_no_proxy_alert_without_learned_pinning():
    assert not [k for k in policies(plan_stack("staging")) if k.split("/")[1].startswith(("McpPin", "McpUnknown"))]


def test_per_method_panels_read_istio_metrics_with_the_mcp_dimensions(learned):
    charts = tiles(learned)
    queries = {title: [d["timeSeriesQuery"]["prometheusQuery"] for d in chart["dataSets"]]
               for title, chart in charts.items() if title.startswith("legacy: ")}
    assert queries["legacy: requests by MCP method"] == [
        f"sum by (mcp_method) (rate(istio_requests_total{{{ISTIO}}}[5m]))"]
    assert queries["legacy: tool calls by tool"] == [
        f'sum by (mcp_name) (rate(istio_requests_total{{{ISTIO},mcp_method="tools/call"}}[5m]))']
    assert queries["legacy: 5xx ratio by MCP method"] == [
        f'sum by (mcp_method) (rate(istio_requests_total{{{ISTIO},response_code=~"5.."}}[5m])) / '
        f"sum by (mcp_method) (rate(istio_requests_total{{{ISTIO}}}[5m]))"]
    assert queries["legacy: latency p50 / p95 / p99 by MCP method"] == [
        f"histogram_quantile({q}, sum by (le, mcp_method) (rate(istio_request_duration_milliseconds_bucket{{{ISTIO}}}[5m])))"
        for q in (0.5, 0.95, 0.99)]
    assert charts["legacy: pins in use / table size"]["thresholds"][0]["value"] == 0.8
    staging = tiles(plan_stack("staging"))["notes: requests by MCP method"]["dataSets"][0]["timeSeriesQuery"]
    assert 'destination_workload="notes"' in staging["prometheusQuery"]  # no proxy: the server pods report


def test_promtool_checks_the_gke_alerts_and_panels(learned, tmp_path, promtool):
    rules = planned_rules(learned)
    panels = [d["timeSeriesQuery"]["prometheusQuery"] for chart in tiles(learned).values() for d in chart["dataSets"]]
    rules += [{"record": f"mcp:panel{index}", "expr": query} for index, query in enumerate(panels)]
    result = subprocess.run([promtool, "check", "rules", str(_write_rules(tmp_path / "rules.yml", rules))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    assert any("istio_request_duration_milliseconds_bucket" in q for q in panels)


def test_the_component_scrapes_at_its_interval_and_without_a_proxy_admits_only_the_sidecar_port(record):
    import pulumi_kubernetes as k8s

    from mcp_affinity import McpMeshMetrics, McpMeshMetricsArgs
    from mcp_affinity.gke_cluster import ClusterRef

    def program():
        cluster = ClusterRef("c", "my-proj.svc.id.goog", "tag", kubernetes_provider=k8s.Provider("k", kubeconfig="{}"))
        McpMeshMetrics("notes", McpMeshMetricsArgs(prefix="t", scrape_interval_seconds=60), namespace="t-notes",
                       front="notes", proxy=None, cluster=cluster)

    plan = record(program)
    (monitoring,) = plan.by_type(POD_MONITORING)
    assert monitoring.inputs["spec"]["endpoints"][0]["interval"] == "60s"
    assert [r.inputs["spec"]["ingress"][0]["ports"] for r in plan.by_type(NP)] == [[{"protocol": "TCP", "port": 15090}]]
    assert not plan.by_type(PA) and not plan.by_type(AP)
    with pytest.raises(ValueError, match="scrape_interval_seconds|scrapeIntervalSeconds"):
        McpMeshMetricsArgs(prefix="t", scrape_interval_seconds=1)
