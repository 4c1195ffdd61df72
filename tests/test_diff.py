"""plan/diff.py: hand-written plans for exact output, real staging plans for real changes."""

from __future__ import annotations

import re

import copy
from collections import Counter
from pathlib import Path
from typing import Callable

import pytest
import yaml

from conftest import plan_document
from mcp_affinity.cli import find_project, run_plan
from mcp_affinity.cli.diff import PlanDiff, PropertyChange, diff_plans, to_markdown, to_text
from mcp_affinity.cli.plan_file import validate
from mcp_affinity.cli.runner import SECRET_SIG, UNKNOWN

ROOT = Path(__file__).parents[1]
ENVELOPE = "1b47061264138c4ac30d75fd1eb44270"
RUN = "urn:pulumi:staging::mcp-affinity::mcp-affinity:index:CloudRunMcpService$gcp:cloudrunv2/service:Service::"


def secret(value):
    return {SECRET_SIG: ENVELOPE, "value": value}


def resource(urn: str, type_: str, name: str, inputs: dict, **options) -> dict:
    item = {"urn": urn, "type": type_, "name": name, "parent": None, "custom": True, "inputs": inputs}
    return {**item, "options": options} if options else item


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
    return validate(run_plan(find_project(tmp_path), "staging").to_json())


@pytest.fixture
def staging() -> dict:
    return validate(plan_document("staging"))


def test_identical_plans_give_no_changes(staging):
    diff = diff_plans(staging, copy.deepcopy(staging))
    assert diff.is_empty
    assert to_text(diff) == "Plan diff for mcp-affinity / stack staging\nNo changes.\n"
    assert to_markdown(diff) == "### Plan diff: stack `staging` (mcp-affinity)\n\n**No changes.**\n"


def test_image_change_ci_owns_is_ignored_not_counted(staging):
    """Staging's images are CI-owned (ignoreChanges): up keeps the deployed image."""
    head = copy.deepcopy(staging)
    target = next(r for r in head["resources"] if r["type"] == "gcp:cloudrunv2/service:Service"
                  and r["options"]["ignoreChanges"])
    old = target["inputs"]["template"]["containers"][0]["image"]
    target["inputs"]["template"]["containers"][0]["image"] = "europe-docker.pkg.dev/p/mcp/tools:2.0.0"
    diff = diff_plans(staging, head)
    assert diff.is_empty and [c.action for c in diff.changed] == ["ignored"]
    assert diff.changed[0].changes == (PropertyChange(
        "template.containers.0.image", old, "europe-docker.pkg.dev/p/mcp/tools:2.0.0",
        ignored="template.containers[0].image"),)
    assert to_text(diff).splitlines()[1:] == [
        "No changes. (1 ignored change not counted)",
        f"= gcp:cloudrunv2/service:Service {target['name']} (every change ignored (ignoreChanges))",
        f"    template.containers.0.image: {old} -> europe-docker.pkg.dev/p/mcp/tools:2.0.0"
        "  [ignored (ignoreChanges template.containers[0].image)]",
    ]


def test_adding_a_region_adds_its_subnet_services_and_negs(staging, tmp_path):
    head = staging_variant(tmp_path, lambda c: c["mcp-affinity:network"]["subnets"].update(
        {"us-central1": {"ipCidrRange": "10.20.2.0/24"}}))
    diff = diff_plans(staging, head)
    kinds = Counter(r.type.rsplit(":", 1)[-1] for r in diff.added)
    assert {k: kinds[k] for k in ("RegionNetworkEndpointGroup", "Service", "Subnetwork")} == {
        "RegionNetworkEndpointGroup": 2, "Service": 2, "Subnetwork": 1}
    assert all("us-central1" in r.name for r in diff.added)
    assert diff.removed == () and diff.replaced == ()
    # Each Cloud Run backend service gains a third NEG: its id is unknown until apply, the plan names it.
    backends = [c for c in diff.changed if c.type == "gcp:compute/backendService:BackendService"]
    assert len(backends) == 2 and {c.changes for c in backends} == {
        (PropertyChange(f"backends[NEG {s}-us-central1]", "(unset)", f"{{group: NEG {s}-us-central1}}"),)
        for s in ("tools", "search")}
    added_run = next(r for r in diff.added if r.type == "gcp:cloudrunv2/service:Service")
    assert "ingress=INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" in added_run.settings  # key settings of additions
    assert summary_line(diff).startswith(f"{len(diff.added)} to add, ") and summary_line(diff).endswith(" 0 to replace, 0 to delete")


def summary_line(diff: PlanDiff) -> str:
    """The summary line of the text diff (after the session and access lines)."""
    return next(line for line in to_text(diff).splitlines() if re.match(r"\d+ to add|No changes", line))


def test_secret_with_different_plaintext_is_changed_but_masked():
    base, head = small_plan(), small_plan()
    head["resources"][1]["inputs"]["secretData"] = secret("redis://new-password@host")
    diff = diff_plans(base, head)
    # A new secret version is a new resource (secretData is create-only in terraform-provider-google).
    assert diff.changed[0].changes == (PropertyChange("secretData", "[secret]", "[secret]", replaces="secretData"),)
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
    assert [str(c) for c in diff.changed[0].changes] == [
        "secretData: [secret] -> (not secret, hidden)  [forces replacement (secretData is create-only)]"]


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
        "1 to add, 1 to change, 0 to replace, 1 to delete\n"
        "+ gcp:x/y:Z new\n"
        "~ gcp:cloudrunv2/service:Service tools-europe-west1\n"
        "    template.containers.1.image: (unset) -> side|car\n"
        "- gcp:secretmanager/secretVersion:SecretVersion url\n"
        "Outputs:\n"
        "    ip: (known after apply) -> 34.1.2.3\n"
    )
    assert to_markdown(diff, title="Plan for `staging`") == (
        "### Plan for `staging`\n\n"
        "**1 to add, 1 to change, 0 to replace, 1 to delete**\n\n"
        "| Action | Type | Name | Details |\n| --- | --- | --- | --- |\n"
        "| add | `gcp:x/y:Z` | `new` | |\n"
        "| change | `gcp:cloudrunv2/service:Service` | `tools-europe-west1` | 1 property |\n"
        "| delete | `gcp:secretmanager/secretVersion:SecretVersion` | `url` | |\n\n"
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


# What up does: replace, ignore, identity, additions, warnings.

REDIS = "gcp:redis/instance:Instance"
URL_MAP = "gcp:compute/uRLMap:URLMap"


def plan_of(*resources, warnings=()) -> dict:
    return validate({"project": "p", "stack": "s", "resources": list(resources), "warnings": list(warnings)})


def test_changed_gcp_name_replaces_with_its_source():
    base = plan_of(resource("urn:b", "gcp:compute/backendService:BackendService", "tools", {"name": "a"}))
    head = plan_of(resource("urn:b", "gcp:compute/backendService:BackendService", "tools", {"name": "b"}))
    diff = diff_plans(base, head)
    assert [c.action for c in diff.changed] == ["replace"] and diff.replaced[0].changes[0].replaces == "name"
    assert "resource_compute_backend_service.go" in diff.replaced[0].source
    assert "0 to change, 1 to replace" in to_text(diff)
    assert "-/+ gcp:compute/backendService:BackendService tools (replace (create, then delete): name create-only)" in to_text(diff)
    assert diff.stateful() == []


def test_stateful_replacement_is_flagged_at_the_top():
    base = plan_of(resource("urn:r", REDIS, "store", {"tier": "BASIC", "memorySizeGb": 1}))
    head = plan_of(resource("urn:r", REDIS, "store", {"tier": "STANDARD_HA", "memorySizeGb": 1}))
    diff = diff_plans(base, head)
    text, markdown = to_text(diff), to_markdown(diff)
    assert text.splitlines()[1].startswith("!!! DATA LOSS: replaces gcp:redis/instance:Instance store")
    assert markdown.splitlines()[2] == "> [!CAUTION]" and "replaces gcp:redis/instance:Instance store" in markdown
    resized = plan_of(resource("urn:r", REDIS, "store", {"tier": "BASIC", "memorySizeGb": 2}))
    assert diff_plans(base, resized).updated and not diff_plans(base, resized).stateful()  # in place
    assert "deletes gcp:redis/instance:Instance store" in to_text(diff_plans(base, plan_of()))


def test_replace_on_changes_and_delete_before_replace_options():
    base = plan_of(resource("urn:d", "kubernetes:apps/v1:Deployment", "d", {"spec": {"replicas": 1}}))
    head = plan_of(resource("urn:d", "kubernetes:apps/v1:Deployment", "d", {"spec": {"replicas": 2}},
                            replaceOnChanges=["spec.replicas"], deleteBeforeReplace=True))
    change = diff_plans(base, head).changed[0]
    assert change.action == "replace" and "delete, then create" in to_text(diff_plans(base, head))


def test_kubernetes_name_change_replaces():
    base = plan_of(resource("urn:s", "kubernetes:core/v1:Service", "s", {"metadata": {"name": "a"}}))
    head = plan_of(resource("urn:s", "kubernetes:core/v1:Service", "s", {"metadata": {"name": "b"}}))
    assert diff_plans(base, head).replaced[0].changes[0].replaces == "metadata.name"


def test_helm_release_name_or_namespace_change_replaces_but_values_update_in_place():
    release = "kubernetes:helm.sh/v3:Release"
    base = plan_of(resource("urn:h", release, "gw", {"name": "a", "namespace": "n", "values": {"x": 1}}))
    renamed = plan_of(resource("urn:h", release, "gw", {"name": "b", "namespace": "n", "values": {"x": 1}}))
    moved = plan_of(resource("urn:h", release, "gw", {"name": "a", "namespace": "m", "values": {"x": 1}}))
    revalued = plan_of(resource("urn:h", release, "gw", {"name": "a", "namespace": "n", "values": {"x": 2}}))
    assert diff_plans(base, renamed).replaced[0].changes[0].replaces == "name"
    assert "helm_release.go" in diff_plans(base, moved).replaced[0].source
    assert diff_plans(base, revalued).updated and not diff_plans(base, revalued).replaced


def test_ignored_changes_are_marked_and_not_counted_with_wildcards():
    inputs = {"template": {"containers": [{"image": "a:1"}, {"image": "b:1"}]}, "labels": {"x": "1"}}
    changed = copy.deepcopy(inputs)
    changed["template"]["containers"][1]["image"] = "b:2"
    changed["labels"]["x"] = "2"
    base = plan_of(resource("urn:a", "gcp:cloudrunv2/service:Service", "a", inputs))
    head = plan_of(resource("urn:a", "gcp:cloudrunv2/service:Service", "a", changed,
                            ignoreChanges=["template.containers[*].image"]))
    change = diff_plans(base, head).changed[0]
    assert change.action == "update" and [c.path for c in change.counted] == ["labels.x"]
    assert [c.ignored for c in change.changes] == [None, "template.containers[*].image"]


def test_url_map_lists_compare_by_identity():
    rules = [{"hosts": [f"{n}.example.com"], "pathMatcher": n} for n in ("a", "b", "c")]
    matchers = [{"name": n, "defaultService": f"svc-{n}"} for n in ("a", "b", "c")]
    base = plan_of(resource("urn:u", URL_MAP, "u", {"name": "m", "hostRules": rules, "pathMatchers": matchers}))
    head = plan_of(resource("urn:u", URL_MAP, "u", {"name": "m", "hostRules": rules[1:], "pathMatchers": matchers[1:]}))
    change = diff_plans(base, head).changed[0]
    assert [str(c) for c in change.changes] == [
        "hostRules[a.example.com]: {hosts: [a.example.com], pathMatcher: a} -> (unset)",
        "pathMatchers[a]: {name: a, defaultService: svc-a} -> (unset)",
    ]


def test_env_vars_and_backends_compare_by_name_and_group():
    envs = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    base = plan_of(resource("urn:a", "gcp:cloudrunv2/service:Service", "a",
                            {"template": {"containers": [{"envs": envs}]}}),
                   resource("urn:b", "gcp:compute/backendService:BackendService", "b",
                            {"backends": [{"group": "g1"}, {"group": "g2", "capacityScaler": 1}]}))
    head = plan_of(resource("urn:a", "gcp:cloudrunv2/service:Service", "a",
                            {"template": {"containers": [{"envs": [envs[1], {"name": "A", "value": "9"}]}]}}),
                   resource("urn:b", "gcp:compute/backendService:BackendService", "b",
                            {"backends": [{"group": "g2", "capacityScaler": 1}]}))
    assert [str(c) for r in diff_plans(base, head).changed for c in r.changes] == [
        "template.containers.0.envs[A].value: 1 -> 9",
        "backends[g1]: {group: g1} -> (unset)",
    ]


def test_options_compared_only_when_both_plans_record_them():
    old = resource("urn:a", "gcp:x/y:Z", "a", {})
    protected = resource("urn:a", "gcp:x/y:Z", "a", {}, protect=True)
    assert diff_plans(plan_of(old), plan_of(protected)).is_empty  # base predates recorded options
    unprotected = resource("urn:a", "gcp:x/y:Z", "a", {}, protect=False)
    assert [str(c) for c in diff_plans(plan_of(unprotected), plan_of(protected)).changed[0].changes] == [
        "(option) protect: false -> true"]


def test_head_warnings_are_shown():
    head = plan_of(resource("urn:a", "gcp:x/y:Z", "tools", {}), warnings=[{"message": "hash on serverless", "urn": "urn:a"}])
    diff = diff_plans(plan_of(resource("urn:a", "gcp:x/y:Z", "tools", {})), head)
    assert diff.warnings == ("tools: hash on serverless",)
    assert "**Warnings**" in to_markdown(diff) and "    tools: hash on serverless" in to_text(diff)
