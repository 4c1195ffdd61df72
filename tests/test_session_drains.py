"""Deploys that drain live sessions instead of ending them (issue 22), as the review reads them from
two real plans: a sharded Cloud Run service's new generation, learned-pinning pods that drain, a
retired generation pruned; and the cases that still end them (no new generation, no drain)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from conftest import GcpMocks
from helpers import NETWORK
from mcp_affinity import CloudRunMcpService, CloudRunMcpServiceArgs, impact
from mcp_affinity.cli.app import app
from mcp_affinity.cli.diff import diff_plans, review_lines
from mcp_affinity.cli.runner import run_function
from mcp_affinity.policies import check_change
from session_review import README, bump_image, plan_example_as

runner = CliRunner()
SHARDS, LEARNED = "cloud-run-shards", "gke-in-memory-learned"
REUSED, PROD_ENDS = "change-reuses-revision-name", "prod-change-ends-sessions"
SHARD_NAMES = ", ".join(f"tools-{r}-s{i}" for r in ("europe-west1", "us-central1") for i in range(3))
DRAINS_7 = ("drains live sessions: tools (6 shard instances) for 30 min on generation 7; "
            "new sessions start on generation 8")
DRAINS_PODS = ("drains live sessions: legacy (2-10 pods) for 30 min on the terminating pods; "
               "new sessions start on the new pods")
"""What the README's "Sessions across deploys" quotes; the tests below measure each."""


def ago(minutes: int) -> str:
    """A generation's time, ``minutes`` before the clock the plan reads (the stack plans at its own now)."""
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def tools(**values) -> Callable[[dict], None]:
    """Edit ``services.tools`` of the sharded example: ``image_tag`` bumps its image, the rest is set."""
    def edit(config: dict) -> None:
        service = config["mcp-affinity:services"]["tools"]
        if values.get("image_tag"):
            service["image"] = service["image"].rsplit(":", 1)[0] + ":" + values["image_tag"]
        service.update({k: v for k, v in values.items() if k != "image_tag"})
    return edit


def reviewed(base_edit, head_edit, example: str = SHARDS, stack: Optional[str] = None) -> tuple[impact.Review, dict]:
    """(review of BASE -> HEAD, HEAD) of ``example`` planned twice, as ``check`` and ``diff`` read them."""
    stack = stack or example
    base = plan_example_as(example, base_edit, stack).document()
    head = plan_example_as(example, head_edit, stack).document()
    return diff_plans(base, head).review, head


def only(review: impact.Review, service: str) -> impact.SessionImpact:
    (session,) = [s for s in review.sessions if s.service == service]
    return session


def test_a_new_generation_with_a_new_image_drains_the_previous_one_for_its_window():
    """The example as deployed (generation 0, no entry) gets its first deploy: ``"1"`` and an image."""
    review, head = reviewed(tools(), tools(image_tag="1.1.0", generations={"1": ago(1)}))
    session = only(review, "tools")
    assert session.verdict is impact.SessionVerdict.DRAINS
    assert session.drain == impact.Drain(1800, "generation 0", "generation 1")
    assert review_lines(review)[:2] == [
        "drains live sessions: tools (6 shard instances) for 30 min on generation 0; new sessions start on generation 1",
        f"    new revision, the previous one kept by its tag (0 % of traffic): {SHARD_NAMES}"]
    assert check_change(review, head) == []  # a new revision name: nothing reused


def test_the_readme_quotes_what_the_review_says_of_a_deploy(tmp_path):
    """README "Sessions across deploys": generation 8 deployed beside 7, drained by ``diff`` and ``check``."""
    base, head = (plan_example_as(SHARDS, edit, "shards-prod").to_json() for edit in (
        tools(generations={"7": ago(120)}), tools(image_tag="1.8.0", generations={"7": ago(120), "8": ago(0)})))
    paths = []
    for name, document in (("base", base), ("head", head)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(document))
    for command in ("diff", "check"):
        result = runner.invoke(app, [command, *map(str, paths)] + (["--no-mermaid"] if command == "diff" else []))
        lines = result.output.splitlines()
        assert result.exit_code == 0, result.output
        assert lines[1 if command == "diff" else 0] == DRAINS_7
        assert PROD_ENDS not in result.output  # a production stack: draining is not flagged
    readme = " ".join(README.read_text().split())
    assert f"`{DRAINS_7}`" in readme and f"`{DRAINS_PODS}`" in readme


def test_the_same_image_bump_without_a_generation_ends_sessions_and_is_refused():
    review, head = reviewed(tools(), bump_image)
    assert only(review, "tools").verdict is impact.SessionVerdict.ENDS
    assert only(review, "tools").drain is None
    assert [v.rule for v in check_change(review, head)] == [REUSED] * 6


def test_without_a_drain_an_image_bump_ends_sessions_and_prod_is_told():
    review, head = reviewed(tools(sessionDrainSeconds=0), tools(sessionDrainSeconds=0, image_tag="1.1.0"),
                            stack="shards-prod")
    session = only(review, "tools")
    assert (session.verdict, session.holders, session.reasons) == (
        impact.SessionVerdict.ENDS, "6 shard instances", (f"new revision: {SHARD_NAMES}",))
    assert [v.rule for v in check_change(review, head)] == [PROD_ENDS]


def test_pruning_a_generation_after_its_window_keeps_sessions_and_says_which_went():
    """Generation 7 deployed 10 minutes ago (6 drains), then the same config planned 40 minutes after
    it: 6's tag, NEGs, backend services and routes go; nothing under ``template`` changes."""
    review, head = reviewed(tools(generations={"6": ago(300), "7": ago(10)}),
                            tools(generations={"6": ago(300), "7": ago(40)}))
    session = only(review, "tools")
    assert session.verdict is impact.SessionVerdict.KEEPS
    assert session.reasons == (f"generation 6 retired (window over): {SHARD_NAMES}",)
    removed = [c for c in review.changes if c.op == "delete"]
    assert len(removed) == 18 and all(c.urn.endswith("-g6") or "-g6-" in c.urn for c in removed)
    assert check_change(review, head) == []


def test_a_deploy_that_also_prunes_drains_and_names_the_retired_generation():
    """As above, but the second plan also deploys generation 8: 7 drains, 6 goes."""
    review, _ = reviewed(tools(generations={"6": ago(300), "7": ago(10)}),
                         tools(image_tag="1.9.0", generations={"6": ago(300), "7": ago(40), "8": ago(0)}))
    session = only(review, "tools")
    assert session.headline() == DRAINS_7
    assert session.reasons[-1] == f"generation 6 retired (window over): {SHARD_NAMES}"


def test_a_deploy_that_removes_a_shard_ends_its_sessions_and_drains_the_others():
    review, _ = reviewed(tools(generations={"7": ago(300)}),
                         tools(image_tag="1.8.0", shards=2, generations={"7": ago(300), "8": ago(0)}))
    assert review_lines(review)[:4] == [
        "ends live sessions: tools (2 shard instances)",
        "    service deleted: tools-europe-west1-s2, tools-us-central1-s2",
        DRAINS_7.replace("6 shard", "4 shard"),
        "    new revision, the previous one kept by its tag (0 % of traffic): tools-europe-west1-s0, "
        "tools-europe-west1-s1, tools-us-central1-s0, tools-us-central1-s1"]


def legacy(drain: Optional[int] = None, tag: str = "1.0.0") -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        service = config["mcp-affinity:meshServices"]["legacy"]
        service["image"] = service["image"].rsplit(":", 1)[0] + ":" + tag
        if drain is not None:
            service["sessionDrainSeconds"] = drain
    return edit


@pytest.mark.parametrize("before,after,expected", [
    (None, None, DRAINS_PODS),
    (600, 1800, "drains live sessions: legacy (2-10 pods) for 10 min on the terminating pods; "
                "new sessions start on the new pods"),  # the old pods drain with their own preStop
    (0, 0, "ends live sessions: legacy (2-10 pods)"),
    (0, 1800, "ends live sessions: legacy (2-10 pods)"),  # the old pods have no drain
    (1800, 0, "ends live sessions: legacy (2-10 pods)"),  # nothing publishes or checks terminating pods
])
def test_learned_pinning_pods_drain_only_when_both_sides_ship_the_drain(before, after, expected):
    review, head = reviewed(legacy(before), legacy(after, "1.1.0"), LEARNED, "learned-prod")
    session = only(review, "legacy")
    assert session.headline() == expected
    # Turning the drain off also deletes the drain check's AuthorizationPolicy (widens: its own rule).
    assert (PROD_ENDS in [v.rule for v in check_change(review, head)]) is expected.startswith("ends")


def test_the_plan_json_says_what_a_deploy_drains():
    holders = plan_example_as(LEARNED, legacy(), LEARNED).to_json()["sessionImpact"]["legacy"]
    assert holders["drainsWhen"] == [
        "a pod template change: the old pods keep serving their sessions for 30 min while terminating"]
    assert plan_example_as(LEARNED, legacy(0), LEARNED).to_json()["sessionImpact"]["legacy"]["drainsWhen"] == []


# Property: any sharded service, planned before and after a change, gets the verdict of the rule.

NOW = datetime(2026, 12, 6, 20, 0, tzinfo=timezone.utc)
DEPLOYED = NOW - timedelta(hours=3)
REGIONS = len(NETWORK.regions)


def shard_plan(shards: int, drain: int, image: str, generations: dict) -> dict:
    args = CloudRunMcpServiceArgs(prefix="mcp-t", image=image, session_mode="in-memory-sessions", pinning="shards",
                                  shards=shards, access="oauth", session_drain_seconds=drain, generations=generations)
    plan = run_function(lambda: CloudRunMcpService("tools", args, network=NETWORK, now=NOW), project="test",
                        stack="test", mock=GcpMocks(), preview=False)
    return plan.document()


@settings(max_examples=15, deadline=None)
@given(shards=st.integers(1, 3), drain=st.sampled_from([0, 600, 1800]), added=st.booleans(), bumped=st.booleans())
def test_a_sharded_deploy_drains_exactly_when_it_adds_a_generation_with_a_drain(shards, drain, added, bumped):
    """Drains (for the drain, on the previous generation) when a drain is set and a generation is
    added; ends when the template changes otherwise (refused when the named revision is kept);
    nothing to say when nothing changes."""
    before = {"6": DEPLOYED} if drain else {}
    after = {**before, "7": NOW - timedelta(minutes=5)} if drain and added else before
    base = shard_plan(shards, drain, "img:1", before)
    head = shard_plan(shards, drain, "img:2" if bumped else "img:1", after)
    review = diff_plans(base, head).review
    sessions = [s for s in review.sessions if s.service == "tools"]
    rules = [v.rule for v in check_change(review, head, production=True)]
    if drain and added:
        (session,) = sessions
        assert (session.verdict, session.drain) == (impact.SessionVerdict.DRAINS,
                                                    impact.Drain(drain, "generation 6", "generation 7"))
        assert session.holders == f"{REGIONS * shards} shard instance{'s' if REGIONS * shards > 1 else ''}"
        assert rules == []
    elif bumped:
        (session,) = sessions
        assert session.verdict is impact.SessionVerdict.ENDS and session.drain is None
        assert set(rules) == ({PROD_ENDS, REUSED} if drain else {PROD_ENDS})
    else:
        assert sessions == [] and rules == []
