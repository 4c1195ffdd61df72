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


MISTAKES = [
    # (example, text in it, the mistake, the field the message must name)
    (0, 'session_mode="shared-sessions"', 'session_mode="shared"', "sessionMode"),
    (0, '"ip_cidr_range": "10.0.0.0/24"', '"ip_cidr_range": "10.0.0.1/24"', "subnets.europe-west1.ipCidrRange"),
    (1, '"europe-west1-b", "europe-west1-c"]', '"europe-west1-b", "europe-west4-c"]', "cluster.zones.1"),
    (1, 'access="oauth"', 'access="0auth"', "access.mode"),
]


def plan_mistake(tmp_path, index: int, text: str, mistake: str):
    """``mcp-affinity plan --program DIR`` on the example with one mistake, as a user runs it."""
    from typer.testing import CliRunner

    from mcp_affinity.cli.app import app

    example = python_blocks()[index]
    assert text in example, text
    (tmp_path / "Pulumi.yaml").write_text("name: readme\nruntime: python\n")
    (tmp_path / "Pulumi.prod.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text(example.replace(text, mistake))
    return CliRunner().invoke(app, ["plan", "--stack", "prod", "--program", str(tmp_path), "-q"])


@pytest.mark.parametrize("index, text, mistake, field", MISTAKES, ids=[m[3] for m in MISTAKES])
def test_every_example_with_a_mistake_exits_2_naming_the_field_without_a_traceback(tmp_path, index, text, mistake,
                                                                                  field):
    result = plan_mistake(tmp_path, index, text, mistake)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # a clean exit
    assert f"\n  {field}: " in result.output


def test_every_example_is_run_with_a_mistake():
    assert {m[0] for m in MISTAKES} == set(range(len(python_blocks())))


def test_readme_shows_the_messages_the_mistakes_print(tmp_path):
    shown = re.search(r"```text\n(error: stack 'prod': invalid settings.*?)```", README, flags=re.S).group(1)
    printed = ""
    for index, text, mistake, _ in [MISTAKES[0], MISTAKES[2]]:
        folder = tmp_path / str(index)
        folder.mkdir()
        printed += plan_mistake(folder, index, text, mistake).output
    assert shown == printed
