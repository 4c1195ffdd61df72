"""The generation guard of a sharded Cloud Run service with a drain: what its provider's ``check``
refuses (pure, olds/news dicts), the provider answering in Pulumi's own dynamic-provider process,
and what a service registers (digests, dependencies) under mocks."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from helpers import NETWORK
from test_cloud_run_shards import DEPLOYED, NOW, RUN, make, one_region
from mcp_affinity import CloudRunMcpService
from conftest import ROOT, plan_example
from mcp_affinity.generation_guard import (
    GenerationGuardProvider, digest, reused_revision, reused_revisions, revision_key)
from mcp_affinity.wire import GENERATION_GUARD, MASKED, SECRET_SIG, SECRET_VALUE_SIG, UNKNOWN

S0 = revision_key("europe-west1", "mcp-t-tools-s0-gen7")
S1 = revision_key("europe-west1", "mcp-t-tools-s1-gen7")
REFUSAL = ("Cloud Run service mcp-t-tools-s0 keeps revision mcp-t-tools-s0-gen7 while its template changes "
           "(template.containers): Cloud Run refuses a second revision of that name, so pulumi up fails; add a "
           'generation: services.tools.generations: {"8": "<now, UTC>"}')
A = {"template.containers": "sha256:a", "template.timeout": "sha256:t"}
B = {**A, "template.containers": "sha256:b"}


def inputs(revisions, generation=7, service="tools", project="") -> dict:
    return {"service": service, "generation": generation, "project": project, "revisions": revisions}


def secret(value):
    return {SECRET_SIG: SECRET_VALUE_SIG, "value": value}


SECRET_A = {**A, "template.containers": secret("sha256:a")}
SECRET_B = {**A, "template.containers": secret("sha256:b")}


@pytest.mark.parametrize("olds,news,refused", [
    ({}, inputs({S0: B}), []),                                                    # a create: nothing to compare
    (inputs({S0: A, S1: A}), inputs({S0: A, S1: A}), []),
    (inputs({S0: A, S1: A}), inputs({S0: B, S1: A}), [REFUSAL]),
    (inputs({S0: A}), inputs({S0: {**B, "template.timeout": "sha256:u"}}),
     [REFUSAL.replace("(template.containers)", "(template.containers, template.timeout)")]),
    (inputs({S0: A}), inputs({S0: {**A, "template.volumes": UNKNOWN}}),            # a field added, even unknown
     [REFUSAL.replace("(template.containers)", "(template.volumes)")]),
    (inputs({S0: A}), inputs({S0.replace("gen7", "gen8"): B}, 8), []),             # a new generation
    (inputs({S0: A}), inputs({S0: A, S1: B}), []),                                 # a shard added
    (inputs({S0: A, S1: A}), inputs({S1: A}), []),                                 # a shard removed
    (inputs({S0: A}), inputs({S0: B}, project="other-project"), []),              # another project's revisions
    (inputs({S0: A}, project="p"), inputs({S0: B}, project="p"), [REFUSAL]),
    (inputs({S0: A}), inputs({S0: {**A, "template.containers": UNKNOWN}}), []),     # known after apply: judged then
    (inputs({S0: A}), inputs({S0: {**B, "template.volumes": UNKNOWN, "template.timeout": UNKNOWN}}),
     [REFUSAL.replace("(template.containers)", "(template.containers, template.volumes)")]),  # the known part judged
    (inputs({S0: A}), inputs({S0: UNKNOWN}), []),
    (inputs({S0: A}), inputs(UNKNOWN), []),
    (inputs({S0: SECRET_A}), inputs({S0: SECRET_A}), []),                        # digests of secrets: by value
    (inputs({S0: SECRET_A}), inputs({S0: SECRET_B}), [REFUSAL]),
    (inputs({S0: A}), inputs({S0: B}, service=UNKNOWN), [REFUSAL.replace("services.tools.", "services.<service>.")]),
])
def test_check_refuses_a_known_template_change_under_a_kept_revision_name(olds, news, refused):
    assert reused_revisions(olds, news) == refused
    result = GenerationGuardProvider().check(olds, news)
    assert result.inputs is news and [(f.property, f.reason) for f in result.failures] == [("", r) for r in refused]


def test_the_review_and_the_readme_say_it_in_the_same_words():
    """The review's rule and the guard share one message builder; the README quotes the guard."""
    assert reused_revision("mcp-t-tools-s0", "mcp-t-tools-s0-gen7", "tools", "template.containers") == REFUSAL
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert " ".join(REFUSAL.split()) in readme, "README.md quotes another refusal"


def test_the_digest_is_canonical_and_refuses_what_json_cannot_hold():
    assert digest({"a": 1, "b": [True, None]}) == digest({"b": [True, None], "a": 1})
    assert digest({"a": 1}) != digest({"a": "1"})
    assert digest({"a": 1}).startswith("sha256:") and len(digest({})) == 7 + 16
    with pytest.raises(TypeError):
        digest({"a": object()})


def _struct(props: dict):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def test_pulumis_dynamic_provider_process_unpickles_the_guard_and_returns_its_failures(tmp_path):
    """What the engine talks to: ``python -m pulumi.dynamic`` (the SDK's ``pulumi-resource-pulumi-python``
    runs exactly that), started outside the repository, gets the provider as the SDK serializes it
    (by reference: the class is imported there) and answers ``Check`` over gRPC on loopback."""
    provider = serialize_provider(GenerationGuardProvider())
    urn = f"urn:pulumi:dev::mcp-affinity::{GENERATION_GUARD}::tools-generation-guard"
    process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.dynamic"], stdout=subprocess.PIPE, cwd=tmp_path)
    try:
        port = int(process.stdout.readline())  # the server prints its port once it listens
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)

            def check(olds: dict, news: dict) -> list[tuple[str, str]]:
                request = provider_pb2.CheckRequest(urn=urn, olds=_struct({**olds, "__provider": provider} if olds else {}),
                                                    news=_struct({**news, "__provider": provider}))
                return [(f.property, f.reason) for f in stub.Check(request, timeout=120).failures]

            assert check(inputs({S0: A}), inputs({S0: B})) == [("", REFUSAL)]
            assert check(inputs({S0: A}), inputs({S0: A})) == []
            assert check(inputs({S0: A}), inputs({S0: {**A, "template.containers": UNKNOWN}})) == []  # kept unknown
            assert check({}, inputs({S0: B})) == []
    finally:
        process.kill()
        process.wait()


# Under mocks: what a sharded service with a drain registers.

def guard_of(plan):
    (guard,) = plan.by_type(GENERATION_GUARD)
    return guard


def plan_of(record, args, hosts=(), secret_env=frozenset()):
    return record(lambda: CloudRunMcpService("tools", args, network=NETWORK, hosts=hosts, secret_env=secret_env, now=NOW))


def test_a_sharded_service_registers_its_guard_and_each_shard_waits_for_it(record):
    plan = plan_of(record, one_region())
    guard = guard_of(plan)
    assert guard.parent.endswith("mcp-affinity:index:CloudRunMcpService::tools") and guard.name == "tools-generation-guard"
    assert guard.inputs["service"] == "tools" and guard.inputs["generation"] == 7 and guard.inputs["project"] == ""
    assert guard.inputs["__provider"] == secret(MASKED)  # the pickled provider, a secret by the SDK's default
    revisions = guard.inputs["revisions"]
    assert sorted(revisions) == [S0, S1]
    assert sorted(revisions[S0]) == ["template." + f for f in (
        "containers", "maxInstanceRequestConcurrency", "revision", "scaling", "serviceAccount", "sessionAffinity",
        "timeout", "volumes", "vpcAccess")]
    assert all(d.startswith("sha256:") for fields in revisions.values() for d in fields.values())
    # Each shard's containers carry its own key; the rest of the template is the same but its revision name.
    assert {f for f in revisions[S0] if revisions[S0][f] != revisions[S1][f]} == {"template.containers", "template.revision"}
    for service in plan.by_type(RUN):
        assert guard.urn in service.options()["dependsOn"], service.name


def digests(plan) -> dict:
    return guard_of(plan).inputs["revisions"]


def templates(plan) -> dict:
    return {r.name: r.inputs["template"] for r in plan.by_type(RUN)}


@pytest.mark.parametrize("args,hosts,changes", [
    (one_region(image="img:2"), (), True),                                       # a new image
    (one_region(env={"LEVEL": "debug"}), (), True),                              # env
    (one_region(memory="1Gi"), (), True),                                        # resources
    (one_region(timeout_seconds=600), (), True),                                 # proxy config: a new secret version's content
    (make(regions=["europe-west1"], generations={**DEPLOYED, "7": "2026-12-06T19:50:00Z"}), (), False),  # timestamps
    (one_region(), ("tools.example.com",), False),                               # hosts
    (one_region(log_sample_rate=0.5), (), False),                                # the backend service's logging
])
def test_the_digest_changes_exactly_when_a_shards_template_changes(record, args, hosts, changes):
    before = plan_of(record, one_region())
    after = plan_of(record, args, hosts)
    assert (templates(after) != templates(before)) is changes
    assert {path: digests(after)[path] != fields for path, fields in digests(before).items()} == {S0: changes, S1: changes}


def test_a_secret_in_the_template_keeps_its_digest_a_secret(record):
    plan = plan_of(record, one_region(env={"API_KEY": "s3cr3t-value"}), secret_env={"API_KEY"})
    for fields in digests(plan).values():
        assert fields["template.containers"] == secret(MASKED) and fields["template.timeout"].startswith("sha256:")
    assert "s3cr3t-value" not in str(guard_of(plan).inputs)


def test_no_guard_without_named_revisions(record):
    assert plan_of(record, make(regions=["europe-west1"], session_drain_seconds=0)).by_type(GENERATION_GUARD) == []
    assert plan_of(record, make(regions=["europe-west1"], image_managed_by_ci=True)).by_type(GENERATION_GUARD) == []


def test_in_an_offline_plan_the_fields_holding_ids_known_only_after_apply_stay_unknown():
    """``mcp-affinity plan`` creates everything, so ids (network, secret, account) are unknown: the
    fields holding them read unknown, the rest is digested, and two plans agree."""
    guard = plan_example("cloud-run-shards").get(GENERATION_GUARD, "tools-generation-guard")
    assert len(guard.inputs["revisions"]) == 6  # 2 regions x 3 shards
    for fields in guard.inputs["revisions"].values():
        assert {f for f, d in fields.items() if d == UNKNOWN} == {
            "template.serviceAccount", "template.volumes", "template.vpcAccess"}
        assert fields["template.containers"].startswith("sha256:")
