"""Reviewing changes from the command line: check and diff on saved plans, exit codes, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import plan_document, write_plan
from mcp_affinity.cli.app import app
from test_cli import copy_project

runner = CliRunner()


def plan_json(project, stack, tmp_path, name):
    out = tmp_path / f"{name}.json"
    result = runner.invoke(app, ["plan", "--stack", stack, "--program", str(project), "--json", str(out), "-q"])
    return result, out


def test_check_flags_a_store_without_auth_in_a_saved_plan(tmp_path):
    document = plan_document("prod")
    redis = next(r for r in document["resources"] if r["type"] == "gcp:redis/instance:Instance")
    redis["inputs"]["authEnabled"] = False
    (tmp_path / "p.json").write_text(json.dumps(document))
    checked = runner.invoke(app, ["check", str(tmp_path / "p.json")])
    assert checked.exit_code == 1
    assert "redis-auth-tls-private" in checked.output and redis["urn"] in " ".join(checked.output.split())
    assert "policy checks passed" not in checked.output


def test_check_fails_a_timeout_outside_the_schema(tmp_path):
    document = plan_document("dev")
    service = next(r for r in document["resources"] if r["type"] == "gcp:cloudrunv2/service:Service")
    service["inputs"]["template"]["timeout"] = "7200s"
    (tmp_path / "p.json").write_text(json.dumps(document))
    checked = runner.invoke(app, ["check", str(tmp_path / "p.json")])
    assert checked.exit_code == 1 and "cloud-run-ingress-and-timeout" in checked.output


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_check_passes_on_every_real_stack(stack, tmp_path):
    result = runner.invoke(app, ["check", str(write_plan(stack, tmp_path / "p.json"))])
    assert result.exit_code == 0, result.output
    assert f"policy checks passed: {len(plan_document(stack)['resources'])} resources of stack '{stack}'" in result.output


@pytest.mark.parametrize("text,reason", [
    ("{}", "'project' must be a non-empty string"),
    ("[]", "expected a JSON object"),
    ("null", "got null"),
    ('{"project": "p", "stack": "s", "resources": [{"type": "t"}]}', "resources[0].urn"),
    ('{"project": "p", "stack": "s", "resources": {}}', "'resources' must be a list"),
    ('{"project": "p", "stack": "s", "resources": [{"urn": "u", "type": "t", "inputs": []}]}', "resources[0].inputs"),
    ('{"project": "p", "stack": 3, "resources": []}', "'stack' must be a non-empty string"),
    ("not json", "not JSON"),
])
def test_check_and_diff_refuse_what_is_not_a_plan(tmp_path, text, reason):
    bad, good = tmp_path / "bad.json", write_plan("dev", tmp_path / "good.json")
    bad.write_text(text)
    for args in (["check", str(bad)], ["diff", str(good), str(bad)], ["diff", str(bad), str(good)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert reason in " ".join(result.output.split()) and "Traceback" not in result.output
        assert "policy checks passed" not in result.output
        assert len(result.output.strip().splitlines()) == 1  # a one-line reason


def test_missing_files_and_directories_are_bad_input(tmp_path):
    good = write_plan("dev", tmp_path / "good.json")
    for args in (["check", str(tmp_path / "nope.json")], ["diff", str(good), str(tmp_path / "nope.json")],
                 ["diff", str(good), str(good), "--output", str(tmp_path / "missing" / "x.md")],
                 ["check", str(tmp_path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)


def test_diff_exit_codes(tmp_path):
    """0 by default; with --exit-code 0 when up would change nothing, 1 when it would."""
    base = write_plan("dev", tmp_path / "base.json")
    assert runner.invoke(app, ["diff", str(base), str(base), "--exit-code"]).exit_code == 0
    document = plan_document("dev")
    document["resources"].pop()
    (tmp_path / "head.json").write_text(json.dumps(document))
    assert runner.invoke(app, ["diff", str(base), str(tmp_path / "head.json")]).exit_code == 0
    assert runner.invoke(app, ["diff", str(base), str(tmp_path / "head.json"), "--exit-code"]).exit_code == 1


def test_a_stack_file_change_gives_the_expected_diff_and_picture(tmp_path):
    for folder in ("base", "head"):
        (tmp_path / folder).mkdir()
    _, base = plan_json(copy_project(tmp_path / "base", "dev", lambda c: None), "bad", tmp_path, "base")
    project = copy_project(tmp_path / "head", "dev", lambda c: (
        c["mcp-affinity:services"]["tools"].update(image="europe-docker.pkg.dev/my-mcp-project-dev/mcp/tools:2.0.0"),
        c["mcp-affinity:network"]["subnets"].update({"europe-west4": {"ipCidrRange": "10.10.1.0/24"}}),
    ))
    _, head = plan_json(project, "bad", tmp_path, "head")
    result = runner.invoke(app, ["diff", str(base), str(head), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "-europe-west4`" in text and "tools:2.0.0" in text
    assert text.count("| add |") >= 3 and "| delete |" not in text
    assert "```mermaid" in text and "flowchart LR" in text
    again = runner.invoke(app, ["diff", str(base), str(head), "--format", "markdown"])
    assert again.output == text


def test_diff_of_different_stacks_is_refused(tmp_path):
    dev, prod = write_plan("dev", tmp_path / "dev.json"), write_plan("prod", tmp_path / "prod.json")
    result = runner.invoke(app, ["diff", str(dev), str(prod)])
    assert result.exit_code == 2 and "different stacks" in result.output
