"""The learned-pinning proxy's configuration and sizing, as the package generates them."""

from __future__ import annotations

import pytest

from mcp_affinity import pinning_proxy
from mcp_affinity.mesh_service import McpMeshServiceArgs
from mcp_affinity.pinning_proxy import ProxySizing


def config(replicas: int = 2, **overrides) -> str:
    args = dict(name="notes-pinning", namespace="mcp-notes", pods_service="notes-pods",
                peers_service="notes-pinning-peers", replicas=replicas, header="Mcp-Session-Id", port=8080,
                max_servers=10, stream_timeout_seconds=600, session_idle_seconds=900,
                sizing=ProxySizing(50_000, 1000))
    return pinning_proxy.haproxy_config(**{**args, **overrides})


def test_memory_and_file_descriptors_follow_the_two_sizing_settings():
    default = ProxySizing(100_000, 2000)
    assert (default.memory_mib, default.fd_limit) == (128, 4064)
    big = ProxySizing(1_000_000, 2000)
    assert big.memory_mib == 352  # 32 MiB + 244.1 MiB of pins + 64.5 MiB of connections, up to 16 MiB


def test_the_settings_reach_the_configuration():
    text = config()
    assert "maxconn 1000\n  ulimit-n 2064\n" in text
    assert "size 50000 expire 900s srvkey addr peers pinning" in text
    assert "timeout server 600s" in text and "timeout tunnel 600s" in text
    assert "stick on" not in text and "option persist" in text


def test_one_replica_hands_nothing_over_and_two_hand_over_to_each_other():
    assert "handover" not in config(replicas=1)
    text = config(replicas=2)
    assert "use_backend handover if" in text and "!{ req.hdr(X-Mcp-Pinning-Hop) -m found }" in text
    assert "  retries 1\n" in text and "  http-request del-header X-Mcp-Pinning-Hop" in text
    assert text.count("notes-pinning-peers.mcp-notes.svc.cluster.local:8080") == 2


@pytest.mark.parametrize("setting", [{"session_idle_seconds": 600}, {"pinning_replicas": 3},
                                     {"pinning_max_sessions": 5000}, {"stream_timeout_seconds": 60}])
def test_proxy_settings_without_learned_pinning_are_refused(setting):
    with pytest.raises(ValueError, match="goes with pinning: learned"):
        McpMeshServiceArgs(prefix="mcp", project="p-1234", image="ghcr.io/x/y:1", session_mode="stateless", hosts=["mcp.example.com"], access="oauth", **setting)
    McpMeshServiceArgs(prefix="mcp", project="p-1234", image="ghcr.io/x/y:1", session_mode="in-memory-sessions", pinning="learned",
                       hosts=["mcp.example.com"], access="oauth", **setting)


def template_slots(text: str) -> int:
    (line,) = [line for line in text.splitlines() if line.startswith("  server-template mcp 1-")]
    return int(line.split()[2].split("-")[1])


@pytest.mark.parametrize("max_replicas, drained, slots", [(1, False, 1), (10, False, 10), (1, True, 3), (2, True, 6),
                                                          (10, True, 30), (24, True, 72)])
def test_a_drain_gives_the_terminating_pods_slots_beside_the_current_version(max_replicas, drained, slots):
    assert pinning_proxy.server_slots(max_replicas, drained) == slots
    assert template_slots(config(max_servers=slots)) == slots


@pytest.mark.parametrize("max_replicas", [1, 2, 3, 4, 5, 10, 24])
def test_the_slots_hold_old_new_and_surge_pods_of_two_overlapping_deploys(max_replicas):
    """A deploy keeps the old set (maxReplicas terminating pods) beside the new one, whose live pods
    may be maxReplicas plus the 25 % surge while old ones still run; a second deploy (or a rollback)
    inside the window adds one more set."""
    slots = pinning_proxy.server_slots(max_replicas, drained=True)
    surge = pinning_proxy.rollout_surge(max_replicas)
    assert surge == -(-max_replicas // 4)
    # During one rollout: old pods (running or terminating) + new pods, the running ones capped by the surge.
    for old_running in range(max_replicas + 1):
        new = min(max_replicas, max_replicas + surge - old_running)
        assert max_replicas + new <= slots
    assert 3 * max_replicas <= slots  # two draining sets and the current one
    assert pinning_proxy.server_slots(max_replicas, drained=False) == max_replicas  # no drain: as before


def test_the_resolvers_accept_an_answer_as_large_as_the_cluster_dns_sends():
    text = config()
    assert "resolvers kubedns\n  parse-resolv-conf\n  accepted_payload_size 1232\n  hold valid 5s\n" in text
    # HAProxy takes 512 to 65535 (configuration manual, accepted_payload_size); 512 holds only 27 pods.
    assert 512 < pinning_proxy.DNS_PAYLOAD_BYTES <= 65535
    host = "notes-pods.mcp-notes.svc.cluster.local"
    assert pinning_proxy.dns_answer_bytes(host, 27) <= 512 < pinning_proxy.dns_answer_bytes(host, 28)


def test_an_answer_is_header_question_records_and_opt():
    # 12 header + (38 name + 2) + 4 type/class + 16 per A record + 11 OPT
    assert pinning_proxy.dns_answer_bytes("notes-pods.mcp-notes.svc.cluster.local", 2) == 12 + 40 + 4 + 32 + 11


@pytest.mark.parametrize("max_replicas, drained, refused", [(24, True, False), (25, True, True), (30, True, True),
                                                            (57, False, False), (58, False, True)])
def test_more_pods_than_one_dns_answer_holds_are_refused(max_replicas, drained, refused):
    host = "notes-pods.mcp-notes.svc.cluster.local"  # 72 addresses fit in 1232 bytes
    fault = pinning_proxy.dns_fault(host, max_replicas, drained)
    assert (fault is not None) == refused
    if refused:
        assert fault.startswith(f"{max_replicas} is too many for the pinning proxy")
        assert "at most 72 addresses" in fault and "1232 bytes" in fault
        assert ("at most 24, or sessionDrainSeconds: 0 (then at most 57)" if drained else "at most 57") in fault
    slots = pinning_proxy.addresses_in_dns(max_replicas, drained)
    assert (pinning_proxy.dns_answer_bytes(host, slots) > pinning_proxy.DNS_PAYLOAD_BYTES) == refused


def test_each_slot_gets_a_file_descriptor_for_its_check():
    assert ProxySizing(100_000, 2000, servers=30).fd_limit == 4064 + 30
    assert "ulimit-n 2094\n" in config(sizing=ProxySizing(50_000, 1000, 30))


def test_a_service_whose_pods_overflow_the_answer_is_refused_under_max_replicas(record):
    from mcp_affinity.errors import SettingsError
    from test_gke import mesh_service, service_args

    args = service_args(session_mode="in-memory-sessions", pinning="learned", max_replicas=30)
    with pytest.raises(SettingsError) as error:
        record(lambda: mesh_service(args))
    (fault,) = error.value.problems
    assert fault[0] == "maxReplicas" and "notes-pods.mcp-t-notes.svc.cluster.local" in fault[1], fault
    plan = record(lambda: mesh_service(service_args(session_mode="in-memory-sessions", pinning="learned",
                                                    max_replicas=30, session_drain_seconds=0)))
    text = plan.get("kubernetes:core/v1:ConfigMap", "notes-pinning").inputs["data"]["haproxy.cfg"]
    assert template_slots(text) == 30
