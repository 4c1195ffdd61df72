"""Local processes for the conformance run: free loopback ports, spawn, wait, always clean up.

Everything listens on 127.0.0.1 only. Each spawned process gets its own process group and is
registered for an ``atexit`` kill, so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
APT_PACKAGES = ("redis-server", "haproxy")
"""Debian packages that provide the binaries below (``apt-get install -y redis-server haproxy``)."""
BINARIES = ("redis-server", "haproxy")

_LIVE: set[subprocess.Popen] = set()


def missing_binaries() -> list[str]:
    """Names in :data:`BINARIES` that are not on ``PATH``."""
    return [name for name in BINARIES if shutil.which(name) is None]


_GIVEN: set[int] = set()
"""Ports :func:`free_port` handed out in this process: many are bound only later (a replica a
deploy starts), and the kernel may offer a released port again meanwhile."""


def free_port(attempts: int = 100) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released) and not
    handed out before in this process; raises ``RuntimeError`` after ``attempts`` tries."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
    raise RuntimeError(f"no new loopback port in {attempts} tries")


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


class Proc:
    """One child process with its output in ``log``; ``stop`` kills its whole process group."""

    def __init__(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv, self.log = list(argv), log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )
        _LIVE.add(self.popen)

    def wait_port(self, port: int, timeout: float) -> None:
        """Block until 127.0.0.1:``port`` accepts connections; ``timeout`` in seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited ({self.popen.returncode}): {self.tail()}")
            if port_open(port):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.argv[0]} did not listen on {LOOPBACK}:{port} within {timeout}s: {self.tail()}")

    def tail(self, chars: int = 1500) -> str:
        """The last ``chars`` characters of the process's output."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 3.0) -> None:
        """Send ``sig`` to the process group, escalate to SIGKILL after ``timeout`` seconds."""
        _signal_group(self.popen, sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.popen, signal.SIGKILL)
            self.popen.wait(timeout)
        _LIVE.discard(self.popen)


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    if popen.poll() is None:
        try:
            os.killpg(popen.pid, sig)
        except ProcessLookupError:
            pass


@atexit.register
def _kill_leftovers() -> None:
    for popen in list(_LIVE):
        _signal_group(popen, signal.SIGKILL)
    _LIVE.clear()


def redis_server(workdir: Path, timeout: float = 10.0) -> tuple[Proc, str]:
    """Debian's ``redis-server`` on a free loopback port, no persistence; returns (proc, URL)."""
    port = free_port()
    conf = workdir / "redis.conf"
    conf.write_text(
        f"bind {LOOPBACK}\nport {port}\nprotected-mode yes\nsave \"\"\nappendonly no\n"
        f"dir {workdir}\ndaemonize no\n"
    )
    proc = Proc(["redis-server", str(conf)], workdir / "redis.log")
    proc.wait_port(port, timeout)
    return proc, f"redis://{LOOPBACK}:{port}/0"
