"""plan/diff.py: hand-written plans for exact output, real staging plans for real changes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import pytest
import yaml

from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.cli.diff import PlanDiff, PropertyChange, diff_plans, to_markdown, to_text
from mcp_affinity.cli.runner import SECRET_SIG, UNKNOWN

ROOT = Path(__file__).parents[1]
ENVELOPE = "1b47061264138c4ac30d75fd1eb44270"
RUN = "urn:pulumi:staging::mcp-affinity::mcp-affinity:index:CloudRunMcpService$gcp:cloudrunv2/service:Service::"


def secret(value):
    return {SECRET_SIG: ENVELOPE, "value": value}


def resource(urn: str, type_: str, name: str, inputs: dict) -> dict:
    return {"urn": urn, "type": type_, "name": name, "parent": None, "custom": True, "inputs": inputs}


def small_plan() -> dict:
    return {
        "project": "mcp-affinity", "stack": "staging",
        "resources": [
            resource("urn:a", "gcp:cloudrunv2/service:Service", "tools-europe-west1",
                     {"template": {"containers": [{"image": "img:1"}], "timeout": "3600s"}}),
            resource("urn:b", "gcp:secretmanager/secretVersion:SecretVersion", "url",
                     {"secretData": secret("redis://old-password@host")}),
        ],
        "outputs": {"ip": UNKNOWN, "urls": {"tools": "https://a"}},
    }


def staging_variant(tmp_path: Path, change: Callable[[dict], None]) -> dict:
    """The real staging program, run with a copy of its stack file edited by ``change``."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project.update(main=str(ROOT / "infra"), stackConfigDir=".")
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    change(stack["config"])
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(stack))
    return run_plan(find_project(tmp_path), "staging").to_json()


@pytest.fixture(scope="module")
def staging() -> dict:
    return run_plan(find_project(ROOT), "staging").to_json()


def test_identical_plans_give_no_changes(staging):
    diff = diff_plans(staging, copy.deepcopy(staging))
    assert diff.is_empty
    assert to_text(diff) == "Plan diff for mcp-affinity / stack staging\nNo changes.\n"
    assert to_markdown(diff) == "### Plan diff: stack `staging` (mcp-affinity)\n\n**No changes.**\n"


def test_image_change_is_one_changed_resource_with_that_path(staging):
    head = copy.deepcopy(staging)
    target = next(r for r in head["resources"] if r["urn"] == RUN + "tools-europe-west4")
    target["inputs"]["template"]["containers"][0]["image"] = "europe-docker.pkg.dev/p/mcp/tools:2.0.0"
    diff = diff_plans(staging, head)
    assert (diff.added, diff.removed, diff.outputs_changed) == ((), (), ())
    assert [c.urn for c in diff.changed] == [RUN + "tools-europe-west4"]
    assert diff.changed[0].changes == (PropertyChange(
        "template.containers.0.image",
        "europe-docker.pkg.dev/my-mcp-project-staging/mcp/tools:latest",
        "europe-docker.pkg.dev/p/mcp/tools:2.0.0"),)
    assert to_text(diff).splitlines()[1:] == [
        "0 to add, 1 to change, 0 to delete",
        "~ gcp:cloudrunv2/service:Service tools-europe-west4",
        "    template.containers.0.image: europe-docker.pkg.dev/my-mcp-project-staging/mcp/tools:latest"
        " -> europe-docker.pkg.dev/p/mcp/tools:2.0.0",
    ]


def test_adding_a_region_adds_its_subnet_services_and_negs(staging, tmp_path):
    head = staging_variant(tmp_path, lambda c: c["mcp-affinity:regions"].update(
        {"us-central1": {"subnetCidr": "10.20.2.0/24"}}))
    diff = diff_plans(staging, head)
    assert sorted((r.type.rsplit(":", 1)[-1], r.name) for r in diff.added) == [
        ("RegionNetworkEndpointGroup", "search-us-central1"),
        ("RegionNetworkEndpointGroup", "tools-us-central1"),
        ("Service", "search-us-central1"),
        ("Service", "tools-us-central1"),
        ("Subnetwork", "network-us-central1"),
    ]
    assert diff.removed == ()
    # Each backend service gains a third NEG, whose id is unknown until apply.
    assert {c.name: c.changes for c in diff.changed} == {
        name: (PropertyChange("backends.2.group", "(unset)", "(known after apply)"),)
        for name in ("search", "tools")
    }
    assert [str(c) for c in diff.outputs_changed] == [
        "serviceUrls.search.us-central1: (unset) -> (known after apply)",
        "serviceUrls.tools.us-central1: (unset) -> (known after apply)",
    ]
    assert summary_line(diff) == "5 to add, 2 to change, 0 to delete"


def summary_line(diff: PlanDiff) -> str:
    return to_text(diff).splitlines()[1]


def test_secret_with_different_plaintext_is_changed_but_masked():
    base, head = small_plan(), small_plan()
    head["resources"][1]["inputs"]["secretData"] = secret("redis://new-password@host")
    diff = diff_plans(base, head)
    assert diff.changed[0].changes == (PropertyChange("secretData", "[secret]", "[secret]"),)
    for text in (to_text(diff), to_markdown(diff), repr(diff)):
        assert "password" not in text


def test_secret_with_same_plaintext_is_unchanged():
    base, head = small_plan(), small_plan()
    head["resources"][1]["inputs"]["secretData"] = secret("redis://old-password@host")
    assert diff_plans(base, head).is_empty


def test_secret_turned_plain_hides_the_plain_side():
    base, head = small_plan(), small_plan()
    head["resources"][1]["inputs"]["secretData"] = "redis://old-password@host"
    diff = diff_plans(base, head)
    assert [str(c) for c in diff.changed[0].changes] == ["secretData: [secret] -> (not secret, hidden)"]


def test_numbers_compare_by_value_but_booleans_are_not_numbers():
    base, head = small_plan(), small_plan()
    base["resources"][0]["inputs"]["n"], head["resources"][0]["inputs"]["n"] = 2.0, 2
    base["resources"][0]["inputs"]["b"], head["resources"][0]["inputs"]["b"] = 1.0, True
    assert [str(c) for c in diff_plans(base, head).changed[0].changes] == ["b: 1 -> true"]


def test_text_and_markdown_are_exact_and_stable():
    base, head = small_plan(), small_plan()
    head["resources"][0]["inputs"]["template"]["containers"].append({"image": "side|car"})
    head["resources"] = head["resources"][:1] + [resource("urn:c", "gcp:x/y:Z", "new", {})]
    head["outputs"]["ip"] = "34.1.2.3"
    diff = diff_plans(base, head)
    assert to_text(diff) == (
        "Plan diff for mcp-affinity / stack staging\n"
        "1 to add, 1 to change, 1 to delete\n"
        "+ gcp:x/y:Z new\n"
        "~ gcp:cloudrunv2/service:Service tools-europe-west1\n"
        "    template.containers.1.image: (unset) -> side|car\n"
        "- gcp:secretmanager/secretVersion:SecretVersion url\n"
        "Outputs:\n"
        "    ip: (known after apply) -> 34.1.2.3\n"
    )
    assert to_markdown(diff, title="Plan for `staging`") == (
        "### Plan for `staging`\n\n"
        "**1 to add, 1 to change, 1 to delete**\n\n"
        "| Action | Type | Name |\n| --- | --- | --- |\n"
        "| add | `gcp:x/y:Z` | `new` |\n"
        "| change | `gcp:cloudrunv2/service:Service` | `tools-europe-west1` |\n"
        "| delete | `gcp:secretmanager/secretVersion:SecretVersion` | `url` |\n\n"
        "<details>\n"
        "<summary>change <code>gcp:cloudrunv2/service:Service</code> <code>tools-europe-west1</code>:"
        " 1 property</summary>\n\n"
        "| Property | Before | After |\n| --- | --- | --- |\n"
        "| `template.containers.1.image` | `(unset)` | `side\\|car` |\n\n"
        "</details>\n\n"
        "**Outputs**\n\n"
        "| Output | Before | After |\n| --- | --- | --- |\n"
        "| `ip` | `(known after apply)` | `34.1.2.3` |\n"
    )
    assert to_markdown(diff_plans(base, head)) == to_markdown(diff)
    assert to_text(diff_plans(base, head)) == to_text(diff)


def test_paths_sort_numerically_and_resources_by_urn():
    base, head = small_plan(), small_plan()
    base["resources"][0]["inputs"]["list"] = list(range(11))
    head["resources"][0]["inputs"]["list"] = [x + 1 for x in range(11)]
    head["resources"].reverse()  # input order must not matter
    changes = diff_plans(base, head).changed[0].changes
    assert [c.path for c in changes] == [f"list.{i}" for i in range(11)]


def test_resources_are_ordered_by_urn_whatever_the_input_order():
    base, head = small_plan(), small_plan()
    urns = [f"urn:r-{c}" for c in "qwertyuiopzxcvbnm"]
    base["resources"] += [resource(u, "t:m:T", u, {"v": 1}) for u in urns]
    head["resources"] += [resource(u, "t:m:T", u, {"v": 2}) for u in reversed(urns)]
    head["resources"] += [resource(u + "-new", "t:m:T", u, {}) for u in urns]
    diff = diff_plans(base, head)
    assert [r.urn for r in diff.changed] == sorted(urns)
    assert [r.urn for r in diff.added] == sorted(u + "-new" for u in urns)


def test_different_stacks_are_refused():
    base, head = small_plan(), small_plan()
    head["stack"] = "prod"
    with pytest.raises(ValueError, match="different stacks: base is 'staging', head is 'prod'"):
        diff_plans(base, head)


def test_not_a_plan_is_refused():
    with pytest.raises(ValueError, match="head is not a plan"):
        diff_plans(small_plan(), {"project": "mcp-affinity", "stack": "staging"})
