"""Reviewing changes from the command line: policy failures in plan, check, and diff of stack edits."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import ROOT
from mcp_affinity.cli.app import app
from test_cli import copy_project

runner = CliRunner()


def plan_json(project, stack, tmp_path, name):
    out = tmp_path / f"{name}.json"
    result = runner.invoke(app, ["plan", "--stack", stack, "--program", str(project), "--json", str(out), "-q"])
    return result, out


def test_a_timeout_too_short_for_streams_fails_plan_with_the_rule(tmp_path):
    project = copy_project(tmp_path, "dev", lambda c: c["mcp-affinity:services"]["tools"].update(timeoutSeconds=60))
    result, out = plan_json(project, "bad", tmp_path, "p")
    assert result.exit_code == 1
    assert "cloud-run-ingress-and-timeout" in result.output
    assert out.exists()  # the plan is still written, so the diff can show the change


def test_check_flags_a_store_without_auth_in_a_saved_plan(tmp_path):
    result, out = plan_json(ROOT, "prod", tmp_path, "prod")
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    redis = next(r for r in document["resources"] if r["type"] == "gcp:redis/instance:Instance")
    redis["inputs"]["authEnabled"] = False
    out.write_text(json.dumps(document))
    checked = runner.invoke(app, ["check", str(out)])
    assert checked.exit_code == 1
    assert "redis-auth-tls-private" in checked.output and redis["urn"] in " ".join(checked.output.split())


def test_check_passes_on_every_real_stack(tmp_path):
    for stack in ("dev", "staging", "prod"):
        _, out = plan_json(ROOT, stack, tmp_path, stack)
        assert runner.invoke(app, ["check", str(out)]).exit_code == 0


def test_a_stack_file_change_gives_the_expected_diff_and_picture(tmp_path):
    for folder in ("base", "head"):
        (tmp_path / folder).mkdir()
    _, base = plan_json(copy_project(tmp_path / "base", "dev", lambda c: None), "bad", tmp_path, "base")
    project = copy_project(tmp_path / "head", "dev", lambda c: (
        c["mcp-affinity:services"]["tools"].update(image="europe-docker.pkg.dev/my-mcp-project-dev/mcp/tools:2.0.0"),
        c["mcp-affinity:regions"].update({"europe-west4": {"subnetCidr": "10.10.1.0/24"}}),
    ))
    _, head = plan_json(project, "bad", tmp_path, "head")
    result = runner.invoke(app, ["diff", str(base), str(head), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "`tools-europe-west4`" in text and "`network-europe-west4`" in text
    assert "tools:2.0.0" in text and "2 to add" not in text
    assert text.count("| add |") >= 3 and "| delete |" not in text
    assert "```mermaid" in text and "flowchart LR" in text
    again = runner.invoke(app, ["diff", str(base), str(head), "--format", "markdown"])
    assert again.output == text


def test_diff_of_different_stacks_is_refused(tmp_path):
    _, dev = plan_json(ROOT, "dev", tmp_path, "dev")
    _, prod = plan_json(ROOT, "prod", tmp_path, "prod")
    result = runner.invoke(app, ["diff", str(dev), str(prod)])
    assert result.exit_code == 2
