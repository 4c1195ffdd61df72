"""How much memory does a learned pin cost? A benchmark to run by hand, not a timed test.

    .venv/bin/python benchmarks/pin_table_memory.py [--pins 20000,100000]

Runs the learned-pinning proxy exactly as the example stack ``gke-in-memory-learned`` plans it
(addresses moved to loopback), in front of a stand-in server that mints a fresh
``Mcp-Session-Id`` for every request, and prints for each count the pins stored, the proxy's
resident-memory growth and the bytes per pin, against ``pinning_proxy.BYTES_PER_PIN``, the figure
the proxy's memory limit is derived from. Needs Debian's ``haproxy`` and
``pip install -e tools/conformance``. Measured on HAProxy 2.6 (2 cores): 210 B per pin at 20,000
and at 100,000 pins.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mcp_affinity import pinning_proxy
from mcp_affinity_conformance import plan_all, routings_of
from mcp_affinity_conformance.pin_memory import measure

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pins", default="20000,100000", help="comma-separated pin counts")
    args = parser.parse_args()
    (learned,) = [r for r in routings_of(plan_all(ROOT)) if r.kind == "learned"]
    print(f"sizing assumes {pinning_proxy.BYTES_PER_PIN} B per pin")
    for count in (int(n) for n in args.pins.split(",")):
        with tempfile.TemporaryDirectory(prefix="pin-memory-") as workdir:
            result = measure(learned.config, count, Path(workdir))
        print(f"{result.pins:>9} pins: +{result.grown_bytes / 2**20:.1f} MiB, {result.bytes_per_pin:.0f} B per pin")


if __name__ == "__main__":
    main()
