"""A deploy in the middle of live sessions, behind the planned learned-pinning proxies (GKE), for
the three servers that hold sessions in memory, with and without a cookie jar
(:mod:`mcp_affinity_conformance.deploys`): sessions opened before the deploy finish every call on
the replica that created them while it drains, new sessions start on the new version, and past
the window the old sessions get 404 and re-initialize on the new version."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("deploys")]

MODES = ("sdk-in-memory", "fastmcp-in-memory", "ts-in-memory")
REPORTS: dict = {}


@pytest.fixture(scope="module")
def deploy_reports(parts_installed, routings, tmp_path_factory) -> dict:
    from mcp_affinity_conformance import SERVER_MODES
    from mcp_affinity_conformance.deploys import run_deploy

    learned = next(r for r in routings if r.kind == "learned")
    apps = {m.key: m.app for m in SERVER_MODES}
    return {mode: run_deploy(learned, apps[mode], tmp_path_factory.mktemp(f"deploy-{mode}")) for mode in MODES}


def assert_drained(report) -> None:
    """Every old session finished on its creator while it drained; every new one started on v2."""
    from mcp_affinity_conformance.deploys import NEW, OLD

    assert len(report.old) == 8 and {s.kind for s in report.old} == {"keeps cookies", "no cookie jar"}
    for session in report.old:
        assert session.creator in OLD, session
        assert (session.ok_before, session.ok_during) == (session.calls_before, session.calls_during) == (3, 3), session
        # Every call after the deploy reached the draining replica that holds the session.
        assert set(session.served_during) == {session.creator}, session
    assert {s.creator for s in report.old} == set(OLD)  # both old replicas held sessions
    for session in report.new:
        assert session.creator in NEW and session.ok_before == 3, session
    assert report.drained_after < 30


@pytest.mark.parametrize("mode", MODES)
def test_sessions_opened_before_a_deploy_finish_on_the_old_version_and_new_ones_start_on_the_new(deploy_reports, mode):
    report = deploy_reports[mode]
    assert_drained(report)
    print(f"\n{mode}: every proxy called v1 down and v2 up {report.drained_after:.1f} s after the deploy")


def test_a_deploy_at_max_replicas_finds_slots_for_the_new_pods_beside_the_draining_ones(parts_installed,
                                                                                       tmp_path_factory):
    """The learned example planned with ``maxReplicas: 2``: the deploy's 2 old (draining) and 2 new
    pods outnumber it. The slots the plan gives the proxy must hold all four (with one slot per
    replica, the run cannot even place the new pods: "4 replicas but the template has 2 slots")."""
    from mcp_affinity_conformance import SERVER_MODES
    from mcp_affinity_conformance.deploys import NEW, OLD, run_deploy
    from mcp_affinity_conformance.from_plan import plan_example_with, planned_routings
    from mcp_affinity_conformance.proxy import Ports, localize, peer_names

    root = Path(__file__).resolve().parents[2]
    plan = plan_example_with(root, "gke-in-memory-learned", tmp_path_factory.mktemp("plan"), "legacy", maxReplicas=2)
    (learned,) = [p.routing for p in planned_routings(plan) if p.routing.kind == "learned"]
    assert "  server-template mcp 1-6 " in learned.config  # 2 x (this version + two draining sets)
    before = learned.config.replace("  server-template mcp 1-6 ", "  server-template mcp 1-2 ")  # one per replica
    names = peer_names(before)
    with pytest.raises(ValueError, match="4 replicas but the template has 2 slots"):
        localize(before, [(n, 1) for n in (*OLD, *NEW)], Ports.free(names), names[0], srvkey=False,
                 checks=dict.fromkeys((*OLD, *NEW), 1))
    app = next(m.app for m in SERVER_MODES if m.key == "sdk-in-memory")
    assert_drained(run_deploy(learned, app, tmp_path_factory.mktemp("deploy-at-max")))


@pytest.mark.parametrize("mode", MODES)
def test_past_the_window_old_sessions_get_404_and_re_initialize_on_the_new_version(deploy_reports, mode):
    from mcp_affinity_conformance.deploys import NEW

    for session in deploy_reports[mode].old:
        assert session.after_window_status == 404, session
        assert session.reinitialized_ok and session.reinitialized_on in NEW, session


def test_the_rows_say_what_a_deploy_does_per_client_kind(deploy_reports):
    from mcp_affinity_conformance.deploys import to_rows

    rows = to_rows(deploy_reports["sdk-in-memory"], "mcp 2.3")
    assert [(r.client, r.calls_ok, r.calls_failed, r.sessions_lost) for r in rows] == [
        ("keeps cookies", 24, 0, 0), ("no cookie jar", 24, 0, 0)]
    assert rows[0].notes == ("old sessions on their creator after the deploy: 4/4; new sessions on v2: 4/4; "
                             "after the window: 4 got 404, 4 re-initialized on v2")


def test_the_readme_deploy_table_is_what_was_measured(deploy_reports):
    from mcp_affinity_conformance import SERVER_MODES
    from mcp_affinity_conformance.deploys import readme_cells

    labels = {m.key: m.label for m in SERVER_MODES}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for mode in MODES:
        row = f"| {labels[mode]} | {readme_cells(deploy_reports[mode])} |"
        assert row in readme, row


def test_the_switch_table_deploy_column_is_what_was_measured(deploy_reports):
    """README "Which mode for my server?": the deploy column's GKE part comes from this run."""
    from mcp_affinity_conformance.deploys import mode_cell, switch_row

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for mode in MODES:
        assert mode_cell("GKE `learned`", deploy_reports[mode]) in switch_row(readme, mode), mode
