"""The package's alert rules evaluated by a real Prometheus against real exporters (#20).

The learned-pinning proxies run the configuration the plan deploys (``gke-in-memory-learned``,
two peered proxies, loopback addresses substituted), in front of three in-memory MCP replicas;
Prometheus scrapes each proxy's HAProxy exporter with the labels Managed Service for Prometheus
gives a pod, and evaluates :func:`mcp_affinity.monitoring.alert_rules` (the expressions the alert
policies carry) every second with a one-second hold instead of five minutes, and thresholds a
short run reaches (:data:`THRESHOLDS`). In one run:

1. quiet: sessions open, call tools and close; after Prometheus has scraped all of it and
   evaluated the rules twice more, no alert is pending or firing;
2. a random-id flood (made-up ``Mcp-Session-Id`` values): ``McpUnknownSessionIds`` fires, and
   ``McpPinnedSessionsLost`` does not;
3. a replica killed while its sessions are open: their next requests find their pod gone and
   ``McpPinnedSessionsLost`` fires.

Every wait is on a condition, bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from functools import partial

import anyio
import httpx2
import pytest

from mcp_affinity.monitoring import (
    MonitoringArgs, MonitoringTargets, ProxyTarget, ServiceTarget, alert_rules, rules_file,
)

from .conftest import require_parts

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("monitoring")]

SESSIONS, FLOOD = 6, 200
THRESHOLDS = {"denialsPerSecond": 0.1, "lostSessionsPerSecond": 0.001}
"""The expressions keep their 5-minute rate window, over which a few seconds of traffic average
out small: 200 made-up ids are about 0.7/s, one lost request about 0.003/s. A stack sets
thresholds for sustained rates (the defaults: 1/s and 0.1/s)."""


def _namespace(config: str) -> str:
    """The namespace the deployed configuration names (its pods' headless Service host)."""
    return re.search(r"server-template \S+ \S+ [a-z0-9-]+\.([a-z0-9-]+)\.svc\.cluster\.local:", config)[1]


async def _sessions(url: str, count: int, gate=None, between=None) -> list:
    """``count`` concurrent sessions of the official SDK's client (two phases around ``gate``)."""
    from mcp_affinity_conformance.driver import run_session
    from mcp_affinity_conformance.matrix import _sessions as concurrently

    return await concurrently(count, partial(run_session, url, "legacy", False, [2, 2] if gate else [4], gate, 30.0),
                              between)


async def _flood(url: str, count: int) -> list[int]:
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": "2025-11-25"}
    statuses: list[int] = []
    async with httpx2.AsyncClient(timeout=10.0) as http:
        for _ in range(count):
            response = await http.post(url, content=body, headers={**headers, "mcp-session-id": uuid.uuid4().hex})
            statuses.append(response.status_code)
    return statuses


def test_alerts_fire_on_real_exporters_and_stay_silent_when_quiet(routings, tmp_path):
    require_parts()
    if shutil.which("prometheus") is None:
        message = "needs Debian's prometheus: apt-get install -y prometheus"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from mcp_affinity_conformance.driver import Gate
    from mcp_affinity_conformance.prometheus import Prometheus
    from mcp_affinity_conformance.proxy import LearnedProxies
    from mcp_affinity_conformance.servers import ReplicaSet

    (learned,) = [r for r in routings if r.kind == "learned"]
    namespace = _namespace(learned.config)
    replicas = ReplicaSet("sdk-in-memory", 3, tmp_path)
    replicas.start()
    proxies = prometheus = None
    try:
        proxies = LearnedProxies(learned, replicas.servers, tmp_path, "monitoring")
        targets = MonitoringTargets(proxies={"notes": ProxyTarget(namespace, len(proxies.names))})
        rules = alert_rules(MonitoringArgs(prefix="e2e", thresholds=THRESHOLDS), targets)
        assert {r.alert for r in rules} == {"McpPinTableFull", "McpPinnedSessionsLost", "McpUnknownSessionIds"}
        prometheus = Prometheus(rules_file(rules, interval_seconds=1, for_seconds=1), {
            f"127.0.0.1:{proxies.ports.health[name]}": {"namespace": namespace, "pod": name} for name in proxies.names},
            tmp_path)

        # 1. quiet
        quiet = anyio.run(_sessions, proxies.url, SESSIONS)
        assert sum(r.ok for r in quiet) == 4 * SESSIONS, [r.error for r in quiet]
        _settle(prometheus, proxies)
        assert prometheus.alerts() == []

        # 2. random-id flood
        statuses = anyio.run(_flood, proxies.url, FLOOD)
        assert set(statuses) == {404}
        fired = prometheus.wait(lambda: "McpUnknownSessionIds" in prometheus.firing(), 60.0, "McpUnknownSessionIds firing")
        print(f"McpUnknownSessionIds firing {fired:.1f} s after the flood")
        assert "McpPinnedSessionsLost" not in {a["labels"]["alertname"] for a in prometheus.alerts()}

        # 3. a replica killed while its sessions are open
        gate, victim = Gate(SESSIONS), replicas.replicas[0]

        async def kill_between_phases() -> None:
            await gate.all_parked(30.0)
            victim.kill()
            gate.resume.set()

        results = anyio.run(partial(_sessions, proxies.url, SESSIONS, gate, kill_between_phases))
        lost = [r for r in results if r.creator == victim.name]
        assert lost and all(r.failed for r in lost), [(r.creator, r.failed) for r in results]
        fired = prometheus.wait(lambda: "McpPinnedSessionsLost" in prometheus.firing(), 60.0, "McpPinnedSessionsLost firing")
        print(f"McpPinnedSessionsLost firing {fired:.1f} s after the sessions of the killed replica ended")
    finally:
        for part in (prometheus, proxies, replicas):
            if part is not None:
                part.stop()


def _settle(prometheus, proxies) -> None:
    """Wait until Prometheus scraped every request the proxies answered, then until it evaluated
    the rules twice after that (bounded: 30 s each)."""
    total = sum(_requests(proxies, name) for name in proxies.names)
    prometheus.wait(lambda: prometheus.scraped('sum(haproxy_frontend_http_requests_total{proxy="mcp"})', total),
                    30.0, "the last requests scraped")
    seen = time.time()
    prometheus.wait(lambda: prometheus.last_evaluation() > seen + 1.0, 30.0, "two rule evaluations after the traffic")


def _requests(proxies, name: str) -> float:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", proxies.ports.health[name], timeout=10)
    try:
        connection.request("GET", "/metrics?scope=frontend")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    found = re.search(r'^haproxy_frontend_http_requests_total\{proxy="mcp"\} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


def test_shard_ingress_logs_method_tool_and_session_verdict_of_every_request(shard_plans, tmp_path):
    """The planned ingress configuration of ``examples/Pulumi.cloud-run-shards.yaml`` in front of
    real servers writes one JSON line per request; the log-based metric's extractors find their
    fields in every line, and the verdicts count what was sent: ids of no shard ``foreign``."""
    require_parts()
    import json

    from mcp_affinity_conformance.shards import ShardedDeployment, flood, steady

    from mcp_affinity.monitoring import log_metrics

    planned = shard_plans["tools"]
    with ShardedDeployment(planned, tmp_path) as deployment:
        sessions = anyio.run(steady, deployment.url, False, 2, 2)
        sent = anyio.run(flood, deployment.url, planned.header, planned.keys, 20)
    assert sum(r.ok for r in sessions) == 4 and sent.statuses == {404: 20}
    lines = [json.loads(line) for shard in deployment.shards.values()
             for line in (tmp_path / f"ingress-{shard.key}.log").read_text().splitlines() if line.startswith("{")]
    targets = MonitoringTargets(services={"tools": ServiceTarget(("b",), ("s",), sharded=True)})
    (shard_metric,) = [m for m in log_metrics(MonitoringArgs(prefix="e2e"), targets) if m.value]
    fields = [re.fullmatch(r"EXTRACT\(jsonPayload\.(\w+)\)", e)[1] for e in [*shard_metric.labels.values(), shard_metric.value]]
    assert all(field in line for line in lines for field in fields)
    verdicts = [line["mcp_session_verdict"] for line in lines]
    assert verdicts.count("foreign") == sent.sent - sent.with_shard_key  # ids without a shard key
    assert verdicts.count("none") >= 2  # each session's initialize
    calls = [line for line in lines if line["mcp_method_name"] == "tools/call" and line["mcp_session_verdict"] == "own"]
    assert {line["gen_ai_tool_name"] for line in calls} == {"whoami"} and len(calls) >= 4 + sent.with_shard_key
