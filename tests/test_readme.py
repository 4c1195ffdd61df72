"""The README's Python example runs, and its test command is the one CI runs."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_component_example_runs_on_mocks(record):
    (example,) = python_blocks()
    plan = record(lambda: exec(compile(example, "README.md", "exec"), {}))
    types = {r.type for r in plan.resources}
    assert {"mcp-affinity:index:Network", "mcp-affinity:index:SessionStore",
            "mcp-affinity:index:CloudRunMcpService", "mcp-affinity:index:GlobalHttpsLoadBalancer"} <= types
    assert plan.outputs["ip"] == "203.0.113.10"


def test_ci_runs_the_readme_test_command():
    ci_line = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```bash\n{ci_line}\n```" in README
