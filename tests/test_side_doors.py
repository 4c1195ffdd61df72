"""No side doors on Cloud Run (#19 item 6): the run.app URL is off on every Cloud Run service behind
the load balancer, shards included, unless a reason is written; IAP takes your own OAuth client
(its secret from Secret Manager) for members outside the organization, and refuses consumer
accounts with Google's managed client, which signs in only the organization's users."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from conftest import GcpMocks, plan_example, plan_stack
from helpers import NETWORK
from mcp_affinity import AccessArgs, CloudRunMcpService
from mcp_affinity.access_bindings import backend_iap
from mcp_affinity.cli.runner import run_function
from mcp_affinity.errors import SettingsError
from mcp_affinity.cloud_run_service import DEFAULT_URI_REASON
from test_hostile_config import NS, mutate, problems
from test_secret_env import RUN, make

BACKEND = "gcp:compute/backendService:BackendService"
CLIENT = "1234567890-abcdef.apps.googleusercontent.com"
REASON = "Pub/Sub push from the VPC until the load balancer carries it"


# defaultUriDisabled --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,name", [("stack", "dev"), ("stack", "staging"), ("stack", "prod"),
                                       ("example", "cloud-run-stateless"), ("example", "cloud-run-shards"),
                                       ("example", "cloud-run-in-memory"), ("example", "cloud-run-secret-env")])
def test_every_cloud_run_service_of_every_stack_has_its_run_app_url_off(kind, name):
    plan = plan_stack(name) if kind == "stack" else plan_example(name)
    services = plan.by_type(RUN)
    assert services
    assert {s.name: s.inputs.get("defaultUriDisabled") for s in services} == {s.name: True for s in services}


def test_shards_have_their_run_app_urls_off(record):
    args = make(session_mode="in-memory-sessions", pinning="shards", shards=2, access="oauth")
    plan = record(lambda: CloudRunMcpService("tools", args, network=NETWORK))
    assert len(plan.by_type(RUN)) == 4
    assert all(s.inputs["defaultUriDisabled"] is True for s in plan.by_type(RUN))


def test_the_run_app_url_stays_on_only_with_a_reason_recorded_on_the_service(record):
    args = make(default_uri={"enabled": True, "reason": REASON})
    plan = record(lambda: CloudRunMcpService("tools", args, network=NETWORK))
    for service in plan.by_type(RUN):
        assert service.inputs["defaultUriDisabled"] is False
        assert service.inputs["annotations"] == {DEFAULT_URI_REASON: REASON}


@pytest.mark.parametrize("value,message", [
    ({"enabled": True}, "write the reason"),
    ({"enabled": True, "reason": "because"}, "at least 10"),
    ({"reason": REASON}, "goes with enabled: true only"),
    ({"enabled": "yes", "reason": REASON}, "valid boolean"),
])
def test_a_run_app_url_without_a_reason_is_refused(value, message):
    with pytest.raises(SettingsError, match=message):
        make(default_uri=value)


def test_the_stack_reports_a_missing_reason_under_its_key():
    found = problems(mutate(NS + "services.tools.defaultUri", {"enabled": True}))
    assert [k for k, _ in found] == [NS + "services.tools.defaultUri.reason"]


# IAP's OAuth client --------------------------------------------------------------------------------

def iap(**overrides) -> dict:
    return {"mode": "iap", "members": ["group:devs@example.com"], **overrides}


def test_consumer_accounts_are_refused_with_the_managed_client():
    with pytest.raises(ValidationError, match="consumer accounts belong to no organization") as error:
        AccessArgs.model_validate(iap(members=["user:someone@gmail.com", "user:a@example.com",
                                               "group:fans@googlegroups.com"]))
    assert "someone@gmail.com" in str(error.value) and "fans@googlegroups.com" in str(error.value)
    assert "a@example.com" not in str(error.value).split("consumer")[0]


_DOMAINS = ["example.com", "partner.example", "gmail.com", "GMail.com", "googlemail.com", "googlegroups.com"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "group", "serviceAccount"]), st.sampled_from(_DOMAINS)),
                min_size=1, max_size=4, unique=True), st.booleans())
def test_managed_client_refuses_exactly_the_consumer_members(members, own_client):
    values = [f"{kind}:someone@{domain}" for kind, domain in members]
    consumer = [m for m, (kind, domain) in zip(values, members)
                if kind != "serviceAccount" and domain.lower() in ("gmail.com", "googlemail.com", "googlegroups.com")]
    access = iap(members=values)
    if own_client:
        access["oauthClient"] = {"clientId": CLIENT, "clientSecret": {"secret": "s"}}
    if consumer and not own_client:
        with pytest.raises(ValidationError) as error:
            AccessArgs.model_validate(access)
        assert all(m in str(error.value) for m in consumer)
    else:
        assert AccessArgs.model_validate(access).members == values


@pytest.mark.parametrize("member", ["user:Someone@GMAIL.com", "user:x@googlemail.com"])
def test_consumer_domains_are_matched_case_insensitively(member):
    with pytest.raises(ValidationError, match="oauthClient"):
        AccessArgs.model_validate(iap(members=[member]))


def test_consumer_accounts_pass_with_your_own_client():
    access = AccessArgs.model_validate(iap(members=["user:someone@gmail.com"], oauthClient={
        "clientId": CLIENT, "clientSecret": {"secret": "iap-client-secret", "version": 2}}))
    assert access.oauth_client.client_id == CLIENT
    assert f"sign-in client {CLIENT}" in access.summary()


@pytest.mark.parametrize("mode", ["iam", "oauth", "public"])
def test_an_oauth_client_goes_with_iap_only(mode):
    value = {"mode": mode, "oauthClient": {"clientId": CLIENT, "clientSecret": {"secret": "s"}}}
    if mode == "iam":
        value["members"] = ["serviceAccount:a@p.iam.gserviceaccount.com"]
    with pytest.raises(ValidationError, match="oauthClient goes with mode iap only"):
        AccessArgs.model_validate(value)


@pytest.mark.parametrize("client", [{"clientId": "not-a-client", "clientSecret": {"secret": "s"}},
                                    {"clientId": CLIENT}, {"clientId": CLIENT, "clientSecret": "plain-text"}])
def test_a_bad_oauth_client_is_refused(client):
    with pytest.raises(ValidationError):
        AccessArgs.model_validate(iap(oauthClient=client))


def test_the_managed_client_leaves_the_iap_block_alone():
    assert backend_iap(AccessArgs.model_validate(iap())) == {"iap": {"enabled": True}}
    assert backend_iap(AccessArgs.model_validate("public")) == {}


def test_your_client_and_its_secret_from_secret_manager_reach_every_shard_backend(record):
    access = iap(members=["user:someone@gmail.com"], oauthClient={
        "clientId": CLIENT, "clientSecret": {"secret": "projects/sec-prj/secrets/iap-client", "version": 4}})
    args = make(session_mode="in-memory-sessions", pinning="shards", shards=2, access=access)
    plan = record(lambda: CloudRunMcpService("tools", args, network=NETWORK))
    backends = plan.by_type(BACKEND)
    assert len(backends) == 4
    for backend in backends:
        block = backend.inputs["iap"]
        assert block["enabled"] is True and block["oauth2ClientId"] == CLIENT
        assert block["oauth2ClientSecret"]["value"] == "[secret]"  # a Pulumi secret, masked in every plan


class _SecretMocks(GcpMocks):
    """Record each Secret Manager lookup and answer it with a payload."""

    def __init__(self):
        self.lookups = []

    def call(self, args):
        if args.token == "gcp:secretmanager/getSecretVersion:getSecretVersion":
            self.lookups.append({k: args.args.get(k) for k in ("project", "secret", "version")})
            return {"secretData": "client-secret-payload", "secret": args.args.get("secret"), "version": "4"}
        return super().call(args)


def test_the_secret_is_looked_up_in_its_project_and_version_and_stays_a_secret():
    mocks = _SecretMocks()
    access = iap(oauthClient={"clientId": CLIENT,
                              "clientSecret": {"secret": "projects/sec-prj/secrets/iap-client", "version": 4}})
    plan = run_function(lambda: CloudRunMcpService("tools", make(access=access), network=NETWORK),
                        project="test", stack="test", mock=mocks, preview=False)
    assert mocks.lookups == [{"project": "sec-prj", "secret": "iap-client", "version": "4"}]
    backend = plan.get(BACKEND, "tools")
    assert backend.manifest()["iap"]["oauth2ClientSecret"] == "client-secret-payload"
    assert "client-secret-payload" not in json.dumps(plan.to_json())


def test_members_of_several_domains_with_the_managed_client_are_warned_about(record):
    args = make(access=iap(members=["user:a@example.com", "user:b@partner.example"]), session_mode="stateless")
    plan = record(lambda: CloudRunMcpService("tools", args, network=NETWORK, hosts=["mcp.example.com"]))
    assert any("2 domains (example.com, partner.example)" in w and "oauthClient" in w for w in plan.warnings)
    one = record(lambda: CloudRunMcpService("tools", make(access=iap()), network=NETWORK))
    assert not any("domains" in w for w in one.warnings)


# Adaptive Protection's auto-deploy (Cloud Armor Enterprise) -----------------------------------------

def _policy(*edges) -> list[dict]:
    from mcp_affinity.security_policy import EdgePolicyArgs, policy_rules
    scopes = {f"s{i}": {"edge": edge, "hosts": [f"s{i}.example.com"], "scoped": len(edges) > 1}
              for i, edge in enumerate(edges)}
    return policy_rules(EdgePolicyArgs(prefix="mcp-t", scopes=scopes))


def test_without_enterprise_nothing_is_deployed():
    assert not [r for r in _policy({}) if "AutoDeploy" in str(r["match"])]


def test_auto_deploy_is_one_placeholder_rule_ahead_of_every_throttle():
    rules = _policy({}, {"adaptiveProtectionAutoDeploy": True})
    placeholder = [r for r in rules if "AutoDeploy" in str(r["match"])]
    assert placeholder == [{"priority": 900, "action": "deny(403)", "description":
                            "Adaptive Protection auto-deploy (Cloud Armor Enterprise)",
                            "match": {"expr": {"expression": "evaluateAdaptiveProtectionAutoDeploy()"}}}]
    throttles = [r["priority"] for r in rules if r["action"] == "throttle"]
    assert throttles and min(throttles) > 900  # a throttle that lets a request through ends the evaluation
    assert len({r["priority"] for r in rules}) == len(rules)


def test_auto_deploy_needs_adaptive_protection():
    from mcp_affinity.security_policy import EdgeArgs
    with pytest.raises(ValidationError, match="needs adaptiveProtection: true"):
        EdgeArgs.model_validate({"adaptiveProtection": False, "adaptiveProtectionAutoDeploy": True})


def test_the_policy_flags_a_fronted_service_whose_run_app_url_is_on_without_a_reason():
    from mcp_affinity.policies import check_plan
    from test_policies import backend, neg, res, run_service  # noqa: F401 (res keeps the fixture module whole)

    def violations(**inputs):
        found = check_plan({"project": "p", "stack": "dev", "resources": [
            run_service(**inputs), neg(), backend(group="tools-eu-id")]})
        return [v for v in found if v.rule == "cloud-run-ingress-and-timeout"]

    assert violations() == []
    (found,) = violations(defaultUriDisabled=False)
    assert "run.app URL is on" in found.message and DEFAULT_URI_REASON in found.message
    assert violations(defaultUriDisabled=False, annotations={DEFAULT_URI_REASON: REASON}) == []
    assert len(violations(defaultUriDisabled=None)) == 1
