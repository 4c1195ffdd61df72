"""A deploy in the middle of live sessions behind Cloud Run session shards, as three plans of the
example stack say (:mod:`mcp_affinity_conformance.shard_deploys`): sessions opened before the
deploy finish every call on their generation-1 shard, new sessions start on generation 2, and past
the window the old sessions get 404 and re-initialize on generation 2."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("shard-deploys")]

ROOT = Path(__file__).resolve().parents[2]
CASES = (("tools", "sdk-in-memory"), ("tools", "fastmcp-in-memory"), ("typescript", "ts-in-memory"))
"""The ingress proxy prefixing the official SDK's and FastMCP's ids; the TypeScript SDK prefixing its own."""


@pytest.fixture(scope="module")
def reports(parts_installed, tmp_path_factory) -> dict:
    from mcp_affinity_conformance import SERVER_MODES
    from mcp_affinity_conformance.shard_deploys import run_shard_deploy

    apps = {m.key: m.app for m in SERVER_MODES}
    return {(service, mode): run_shard_deploy(ROOT, service, apps[mode], tmp_path_factory.mktemp(f"sd-{service}-{mode}"))
            for service, mode in CASES}


@pytest.mark.parametrize("case", CASES)
def test_a_deploy_drains_old_sessions_on_their_generation_and_starts_new_ones_on_the_next(reports, case):
    report = reports[case]
    assert all(key.endswith("-g1") for key in report.old_names) and all(k.endswith("-g2") for k in report.new_names)
    assert len(report.old) == 8 and {s.kind for s in report.old} == {"keeps cookies", "no cookie jar"}
    for session in report.old:
        assert session.creator in report.old_names, session
        assert (session.ok_before, session.ok_during) == (session.calls_before, session.calls_during) == (3, 3), session
        assert set(session.served_during) == {session.creator}, session
    for session in report.new:
        assert session.creator in report.new_names and session.ok_before == 3, session
    for session in report.old:
        assert session.after_window_status == 404, session
        assert session.reinitialized_ok and session.reinitialized_on in report.new_names, session
    print(f"\n{case}: generation 2 started and the front reloaded {report.drained_after:.1f} s after the deploy began")


def test_the_readme_deploy_table_has_the_cloud_run_cells_measured(reports):
    from mcp_affinity_conformance import SERVER_MODES
    from mcp_affinity_conformance.deploys import cloud_run_cell

    labels = {m.key: m.label for m in SERVER_MODES}
    rows = {line.split(" | ")[0][2:]: line for line in
            (Path(__file__).resolve().parents[2] / "README.md").read_text().splitlines() if line.startswith("| ")}
    for (service, mode), report in reports.items():
        assert rows[labels[mode]].endswith(f" | {cloud_run_cell(report)} (`{service}`) |"), rows[labels[mode]]


def test_the_switch_table_deploy_column_has_the_cloud_run_part_measured(reports):
    """README "Which mode for my server?": the deploy column's Cloud Run part comes from this run."""
    from mcp_affinity_conformance.deploys import mode_cell, switch_row

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for (_, mode), report in reports.items():
        assert mode_cell("Cloud Run `shards`", report) in switch_row(readme, mode), mode
