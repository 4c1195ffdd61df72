"""Reviewing a mesh service's callers on real plans: the production stack's ``notes`` (GKE, ``iam``)
planned with and without a member, diffed and checked as ``diff`` and ``check BASE HEAD`` do."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT
from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.cli.app import app
from mcp_affinity.cli.diff import diff_plans
from mcp_affinity.policies import check_change

ALICE = "user:alice@example.com"
WIDENS = "prod-change-widens-access"


def prod_as(folder, **notes) -> dict:
    """The production stack's plan with mesh service ``notes`` updated by ``notes`` (``members``
    joins its access members)."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    service = config["config"]["mcp-affinity:meshServices"]["notes"]
    service["access"]["members"] += notes.pop("members", [])
    service.update(notes)
    (folder / "Pulumi.prod.yaml").write_text(yaml.safe_dump(config))
    return run_plan(dataclasses.replace(find_project(ROOT), stack_config_dir=folder), "prod").document()


@pytest.fixture(scope="module")
def sides(tmp_path_factory) -> dict[str, dict]:
    """The production plan as committed, with ``alice`` a member of ``notes``, and that acknowledged."""
    return {name: prod_as(tmp_path_factory.mktemp(name), **edit) for name, edit in {
        "base": {}, "alice": {"members": [ALICE]},
        "acked": {"members": [ALICE], "acknowledge": ["access-widened"]}}.items()}


def access(base: dict, head: dict) -> list[tuple[str, str, str]]:
    return [(a.service, a.direction.value, a.text) for a in diff_plans(base, head).review.access]


def test_a_member_added_to_an_iam_mesh_service_widens_and_is_refused_in_production(sides):
    assert access(sides["base"], sides["alice"]) == [("notes", "widens", "mesh caller added: alice@example.com")]
    (refused,) = [v for v in check_change(diff_plans(sides["base"], sides["alice"]).review, sides["alice"])
                  if v.enforcement == "mandatory"]
    assert refused.rule == WIDENS and refused.urn.endswith("AuthorizationPolicy::notes-callers")
    assert "widens who may call notes: mesh caller added: alice@example.com" in refused.message


def test_the_widening_acknowledged_passes(sides):
    review = diff_plans(sides["base"], sides["acked"]).review
    assert ("notes", "widens", "mesh caller added: alice@example.com") in access(sides["base"], sides["acked"])
    assert [v for v in check_change(review, sides["acked"]) if v.enforcement == "mandatory"] == []


def test_a_member_removed_narrows_and_passes(sides):
    assert access(sides["alice"], sides["base"]) == [("notes", "narrows", "mesh caller removed: alice@example.com")]
    assert [v for v in check_change(diff_plans(sides["alice"], sides["base"]).review, sides["base"])
            if v.enforcement == "mandatory"] == []


def test_check_base_head_refuses_the_widening(sides, tmp_path):
    for name in ("base", "alice"):
        (tmp_path / f"{name}.json").write_text(json.dumps(sides[name]))
    result = CliRunner().invoke(app, ["check", str(tmp_path / "base.json"), str(tmp_path / "alice.json")])
    assert result.exit_code == 1 and WIDENS in result.output and "mesh caller added: alice@example.com" in result.output
