"""Monitoring on GKE (#20): the MCP dimensions Istio adds (``Telemetry``), what Managed Service for
Prometheus scrapes (``PodMonitoring``), the collectors admitted to exactly those ports, and the
pinning-proxy alerts and per-method Istio panels planned over them.

Every object and expression is read from the planned resources; the custom resources are checked
against their CRDs (Istio 1.30.3, prometheus-engine's PodMonitoring: ``tests/schemas``) and the
PromQL by ``promtool``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
import yaml

from conftest import ROOT, plan_stack
from mcp_affinity import pinning_proxy
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
    telemetry = plan_stack("staging").get(TELEMETRY, "search-mcp-dimensions").inputs
    assert telemetry["metadata"]["namespace"] == "mcp-stg-search" and telemetry["metadata"]["name"] == "mcp-dimensions"
    tags = {"mcp_method": {"operation": "UPSERT", "value": "request.headers['mcp-method']"},
            "mcp_name": {"operation": "UPSERT", "value": "request.headers['mcp-name']"}}
    assert telemetry["spec"] == {"metrics": [{"providers": [{"name": "prometheus"}], "overrides": [
        {"match": {"metric": "REQUEST_COUNT", "mode": "SERVER"}, "tagOverrides": tags},
        {"match": {"metric": "REQUEST_DURATION", "mode": "SERVER"}, "tagOverrides": tags}]}]}
    assert learned.get(TELEMETRY, "legacy-mcp-dimensions").inputs["metadata"]["namespace"] == "mcp-ex5-legacy"


def test_monitoring_off_plans_nothing_to_scrape():
    plan = plan_stack("dev")
    assert not plan.by_type(TELEMETRY) and not plan.by_type(POD_MONITORING)


def test_the_front_sidecars_are_scraped_and_only_the_collectors_reach_their_port(learned):
    staging = plan_stack("staging")
    assert _spec(staging, POD_MONITORING, "search-sidecar-metrics") == {
        "selector": {"matchLabels": {"app": "search"}},
        "endpoints": [{"port": "http-envoy-prom", "path": "/stats/prometheus", "scheme": "http", "interval": "30s"}]}
    assert _spec(staging, NP, "search-sidecar-metrics") == {
        "podSelector": {"matchLabels": {"app": "search"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": COLLECTORS, "ports": [{"protocol": "TCP", "port": 15090}]}]}
    # With learned pinning the gateway calls the proxy: its sidecar reports the requests.
    assert _spec(learned, POD_MONITORING, "legacy-sidecar-metrics")["selector"] == {"matchLabels": {"app": "legacy-pinning"}}


def test_the_pinning_proxies_exporter_is_scraped_through_a_port_level_exception(learned):
    port = pinning_proxy.HEALTH_PORT
    proxy = {"matchLabels": {"app": "legacy-pinning"}}
    assert _spec(learned, POD_MONITORING, "legacy-proxy-metrics") == {
        "selector": proxy, "endpoints": [{"port": "health", "path": "/metrics", "scheme": "http", "interval": "30s"}]}
    # The StatefulSet names that container port, so the PodMonitoring finds it.
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
