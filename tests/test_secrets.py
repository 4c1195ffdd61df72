"""Secure stack values stay secrets: nested ones (``pulumi config set --secret --path``) too, up to
the resource input; errors never echo them; the credential-free plan shows them as ``[secret]``."""

from __future__ import annotations

import json

import yaml

from conftest import ROOT
from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.cli.project import PulumiProject
from test_hostile_config import NS, mutate, problems

SECURE = {"secure": "v1:AAAABBBBCCCCDDDD"}


def plan_with(tmp_path, config: dict):
    project = find_project(ROOT)
    project = PulumiProject(root=project.root, name=project.name, main=project.main, stack_config_dir=tmp_path,
                            declared=project.declared)
    (tmp_path / "Pulumi.sec.yaml").write_text(yaml.safe_dump({"config": config}))
    return run_plan(project, "sec")


def test_nested_secure_value_is_modelled_and_reaches_the_resource_as_a_secret(tmp_path):
    config = mutate(NS + "services.tools.env", {"API_KEY": SECURE, "LEVEL": "info"})
    plan = plan_with(tmp_path, config)
    run = plan.get("gcp:cloudrunv2/service:Service", "tools-europe-west1")
    env = {e["name"]: e["value"] for e in run.inputs["template"]["containers"][0]["envs"] if "value" in e}
    assert env["API_KEY"] == {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "[secret]"}
    assert env["LEVEL"]["value"] == "[secret]"  # every env value of a secure key is kept secret
    assert "AAAABBBB" not in json.dumps(plan.to_json())


def test_project_loader_marks_the_top_level_key_secret():
    project = find_project(ROOT)
    assert project is not None
    from mcp_affinity.cli.project import _mask_secure
    masked, secret = _mask_secure({"tools": {"env": {"API_KEY": SECURE}}})
    assert secret and masked == {"tools": {"env": {"API_KEY": "[secret]"}}}


def test_errors_under_a_secure_key_do_not_echo_values():
    found = problems(mutate(NS + "services.tools.env", {"API_KEY": "hunter2", "1BAD": "hunter3"}),
                     secret_keys=[NS + "services"])
    assert found and not any("hunter" in message for _, message in found)
