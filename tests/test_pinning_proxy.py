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
