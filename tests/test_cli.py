"""`mcp-affinity plan`: the command line, its JSON file, and bad config stopping everything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT
from mcp_affinity.cli.app import app

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


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_plan_succeeds_for_every_stack_and_writes_json(stack, tmp_path):
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["plan", "--stack", stack, "--program", str(ROOT), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "resources to create" in result.output
    assert json.loads(out.read_text())["stack"] == stack


def test_plan_prints_affinity_settings_first():
    result = runner.invoke(app, ["plan", "--stack", "dev", "--program", str(ROOT)])
    assert "template.sessionAffinity=true" in result.output.replace("\n", "")


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
    assert "affinityMode" in message and "timeoutSeconds" in message


def test_unknown_top_level_key_is_rejected(tmp_path):
    message = bad(tmp_path, "dev", lambda c: c.update({"mcp-affinity:regoins": {}}))
    assert "mcp-affinity:regoins: unknown key" in message


def test_bad_region_is_rejected(tmp_path):
    message = bad(tmp_path, "dev", lambda c: c["mcp-affinity:regions"].update({"europe-west99": {"subnetCidr": "10.9.0.0/24"}}))
    assert "mcp-affinity:regions.europe-west99" in message
    assert "not a Google Cloud region" in message


def test_mode_the_platform_cannot_honour_is_rejected_with_the_reason(tmp_path):
    message = bad(tmp_path, "dev", lambda c: c["mcp-affinity:services"]["tools"].update(affinityMode="client-ip"))
    assert "mcp-affinity:services.tools.affinityMode" in message
    assert "cannot be honoured on Cloud Run" in message
    assert "https://cloud.google.com/run/docs/configuring/session-affinity" in message


def test_prod_without_deletion_protection_is_rejected(tmp_path):
    message = bad(tmp_path, "prod", lambda c: c.update({"mcp-affinity:deletionProtection": False}))
    assert "deletionProtection: must be true when environment is prod" in message


def test_lb_header_hash_plans_with_a_warning(tmp_path):
    project = copy_project(tmp_path, "dev", lambda c: c["mcp-affinity:services"]["tools"].update(affinityMode="lb-header-hash"))
    result = runner.invoke(app, ["plan", "--stack", "bad", "--program", str(project), "-q"])
    assert result.exit_code == 0, result.output
    assert "warning: tools: affinity mode 'lb-header-hash'" in result.output


def test_secure_values_become_a_placeholder(tmp_path):
    project = copy_project(tmp_path, "dev", lambda c: c.update({"gcp:accessToken": {"secure": "v1:abc"}}))
    result = runner.invoke(app, ["plan", "--stack", "bad", "--program", str(project), "-q"])
    assert result.exit_code == 0, result.output


def test_missing_stack_file_names_the_stacks_there():
    result = runner.invoke(app, ["plan", "--stack", "qa", "--program", str(ROOT)])
    assert result.exit_code == 2
    assert "dev, prod, staging" in result.output
