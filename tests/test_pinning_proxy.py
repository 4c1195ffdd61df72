"""The learned-pinning proxy's configuration and sizing, as the package generates them."""

from __future__ import annotations

import subprocess

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


def test_the_resolvers_ask_the_pods_name_server_over_udp_and_tcp_for_answers_up_to_65535_bytes():
    text = config()
    assert ('resolvers kubedns\n  nameserver udp "${DNS_SERVER}":53\n  nameserver tcp tcp@"${DNS_SERVER}":53\n'
            "  accepted_payload_size 65535\n  hold valid 5s\n") in text
    assert "parse-resolv-conf" not in text  # it makes UDP name servers only
    # Over UDP GKE's kube-dns answers 1232 bytes at most: 72 addresses of this name; over TCP 4091.
    host = "notes-pods.mcp-notes.svc.cluster.local"
    assert pinning_proxy.dns_answer_bytes(host, 72) <= pinning_proxy.DNS_PAYLOAD_BYTES < pinning_proxy.dns_answer_bytes(host, 73)
    assert pinning_proxy.dns_answer_bytes(host, 4091) <= 65535 < pinning_proxy.dns_answer_bytes(host, 4092)


def test_an_answer_is_header_question_records_and_opt():
    # 12 header + (38 name + 2) + 4 type/class + 16 per A record + 11 OPT
    assert pinning_proxy.dns_answer_bytes("notes-pods.mcp-notes.svc.cluster.local", 2) == 12 + 40 + 4 + 32 + 11


@pytest.mark.parametrize("max_replicas, drained, refused", [(1000, True, False), (1363, True, False),
                                                            (1364, True, True), (3272, False, False),
                                                            (3273, False, True)])
def test_more_pods_than_one_tcp_answer_holds_are_refused(max_replicas, drained, refused):
    host = "notes-pods.mcp-notes.svc.cluster.local"  # 4091 addresses fit in 65535 bytes
    fault = pinning_proxy.dns_fault(host, max_replicas, drained)
    assert (fault is not None) == refused
    if refused:
        assert fault.startswith(f"{max_replicas} is too many for the pinning proxy")
        assert "at most 4091 addresses" in fault and "65535 bytes over TCP" in fault
        assert ("at most 1363, or sessionDrainSeconds: 0 (then at most 3272)" if drained else "at most 3272") in fault
    slots = pinning_proxy.addresses_in_dns(max_replicas, drained)
    assert (pinning_proxy.dns_answer_bytes(host, slots) > pinning_proxy.DNS_MESSAGE_BYTES) == refused


def test_the_start_command_hands_haproxy_the_first_name_server_of_resolv_conf(tmp_path):
    """Runs the shipped command with ``haproxy`` replaced by a script printing what it got."""
    fake = tmp_path / "bin" / "haproxy"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "DNS_SERVER=$DNS_SERVER args=$*"\n')
    fake.chmod(0o755)
    resolv = tmp_path / "resolv.conf"
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}

    def run(text: str) -> subprocess.CompletedProcess:
        resolv.write_text(text)
        return subprocess.run(pinning_proxy.start_command(str(resolv), "/etc/p.cfg"), env=env,
                              capture_output=True, text=True, timeout=10)

    done = run("search mcp-notes.svc.cluster.local svc.cluster.local\nnameserver 10.8.0.10\n"
               "nameserver 10.8.0.11\noptions ndots:5\n")
    assert (done.returncode, done.stdout) == (0, "DNS_SERVER=10.8.0.10 args=-W -db -f /etc/p.cfg\n"), done
    assert run("nameserver 169.254.20.10").stdout == "DNS_SERVER=169.254.20.10 args=-W -db -f /etc/p.cfg\n"
    refused = run("search cluster.local\n")  # an empty address would make HAProxy ask 0.0.0.0
    assert refused.returncode == 1 and refused.stdout == "" and "no nameserver in" in refused.stderr, refused
    assert pinning_proxy.start_command()[:2] == ["/bin/sh", "-c"]
    assert pinning_proxy.start_command()[2].endswith("exec haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg")


def test_each_slot_gets_a_file_descriptor_for_its_check():
    assert ProxySizing(100_000, 2000, servers=30).fd_limit == 4064 + 30
    assert "ulimit-n 2094\n" in config(sizing=ProxySizing(50_000, 1000, 30))


def test_a_service_at_the_largest_max_replicas_gets_every_slot_and_the_start_command(record):
    """maxReplicas' own limit (1000) with a drain: 3000 slots, whose 48069-byte answer fits one TCP answer."""
    from test_gke import mesh_service, service_args

    plan = record(lambda: mesh_service(service_args(session_mode="in-memory-sessions", pinning="learned",
                                                    max_replicas=1000)))
    text = plan.get("kubernetes:core/v1:ConfigMap", "notes-pinning").inputs["data"]["haproxy.cfg"]
    assert template_slots(text) == 3000 and pinning_proxy.resolvers_section() in text
    assert pinning_proxy.dns_answer_bytes("notes-pods.mcp-t-notes.svc.cluster.local", 3000) == 48069 <= 65535
    pod = plan.get("kubernetes:apps/v1:StatefulSet", "notes-pinning").inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == pinning_proxy.start_command() and "args" not in container
