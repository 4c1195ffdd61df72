"""``python -m mcp_affinity_conformance``: run the matrix over the routings this checkout's
stacks and examples plan, and print the Markdown table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import ROUTING_KINDS, Budget, plan_all, routings_of, run_matrix, to_markdown


def main(argv: list[str] | None = None) -> int:
    """Print the table (and write it to ``--out``); the wall-clock time in seconds goes to stderr."""
    parser = argparse.ArgumentParser(prog="python -m mcp_affinity_conformance", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the checkout (default: here)")
    parser.add_argument("--routing", action="append", choices=ROUTING_KINDS, help="repeatable; default: all")
    parser.add_argument("--replicas", type=int, default=Budget.replicas)
    parser.add_argument("--sessions", type=int, default=Budget.sessions)
    parser.add_argument("--calls", type=int, default=Budget.calls)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    routings = [r for r in routings_of(plan_all(args.root)) if not args.routing or r.kind in args.routing]
    start = time.monotonic()
    budget = Budget(replicas=args.replicas, sessions=args.sessions, calls=args.calls)
    table = to_markdown(run_matrix(routings, budget=budget))
    print(table, end="")
    if args.out:
        args.out.write_text(table)
    print(f"conformance run: {time.monotonic() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
