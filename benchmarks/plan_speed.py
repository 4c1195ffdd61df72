"""How fast is the credential-free plan? A benchmark to run by hand, not a timed test.

    .venv/bin/python benchmarks/plan_speed.py [--services 10,100,1000] [--repeat 3]

Prints, each measured in a fresh interpreter (so imports are cold and nothing is cached):

1. the import time of the provider modules the prod plan touches (every ``pulumi*`` module it
   loads), then the prod plan time beyond that import, its ratio to the import (target: at most
   1) and the milliseconds per resource (target: at most 2 ms), with the garbage collector
   paused as :func:`mcp_affinity.cli.runner.gc_paused` does, and without for comparison;
2. the plan of a synthesized stack (the dev stack with N Cloud Run services, in a temporary
   directory) for each N, with ms per resource: flat means linear (target: linear to 1,000).

Target: linear in the number of resources.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: import the given modules, then plan; prints one JSON line.
_PROBE = r"""
import gc, json, sys, time, importlib
from pathlib import Path
modules, root, stack, config_dir, pause = json.loads(sys.stdin.read())
start = time.perf_counter()
for name in modules:
    importlib.import_module(name)
imported = time.perf_counter()
from mcp_affinity.cli import runner
from mcp_affinity.cli.project import find_project
if not pause:
    import contextlib
    runner.gc_paused = contextlib.nullcontext
project = find_project(Path(root))
if config_dir:
    import dataclasses
    project = dataclasses.replace(project, stack_config_dir=Path(config_dir))
ready = time.perf_counter()
plan = runner.run_plan(project, stack)
done = time.perf_counter()
loaded = [m for m in sys.modules if m.split(".")[0] in ("pulumi", "pulumi_gcp", "pulumi_kubernetes")]  # load order
print(json.dumps({"import": imported - start, "setup": ready - imported, "plan": done - ready,
                  "resources": len(plan.resources), "modules": loaded}))
"""


def probe(modules: list[str], stack: str, config_dir: str | None = None, pause: bool = True) -> dict:
    """One fresh interpreter: import ``modules``, then plan ``stack``; the timings in seconds."""
    args = json.dumps([modules, str(ROOT), stack, config_dir, pause])
    out = subprocess.run([sys.executable, "-c", _PROBE], input=args, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"plan of {stack} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["import"] + r["plan"])


def synthesize(folder: Path, services: int) -> Path:
    """``Pulumi.bench.yaml`` in ``folder``: the dev stack with ``services`` copies of its first service."""
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config = document["config"]
    template = next(iter(config["mcp-affinity:services"].values()))
    domain = config["mcp-affinity:loadBalancer"]["certificates"]["main"][0]
    config["mcp-affinity:services"] = {f"s{i:04d}": {**template, "hosts": [f"s{i:04d}.{domain}"]}
                                       for i in range(services)}
    # A managed certificate holds at most 100 domains; spread the hosts over several.
    hosts = [f"s{i:04d}.{domain}" for i in range(services)]
    config["mcp-affinity:loadBalancer"]["certificates"] = {
        f"c{n}": hosts[n:n + 100] for n in range(0, len(hosts), 100)} or {"main": [domain]}
    (folder / "Pulumi.bench.yaml").write_text(yaml.safe_dump(document))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="10,100,1000", help="comma-separated service counts to synthesize")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is shown")
    options = parser.parse_args()

    modules = probe([], "prod")["modules"]
    runs = [probe(modules, "prod") for _ in range(options.repeat)]
    prod, gc_on = best(runs), best([probe(modules, "prod", pause=False) for _ in range(options.repeat)])
    n = prod["resources"]
    print(f"provider modules the prod plan touches: {len(modules)}, import {prod['import']:.2f} s")
    print(f"prod plan beyond import: {prod['plan']:.2f} s for {n} resources = {prod['plan'] / prod['import']:.2f}x "
          f"the import (target <= 1), {1000 * prod['plan'] / n:.2f} ms per resource (target <= 2)")
    print(f"  same with the garbage collector running: {gc_on['plan']:.2f} s "
          f"({gc_on['plan'] / prod['import']:.2f}x the import, {1000 * gc_on['plan'] / n:.2f} ms per resource)")
    print("scaling (dev stack with N Cloud Run services):")
    for count in (int(c) for c in options.services.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            result = best([probe(modules, "bench", str(synthesize(Path(folder), count)))
                           for _ in range(max(1, options.repeat - 1))])
        print(f"  {count:5d} services: {result['resources']:6d} resources, plan {result['plan']:7.2f} s, "
              f"{1000 * result['plan'] / result['resources']:.2f} ms per resource")


if __name__ == "__main__":
    main()
