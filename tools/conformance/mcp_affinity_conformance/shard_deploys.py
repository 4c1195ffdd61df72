"""A deploy in the middle of live sessions behind Cloud Run session shards, as three plans say.

The example stack's sharded service is planned three times with the same settings but its
``generations``: before the deploy (generation 1 only), during the drain window (generation 2
deployed a minute ago: generation 1 drains) and after it (generation 2 deployed two hours ago:
generation 1 is pruned). Each moment runs what its plan ships, on 127.0.0.1: the front HAProxy
doing what that plan's URL map says (:func:`~.shards.front_config`, reloaded in place with
``-sf`` as the URL map changes), and per shard key the planned ingress configuration (or the
server's own prefix) in front of one server replica.

The deploy starts generation 2's shards (new server processes with the new keys) and switches the
front to the second plan; the window's end switches it to the third and stops generation 1's
shards. Whether Cloud Run keeps generation 1's instances through the switch is not documented:
this run keeps them (the case the design serves); if Cloud Run does not, old sessions
re-initialize at the deploy instead of after the window. Sessions: :func:`.deploys.phases`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import yaml

from .deploys import DeployReport, phases
from .from_plan import PlannedShards, planned_shards
from .procs import LOOPBACK, Proc, free_port
from .shards import Shard, front_config

EXAMPLE = "cloud-run-shards"


def plan_at(root: Path, service: str, generations: dict[str, datetime], workdir: Path) -> PlannedShards:
    """``service`` of the example stack planned with ``generations`` (number -> deployed at)."""
    from mcp_affinity.cli import find_project, run_plan

    config = yaml.safe_load((root / "examples" / f"Pulumi.{EXAMPLE}.yaml").read_text())
    config["config"]["mcp-affinity:services"][service]["generations"] = {
        number: when.strftime("%Y-%m-%dT%H:%M:%SZ") for number, when in generations.items()}
    folder = workdir / f"stack-{len(list(workdir.glob('stack-*')))}"
    folder.mkdir()
    (folder / f"Pulumi.{EXAMPLE}.yaml").write_text(yaml.safe_dump(config))
    project = dataclasses.replace(find_project(root), stack_config_dir=folder)
    # Pulumi's mock run registers resources on the thread's event loop; anyio.run leaves none set.
    asyncio.set_event_loop(asyncio.new_event_loop())
    return next(s for s in planned_shards(run_plan(project, EXAMPLE).to_json()) if s.service == service)


def _listeners(port: int) -> int:
    """Listening TCP sockets on 127.0.0.1:``port`` (``/proc/net/tcp``): two while a reload overlaps."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return sum(1 for line in table if line.split()[1] == local and line.split()[3] == "0A")


class Front:
    """The HAProxy standing in for the URL map, reloaded in place (``-sf``) when the plan changes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port, self.procs, self.version = workdir, free_port(), [], 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/mcp"

    def load(self, planned: PlannedShards, ports: dict[str, int], timeout: float = 15.0, hard: bool = False) -> float:
        """Run ``planned``'s URL map; returns seconds until only the new process listens. The new
        process also binds a port of its own: once it listens, HAProxy has bound every listener
        and signalled the old process (``-sf``), which then unbinds and finishes its streams.
        ``hard`` stops every older process at once (``-st``): no request of a kept-alive connection
        is routed by an older URL map any more (what a pruned route means)."""
        start, self.version, marker = time.monotonic(), self.version + 1, free_port()
        path = self.workdir / f"front-{self.version}.cfg"
        path.write_text(front_config(planned, ports, self.port)
                        + f"frontend version\n    bind {LOOPBACK}:{marker}\n    monitor-uri /\n")
        older = [str(p.popen.pid) for p in (self.procs if hard else self.procs[-1:]) if p.popen.poll() is None]
        argv = ["haproxy", "-db", "-f", str(path)] + ([("-st" if hard else "-sf"), *older] if older else [])
        self.procs.append(Proc(argv, self.workdir / f"front-{self.version}.log"))
        self.procs[-1].wait_port(marker, timeout)
        while _listeners(self.port) != 1:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"the front's reload to plan {self.version} did not complete within {timeout} s")
            time.sleep(0.05)
        return time.monotonic() - start

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def run_shard_deploy(root: Path, service: str, app: str, workdir: Path, sessions: int = 4,
                     calls: int = 3) -> DeployReport:
    """Measure a deploy of ``service`` (the example's sharded service) served by ``app``."""
    now = datetime.now(timezone.utc)
    moments = [plan_at(root, service, generations, workdir) for generations in (
        {"1": now - timedelta(hours=3)},
        {"1": now - timedelta(hours=3), "2": now - timedelta(minutes=1)},
        {"1": now - timedelta(hours=3), "2": now - timedelta(hours=2)})]
    before, during, after = moments
    if (during.draining, after.keys, after.draining) != (before.keys, during.keys, ()):
        raise ValueError(f"the plans do not drain generation 1: {before.keys} / {during.draining} / {after.keys}")
    report = DeployReport(app, before.keys, during.keys)
    shards = {key: Shard(key, planned.proxy_config, app, workdir)
              for planned in (before, during) for key in planned.keys}
    ports = {key: shard.port for key, shard in shards.items()}
    with ExitStack() as stack:
        for key in before.keys:
            stack.callback(shards[key].stop)
            shards[key].start()
        for key in before.keys:
            shards[key].wait()
        front = Front(workdir)
        stack.callback(front.stop)
        front.load(before, ports)

        def deploy() -> float:
            start = time.monotonic()
            for key in during.keys:
                stack.callback(shards[key].stop)
                shards[key].start()
            for key in during.keys:
                shards[key].wait()
            front.load(during, ports)
            return time.monotonic() - start

        def end_window() -> None:
            front.load(after, ports, hard=True)
            for key in before.keys:
                shards[key].stop()

        anyio.run(phases, front.url, deploy, end_window, report, sessions, calls)
    return report
