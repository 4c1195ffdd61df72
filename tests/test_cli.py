"""`mcp-affinity plan`: the command line, its JSON file, and bad config stopping everything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, plan_stack
from mcp_affinity.cli.app import app
from mcp_affinity.cli.plan_file import validate

runner = CliRunner()


def copy_project(tmp_path: Path, stack: str, edit) -> Path:
    """A copy of this repository's project whose stack `bad` is `stack` edited by `edit`."""
    for name in ("Pulumi.yaml", "infra", "stacks"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    edit(document["config"])
    (tmp_path / "stacks" / "Pulumi.bad.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


@pytest.fixture(scope="module")
def dev_plan(tmp_path_factory) -> tuple:
    """`plan --stack dev` through the command line, once: (result, the JSON it wrote)."""
    out = tmp_path_factory.mktemp("dev") / "plan.json"
    result = runner.invoke(app, ["plan", "--stack", "dev", "--program", str(ROOT), "--json", str(out)])
    return result, json.loads(out.read_text())


def test_plan_succeeds_and_writes_json_with_options_and_warnings(dev_plan):
    result, document = dev_plan
    assert result.exit_code == 0, result.output
    assert "resources to create" in result.output
    assert document["stack"] == "dev" and isinstance(document["diagnostics"], list)
    # The shape of `pulumi preview --json` (Pulumi's PreviewDigest; each state an apitype.ResourceV3).
    assert document["changeSummary"] == {"create": len(document["steps"])} and len(document["steps"]) > 20
    assert {s["op"] for s in document["steps"]} == {"create"} and all(s["detailedDiff"] is None for s in document["steps"])
    state_fields = {"urn", "custom", "type", "inputs", "parent", "protect", "provider", "dependencies",
                    "propertyDependencies", "aliases", "ignoreChanges", "replaceOnChanges"}
    assert set().union(*(s["newState"] for s in document["steps"])) <= state_fields
    assert all(s["urn"] == s["newState"]["urn"] for s in document["steps"])
    options = {key for r in validate(document)["resources"] for key in r["options"]}
    assert options == {"protect", "ignoreChanges", "dependsOn", "deleteBeforeReplace", "replaceOnChanges", "provider"}
    # The other stacks plan too (the cached plans the rest of the suite uses).
    assert {plan_stack(s).stack for s in ("staging", "prod")} == {"staging", "prod"}


def test_plan_text_reads_well_in_a_ci_log(dev_plan):
    """Not a terminal: no line wrapped, no trailing spaces, outputs as YAML, affinity shown."""
    output = dev_plan[0].output
    assert any(line.endswith("   template.sessionAffinity=true") for line in output.splitlines())
    assert all(line == line.rstrip() for line in output.splitlines())
    assert "ingress=INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" in output  # one setting a line, never cut
    outputs = output.split("\noutputs:\n", 1)[1].split("\nplan written", 1)[0]
    assert "{'" not in outputs and yaml.safe_load(outputs)  # YAML, not Python dicts


def test_plan_text_shows_every_routing_decision_on_both_platforms():
    from mcp_affinity.cli import render

    text = render.plain_text(render.tree(plan_stack("prod")))
    for needle in ["spec.trafficPolicy={loadBalancer: {consistentHash: {httpHeaderName: Mcp-Session-Id",
                   "spec.http=[", "hostRules=[{hosts: [", "pathMatchers=[", "template.sessionAffinity=true",
                   "releaseChannel.channel=", "privateClusterConfig.enablePrivateNodes=true",
                   "workloadIdentityConfig.workloadPool="]:
        assert needle in text, needle
    assert max(map(len, text.splitlines())) > 200  # wide values stay on one line


def test_plan_json_to_a_missing_directory_is_bad_input(tmp_path):
    result = runner.invoke(app, ["plan", "--stack", "dev", "--program", str(ROOT), "-q",
                                 "--json", str(tmp_path / "missing" / "x.json")])
    assert result.exit_code == 2 and "cannot write" in result.output and "Traceback" not in result.output


def bad(tmp_path, stack, edit):
    project = copy_project(tmp_path, stack, edit)
    result = runner.invoke(app, ["plan", "--stack", "bad", "--program", str(project), "--json", str(tmp_path / "p.json")])
    assert result.exit_code == 2
    assert not (tmp_path / "p.json").exists()
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def test_unknown_key_names_stack_key_and_allowed_keys(tmp_path):
    message = bad(tmp_path, "dev", lambda c: c["mcp-affinity:services"]["tools"].update(sessionAffinityTtl=30))
    assert "stack 'bad'" in message
    assert "mcp-affinity:services.tools.sessionAffinityTtl: unknown key" in message
    assert "sessionMode" in message and "timeoutSeconds" in message


def test_unknown_top_level_key_is_rejected(tmp_path):
    message = bad(tmp_path, "dev", lambda c: c.update({"mcp-affinity:regoins": {}}))
    assert "mcp-affinity:regoins: unknown key" in message


def test_bad_region_is_rejected(tmp_path):
    message = bad(tmp_path, "dev", lambda c: c["mcp-affinity:network"]["subnets"].update(
        {"europe-west99": {"ipCidrRange": "10.9.0.0/24"}}))
    assert "europe-west99" in message
    assert "not a Google Cloud region" in message


def test_mode_the_platform_cannot_honour_is_rejected_with_the_reason(tmp_path):
    message = bad(tmp_path, "dev", lambda c: c["mcp-affinity:services"]["tools"].update(
        loadBalancerHash=True, sessionMode="shared-sessions"))
    assert "mcp-affinity:services.tools" in message and "loadBalancerHash" in message
    assert "https://cloud.google.com/run/docs/configuring/session-affinity" in message


def test_prod_without_deletion_protection_is_rejected(tmp_path):
    message = bad(tmp_path, "prod", lambda c: c.update({"mcp-affinity:deletionProtection": False}))
    assert "deletionProtection: must be true when environment is prod" in message


def test_lb_header_hash_plans_with_a_warning(tmp_path):
    project = copy_project(tmp_path, "dev", lambda c: c["mcp-affinity:services"]["tools"].update(
        loadBalancerHash=True, sessionMode="shared-sessions", acknowledge=["lb-hash-unsupported"]))
    out = tmp_path / "p.json"
    result = runner.invoke(app, ["plan", "--stack", "bad", "--program", str(project), "-q", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: tools: loadBalancerHash" in result.output
    warning = json.loads(out.read_text())["diagnostics"][0]  # in the plan, with the resource it names
    assert warning["message"].startswith("tools: loadBalancerHash") and warning["urn"].endswith("::tools")
    assert warning["severity"] == "warning"


def test_secure_values_become_a_placeholder(tmp_path):
    project = copy_project(tmp_path, "dev", lambda c: c.update({"gcp:accessToken": {"secure": "v1:abc"}}))
    result = runner.invoke(app, ["plan", "--stack", "bad", "--program", str(project), "-q"])
    assert result.exit_code == 0, result.output


def test_missing_stack_file_names_the_stacks_there():
    result = runner.invoke(app, ["plan", "--stack", "qa", "--program", str(ROOT)])
    assert result.exit_code == 2
    assert "dev, prod, staging" in result.output
