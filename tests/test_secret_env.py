"""Secrets in the environment (#19 item 7): ``secretEnv`` from Secret Manager with the accessor role,
plain ``env`` values that detect-secrets flags refused under their key and never shown in a plan,
a diff or a picture; values that are URLs, paths, numbers or words pass whatever the name."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from hypothesis import given, settings, strategies as st
from mcp_affinity.errors import SettingsError

from conftest import ROOT, plan_example
from helpers import NETWORK
from mcp_affinity import CloudRunMcpService, CloudRunMcpServiceArgs
from mcp_affinity.cli import diff as plan_diff
from mcp_affinity.cli import find_project, mermaid, run_plan
from mcp_affinity.cli.plan_file import validate
from mcp_affinity.secret_env import SECRET_ACCESSOR, flagged, mask_flagged_env
from test_hostile_config import NS, mutate, problems

RUN = "gcp:cloudrunv2/service:Service"
GRANT = "gcp:secretmanager/secretIamMember:SecretIamMember"
# The issue's case: an OpenAI-style live key written as plain text under env.
LIVE_KEY = "sk-live-51HqT9xKZvY3mN8pQ2rS7tU4wV6xY9zA1bC3dE5fG7hJ"
SECRETS = [LIVE_KEY, "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", "AKIAIOSFODNN7EXAMPLE",
           "https://app:hunter2hunter2@db.internal.example.com/app",
           "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"]
PLAIN = ["https://api.openai.com/v1", "https://storage.googleapis.com/my-bucket/models/embedding-v2.json",
         "/var/run/secrets/mcp/token", "/workspace/data/models/embedding-v2/tokenizer_config_final", "12345",
         "0.5", "1234567890123456789012345", "info", "debug", "true", "shared-sessions", "hello world",
         "The quick brown fox jumps over the lazy dog", "gpt-4o-mini-2024-07-18", "europe-west1",
         "postgres://app@10.0.0.3:5432/app", "sk-live-abc", "OPENAI_API_KEY_PLACEHOLDER"]


def make(**overrides) -> CloudRunMcpServiceArgs:
    values = dict(prefix="mcp-t", image="img:1", session_mode="stateless", access="public")
    return CloudRunMcpServiceArgs(**{**values, **overrides})


def envs(plan, name="tools-europe-west1") -> dict:
    return {e["name"]: e for e in plan.get(RUN, name).inputs["template"]["containers"][0]["envs"]}


# The scanner's verdicts --------------------------------------------------------------------------

@pytest.mark.parametrize("value", SECRETS)
def test_the_scanner_flags_keys_tokens_and_credentials_in_urls(value):
    assert flagged([value])[value]


@pytest.mark.parametrize("value", PLAIN)
def test_urls_paths_numbers_and_words_pass(value):
    assert flagged([value])[value] == []


# The stack check ---------------------------------------------------------------------------------

def test_a_plain_live_key_is_refused_under_its_key_without_printing_it():
    found = problems(mutate(NS + "services.tools.env", {"OPENAI_API_KEY": LIVE_KEY, "LOG_LEVEL": "info"}))
    assert [key for key, _ in found] == [NS + "services.tools.env.OPENAI_API_KEY"]
    message = found[0][1]
    assert "secretEnv" in message and "secure" in message and "detect-secrets" in message
    assert LIVE_KEY not in message and "51HqT9" not in message


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "DB_PASSWORD", "TOKEN", "SECRET"])
@pytest.mark.parametrize("value", PLAIN)
def test_plain_values_pass_whatever_the_name(name, value):
    assert problems(mutate(NS + "services.tools.env", {name: value})) == []


def test_every_flagged_value_of_every_service_is_reported_at_once():
    config = mutate(NS + "services.tools.env", {"A": SECRETS[1], "B": "fine"})
    config[NS + "services"]["tools"]["env"]["C"] = SECRETS[2]
    keys = [key for key, _ in problems(config)]
    assert keys == [NS + "services.tools.env.A", NS + "services.tools.env.C"]


def test_mesh_service_env_is_scanned_too():
    config = mutate(NS + "meshServices.notes.env", {"OPENAI_API_KEY": LIVE_KEY})
    found = problems(config)
    assert [key for key, _ in found] == [NS + "meshServices.notes.env.OPENAI_API_KEY"]
    assert LIVE_KEY not in found[0][1]


def test_under_a_secure_key_values_are_secrets_already_and_pass():
    # Pulumi hands the program a secure value decrypted and marks the whole top-level key secret.
    config = mutate(NS + "services.tools.env", {"OPENAI_API_KEY": LIVE_KEY})
    assert problems(config, secret_keys=[NS + "services"]) == []


def test_secret_env_is_validated_under_its_key():
    config = mutate(NS + "services.tools.secretEnv", {"OPENAI_API_KEY": {"secret": "bad/name", "version": 0},
                                                      "PORT": {"secret": "ok"}})
    keys = sorted(key for key, _ in problems(config))
    assert NS + "services.tools.secretEnv.OPENAI_API_KEY.secret" in keys
    assert NS + "services.tools.secretEnv.OPENAI_API_KEY.version" in keys
    assert any(k.startswith(NS + "services.tools.secretEnv.PORT") for k in keys)


def test_a_variable_in_env_and_secret_env_is_refused():
    with pytest.raises(SettingsError, match="KEY is also in env"):
        make(env={"KEY": "x"}, secret_env={"KEY": {"secret": "s"}})


@pytest.mark.parametrize("version", ["latest", "1", 7, "12"])
def test_versions_are_numbers_or_latest(version):
    assert make(secret_env={"K": {"secret": "s", "version": version}}).secret_env["K"].version == str(version)


@pytest.mark.parametrize("version", ["0", "-1", "v1", "", True, 1.5, "latest "])
def test_other_versions_are_refused(version):
    with pytest.raises(SettingsError, match="version"):
        make(secret_env={"K": {"secret": "s", "version": version}})


@pytest.mark.parametrize("secret", ["", "a/b", "projects/p/secrets/", "x" * 256, "projects/UPPER/secrets/s"])
def test_bad_secret_names_are_refused(secret):
    with pytest.raises(SettingsError, match="Secret Manager secret"):
        make(secret_env={"K": {"secret": secret}})


# Cloud Run ---------------------------------------------------------------------------------------

def test_secret_env_reads_each_variable_from_its_version_and_grants_the_accessor(record):
    args = make(secret_env={"OPENAI_API_KEY": {"secret": "openai", "version": 3},
                            "OTHER": {"secret": "projects/shared-prj/secrets/other"}})
    plan = record(lambda: CloudRunMcpService("tools", args, network=NETWORK))
    env = envs(plan)
    assert env["OPENAI_API_KEY"] == {"name": "OPENAI_API_KEY", "valueSource": {
        "secretKeyRef": {"secret": "openai", "version": "3"}}}
    assert env["OTHER"]["valueSource"]["secretKeyRef"] == {"secret": "projects/shared-prj/secrets/other",
                                                           "version": "latest"}
    own = plan.get(GRANT, "tools-secret-openai").inputs
    other = plan.get(GRANT, "tools-secret-projects-shared-prj-secrets-other").inputs
    for grant, project, secret in ((own, None, "openai"), (other, "shared-prj", "other")):
        assert grant["role"] == SECRET_ACCESSOR and grant["secretId"] == secret
        assert grant.get("project") == project
        assert grant["member"] == "serviceAccount:sa@p.iam.gserviceaccount.com"  # the service's own account
    # Cloud Run checks access to the secret when it deploys a revision: the grants come first.
    grants = {r.urn for r in plan.by_type(GRANT)}
    assert len(grants) == 2
    for run in plan.by_type(RUN):
        assert grants <= set(run.dependencies)


def test_each_shard_reads_the_secret_and_one_grant_covers_them(record):
    args = make(session_mode="in-memory-sessions", pinning="shards", shards=2, access="oauth",
                secret_env={"OPENAI_API_KEY": {"secret": "openai", "version": 2}})
    plan = record(lambda: CloudRunMcpService("tools", args, network=NETWORK))
    runs = plan.by_type(RUN)
    assert len(runs) == 4
    for run in runs:
        server = [c for c in run.inputs["template"]["containers"] if c.get("image") == "img:1"][0]
        refs = [e["valueSource"]["secretKeyRef"] for e in server["envs"] if e["name"] == "OPENAI_API_KEY"]
        assert refs == [{"secret": "openai", "version": "2"}]
        assert plan.get(GRANT, "tools-secret-openai").urn in run.dependencies
    assert [g.name for g in plan.by_type(GRANT) if g.inputs["secretId"] == "openai"] == ["tools-secret-openai"]


def test_a_component_refuses_a_flagged_env_value_not_marked_secret_without_printing_it(record):
    args = make(env={"OPENAI_API_KEY": LIVE_KEY})
    with pytest.raises(ValueError) as error:
        CloudRunMcpService("tools", args, network=NETWORK)
    assert "env.OPENAI_API_KEY" in str(error.value) and LIVE_KEY not in str(error.value)
    plan = record(lambda: CloudRunMcpService("tools", args, network=NETWORK, secret_env={"OPENAI_API_KEY"}))
    assert envs(plan)["OPENAI_API_KEY"]["value"]["value"] == "[secret]"


def test_the_example_stack_plans_secret_env_with_the_accessor():
    plan = plan_example("cloud-run-secret-env")
    env = envs(plan, "assistant-europe-west1")
    assert env["OPENAI_API_KEY"]["valueSource"]["secretKeyRef"] == {"secret": "openai-api-key", "version": "3"}
    assert env["OPENAI_BASE_URL"]["value"] == "https://api.openai.com/v1"
    grant = plan.get(GRANT, "assistant-secret-openai-api-key").inputs
    assert grant["role"] == SECRET_ACCESSOR and grant["secretId"] == "openai-api-key"


# Plans, diffs and pictures never show a flagged value ----------------------------------------------

def _with_plain_key(tmp_path, stack: str = "leaky") -> dict:
    """A plan document of the staging stack whose tools service holds a plain key, as a plan file
    written before values were scanned would (the stack check refuses such a stack today)."""
    project = find_project(ROOT)
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    config["config"][NS + "services"]["tools"].setdefault("env", {})["LEVEL"] = "info"
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(config))
    plan = run_plan(dataclasses.replace(project, stack_config_dir=tmp_path), stack).document()
    for resource in plan["resources"]:
        for container in resource["inputs"].get("template", {}).get("containers", []):
            for env in container.get("envs", []):
                if env["name"] == "LEVEL":
                    env["value"] = LIVE_KEY
    return plan


def test_a_plan_masks_a_flagged_env_value_of_any_resource(record):
    import pulumi_gcp as gcp
    import pulumi_kubernetes as k8s

    def program():
        gcp.cloudrunv2.Service("raw", location="europe-west1", template={"containers": [{"image": "i", "envs": [
            {"name": "OPENAI_API_KEY", "value": LIVE_KEY}, {"name": "LEVEL", "value": "info"}]}]})
        k8s.apps.v1.Deployment("raw", spec={"selector": {}, "template": {"spec": {"containers": [
            {"name": "app", "image": "i", "env": [{"name": "TOKEN", "value": SECRETS[1]}]}]}}})
    plan = record(program)
    text = json.dumps(plan.to_json())
    assert LIVE_KEY not in text and SECRETS[1] not in text
    assert envs(plan, "raw")["LEVEL"]["value"] == "info"
    assert envs(plan, "raw")["OPENAI_API_KEY"]["value"] == "[secret]"


def test_diff_and_picture_of_an_older_plan_never_show_a_flagged_value(tmp_path):
    head = _with_plain_key(tmp_path)
    assert json.dumps(head).count(LIVE_KEY) >= 2  # the document as written, one per region
    base = json.loads(json.dumps(head).replace(LIVE_KEY, "info"))
    result = plan_diff.diff_plans(validate(base), validate(head))
    shown = plan_diff.to_text(result) + plan_diff.to_markdown(result)
    assert LIVE_KEY not in shown and "51HqT9" not in shown
    assert "[secret]" in shown  # the change is still reported
    assert LIVE_KEY not in mermaid.to_mermaid(validate(head))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SECRETS), st.lists(st.sampled_from(PLAIN), max_size=4))
def test_masking_hides_every_flagged_value_and_keeps_the_rest(secret, plain):
    entries = [{"name": f"V{i}", "value": v} for i, v in enumerate([*plain, secret])]
    masked = mask_flagged_env({"template": {"containers": [{"envs": entries}]}})
    values = [e["value"] for e in masked["template"]["containers"][0]["envs"]]
    assert values == [*plain, "[secret]"]


# GKE -------------------------------------------------------------------------------------------

def _gke_service(record, **overrides):
    from helpers import NETWORK as NET, STORE, cluster_args, mesh_args
    from mcp_affinity import (AutonegController, AutonegControllerArgs, GkeCluster, Mesh, MeshGatewayBackend,
                              MeshGatewayBackendArgs, McpMeshService, McpMeshServiceArgs)
    from mcp_affinity.mesh_service import gateway_access

    def program():
        args = McpMeshServiceArgs(**{**dict(prefix="mcp-t", project="my-proj", image="img:1", session_mode="stateless",
                                            hosts=["notes.example.com"], access="public"), **overrides})
        cluster = GkeCluster("gke", cluster_args(secret_sync=True), network=NET).ref()
        autoneg = AutonegController("gke-autoneg", AutonegControllerArgs(prefix="mcp-t", project="my-proj"), cluster=cluster)
        gateway = MeshGatewayBackend("gke-gateway", MeshGatewayBackendArgs(prefix="mcp-t", project="my-proj"),
                                     network=NET, cluster=cluster, **gateway_access({"notes": args}))
        mesh = Mesh("gke-mesh", mesh_args(), cluster=cluster, gateway_backend=gateway.ref(), autoneg=autoneg.ref())
        McpMeshService("notes", args, cluster=cluster, mesh=mesh.ref(), session_store=STORE)
    return record(program)


def test_gke_syncs_the_secret_versions_into_a_secret_the_pods_read(record):
    plan = _gke_service(record, secret_env={"OPENAI_API_KEY": {"secret": "openai", "version": 3},
                                            "OTHER": {"secret": "projects/shared-prj/secrets/other"}})
    cluster = plan.get("gcp:container/cluster:Cluster", "gke").inputs
    assert cluster["secretSyncConfig"] == {"enabled": True} and cluster["secretManagerConfig"] == {"enabled": True}
    provider = plan.get("kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass", "notes-env-provider").inputs
    assert provider["metadata"]["namespace"] == "mcp-t-notes" and provider["spec"]["provider"] == "gke"
    listed = yaml.safe_load(provider["spec"]["parameters"]["secrets"])
    assert listed == [{"resourceName": "projects/my-proj/secrets/openai/versions/3", "path": "OPENAI_API_KEY"},
                      {"resourceName": "projects/shared-prj/secrets/other/versions/latest", "path": "OTHER"}]
    sync = plan.get("kubernetes:secret-sync.gke.io/v1:SecretSync", "notes-env")
    assert sync.inputs["metadata"]["name"] == "notes-env"
    assert sync.inputs["spec"] == {"serviceAccountName": "notes", "secretProviderClassName": "notes-env", "secretObject": {
        "type": "Opaque", "data": [{"sourcePath": "OPENAI_API_KEY", "targetKey": "OPENAI_API_KEY"},
                                   {"sourcePath": "OTHER", "targetKey": "OTHER"}]}}
    deployment = plan.get("kubernetes:apps/v1:Deployment", "notes")
    (app,) = [c for c in deployment.inputs["spec"]["template"]["spec"]["containers"] if c["image"] == "img:1"]
    env = {e["name"]: e for e in app["env"]}
    assert env["OPENAI_API_KEY"] == {"name": "OPENAI_API_KEY",
                                     "valueFrom": {"secretKeyRef": {"name": "notes-env", "key": "OPENAI_API_KEY"}}}
    assert sync.urn in deployment.dependencies  # the Secret exists before the pods that read it
    members = {(g.inputs["secretId"], g.inputs["member"]) for g in plan.by_type(GRANT) if g.name.startswith("notes")}
    principal = ("principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/"
                 "my-proj.svc.id.goog/subject/ns/mcp-t-notes/sa/notes")
    assert members == {(s, m) for s in ("openai", "other")
                       for m in (principal, "serviceAccount:sa@p.iam.gserviceaccount.com")}
    assert all(g.inputs["role"] == SECRET_ACCESSOR for g in plan.by_type(GRANT))
    assert {g.urn for g in plan.by_type(GRANT) if g.name.startswith("notes")} <= set(sync.dependencies)


def test_gke_secret_env_needs_the_clusters_secret_sync():
    config = mutate(NS + "meshServices.notes.secretEnv", {"OPENAI_API_KEY": {"secret": "openai", "version": 3}})
    found = problems(config)
    assert [k for k, _ in found] == [NS + "meshServices.notes.secretEnv"]
    assert "gke.secretSync: true" in found[0][1]
    config[NS + "gke"]["secretSync"] = True
    assert problems(config) == []


def test_a_mesh_service_refuses_secret_env_on_a_cluster_without_sync(record):
    from helpers import STORE, gke as make_gke
    from mcp_affinity import McpMeshService, McpMeshServiceArgs

    def program():
        args = McpMeshServiceArgs(prefix="mcp-t", project="my-proj", image="img:1", session_mode="stateless",
                                  hosts=["notes.example.com"], access="public", secret_env={"K": {"secret": "s"}})
        cluster, _, mesh = make_gke(services={"notes": args})
        McpMeshService("notes", args, cluster=cluster, mesh=mesh, session_store=STORE)
    with pytest.raises(ValueError, match="secret synchronization"):
        record(program)


def test_without_secret_env_the_cluster_keeps_sync_off():
    from conftest import plan_stack
    cluster = plan_stack("staging").get("gcp:container/cluster:Cluster", "gke").inputs
    assert "secretSyncConfig" not in cluster and "secretManagerConfig" not in cluster


def _object(properties: dict, required: list) -> dict:
    return {"type": "object", "properties": properties, "required": required}


_TEXT = {"type": "string"}
# The spec schemas as published: SecretProviderClass (kubernetes-sigs/secrets-store-csi-driver,
# deploy/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml, v1) and GKE's SecretSync
# (secret-sync.gke.io/v1, https://cloud.google.com/secret-manager/docs/sync-k8-secrets).
PROVIDER_CLASS_SPEC = _object({
    "provider": _TEXT, "parameters": {"type": "object", "additionalProperties": _TEXT},
    "secretObjects": {"type": "array", "items": {"type": "object"}}}, [])
SECRET_SYNC_SPEC = _object({
    "serviceAccountName": _TEXT, "secretProviderClassName": _TEXT, "forceSynchronization": _TEXT,
    "secretSyncControllerName": _TEXT,
    "secretObject": _object({
        "type": _TEXT, "labels": {"type": "object", "additionalProperties": _TEXT},
        "annotations": {"type": "object", "additionalProperties": _TEXT},
        "data": {"type": "array", "items": _object({"sourcePath": _TEXT, "targetKey": _TEXT},
                                                    ["sourcePath", "targetKey"])}}, ["data", "type"])},
    ["secretObject", "secretProviderClassName", "serviceAccountName"])


def test_the_synced_objects_fit_their_published_schemas_and_name_real_objects(record):
    from schemas import crd_check
    plan = _gke_service(record, secret_env={"OPENAI_API_KEY": {"secret": "openai", "version": 3}})
    provider = plan.get("kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass", "notes-env-provider").manifest()
    sync = plan.get("kubernetes:secret-sync.gke.io/v1:SecretSync", "notes-env").manifest()
    assert crd_check.validate("spc", PROVIDER_CLASS_SPEC, provider["spec"]) == []
    assert crd_check.validate("sync", SECRET_SYNC_SPEC, sync["spec"]) == []
    for manifest in (provider, sync):
        assert crd_check.validate_metadata(manifest["metadata"], True) == []
    # The sync reads as the pods' own service account, the class it names, each path the class lists.
    assert plan.get("kubernetes:core/v1:ServiceAccount", "notes").inputs["metadata"]["name"] == \
        sync["spec"]["serviceAccountName"]
    assert sync["spec"]["secretProviderClassName"] == provider["metadata"]["name"]
    paths = {item["path"] for item in yaml.safe_load(provider["spec"]["parameters"]["secrets"])}
    assert {d["sourcePath"] for d in sync["spec"]["secretObject"]["data"]} == paths


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.sampled_from(["OPENAI_API_KEY", "DB_URL", "LEVEL", "TOKEN", "MODEL", "DATA_DIR"]),
                       st.sampled_from([*SECRETS, *PLAIN]), max_size=5))
def test_the_stack_refuses_exactly_the_flagged_values_and_never_prints_them(env):
    found = problems(mutate(NS + "services.tools.env", env))
    expected = sorted(NS + f"services.tools.env.{k}" for k, v in env.items() if v in SECRETS)
    assert sorted(key for key, _ in found) == expected
    text = " ".join(message for _, message in found)
    assert not any(v in text for v in env.values() if v in SECRETS)
