"""Monitoring (#20): the dashboard and alert policies a stack plans, their PromQL proven by
``promtool``, the dashboard checked against the Monitoring API's schema, and bad settings refused.

Every expression checked here is read from the planned resources (what ``pulumi up`` would send),
never rebuilt by the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pulumi
import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, plan_example, plan_stack
from mcp_affinity import McpMonitoring, MonitoringArgs, MonitoringTargets, ProxyTarget, ServiceTarget
from mcp_affinity.monitoring import alert_rules, rules_file
from mcp_affinity.cloud_run_shards import LOG_FIELDS
from mcp_affinity.wire import ALERT_POLICY, DASHBOARD, LOG_METRIC, UPTIME_CHECK
from test_hostile_config import NS, mutate, problems

LB = 'loadbalancing_googleapis_com:https_request_count{monitored_resource="https_lb_rule",backend_target_name=~"%s"%s}'
NOT_FOUND, ERRORS, DENIED = ',response_code="404"', ',response_code_class="500"', ',response_code=~"403|429"'


def lb(backends: str, extra: str = "") -> str:
    return LB % (backends, extra)


PROMTOOL = shutil.which("promtool")


@pytest.fixture
def promtool() -> str:
    """Debian's promtool; skipped without it, failed under ``CI=true`` (CI installs it: ``.ci/run``)."""
    if PROMTOOL is None:
        message = "promtool missing: apt-get install -y prometheus"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return PROMTOOL


def policies(plan) -> dict[str, dict]:
    """Planned PromQL alert policies by ``target/rule``: their one condition and the policy's inputs."""
    result = {}
    for policy in plan.by_type(ALERT_POLICY):
        (condition,) = policy.inputs["conditions"]
        if "conditionPrometheusQueryLanguage" not in condition:
            continue  # the certificate checks' threshold condition
        promql = condition["conditionPrometheusQueryLanguage"]
        result[f"{promql['labels']['target']}/{promql['alertRule']}"] = {**policy.inputs, "promql": promql}
    return result


def dashboard(plan) -> dict:
    (board,) = plan.by_type(DASHBOARD)
    return json.loads(board.inputs["dashboardJson"])


def tiles(plan) -> dict[str, dict]:
    return {tile["widget"]["title"]: tile["widget"]["xyChart"] for tile in dashboard(plan)["mosaicLayout"]["tiles"]}


# --- what each stack plans ----------------------------------------------------------------------

def test_dev_plans_no_dashboard_and_no_alert():
    plan = plan_stack("dev")
    assert plan.by_type(DASHBOARD) == [] and plan.by_type(ALERT_POLICY) == []
    assert "monitoring.googleapis.com" not in plan.outputs["requiredApis"]
    for name in ("cloud-run-shards", "gke-in-memory-learned"):
        assert plan_example(name).by_type(ALERT_POLICY) == []


@pytest.mark.parametrize("stack,prefix,services", [
    ("staging", "mcp-stg", ("gke", "search", "tools")),
    ("prod", "mcp-prd", ("gke", "search", "tools")),
])
def test_staging_and_prod_plan_a_dashboard_and_every_alert_for_every_service(stack, prefix, services):
    plan = plan_stack(stack)
    assert len(plan.by_type(DASHBOARD)) == 1
    expected = {f"{s}/{rule}" for s in services for rule in ("McpErrorRatio", "McpSessionsLost", "McpDenialSurge")}
    assert set(policies(plan)) == expected | {"session-store/McpStoreMemoryHigh"}
    assert "monitoring.googleapis.com" in plan.outputs["requiredApis"]
    for key, policy in policies(plan).items():
        assert policy["combiner"] == "OR" and policy["displayName"].startswith(prefix)
        assert "\n\nRunbook: " in policy["documentation"]["content"], key
        assert policy["promql"]["duration"] == "300s" and policy["promql"]["evaluationInterval"] == "60s"
        assert policy["promql"]["disableMetricValidation"] is True


def test_each_alert_watches_its_service_with_its_threshold():
    found = policies(plan_stack("staging"))
    lost = found["tools/McpSessionsLost"]["promql"]["query"]
    assert lost == f'sum by (backend_target_name) (rate({lb("mcp-stg-tools", NOT_FOUND)}[5m])) > 0.1'
    errors = found["search/McpErrorRatio"]["promql"]["query"]
    assert errors == (f'sum by (backend_target_name) (rate({lb("mcp-stg-search", ERRORS)}[5m]))'
                      f' / sum by (backend_target_name) (rate({lb("mcp-stg-search")}[5m])) > 0.05')
    denied = found["gke/McpDenialSurge"]["promql"]["query"]
    assert denied == f'sum by (backend_target_name) (rate({lb("mcp-stg-gateway", DENIED)}[5m])) > 1.0'
    store = found["session-store/McpStoreMemoryHigh"]["promql"]["query"]
    assert store == ('max(redis_googleapis_com:stats_memory_usage_ratio{monitored_resource="redis_instance",'
                     'instance_id=~".*/mcp-stg-sessions"}) > 0.8')


def test_each_panel_shows_its_query_threshold_and_target():
    charts = tiles(plan_stack("staging"))
    assert set(charts) >= {"tools: requests by response class", "tools: latency p50 / p95 / p99", "tools: 5xx ratio",
                           "tools: sessions lost (404)", "tools: denied (403, 429)", "tools: instances",
                           "gke: sessions lost (404)", "session store: memory usage ratio",
                           "session store: connected clients"}
    lost = charts["tools: sessions lost (404)"]
    assert lost["dataSets"][0]["timeSeriesQuery"]["prometheusQuery"] == \
        f'sum by (backend_target_name) (rate({lb("mcp-stg-tools", NOT_FOUND)}[5m]))'
    assert lost["thresholds"] == [{"value": 0.1, "color": "RED", "direction": "ABOVE", "label": "alert"}]
    latency = [d["timeSeriesQuery"]["prometheusQuery"] for d in charts["tools: latency p50 / p95 / p99"]["dataSets"]]
    assert latency == [f'histogram_quantile({q}, sum by (le) (rate(loadbalancing_googleapis_com:https_total_latencies_bucket'
                       f'{{monitored_resource="https_lb_rule",backend_target_name=~"mcp-stg-tools"}}[5m])))'
                       for q in (0.5, 0.95, 0.99)]
    instances = charts["tools: instances"]["dataSets"][0]["timeSeriesQuery"]["prometheusQuery"]
    assert instances == ('sum by (service_name, location) (run_googleapis_com:container_instance_count'
                         '{monitored_resource="cloud_run_revision",service_name=~"mcp-stg-tools"})')
    assert "thresholds" not in charts["tools: instances"]  # autoscaled: no fixed count to hold
    assert charts["session store: memory usage ratio"]["thresholds"][0]["value"] == 0.8


# --- the component on its own: shards, pinning proxies, channels ----------------------------------

TARGETS = MonitoringTargets(
    services={"tools": ServiceTarget(("t-tools-europe-west1-s0", "t-tools-europe-west1-s1"), ("t-tools-s0", "t-tools-s1"),
                                     sharded=True)},
    proxies={"notes": ProxyTarget("t-notes", replicas=2)}, store_instance="t-sessions")
CHANNELS = {"oncall": "projects/my-proj/notificationChannels/123", "chat": "projects/my-proj/notificationChannels/456"}


def _component(record, **thresholds):
    args = MonitoringArgs(prefix="t", project="my-proj", notification_channels=CHANNELS, thresholds=thresholds)
    return record(lambda: McpMonitoring("mon", args, targets=TARGETS))


def test_a_shard_without_its_instance_and_the_pinning_proxies_have_alerts(record):
    found = policies(_component(record, pinTableRatio=0.9))
    assert set(found) == {"tools/McpErrorRatio", "tools/McpSessionsLost", "tools/McpDenialSurge",
                          "tools/McpShardWithoutInstance", "tools/McpForeignShardKeys",
                          "notes/McpPinTableFull", "notes/McpPinnedSessionsLost",
                          "notes/McpUnknownSessionIds", "session-store/McpStoreMemoryHigh"}
    assert found["tools/McpShardWithoutInstance"]["promql"]["query"] == (
        'sum by (service_name, location) (run_googleapis_com:container_instance_count{monitored_resource='
        '"cloud_run_revision",service_name=~"t-tools-s0|t-tools-s1"}) < 1')
    assert found["tools/McpForeignShardKeys"]["promql"]["query"] == (
        'sum by (service_name) (rate(logging_googleapis_com:user_t_mcp_server_operation_duration_count'
        '{monitored_resource="cloud_run_revision",service_name=~"t-tools-s0|t-tools-s1",mcp_session_verdict="foreign"}[5m]))'
        ' > 1.0')
    assert found["notes/McpPinTableFull"]["promql"]["query"] == (
        'max by (pod) (haproxy_sticktable_used{namespace="t-notes",name="replicas"} / '
        'haproxy_sticktable_size{namespace="t-notes",name="replicas"}) > 0.9')
    assert found["notes/McpPinnedSessionsLost"]["promql"]["query"] == (
        'sum by (namespace) (rate(haproxy_backend_redispatch_warnings_total{namespace="t-notes",proxy="replicas"}[5m])) > 0.1')
    for policy in found.values():  # every alert notifies every named channel, in a stable order
        assert policy["notificationChannels"] == [CHANNELS["chat"], CHANNELS["oncall"]]


def test_one_replica_proxy_has_no_handover_alert(record):
    targets = MonitoringTargets(proxies={"notes": ProxyTarget("t-notes", replicas=1)})
    rules = alert_rules(MonitoringArgs(prefix="t"), targets)
    assert [r.alert for r in rules] == ["McpPinTableFull", "McpPinnedSessionsLost"]


def test_nothing_to_watch_registers_nothing(record):
    with pytest.raises(ValueError, match="nothing to watch"):
        record(lambda: McpMonitoring("mon", MonitoringArgs(prefix="t"), targets=MonitoringTargets()))


@pulumi.runtime.test
def test_component_outputs_the_rule_file_of_its_alerts(gcp_mocks):
    args = MonitoringArgs(prefix="t", project="my-proj")
    monitoring = McpMonitoring("mon", args, targets=TARGETS)

    def check(text):
        rules = [r for g in json.loads(text)["groups"] for r in g["rules"]]
        assert [r["expr"] for r in rules] == [r.expr for r in alert_rules(args, TARGETS)]
    return monitoring.prometheus_rules.apply(check)


# --- PromQL proven by promtool ------------------------------------------------------------------

def planned_rules(plan) -> list[dict]:
    """The planned alert policies as Prometheus alerting rules (name, expression, hold, target)."""
    return [{"alert": p["promql"]["alertRule"], "expr": p["promql"]["query"], "for": p["promql"]["duration"],
             "labels": {"target": key.split("/")[0]}} for key, p in sorted(policies(plan).items())]


def _write_rules(path: Path, rules: list[dict]) -> Path:
    path.write_text(json.dumps({"groups": [{"name": "mcp-affinity", "interval": "60s", "rules": rules}]}))
    return path


@pytest.mark.parametrize("source", ["staging", "prod", "component"])
def test_promtool_checks_every_planned_expression(source, record, tmp_path, promtool):
    plan = _component(record) if source == "component" else plan_stack(source)
    rules = planned_rules(plan)
    assert rules
    result = subprocess.run([promtool, "check", "rules", str(_write_rules(tmp_path / "rules.yml", rules))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def _series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


LB_NAME = "loadbalancing_googleapis_com:https_request_count"
TOOLS = {"monitored_resource": "https_lb_rule", "backend_target_name": "t-tools-europe-west1-s0"}
SHARD = {"monitored_resource": "cloud_run_revision", "location": "europe-west1"}
PROXY = {"namespace": "t-notes", "pod": "notes-pinning-0"}


def _alert(name: str, target: str, **grouping: str) -> dict:
    return {"alertname": name, "target": target, **grouping}


PROMTOOL_CASES = {
    # 404s at 2/s out of 10/s on a shard: sessions lost; 5xx stays at 0.
    "sessions lost": ([_series(LB_NAME, {**TOOLS, "response_code": "404", "response_code_class": "400"}, "0+120x20"),
                       _series(LB_NAME, {**TOOLS, "response_code": "200", "response_code_class": "200"}, "0+480x20")],
                      "McpSessionsLost", [_alert("McpSessionsLost", "tools", backend_target_name=TOOLS["backend_target_name"])]),
    "errors over 5 %": ([_series(LB_NAME, {**TOOLS, "response_code": "503", "response_code_class": "500"}, "0+60x20"),
                         _series(LB_NAME, {**TOOLS, "response_code": "200", "response_code_class": "200"}, "0+540x20")],
                        "McpErrorRatio", [_alert("McpErrorRatio", "tools", backend_target_name=TOOLS["backend_target_name"])]),
    "errors under 5 %": ([_series(LB_NAME, {**TOOLS, "response_code": "503", "response_code_class": "500"}, "0+6x20"),
                          _series(LB_NAME, {**TOOLS, "response_code": "200", "response_code_class": "200"}, "0+594x20")],
                         "McpErrorRatio", []),
    "denials": ([_series(LB_NAME, {**TOOLS, "response_code": "429", "response_code_class": "400"}, "0+600x20")],
                "McpDenialSurge", [_alert("McpDenialSurge", "tools", backend_target_name=TOOLS["backend_target_name"])]),
    "shard without instance": ([_series("run_googleapis_com:container_instance_count",
                                        {**SHARD, "service_name": "t-tools-s0", "state": "active"}, "1x20"),
                                _series("run_googleapis_com:container_instance_count",
                                        {**SHARD, "service_name": "t-tools-s1", "state": "active"}, "1x5 0x15")],
                               "McpShardWithoutInstance", [_alert("McpShardWithoutInstance", "tools", service_name="t-tools-s1", location="europe-west1")]),
    "pin table at 90 %": ([_series("haproxy_sticktable_used", {**PROXY, "name": "replicas", "type": "binary"}, "9000x20"),
                           _series("haproxy_sticktable_size", {**PROXY, "name": "replicas", "type": "binary"}, "10000x20")],
                          "McpPinTableFull", [_alert("McpPinTableFull", "notes", pod=PROXY["pod"])]),
    "pin table at 50 %": ([_series("haproxy_sticktable_used", {**PROXY, "name": "replicas", "type": "binary"}, "5000x20"),
                           _series("haproxy_sticktable_size", {**PROXY, "name": "replicas", "type": "binary"}, "10000x20")],
                          "McpPinTableFull", []),
    "foreign shard keys": ([_series("logging_googleapis_com:user_t_mcp_server_operation_duration_count",
                                    {"monitored_resource": "cloud_run_revision", "service_name": "t-tools-s1",
                                     "mcp_session_verdict": "foreign", "mcp_method_name": "tools/call"}, "0+600x20")],
                           "McpForeignShardKeys", [_alert("McpForeignShardKeys", "tools", service_name="t-tools-s1")]),
    "store memory": ([_series("redis_googleapis_com:stats_memory_usage_ratio",
                              {"monitored_resource": "redis_instance",
                               "instance_id": "projects/my-proj/locations/europe-west1/instances/t-sessions"}, "0.85x20")],
                     "McpStoreMemoryHigh", [_alert("McpStoreMemoryHigh", "session-store")]),
}


def test_promtool_unit_tests_fire_each_alert_and_only_it(record, tmp_path, promtool):
    """Per case: the series given, evaluated after 15 minutes, fire exactly the alerts listed (with
    the planned 5-minute hold); the other alerts of the case's kind stay silent."""
    rules = planned_rules(_component(record))
    _write_rules(tmp_path / "rules.yml", rules)
    tests = []
    for case, (series, alert, firing) in PROMTOOL_CASES.items():
        for name in sorted({r["alert"] for r in rules}):
            expected = [{"exp_labels": labels} for labels in firing if labels["alertname"] == name]
            tests.append({"name": f"{case}: {name}", "interval": "1m", "input_series": series,
                          "alert_rule_test": [{"eval_time": "15m", "alertname": name,
                                               "exp_alerts": expected if name == alert else []}]})
    suite = tmp_path / "tests.yml"
    suite.write_text(json.dumps({"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}))
    result = subprocess.run([promtool, "test", "rules", str(suite)], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_test_fails_when_an_alert_does_not_fire(record, tmp_path, promtool):
    """The harness above can fail: a case expecting an alert that its series do not cause."""
    _write_rules(tmp_path / "rules.yml", planned_rules(_component(record)))
    series, _, _ = PROMTOOL_CASES["pin table at 50 %"]
    suite = tmp_path / "tests.yml"
    suite.write_text(json.dumps({"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series, "alert_rule_test": [{
            "eval_time": "15m", "alertname": "McpPinTableFull", "exp_alerts": [{"exp_labels": _alert("McpPinTableFull", "notes")}]}]}]}))
    result = subprocess.run([promtool, "test", "rules", str(suite)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0


def test_rules_file_matches_the_planned_policies(record):
    """One generator, two consumers: the rule file holds the planned conditions' expressions."""
    args = MonitoringArgs(prefix="t", project="my-proj", notification_channels=CHANNELS)
    file_rules = json.loads(rules_file(alert_rules(args, TARGETS)))["groups"][0]["rules"]
    assert sorted((r["alert"], r["expr"], r["for"]) for r in file_rules) == \
        sorted((r["alert"], r["expr"], r["for"]) for r in planned_rules(_component(record)))


# --- the dashboard against the Monitoring API's schema --------------------------------------------

def _discovery() -> dict:
    googleapiclient = pytest.importorskip("googleapiclient")
    path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "monitoring.v1.json"
    return json.loads(path.read_text())


def schema_faults(value, schema: dict, schemas: dict, path: str = "") -> list[str]:
    """Where ``value`` breaks a Discovery-document schema: unknown fields, wrong types, values
    outside an enum (Discovery schemas are not JSON Schema: ``$ref`` names a schema, int64 is a
    string or a number in JSON, unknown fields are refused by the API's JSON parser)."""
    if "$ref" in schema:
        return schema_faults(value, schemas[schema["$ref"]], schemas, path)
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        faults, properties = [], schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                faults += schema_faults(item, properties[key], schemas, f"{path}.{key}")
            elif "additionalProperties" in schema:
                faults += schema_faults(item, schema["additionalProperties"], schemas, f"{path}.{key}")
            else:
                faults.append(f"{path}.{key}: unknown field")
        return faults
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [f for i, item in enumerate(value) for f in schema_faults(item, schema["items"], schemas, f"{path}[{i}]")]
    checks = {"string": lambda v: isinstance(v, str) or (schema.get("format") in ("int64", "uint64") and isinstance(v, int)),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "boolean": lambda v: isinstance(v, bool)}
    if kind in checks and not checks[kind](value):
        return [f"{path}: expected {kind}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']}"]
    return []


@pytest.mark.parametrize("source", ["staging", "prod", "component"])
def test_dashboard_json_validates_against_the_monitoring_api_schema(source, record):
    discovery = _discovery()
    plan = _component(record) if source == "component" else plan_stack(source)
    board = dashboard(plan)
    assert schema_faults(board, {"$ref": "Dashboard"}, discovery["schemas"]) == []
    assert all(t["xPos"] + t["width"] <= board["mosaicLayout"]["columns"] for t in board["mosaicLayout"]["tiles"])


def test_schema_check_refuses_what_the_api_would():
    schemas = _discovery()["schemas"]
    bad = {"displayName": "x", "mosaicLayout": {"columns": 48, "tiles": [{"widget": {"xyChart": {
        "dataSets": [{"timeSeriesQuery": {"promQuery": "up"}, "plotType": "CURVE"}]}}}]}}
    assert schema_faults(bad, {"$ref": "Dashboard"}, schemas) == [
        ".mosaicLayout.tiles[0].widget.xyChart.dataSets[0].timeSeriesQuery.promQuery: unknown field",
        f".mosaicLayout.tiles[0].widget.xyChart.dataSets[0].plotType: 'CURVE' is not one of "
        f"{schemas['DataSet']['properties']['plotType']['enum']}"]


# --- bad input ----------------------------------------------------------------------------------

def test_bad_monitoring_settings_are_reported_together_under_their_keys():
    config = mutate(NS + "monitoring", {
        "notificationChannels": {"oncall": "projects/P/notificationChannels/ID",
                                 "email": "ops@example.com", "fine": "projects/123456789012/notificationChannels/42"},
        "thresholds": {"errorRatio": 1.5, "pinTableRatio": 0, "forSeconds": -1, "denialsPerSecond": "5"}})
    found = dict(problems(config))
    assert set(found) == {NS + "monitoring.notificationChannels.oncall", NS + "monitoring.notificationChannels.email",
                          NS + "monitoring.thresholds.errorRatio", NS + "monitoring.thresholds.pinTableRatio",
                          NS + "monitoring.thresholds.forSeconds", NS + "monitoring.thresholds.denialsPerSecond"}
    assert "projects/PROJECT_ID/notificationChannels/CHANNEL_ID" in found[NS + "monitoring.notificationChannels.oncall"]
    assert "got 'ops@example.com'" in found[NS + "monitoring.notificationChannels.email"]
    assert "less than 1" in found[NS + "monitoring.thresholds.errorRatio"]


def test_monitoring_can_be_turned_off_in_staging_and_on_in_dev():
    assert problems(mutate(NS + "monitoring", {"enabled": False})) == []
    assert problems(mutate(NS + "monitoring", {"enabled": "no"})) != []


# --- log-based metrics: only fields Google documents, and the fields the shard ingress writes -------

DOCUMENTED_FIELDS = {
    # https://cloud.google.com/load-balancing/docs/https/https-logging-monitoring (resource http_load_balancer)
    "resource.type", "resource.labels.backend_service_name", "httpRequest.status", "jsonPayload.statusDetails",
    # https://cloud.google.com/armor/docs/request-logging
    "jsonPayload.enforcedSecurityPolicy.outcome", "jsonPayload.previewSecurityPolicy.outcome",
    # https://cloud.google.com/run/docs/logging (resource cloud_run_revision; a JSON line becomes jsonPayload)
    "resource.labels.service_name",
} | {f"jsonPayload.{field}" for field in LOG_FIELDS}
FIELD = r"\b(resource\.[a-z_.]+|httpRequest\.[A-Za-z_.]+|jsonPayload\.[A-Za-z_.]+)"


def log_metric_fields(metric: dict) -> set[str]:
    texts = [metric["filter"], *metric.get("labelExtractors", {}).values(), metric.get("valueExtractor", "")]
    return {found for text in texts for found in re.findall(FIELD, text)}


def test_staging_counts_load_balancer_requests_by_status_iap_and_armor():
    (metric,) = plan_stack("staging").by_type(LOG_METRIC)
    inputs = metric.inputs
    assert inputs["name"] == "mcp-stg/mcp.lb.request.count"
    assert inputs["filter"] == ('resource.type="http_load_balancer" AND resource.labels.backend_service_name=~'
                                '"^(mcp-stg-gateway|mcp-stg-search|mcp-stg-tools)$"')
    assert inputs["labelExtractors"]["preview_outcome"] == "EXTRACT(jsonPayload.previewSecurityPolicy.outcome)"
    assert sorted(label["key"] for label in inputs["metricDescriptor"]["labels"]) == sorted(inputs["labelExtractors"])
    charts = tiles(plan_stack("staging"))
    iap = charts["tools: IAP refusals"]["dataSets"][0]["timeSeriesQuery"]["prometheusQuery"]
    assert iap == ('sum by (status) (rate(logging_googleapis_com:user_mcp_stg_mcp_lb_request_count{backend=~"mcp-stg-tools",'
                   'status_details="handled_by_identity_aware_proxy",status=~"4.."}[5m]))')


@pytest.mark.parametrize("source", ["staging", "prod", "component"])
def test_log_filters_use_only_documented_fields(source, record):
    plan = _component(record) if source == "component" else plan_stack(source)
    metrics = plan.by_type(LOG_METRIC)
    assert metrics
    for metric in metrics:
        assert log_metric_fields(metric.inputs) <= DOCUMENTED_FIELDS, metric.inputs["name"]


def test_shard_operations_are_a_distribution_by_method_tool_and_verdict(record):
    metrics = {m.inputs["name"]: m.inputs for m in _component(record).by_type(LOG_METRIC)}
    shard = metrics["t/mcp.server.operation.duration"]
    assert shard["filter"] == ('resource.type="cloud_run_revision" AND resource.labels.service_name=~"^(t-tools-s0|t-tools-s1)$"'
                               ' AND jsonPayload.mcp_session_verdict:*')
    assert shard["valueExtractor"] == "EXTRACT(jsonPayload.duration_ms)"
    assert shard["metricDescriptor"] == {"metricKind": "DELTA", "valueType": "DISTRIBUTION", "unit": "ms", "labels": [
        {"key": k, "valueType": "STRING"} for k in ("mcp_method_name", "gen_ai_tool_name", "mcp_session_verdict")]}


def test_the_field_check_refuses_an_undocumented_field():
    assert log_metric_fields({"filter": 'jsonPayload.backendTargetProjectNumber="1"'}) - DOCUMENTED_FIELDS


def test_the_ingress_log_format_is_one_json_object_of_the_fields_the_metric_extracts():
    """The shipped log format, its HAProxy expressions replaced by values, is one JSON object of
    :data:`LOG_FIELDS` (``tests/e2e/test_monitoring.py`` reads the lines a real HAProxy writes)."""
    from mcp_affinity.cloud_run_shards import LOG_FORMAT

    sample = re.sub(r"%\[[^]]+\]", "x", LOG_FORMAT).replace("%ST", "404").replace("%Ta", "3")
    assert sorted(json.loads(sample)) == sorted(LOG_FIELDS)


def test_the_plan_and_the_picture_show_what_is_monitored():
    from conftest import plan_document
    from mcp_affinity.cli.mermaid import to_mermaid

    outputs = plan_stack("staging").outputs
    assert outputs["monitoringAlerts"]["tools"] == [
        "McpErrorRatio: more than 5% of requests answered 5xx",
        "McpSessionsLost: more than 0.1/s requests answered 404 (session not found)",
        "McpDenialSurge: more than 1.0/s requests refused with 403 or 429"]
    assert '  mon_monitoring["monitoring<br/>1 dashboard<br/>11 alert policies<br/>1 log-based metrics"]' in \
        to_mermaid(plan_document("staging")).splitlines()
    assert "mon_" not in to_mermaid(plan_document("dev")) and "monitoringAlerts" not in plan_stack("dev").outputs


def test_monitoring_turned_on_in_dev_plans_it(tmp_path):
    """dev with ``monitoring: {enabled: true}`` watches its services and store."""
    import yaml

    from mcp_affinity.cli import find_project, run_plan
    import dataclasses

    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config["config"]["mcp-affinity:monitoring"] = {"enabled": True}
    (tmp_path / "Pulumi.devmon.yaml").write_text(yaml.safe_dump(config))
    plan = run_plan(dataclasses.replace(find_project(ROOT), stack_config_dir=tmp_path), "devmon")
    assert len(plan.by_type(DASHBOARD)) == 1 and plan.by_type(ALERT_POLICY)
    assert "monitoring.googleapis.com" in plan.outputs["requiredApis"]


names = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(services=st.dictionaries(names, st.lists(names, min_size=1, max_size=4, unique=True), min_size=1, max_size=4),
       lost=st.floats(min_value=0.001, max_value=10000), ratio=st.floats(min_value=0.01, max_value=0.99))
def test_every_alert_selects_exactly_its_services_backends_and_compares_with_its_threshold(services, lost, ratio):
    """Over generated services: each service's expressions select its own backend services and no
    other service's (Prometheus anchors ``=~``), and end in the threshold the settings give."""
    targets = MonitoringTargets(services={name: ServiceTarget(tuple(b), tuple(b), sharded=True)
                                          for name, b in services.items()})
    args = MonitoringArgs(prefix="p", thresholds={"lostSessionsPerSecond": lost, "errorRatio": ratio})
    everyone = {b for backends in services.values() for b in backends}
    for rule in alert_rules(args, targets):
        own = set(services[rule.target])
        for pattern in re.findall(r'(?:backend_target_name|service_name)=~"([^"]+)"', rule.expr):
            assert {b for b in everyone if re.fullmatch(pattern, b)} == own, (rule.alert, pattern)
        expected = {"McpSessionsLost": f"> {lost}", "McpErrorRatio": f"> {ratio}", "McpShardWithoutInstance": "< 1"}
        assert rule.expr.endswith(expected.get(rule.alert, f"> {args.thresholds.denials_per_second}"))


def test_each_certificate_domain_is_checked_over_https_and_alerted_on():
    plan = plan_stack("staging")
    checks = {c.inputs["monitoredResource"]["labels"]["host"]: c.inputs for c in plan.by_type(UPTIME_CHECK)}
    assert sorted(checks) == ["api.mcp.staging.example.com", "notes.mcp.staging.example.com", "tools.mcp.staging.example.com"]
    for check in checks.values():
        assert check["httpCheck"] == {"path": "/", "port": 443, "useSsl": True, "validateSsl": True, "requestMethod": "GET",
                                      "acceptedResponseStatusCodes": [{"statusClass": "STATUS_CLASS_ANY"}]}
        assert check["monitoredResource"]["labels"]["project_id"] == "my-mcp-project-staging"
    (policy,) = [p.inputs for p in plan.by_type(ALERT_POLICY) if p.name == "monitoring-main-certificate"]
    (condition,) = policy["conditions"]
    threshold = condition["conditionThreshold"]
    assert threshold["filter"] == ('metric.type="monitoring.googleapis.com/uptime_check/check_passed" AND resource.type='
                                   '"uptime_url" AND (resource.label.host="tools.mcp.staging.example.com" OR resource.label.host='
                                   '"api.mcp.staging.example.com" OR resource.label.host="notes.mcp.staging.example.com")')
    assert (threshold["comparison"], threshold["thresholdValue"]) == ("COMPARISON_GT", 1)
    assert threshold["aggregations"][0]["crossSeriesReducer"] == "REDUCE_COUNT_FALSE"
    assert "Runbook: " in policy["documentation"]["content"]
    assert plan.outputs["monitoringAlerts"]["certificate main"][0].startswith("McpCertificateNotActive")
