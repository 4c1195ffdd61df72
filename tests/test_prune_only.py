"""`mcp-affinity check --prune-only` on real planned pairs of the sharded example (issue 22): the run
that prunes generation 6 after its window passes; the same run with an image bump or an IAP member
added is refused, naming those steps; a change set with no step says "nothing to prune"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from mcp_affinity import prune
from mcp_affinity.cli.app import NOT_PRUNING, app
from mcp_affinity.cli.diff import diff_plans
from mcp_affinity.wire import CLOUD_RUN, NEG, URL_MAP
from session_review import ONCALL, README, plan_example_as, preview_digest, with_oncall
from test_session_drains import SHARDS, ago, tools

runner = CliRunner()
DEPLOYED = {"6": ago(300), "7": ago(10)}   # generation 7 ten minutes old: 6 still drains
WINDOW_OVER = {"6": ago(300), "7": ago(40)}  # the same config 30 minutes later: 6 is retired
SHARD_SERVICES = [f"tools-{r}-s{i}" for r in ("europe-west1", "us-central1") for i in range(3)]


def both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        for one in edits:
            one(config)
    return edit


def planned(tmp_path: Path, base_edit, head_edit) -> list[str]:
    """BASE and HEAD plan files of the sharded example (each planned at its own now)."""
    paths = []
    for name, edit in (("base", base_edit), ("head", head_edit)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(plan_example_as(SHARDS, edit).to_json()))
    return [str(p) for p in paths]


def check(paths: list[str]):
    return runner.invoke(app, ["check", *paths, "--prune-only"])


PRUNED = "prune only: 25 step(s) remove retired generations: tools: generation 6 (18 resources)"
BUMPED = "update gcp:cloudrunv2/service:Service tools-europe-west1-s0: template.containers[mcp].image, "
"""What the README's "Sessions across deploys" quotes; the tests below measure each."""


def test_the_run_that_prunes_a_retired_generation_is_pruning_only(tmp_path):
    result = check(planned(tmp_path, tools(generations=DEPLOYED), tools(generations=WINDOW_OVER)))
    assert result.exit_code == 0, result.output
    assert PRUNED in result.output.splitlines()
    assert "policy checks passed" in result.output
    readme = " ".join(README.read_text().split())
    assert f"`{PRUNED}`" in readme and f"`{BUMPED}...`" in readme and "`nothing to prune`" in readme


def test_what_a_pruning_run_changes_is_the_traffic_the_routes_and_the_retired_resources():
    """The paths the module docstring admits, measured: nothing under ``template``, no guard, no
    Cloud Armor policy (its thresholds divide by regions x shards, not by generations)."""
    base, head = (plan_example_as(SHARDS, tools(generations=g)).document() for g in (DEPLOYED, WINDOW_OVER))
    review = diff_plans(base, head).review
    updated = {c.urn.rsplit("::", 1)[-1]: (c.type, {p.split(".")[0].split("[")[0] for p in c.paths})
               for c in review.changes if c.op == "update"}
    assert updated == {**{name: (CLOUD_RUN, {"traffics"}) for name in SHARD_SERVICES}, "lb": (URL_MAP, {"pathMatchers"})}
    assert {c.op for c in review.changes} == {"update", "delete"}
    verdict = prune.judge(review, base["resources"], head["resources"])
    assert verdict.only_pruning and verdict.pruned == ("tools: generation 6 (18 resources)",)


def test_a_pruning_run_with_an_image_bump_is_refused_naming_the_new_revisions(tmp_path):
    result = check(planned(tmp_path, tools(generations=DEPLOYED), tools(generations=WINDOW_OVER, image_tag="1.1.0")))
    assert result.exit_code == NOT_PRUNING, result.output
    lines = result.output.splitlines()
    assert "not only pruning: 7 of 26 step(s) are not the removal of a retired generation" in lines
    for name in SHARD_SERVICES:
        assert f"    update {CLOUD_RUN} {name}: template.containers[mcp].image, traffics.0.percent, traffics.0.revision, " \
               "traffics.0.tag, 4 more" in lines
    assert any(line.startswith("    " + BUMPED) for line in lines)
    assert any(line.startswith("    update pulumi-python:dynamic/mcp-affinity:GenerationGuard tools-generation-guard: ")
               for line in lines)
    assert "    ends live sessions: tools (6 shard instances)" in lines  # the reused revision name
    assert "[change-reuses-revision-name]" in result.output  # the policy report still runs


def test_a_pruning_run_with_a_member_added_is_refused_naming_the_bindings_and_the_widening(tmp_path):
    result = check(planned(tmp_path, tools(generations=DEPLOYED), both(tools(generations=WINDOW_OVER), with_oncall)))
    assert result.exit_code == NOT_PRUNING, result.output
    lines = result.output.splitlines()
    added = [line for line in lines if line.startswith("    create gcp:iap/webBackendServiceIamMember")]
    assert len(added) == 6 and all(line.endswith("-iap-member1") for line in added)
    assert f"    tools: IAP member added: {ONCALL} (widens who may call)" in lines


def test_no_change_is_nothing_to_prune(tmp_path):
    result = check(planned(tmp_path, tools(generations=WINDOW_OVER), tools(generations=WINDOW_OVER)))
    assert result.exit_code == 0, result.output
    assert "nothing to prune" in result.output.splitlines()


def test_prune_only_needs_a_change(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_example_as(SHARDS, tools()).to_json()))
    result = runner.invoke(app, ["check", str(path), "--prune-only"])
    assert result.exit_code == 2 and "--prune-only judges a change" in result.output


@pytest.mark.parametrize("renamed", ["tools-europe-west1-s0-g7", "tools-europe-west1-s0-g66", "typescript-europe-west1-s0-g6"])
def test_only_the_retired_generation_s_own_resources_count(renamed):
    """A deletion named after another generation, or another service's, is not pruning."""
    base, head = (plan_example_as(SHARDS, tools(generations=g)).document() for g in (DEPLOYED, WINDOW_OVER))
    review = diff_plans(base, head).review
    (victim,) = [c for c in review.changes if c.op == "delete" and c.type == NEG and c.urn.endswith("::tools-europe-west1-s0-g6")]
    urn = victim.urn.replace("tools-europe-west1-s0-g6", renamed)
    forged = [c if c is not victim else type(c)(urn, c.type, c.op, c.paths, c.old) for c in review.changes]
    # The forged resource stays under the tools component, as the retired one was.
    before = base["resources"] + [{**r, "urn": urn} for r in base["resources"] if r["urn"] == victim.urn]
    verdict = prune.judge(type(review)(review.sessions, review.access, tuple(forged)), before, head["resources"])
    assert verdict.refused == (f"delete {victim.type} {renamed}",)


def test_a_real_preview_of_the_pruning_run_is_pruning_only(tmp_path):
    """The same run as ``pulumi preview --json`` writes it (what prune.yml reviews): changed resources
    only, with their old states (``session_review.preview_digest``)."""
    base, head = (plan_example_as(SHARDS, tools(generations=g)).document() for g in (DEPLOYED, WINDOW_OVER))
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(preview_digest(base, head)))
    result = runner.invoke(app, ["check", str(path), "--prune-only"])
    assert result.exit_code == 0, result.output
    assert PRUNED in result.output.splitlines()
