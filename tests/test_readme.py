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
    assert plan.get("gcp:cloudrunv2/service:Service", "tools-europe-west1").inputs["name"] == "acme-tools"
    url_map = plan.get("gcp:compute/uRLMap:URLMap", "edge").inputs
    assert url_map["hostRules"] == [{"hosts": ["mcp.acme.example"], "pathMatcher": "tools"}]
    assert plan.get("gcp:redis/instance:Instance", "sessions").inputs["authEnabled"] is True
    assert plan.outputs["ip"] == "203.0.113.10"


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    command = next(line for line in ci_lines if ".venv/bin/pytest" in line)
    assert f"```bash\n{command.strip()}\n```" in README
