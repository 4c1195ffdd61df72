"""What a change does to live sessions and to who may call: the sharded example's image bump with
a member removed, reviewed from two offline plans and from a real preview's JSON, and the change rules."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mcp_affinity import impact
from mcp_affinity.cli.app import app
from mcp_affinity.cli.diff import diff_plans, review_lines, to_text
from mcp_affinity.cli.plan_file import validate
from mcp_affinity.policies import check_change
from mcp_affinity.wire import (
    AUTHORIZATION_POLICY, BACKEND, CLOUD_RUN, DEPLOYMENT, HORIZONTAL_POD_AUTOSCALER, REDIS, REQUEST_AUTHENTICATION, SECRET_SIG,
    SECURITY_POLICY,
)
from session_review import (
    FIXTURE, ONCALL, README, bump_image, plan_example_as, plans, preview_digest, readme_block, with_oncall,
)

runner = CliRunner()
LEAD = "ends live sessions: tools (6 shard instances)"
REMOVED = f"    narrows: IAP member removed: {ONCALL}"


@pytest.fixture(scope="module")
def sides() -> tuple[dict, dict]:
    return plans()


@pytest.fixture(scope="module")
def files(sides, tmp_path_factory) -> tuple:
    """(base.json, head.json) as `plan --json` writes them (preview-shaped), and the fixture."""
    folder = tmp_path_factory.mktemp("plans")
    base, head = folder / "base.json", folder / "head.json"
    base.write_text(json.dumps(plan_example_as("cloud-run-shards", with_oncall).to_json()))
    head.write_text(json.dumps(plan_example_as("cloud-run-shards", bump_image).to_json()))
    return base, head, FIXTURE


def test_image_bump_of_the_sharded_example_leads_with_the_sessions_it_ends(sides):
    lines = to_text(diff_plans(*sides)).splitlines()
    assert lines[1] == LEAD
    assert lines[2] == "    new revision: " + ", ".join(f"tools-{r}-s{i}" for r in ("europe-west1", "us-central1")
                                                       for i in range(3))
    summary = next(i for i, line in enumerate(lines) if " to add, " in line)
    assert lines[3:5] == ["changes who may call: tools", REMOVED] and summary == 5  # before the resource list
    assert "typescript" not in "\n".join(lines[:summary])  # untouched: neither ends nor keeps


def test_a_real_preview_renders_the_same_review_as_two_plans(files):
    base, head, preview = files
    for format in ("text", "markdown"):
        from_plans = runner.invoke(app, ["diff", str(base), str(head), "-f", format, "--no-mermaid"])
        from_preview = runner.invoke(app, ["diff", str(preview), "-f", format, "--no-mermaid"])
        assert from_plans.exit_code == from_preview.exit_code == 0, from_preview.output
        # The access map needs every resource, which a preview without --show-sames does not list.
        assert from_preview.output == from_plans.output.split("access map (")[0].split("\n<details><summary>Access map")[0]
        assert LEAD in from_preview.output and f"IAP member removed: {ONCALL}" in from_preview.output


def test_the_preview_fixture_is_current_and_shaped_as_pulumi_writes_it(sides):
    document = json.loads(FIXTURE.read_text())
    assert document == preview_digest(*sides), "run: .venv/bin/python tests/session_review.py"
    # pkg/display/json.go: PreviewDigest, PreviewStep; sdk/go/common/apitype/core.go: ResourceV3.
    assert set(document) <= {"config", "steps", "diagnostics", "duration", "changeSummary", "maybeCorrupt"}
    step_fields = {"op", "urn", "provider", "oldState", "newState", "diffReasons", "replaceReasons", "detailedDiff"}
    state_fields = {"urn", "custom", "delete", "id", "type", "inputs", "outputs", "parent", "protect", "dependencies",
                    "provider", "propertyDependencies", "created", "modified", "ignoreChanges", "replaceOnChanges"}
    for step in document["steps"]:
        assert set(step) <= step_fields and "detailedDiff" in step
        assert all(set(step[side]) <= state_fields for side in ("oldState", "newState") if side in step)
    assert SECRET_SIG not in FIXTURE.read_text() and validate(document)["complete"] is False


def test_a_preview_without_old_states_is_a_new_stack(files):
    """`diff PREVIEW` of a first deployment: every resource added, nothing ended."""
    head = validate(json.loads(files[1].read_text()))
    assert head["before"] is None and head["complete"] is True
    result = runner.invoke(app, ["diff", str(files[1])])
    assert result.exit_code == 0 and "live sessions" not in result.output and " to add, 0 to change" in result.output


REUSED = "change-reuses-revision-name"


def test_check_refuses_an_image_bump_without_a_new_generation_on_a_preview_and_on_two_plans(files):
    """The committed change bumps the image but adds no generation: each shard would need a second
    revision named ``…-gen0``, which Cloud Run refuses, so both inputs fail in a dev stack too."""
    base, head, preview = files
    for args in (["check", str(preview)], ["check", str(base), str(head)]):
        result = runner.invoke(app, args)
        refused = [line for line in result.output.splitlines() if line.startswith("mandatory")]
        assert result.exit_code == 1 and len(refused) == 6 and all(f"[{REUSED}]" in line for line in refused), result.output
        assert ("Cloud Run service mcp-ex6-tools-s0 keeps revision mcp-ex6-tools-s0-gen0 while its template changes "
                "(template.containers[mcp].image)") in result.output
        assert 'add a generation: services.tools.generations: {"1": "<now, UTC>"}' in result.output


def with_generation(config: dict) -> None:
    bump_image(config)
    config["mcp-affinity:services"]["tools"]["generations"] = {"1": "2026-12-06T20:00:00Z"}


def without_drain(edit):
    def edited(config: dict) -> None:
        edit(config)
        config["mcp-affinity:services"]["tools"]["sessionDrainSeconds"] = 0
    return edited


def test_a_new_generation_or_an_unnamed_revision_passes_the_revision_check(sides):
    base = sides[0]
    head = plan_example_as("cloud-run-shards", with_generation).document()
    assert any(r.get("inputs", {}).get("template", {}).get("revision", "").endswith("-gen1") for r in head["resources"])
    assert [v for v in check_change(diff_plans(base, head).review, head) if v.rule == REUSED] == []
    unnamed = [plan_example_as("cloud-run-shards", without_drain(edit)).document() for edit in (with_oncall, bump_image)]
    runs = [r for r in unnamed[1]["resources"] if r["type"] == CLOUD_RUN and "tools-" in r["name"]]
    assert len(runs) == 6 and all("revision" not in r["inputs"]["template"] for r in runs)
    review = diff_plans(*unnamed).review
    assert any(s.verdict is impact.SessionVerdict.ENDS for s in review.sessions)  # the template did change
    assert [v for v in check_change(review, unnamed[1]) if v.rule == REUSED] == []


@pytest.fixture(scope="module")
def prod_sides() -> tuple[dict, dict]:
    """The same change in a stack named for production."""
    return plans("shards-prod")


def test_prod_change_that_ends_sessions_is_advisory(prod_sides):
    violations = check_change(diff_plans(*prod_sides).review, prod_sides[1])
    (ends,) = [v for v in violations if v.rule == "prod-change-ends-sessions"]
    assert ends.enforcement == "advisory" and "tools (6 shard instances)" in ends.message
    # Removing a member widens nothing (the image bump without a generation is refused on its own).
    assert all(v.enforcement == "advisory" for v in violations if v.rule != REUSED)


def test_prod_change_that_widens_access_is_mandatory_unless_acknowledged(prod_sides, tmp_path):
    narrow, wide = prod_sides[1], prod_sides[0]  # the member added back: widens
    (widens,) = [v for v in check_change(diff_plans(narrow, wide).review, wide) if v.enforcement == "mandatory" and v.rule != REUSED]
    assert widens.rule == "prod-change-widens-access" and ONCALL in widens.message and "access-widened" in widens.message
    acked = plan_example_as("cloud-run-shards", lambda c: (with_oncall(c), c["mcp-affinity:services"]["tools"].update(
        acknowledge=["access-widened"])), "shards-prod").document()
    assert [v for v in check_change(diff_plans(narrow, acked).review, acked) if v.enforcement == "mandatory" and v.rule != REUSED] == []
    (tmp_path / "a.json").write_text(json.dumps(narrow))
    (tmp_path / "b.json").write_text(json.dumps(wide))
    result = runner.invoke(app, ["check", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "prod-change-widens-access" in result.output


# Hand-built resources: each rule of the classification on its own.
SVC = "urn:pulumi:s::p::mcp-affinity:index:McpMeshService::{0}"


def res(name: str, type_: str, inputs: dict, service: str = "tools") -> dict:
    parent = SVC.format(service)
    return {"urn": f"urn:pulumi:s::p::mcp-affinity:index:McpMeshService${type_}::{name}", "type": type_,
            "name": name, "parent": parent, "custom": True, "inputs": inputs}


def deployment(mode: str, image: str, store: bool = False) -> dict:
    env = [{"name": "MCP_SESSION_MODE", "value": mode}] + ([{"name": "MCP_SESSION_STORE_URL", "value": "x"}] if store else [])
    return res("tools", DEPLOYMENT, {"metadata": {"name": "tools", "labels": {"mcp-access": "iam"}},
                                     "spec": {"template": {"spec": {"containers": [{"image": image, "env": env}]}}}})


def review_of(before: list[dict], after: list[dict]) -> impact.Review:
    base = {"project": "p", "stack": "s", "resources": before, "outputs": {}}
    head = {"project": "p", "stack": "s", "resources": after, "outputs": {}}
    return diff_plans(validate(base), validate(head)).review


@pytest.mark.parametrize("mode,verdict,holders", [
    ("in-memory-sessions", "ends", "2-8 pods"), ("stateless", "keeps", "stateless")])
def test_a_pod_template_change_ends_in_memory_sessions_only(mode, verdict, holders):
    hpa = res("tools", HORIZONTAL_POD_AUTOSCALER, {"spec": {"minReplicas": 2, "maxReplicas": 8,
                                                            "scaleTargetRef": {"name": "tools"}}})
    (session,) = review_of([deployment(mode, "a:1"), hpa], [deployment(mode, "a:2"), hpa]).sessions
    assert (session.verdict.value, session.holders) == (verdict, holders)


def test_a_replaced_store_ends_the_sessions_of_the_services_that_use_it():
    store = lambda size: res("store", REDIS, {"memorySizeGb": size, "region": "r1"}, service="none")  # noqa: E731
    store_replaced = [dict(store(1), parent=None), deployment("shared-sessions", "a:1", store=True)]
    moved = [dict(store(1), parent=None, inputs={"memorySizeGb": 1, "region": "r2"}),
             deployment("shared-sessions", "a:1", store=True)]
    lines = review_lines(review_of(store_replaced, moved))
    assert lines[:2] == ["ends live sessions: tools (the session store)", "    session store replaced: store"]
    kept = review_lines(review_of(store_replaced, [dict(store(2), parent=None), store_replaced[1]]))
    assert kept == []  # resized in place: nothing of a service changes


@pytest.mark.parametrize("before,after,expected", [
    ({"mcp-access": "iap"}, {"mcp-access": "public"}, ("widens", "access mode iap -> public")),
    ({"mcp-access": "public"}, {"mcp-access": "iam"}, ("narrows", "access mode public -> iam")),
])
def test_a_mode_change_says_which_way(before, after, expected):
    old, new = deployment("stateless", "a:1"), deployment("stateless", "a:1")
    old["inputs"]["metadata"]["labels"], new["inputs"]["metadata"]["labels"] = before, after
    (change,) = review_of([old], [new]).access
    assert (change.direction.value, change.text) == expected


def armor(count: int, preview: bool = False, extra: bool = True) -> dict:
    rules = [{"priority": 1000, "action": "throttle", "preview": preview,
              "rateLimitOptions": {"rateLimitThreshold": {"count": count, "intervalSec": 60}}}]
    rules += [{"priority": 2000, "action": "deny(403)", "match": {"expr": {"expression": "x"}}}] if extra else []
    return res("tools", SECURITY_POLICY, {"rules": rules})


@pytest.mark.parametrize("after,expected", [
    (armor(600), [("widens", "Cloud Armor rule 1000 limit 300/60s -> 600/60s")]),
    (armor(100), [("narrows", "Cloud Armor rule 1000 limit 300/60s -> 100/60s")]),
    (armor(300, preview=True), [("widens", "Cloud Armor rule 1000 in preview only")]),
    (armor(300, extra=False), [("widens", "Cloud Armor rule 2000 removed (deny(403))")]),
])
def test_cloud_armor_changes_say_which_way(after, expected):
    assert [(a.direction.value, a.text) for a in review_of([armor(300)], [after]).access] == expected


def test_iap_off_cloud_armor_detached_and_a_mesh_policy_deleted_widen():
    backend = lambda **inputs: res("be", BACKEND, inputs)  # noqa: E731
    found = review_of([backend(iap={"enabled": True}, securityPolicy="p"), res("deny", AUTHORIZATION_POLICY, {})],
                      [backend(iap={"enabled": False})]).access
    assert sorted((a.direction.value, a.text) for a in found) == [
        ("widens", "AuthorizationPolicy deny deleted"), ("widens", "Cloud Armor policy detached"),
        ("widens", "IAP off at the load balancer")]


GOOGLE = "https://accounts.google.com"
SIDECAR = {"selector": {"matchLabels": {"app": "tools"}}}
WAYPOINT = {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}]}


def callers(*emails: str, target: dict = SIDECAR, action: str = "DENY") -> dict:
    """The ``iam`` DENY policy as :func:`mcp_affinity.mesh_access.deny_rules` plans it."""
    rules = [{"from": [{"source": {"notRequestPrincipals": [f"{GOOGLE}/*"]}}]},
             {"when": [{"key": "request.auth.claims[email]", "notValues": sorted(emails)}]}]
    return res("tools-callers", AUTHORIZATION_POLICY, {"spec": {**target, "action": action, "rules": rules}})


def issuers(*names: str, audience: str = "https://t.example.com") -> dict:
    rules = [{"issuer": name, "jwksUri": f"{name}/jwks", "audiences": [audience]} for name in names]
    return res("tools-jwt", REQUEST_AUTHENTICATION, {"spec": {**SIDECAR, "jwtRules": rules}})


@pytest.mark.parametrize("before,after,expected", [
    (callers("a@x.com"), callers("a@x.com", "b@x.com"), [("widens", "mesh caller added: b@x.com")]),
    (callers("a@x.com", "b@x.com"), callers("a@x.com"), [("narrows", "mesh caller removed: b@x.com")]),
    (issuers(GOOGLE), issuers(GOOGLE, "https://auth.example.com"),
     [("widens", "mesh token issuer added: https://auth.example.com")]),
    (issuers(GOOGLE, "https://auth.example.com"), issuers(GOOGLE),
     [("narrows", "mesh token issuer removed: https://auth.example.com")]),
    # What the token checks do not say is listed, direction not judged.
    (issuers(GOOGLE), issuers(GOOGLE, audience="https://u.example.com"),
     [("changes", "RequestAuthentication tools-jwt jwtRules changed")]),
    (callers("a@x.com"), callers("a@x.com", target=WAYPOINT),
     [("changes", "AuthorizationPolicy tools-callers selector changed"),
      ("changes", "AuthorizationPolicy tools-callers targetRefs changed")]),
    (callers("a@x.com"), callers("a@x.com", "b@x.com", action="ALLOW"),
     [("changes", "AuthorizationPolicy tools-callers action changed"),
      ("changes", "AuthorizationPolicy tools-callers rules changed")]),
])
def test_a_mesh_token_policy_change_says_which_way(before, after, expected):
    assert [(a.direction.value, a.text) for a in review_of([before], [after]).access] == expected


def test_a_mesh_caller_added_with_other_rule_changes_is_judged_and_the_rest_listed():
    before, after = callers("a@x.com"), callers("a@x.com", "b@x.com")
    after["inputs"]["spec"]["rules"][0]["to"] = [{"operation": {"ports": ["8080"]}}]
    assert sorted((a.direction.value, a.text) for a in review_of([before], [after]).access) == [
        ("changes", "AuthorizationPolicy tools-callers rules changed"), ("widens", "mesh caller added: b@x.com")]


def test_cloud_run_ingress_and_invoker_check():
    old = res("run", CLOUD_RUN, {"ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "invokerIamDisabled": False})
    new = res("run", CLOUD_RUN, {"ingress": "INGRESS_TRAFFIC_ALL", "invokerIamDisabled": True})
    assert sorted(a.text for a in review_of([old], [new]).access if a.widens) == [
        "Cloud Run invoker check off", "ingress INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER -> INGRESS_TRAFFIC_ALL"]


def test_the_verdict_is_a_small_enum_most_severe_first():
    assert [v.value for v in impact.SessionVerdict] == ["ends", "drains", "keeps"]


def test_the_readme_shows_this_review(sides):
    assert readme_block(README.read_text()) == to_text(diff_plans(*sides)), "run: .venv/bin/python tests/session_review.py"


def test_the_plan_json_says_what_holds_each_services_sessions(files):
    """`sessionImpact`, an addition of our own beside the preview-shaped steps."""
    document = json.loads(files[1].read_text())
    assert document["sessionImpact"]["tools"] == {
        "mode": "in-memory-sessions", "holders": "6 shard instances",
        "endsWhen": ["a shard removed, or a new revision that leaves the previous one untagged (sessionDrainSeconds: 0)"],
        "drainsWhen": ["a new generation (a new entry in generations with the new image): the previous revision keeps "
                       "its sessions for 30 min, tag-only"]}
    assert document["sessionImpact"]["typescript"]["holders"] == "2 shard instances"
    undrained = plan_example_as("cloud-run-shards", without_drain(with_oncall)).to_json()["sessionImpact"]["tools"]
    assert undrained["endsWhen"] == ["a new revision (a change under template) or a shard removed"]
    assert undrained["drainsWhen"] == []


def test_plan_quiet_prints_only_the_summary():
    from conftest import ROOT

    result = runner.invoke(app, ["plan", "--stack", "dev", "--program", str(ROOT), "--quiet"])
    assert result.exit_code == 0 and "resources to create in stack 'dev'" in result.output
    assert "outputs:" not in result.output and "requiredApis" not in result.output


@pytest.mark.parametrize("replicas,ends", [(1, True), (2, False)])
def test_a_pinning_proxy_change_ends_sessions_only_without_a_peer(replicas, ends):
    """Measured (tests/e2e, proxy restart): a restarted replica gets its pins back from its peer."""
    proxy = lambda image: res("tools-pinning", "kubernetes:apps/v1:StatefulSet", {  # noqa: E731
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": image}]}}}})
    server = deployment("in-memory-sessions", "a:1")
    (session,) = review_of([proxy("haproxy:3.0"), server], [proxy("haproxy:3.2"), server]).sessions
    assert (session.verdict.value == "ends") is ends
    assert (session.holders == "the pinning proxy's pins") is ends


def test_plan_checks_and_draws_the_plan_as_read_not_as_written(tmp_path, monkeypatch):
    """The written JSON is preview-shaped; the policy rules and the picture get its resources."""
    from conftest import ROOT
    from mcp_affinity import policies

    seen, real = [], policies.check_plan
    monkeypatch.setattr(policies, "check_plan", lambda document, **kw: seen.append(len(document["resources"])) or real(document, **kw))
    picture = tmp_path / "p.mmd"
    result = runner.invoke(app, ["plan", "--stack", "dev", "--program", str(ROOT), "-q", "--mermaid", str(picture)])
    assert result.exit_code == 0 and seen and seen[0] > 20, result.output
    assert "Load balancer" in picture.read_text() and " --> " in picture.read_text()
