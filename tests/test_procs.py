"""The conformance tool's loopback ports: one port is never handed out twice in a process."""

from __future__ import annotations

import pytest

from mcp_affinity_conformance import procs


class _Socket:
    """Stands in for a socket bound to port 0: the kernel offers ``offers`` in turn."""

    offers: list[int] = []

    def __init__(self, *_):
        self.port = None

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def bind(self, address):
        assert address == (procs.LOOPBACK, 0)
        self.port = self.offers.pop(0)

    def getsockname(self):
        return (procs.LOOPBACK, self.port)


def test_a_port_offered_again_is_not_handed_out_twice(monkeypatch):
    monkeypatch.setattr(procs, "_GIVEN", set())
    monkeypatch.setattr(procs.socket, "socket", _Socket)
    _Socket.offers = [40001, 40001, 40001, 40002]
    assert [procs.free_port(), procs.free_port()] == [40001, 40002]
    _Socket.offers = [40001, 40002]
    with pytest.raises(RuntimeError, match="no new loopback port in 2 tries"):
        procs.free_port(attempts=2)

