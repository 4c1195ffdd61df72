"""The planned pinning proxy's DNS discovery against a name server on 127.0.0.1 that answers as
GKE's kube-dns does (:mod:`mcp_affinity_conformance.dns`: over UDP at most 1232 bytes, truncated
beyond; over TCP whole), started by the container's shipped start-up command: the shipped
``resolvers`` section takes over TCP an answer with every slot's pod far beyond one UDP answer,
where UDP alone took none, and still takes a small answer over UDP from a name server that
refuses TCP."""

from __future__ import annotations

from pathlib import Path

import pytest
from dns import flags as dns_flags

from mcp_affinity import pinning_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("parts_installed")]

HOST = "legacy-pods.mcp-ex5-legacy.svc.cluster.local"
ROOT = Path(__file__).resolve().parents[2]
TCP_NAMESERVER = f'  nameserver tcp tcp@"${{{pinning_proxy.DNS_SERVER_VARIABLE}}}":{pinning_proxy.DNS_PORT}\n'


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
    return [f"127.0.{1 + index // 250}.{2 + index % 250}" for index in range(count)]


def test_every_slot_gets_its_pod_over_tcp_from_an_answer_four_times_what_udp_carries(tmp_path):
    """maxReplicas 100 with a drain: 300 slots, a 4873-byte answer (UDP carries 1232, 72 pods)."""
    from mcp_affinity_conformance.dns import answer_to

    assert pinning_proxy.dns_fault(HOST, 100, True) is None
    assert answer_to(HOST, pods(300), 65535).flags & dns_flags.TC  # over UDP: truncated at 1232 bytes
    sent = answer_to(HOST, pods(300), 65535, tcp=True)
    assert sent.wire_size == 4873 == pinning_proxy.dns_answer_bytes(HOST, 300) and len(sent.answer[0]) == 300
    config = planned(100, tmp_path)
    assert pinning_proxy.resolvers_section() in config and TCP_NAMESERVER in config
    counters, slots = pinning_proxy_discovery(config, pods(300), tmp_path)
    assert counters["tcp"]["valid"] >= 2 and counters["udp"]["valid"] == 0, counters
    assert sorted(slots) == sorted(pods(300))


def test_over_udp_alone_the_same_answer_is_truncated_and_no_slot_gets_a_pod(tmp_path):
    """The shipped section without its TCP name server: the answer for 300 pods comes truncated,
    HAProxy rejects it whole and (after ``hold other``) would drop every pod; 73 pods do the same."""
    udp_only = planned(100, tmp_path).replace(TCP_NAMESERVER, "")
    for count in (300, 73):
        counters, slots = pinning_proxy_discovery(udp_only, pods(count), tmp_path)
        assert set(counters) == {"udp"} and counters["udp"]["truncated"] >= 2, counters
        assert counters["udp"]["valid"] == 0 and slots == [], counters


def test_a_name_server_refusing_tcp_still_fills_the_slots_over_udp_while_the_answer_fits(tmp_path):
    """Why the UDP name server stays: a cluster DNS without TCP still serves an answer of 1232
    bytes or less (72 pods of this name)."""
    counters, slots = pinning_proxy_discovery(planned(24, tmp_path), pods(72), tmp_path, tcp=False)
    assert counters["udp"]["valid"] >= 2 and counters["tcp"].get("valid", 0) == 0, counters
    assert sorted(slots) == sorted(pods(72))


def pinning_proxy_discovery(config: str, addresses: list[str], tmp_path, tcp: bool = True):
    from mcp_affinity_conformance.dns import discover

    workdir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    workdir.mkdir()
    return discover(config, addresses, workdir, tcp=tcp)
