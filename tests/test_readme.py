"""The README's Python examples run under a stack named ``prod`` and pass the policy rules, and its
test command is the one CI runs."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT, GcpMocks
from mcp_affinity.cli.plan_file import validate
from mcp_affinity.policies import check_plan
from mcp_affinity.cli.runner import Plan, run_function

README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def run_example(example: str) -> Plan:
    """The example planned as stack ``prod``, its computed outputs given values by the mocks."""
    return run_function(lambda: exec(compile(example, "README.md", "exec"), {}), project="readme", stack="prod",
                        mock=GcpMocks(), preview=False)


@pytest.fixture(scope="module")
def plans() -> list[Plan]:
    return [run_example(example) for example in python_blocks()]


def test_cloud_run_example(plans):
    plan = plans[0]
    assert plan.get("gcp:cloudrunv2/service:Service", "tools-europe-west1").inputs["name"] == "acme-tools"
    url_map = plan.get("gcp:compute/uRLMap:URLMap", "edge").inputs
    assert url_map["hostRules"] == [{"hosts": ["mcp.acme.example"], "pathMatcher": "tools"}]
    assert plan.get("gcp:redis/instance:Instance", "sessions").inputs["authEnabled"] is True
    assert plan.outputs["ip"] == "203.0.113.10"


def test_gke_example_plans_a_learned_pinning_service_behind_the_gateway_in_under_25_lines(plans):
    (example,) = [e for e in python_blocks() if "McpGkePlatform" in e]
    assert len(example.strip().splitlines()) < 25
    plan = plans[1]
    proxy = plan.get("kubernetes:apps/v1:StatefulSet", "notes-pinning").inputs
    assert proxy["metadata"]["namespace"] == "acme-notes"
    service = plan.get("kubernetes:core/v1:Service", "notes").inputs
    assert service["spec"]["selector"] == {"app": "notes-pinning"}
    route = plan.get("kubernetes:networking.istio.io/v1:VirtualService", "notes-route").inputs["spec"]
    assert route["gateways"] == ["acme-gke-mesh-gateway/acme-gke-mesh-gateway"]
    url_map = plan.get("gcp:compute/uRLMap:URLMap", "edge").inputs
    assert url_map["hostRules"] == [{"hosts": ["notes.acme.example"], "pathMatcher": "gke"}]
    assert url_map["pathMatchers"][0]["defaultService"] == "gke-gateway-id"  # the gateway's backend service
    gateway = plan.get("kubernetes:helm.sh/v3:Release", "gke-mesh-gateway")
    autoneg = plan.get("kubernetes:apps/v1:Deployment", "gke-autoneg")
    assert autoneg.urn in gateway.dependencies  # the controller exists before the Service it annotates


@pytest.mark.parametrize("index", [0, 1])
def test_examples_pass_the_policy_rules_as_prod(plans, index):
    document = validate(plans[index].to_json())
    assert document["stack"] == "prod"
    assert check_plan(document) == []


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    command = next(line for line in ci_lines if ".venv/bin/pytest" in line)
    assert f"```bash\n{command.strip()}\n```" in README
