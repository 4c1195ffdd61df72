"""The planned pinning proxy's DNS discovery against a name server on 127.0.0.1 that answers as
GKE's kube-dns does over UDP (:mod:`mcp_affinity_conformance.dns`): the shipped ``resolvers``
section takes an answer with every slot's pod, where HAProxy's default 512 bytes took none."""

from __future__ import annotations

from pathlib import Path

import pytest
from dns import flags as dns_flags

from mcp_affinity import pinning_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("parts_installed")]

HOST = "legacy-pods.mcp-ex5-legacy.svc.cluster.local"
ROOT = Path(__file__).resolve().parents[2]


def planned(max_replicas: int, tmp_path) -> str:
    """The proxy config the package plans for the learned example's service at ``max_replicas``."""
    from mcp_affinity_conformance.from_plan import plan_example_with, planned_routings

    workdir = tmp_path / f"plan-{max_replicas}"
    workdir.mkdir()
    plan = plan_example_with(ROOT, "gke-in-memory-learned", workdir, "legacy", maxReplicas=max_replicas)
    (learned,) = [p.routing for p in planned_routings(plan) if p.routing.kind == "learned"]
    return learned.config


def pods(count: int) -> list[str]:
    """``count`` pod addresses, all loopback (and nothing connects to them: no check, no traffic)."""
    return [f"127.0.0.{2 + index}" for index in range(count)]


def test_every_slot_gets_its_pod_from_one_answer_at_the_largest_allowed_max_replicas(tmp_path):
    """maxReplicas 24 is the most the package allows here: 72 slots, a 1225-byte answer."""
    assert pinning_proxy.dns_fault(HOST, 24, True) is None and pinning_proxy.dns_fault(HOST, 25, True)
    from mcp_affinity_conformance.dns import answer_to

    sent = answer_to(HOST, pods(72), 1232)
    assert sent.wire_size == 1225 == pinning_proxy.dns_answer_bytes(HOST, 72) and len(sent.answer[0]) == 72
    counters, slots = pinning_proxy_discovery(planned(24, tmp_path), pods(72), tmp_path)
    assert counters["truncated"] == 0 and counters["valid"] >= 2, counters
    assert sorted(slots) == sorted(pods(72))


def test_with_haproxys_default_payload_the_same_answer_is_truncated_and_no_slot_gets_a_pod(tmp_path):
    """The configuration before the fix (no ``accepted_payload_size``: 512 bytes) with the pods of
    a drained deploy at maxReplicas 10 (30 addresses, 553 bytes)."""
    from mcp_affinity_conformance.dns import answer_to

    assert answer_to(HOST, pods(30), 1232).wire_size == 553 == pinning_proxy.dns_answer_bytes(HOST, 30)
    assert answer_to(HOST, pods(27), 512).flags & dns_flags.TC == 0 and answer_to(HOST, pods(28), 512).flags & dns_flags.TC
    after = planned(10, tmp_path)
    before = after.replace(f"  accepted_payload_size {pinning_proxy.DNS_PAYLOAD_BYTES}\n", "")
    counters, slots = pinning_proxy_discovery(before, pods(30), tmp_path)
    assert counters["truncated"] >= 2 and counters["valid"] == 0, counters
    assert slots == []
    counters, slots = pinning_proxy_discovery(after, pods(30), tmp_path)
    assert counters["truncated"] == 0 and len(slots) == 30, counters


def test_one_pod_beyond_what_the_cluster_dns_returns_in_one_answer_leaves_every_slot_empty(tmp_path):
    """Why the package refuses a maxReplicas whose pods overflow 1232 bytes: the cluster DNS
    truncates the answer, HAProxy rejects it whole, and (after ``hold other``) drops every pod."""
    from mcp_affinity_conformance.dns import answer_to

    assert answer_to(HOST, pods(73), 1232).flags & dns_flags.TC
    counters, slots = pinning_proxy_discovery(planned(24, tmp_path), pods(73), tmp_path)
    assert counters["truncated"] >= 2 and counters["valid"] == 0, counters
    assert slots == []


def pinning_proxy_discovery(config: str, addresses: list[str], tmp_path):
    from mcp_affinity_conformance.dns import discover

    workdir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    workdir.mkdir()
    return discover(config, addresses, workdir)
