"""``requiredApis`` names exactly the APIs of what a stack creates, the README lists them once
(generated), and its ``gcloud services enable`` line works as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, plan_example, plan_stack

sys.path.insert(0, str(ROOT / "infra"))
import apis  # noqa: E402

FEATURE_APIS = {"mesh.googleapis.com", "binaryauthorization.googleapis.com"}
"""APIs a setting needs without a resource of its own in the plan."""

PLANS = [("stack", s) for s in ("dev", "staging", "prod")] + [
    ("example", p.name[len("Pulumi."):-len(".yaml")]) for p in sorted((ROOT / "examples").glob("Pulumi.*.yaml"))]


@pytest.mark.parametrize("kind,name", PLANS)
def test_required_apis_are_exactly_those_of_the_planned_resources(kind, name):
    plan = plan_stack(name) if kind == "stack" else plan_example(name)
    used = {f"{apis.api_of(r.type)}.googleapis.com" for r in plan.resources if r.type.startswith("gcp:")}
    required = set(plan.outputs["requiredApis"])
    assert used <= required and required - used <= FEATURE_APIS, (sorted(used), sorted(required))


def test_a_stack_without_a_store_needs_neither_redis_nor_service_networking():
    plan = plan_example("gke-in-memory-learned")
    assert not plan.by_type("gcp:redis/instance:Instance")
    assert not plan.by_type("gcp:servicenetworking/connection:Connection")
    assert not {"redis.googleapis.com", "servicenetworking.googleapis.com"} & set(plan.outputs["requiredApis"])


def test_every_api_has_its_use_listed():
    assert set(apis.RESOURCE_APIS.values()) | set(apis.TYPE_APIS.values()) \
        | {a.removesuffix(".googleapis.com") for a in FEATURE_APIS} == set(apis.API_USES)


def _readme_line(start: str) -> str:
    return next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(start))


def test_plan_json_dash_writes_only_json_to_stdout():
    bin_dir = Path(sys.executable).parent
    result = subprocess.run([str(bin_dir / "mcp-affinity"), "plan", "--stack", "dev", "--json", "-"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    document = json.loads(result.stdout)
    assert document["stack"] == "dev" and "resources to create" in result.stderr


def test_the_readme_gcloud_line_enables_the_required_apis():
    line = _readme_line("gcloud services enable ")
    bin_dir = Path(sys.executable).parent
    command = "echo" + line.removeprefix("gcloud").replace(".venv/bin/", f"{bin_dir}/")
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[:2] == ["services", "enable"]
    assert words[2:] == plan_stack("dev").outputs["requiredApis"] and all(re.fullmatch(r"[a-z]+\.googleapis\.com", w)
                                                                             for w in words[2:])
