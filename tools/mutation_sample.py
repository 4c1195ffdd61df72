"""Sampled mutation testing: how many small faults in a module the tests that exercise it catch.

    .venv/bin/python tools/mutation_sample.py components/mcp_affinity/security_policy.py \
        tests/test_edge_limits.py tests/test_edge_inputs.py tests/test_edge.py --sample 40

Every mutation site of the module is listed by kind (a comparison flipped, ``and``/``or`` swapped,
a ``not`` dropped, a number or string constant changed, an element of a list/tuple/set/dict
literal removed, a keyword argument removed, a statement replaced by ``pass``); ``--sample``
mutants are drawn evenly across the kinds (round robin, seeded). Docstrings are not mutated.
Each mutant is written into a copy of the repository (tracked and untracked files, not ignored
ones), whose ``components`` comes first on ``PYTHONPATH``, and the given test files run there with
``pytest -x -p no:randomly``; a failing or timed-out run kills the mutant. The working tree is never
touched. Prints each survivor (line and change) and the score; ``--json`` writes them too.

Not part of the test suite: a run takes minutes per module (one pytest process per mutant).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLIP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
        ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.If, ast.For, ast.Return, ast.Raise, ast.With)


@dataclass(frozen=True)
class Site:
    """One mutation: the ``index``-th node of the walk, how it changes, where."""

    kind: str
    index: int
    variant: int
    line: int
    text: str


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            ids.add(id(body[0].value))
            ids.add(id(body[0]))
    # A string constant right after an assignment documents it (attribute docstrings).
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for before, after in zip(body, body[1:]):
                if isinstance(before, (ast.Assign, ast.AnnAssign)) and isinstance(after, ast.Expr) \
                        and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                    ids.update({id(after), id(after.value)})
    return ids


def sites(tree: ast.AST) -> list[Site]:
    """Every mutation site of ``tree``, in walk order."""
    skip = _docstrings(tree)
    found = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)

        def add(kind, variant=0, text=""):
            found.append(Site(kind, index, variant, line, text))

        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in FLIP:
                    add("comparison", i, f"{type(op).__name__} -> {FLIP[type(op)].__name__}")
        elif isinstance(node, ast.BoolOp):
            add("boolean", 0, "and <-> or")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add("boolean", 1, "not dropped")
        elif isinstance(node, ast.Constant) and not isinstance(node.value, bytes) and node.value is not None \
                and node.value is not Ellipsis:
            add("constant", 0, f"{node.value!r:.40} changed")
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)) and node.elts \
                and isinstance(getattr(node, "ctx", ast.Load()), ast.Load):
            for i in range(len(node.elts)):
                add("element", i, f"element {i} removed")
        elif isinstance(node, ast.Dict) and node.keys:
            for i in range(len(node.keys)):
                add("element", i, f"entry {i} removed")
        if isinstance(node, ast.Call):
            for i, keyword in enumerate(node.keywords):
                add("keyword", i, f"keyword {keyword.arg} removed")
        for field in ("body", "orelse"):
            body = getattr(node, field, None)
            if isinstance(body, list):
                for i, statement in enumerate(body):
                    if isinstance(statement, STATEMENTS) and id(statement) not in skip:
                        found.append(Site("statement", index, i if field == "body" else 1000 + i,
                                          statement.lineno, f"line {statement.lineno} -> pass"))
    return found


def _changed_constant(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return "" if value else "XX"
    return value


def mutate(tree: ast.AST, site: Site) -> ast.AST:
    """A copy of ``tree`` with ``site`` applied."""
    tree = copy.deepcopy(tree)
    node = list(ast.walk(tree))[site.index]
    if site.kind == "comparison":
        node.ops[site.variant] = FLIP[type(node.ops[site.variant])]()
    elif site.kind == "boolean" and site.variant == 0:
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif site.kind == "boolean":
        _replace(tree, node, node.operand)
    elif site.kind == "constant":
        node.value = _changed_constant(node.value)
    elif site.kind == "element" and isinstance(node, ast.Dict):
        del node.keys[site.variant], node.values[site.variant]
    elif site.kind == "element":
        del node.elts[site.variant]
    elif site.kind == "keyword":
        del node.keywords[site.variant]
    elif site.kind == "statement":
        field, i = ("orelse", site.variant - 1000) if site.variant >= 1000 else ("body", site.variant)
        getattr(node, field)[i] = ast.Pass()
    return ast.fix_missing_locations(tree)


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new


def sample(found: list[Site], count: int, seed: int) -> list[Site]:
    """``count`` sites drawn evenly across kinds: round robin over the kinds, each shuffled."""
    rng = random.Random(seed)
    kinds: dict[str, list[Site]] = {}
    for site in found:
        kinds.setdefault(site.kind, []).append(site)
    for group in kinds.values():
        rng.shuffle(group)
    chosen, order = [], sorted(kinds)
    while len(chosen) < count and any(kinds.values()):
        for kind in order:
            if kinds[kind] and len(chosen) < count:
                chosen.append(kinds[kind].pop())
    return chosen


def copy_repository(target: Path) -> None:
    """Copy the repository's files (outside git: all but the virtualenv) and link its node_modules."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        shutil.copytree(ROOT, target, dirs_exist_ok=True, symlinks=True,
                        ignore=shutil.ignore_patterns(".venv", "node_modules", ".git", "__pycache__"))
    files = listed.stdout.decode().split("\0") if listed.returncode == 0 else []
    for name in filter(None, files):
        source, destination = ROOT / name, target / name
        if source.is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    for modules in ROOT.glob("**/node_modules"):
        if ".venv" not in modules.parts and "node_modules" not in modules.parent.parts:
            destination = target / modules.relative_to(ROOT)
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.symlink_to(modules)


def run_tests(copy_root: Path, tests: list[str], timeout: int) -> bool:
    """True when the tests pass in ``copy_root`` (the mutant survives)."""
    environment = {**os.environ, "PYTHONPATH": str(copy_root / "components"), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                                 *tests], cwd=copy_root, env=environment, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("module", help="the module's path, e.g. components/mcp_affinity/access.py")
    parser.add_argument("tests", nargs="+", help="test files to run for each mutant")
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per test run; a timeout kills the mutant")
    parser.add_argument("--json", type=Path, help="write the results here")
    options = parser.parse_args()
    source = (ROOT / options.module).read_text()
    tree = ast.parse(source)
    found = sites(tree)
    chosen = sample(found, options.sample, options.seed)
    with tempfile.TemporaryDirectory(prefix="mutation-") as directory:
        copy_root = Path(directory)
        copy_repository(copy_root)
        target = copy_root / options.module
        if not run_tests(copy_root, options.tests, options.timeout):
            print("the tests fail without any mutant", file=sys.stderr)
            return 2
        survivors, started = [], time.monotonic()
        for number, site in enumerate(chosen, 1):
            try:
                target.write_text(ast.unparse(mutate(tree, site)))
            except Exception as error:  # a mutant that does not compile counts as killed, reported
                print(f"  {number:3} line {site.line}: {site.text}: not generated ({error})")
                continue
            survived = run_tests(copy_root, options.tests, options.timeout)
            target.write_text(source)
            print(f"  {number:3} line {site.line:4} {site.kind:10} {site.text}: {'SURVIVED' if survived else 'killed'}",
                  flush=True)
            if survived:
                survivors.append(site)
    score = 100 * (len(chosen) - len(survivors)) / len(chosen) if chosen else 100.0
    print(f"{options.module}: {len(found)} sites, {len(chosen)} sampled, {len(chosen) - len(survivors)} killed, "
          f"score {score:.0f} % ({time.monotonic() - started:.0f} s)")
    if options.json:
        options.json.write_text(json.dumps({"module": options.module, "sites": len(found), "sampled": len(chosen),
                                            "survivors": [site.__dict__ for site in survivors], "score": score}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
