"""``python -m mcp_affinity_conformance``: run the matrix and print the Markdown table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import DEFAULT_ROUTINGS, ROUTING_KINDS, Budget, Routing, run_matrix, to_markdown


def main(argv: list[str] | None = None) -> int:
    """Print the table (and write it to ``--out``); the wall-clock time in seconds goes to stderr."""
    parser = argparse.ArgumentParser(prog="python -m mcp_affinity_conformance", description=__doc__)
    parser.add_argument("--routing", action="append", choices=ROUTING_KINDS, help="repeatable; default: all")
    parser.add_argument("--replicas", type=int, default=Budget.replicas)
    parser.add_argument("--sessions", type=int, default=Budget.sessions)
    parser.add_argument("--calls", type=int, default=Budget.calls)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    routings = [Routing(kind) for kind in args.routing] if args.routing else list(DEFAULT_ROUTINGS)
    start = time.monotonic()
    table = to_markdown(run_matrix(routings=routings, budget=Budget(args.replicas, args.sessions, args.calls)))
    print(table, end="")
    if args.out:
        args.out.write_text(table)
    print(f"conformance run: {time.monotonic() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
