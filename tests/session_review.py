"""A reviewed change of the sharded example, as two offline plans and as a real preview's JSON.

BASE is ``examples/Pulumi.cloud-run-shards.yaml`` with a second IAP member on ``tools``
(``group:mcp-oncall@example.com``); HEAD is the example as committed with ``tools`` at image
``legacy:1.1.0``: the new revision ends the sessions of the six shard instances, and the member
is removed.

``tests/fixtures/preview-cloud-run-shards.json`` is that change as ``pulumi preview --json`` writes
it (https://www.pulumi.com/docs/iac/cli/commands/pulumi_preview/: "--json  Serialize the preview
diffs, operations, and overall output as JSON"; the document is Pulumi's ``PreviewDigest``,
``pkg/display/json.go``, written by ``ShowPreviewDigest`` in ``pkg/backend/display/json.go``):
``steps`` in the order the engine emits them, each ``{"op", "urn", "provider", "oldState",
"newState", "diffReasons", "replaceReasons", "detailedDiff"}`` with empty fields left out but
``detailedDiff`` always present; each state an ``apitype.ResourceV3``; unchanged resources left out
(no ``--show-sames``) except the root stack; secrets as ``"[secret]"``; then ``diagnostics``,
``duration`` (nanoseconds) and ``changeSummary``; indented by four spaces. Run
``.venv/bin/python tests/session_review.py`` to rewrite it and the README's sample;
``tests/test_session_review.py`` fails while they and the plans disagree. The fixture keeps the
generation guards' digests unknown, as the offline plans have them; a real preview of this change,
which knows them, also fails at each guard (:mod:`mcp_affinity.generation_guard`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from conftest import ROOT  # noqa: E402
from mcp_affinity.cli import find_project, run_plan  # noqa: E402
from mcp_affinity.cli.diff import diff_plans, to_text  # noqa: E402
from mcp_affinity.cli.runner import Plan  # noqa: E402
from mcp_affinity.wire import SECRET_SIG  # noqa: E402

EXAMPLE = "cloud-run-shards"
FIXTURE = ROOT / "tests" / "fixtures" / "preview-cloud-run-shards.json"
ONCALL = "group:mcp-oncall@example.com"
ROOT_STACK = "pulumi:pulumi:Stack"


def plan_example_as(name: str, edit: Callable[[dict], Any], stack: str = EXAMPLE) -> Plan:
    """The plan of ``examples/Pulumi.<name>.yaml`` after ``edit(config)``, as stack ``stack``."""
    document = yaml.safe_load((ROOT / "examples" / f"Pulumi.{name}.yaml").read_text())
    edit(document["config"])
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project.update(main=str(ROOT / "infra"), stackConfigDir=".")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "Pulumi.yaml").write_text(yaml.safe_dump(project))
        (Path(folder) / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
        return run_plan(dataclasses.replace(find_project(Path(folder))), stack)


def with_oncall(config: dict) -> None:
    config["mcp-affinity:services"]["tools"]["access"]["members"].append(ONCALL)


def bump_image(config: dict) -> None:
    tools = config["mcp-affinity:services"]["tools"]
    tools["image"] = tools["image"].rsplit(":", 1)[0] + ":1.1.0"


def plans(stack: str = EXAMPLE) -> tuple[dict, dict]:
    """(BASE, HEAD) as ``check`` and ``diff`` read them."""
    return (plan_example_as(EXAMPLE, with_oncall, stack).document(),
            plan_example_as(EXAMPLE, bump_image, stack).document())


def preview_digest(base: dict, head: dict) -> dict:
    """The change from ``base`` to ``head`` as ``pulumi preview --json`` writes it (see the module docstring)."""
    diff = diff_plans(base, head)
    old, new = {r["urn"]: r for r in base["resources"]}, {r["urn"]: r for r in head["resources"]}
    stack_urn = f"urn:pulumi:{head['stack']}::{head['project']}::{ROOT_STACK}::{head['project']}-{head['stack']}"
    steps = [{"op": "same", "urn": stack_urn,
              "oldState": _state(stack_urn, ROOT_STACK, False, None, {}, base["outputs"]),
              "newState": _state(stack_urn, ROOT_STACK, False, None, {}, head["outputs"]), "detailedDiff": None}]
    for change in diff.changed:
        before, after = old[change.urn], new[change.urn]
        keys = sorted({c.path.split(".")[0].split("[")[0] for c in change.counted})
        steps.append({"op": "update", "urn": change.urn, "provider": _provider(after),
                      "oldState": _resource_state(before), "newState": _resource_state(after),
                      "diffReasons": keys,
                      "detailedDiff": {_detail(c.path): {"kind": "update", "inputDiff": True} for c in change.counted}})
    for ref in diff.removed:
        steps.append({"op": "delete", "urn": ref.urn, "provider": _provider(old[ref.urn]),
                      "oldState": _resource_state(old[ref.urn]), "detailedDiff": None})
    return {"steps": steps, "duration": 5210000000,
            "changeSummary": {"delete": len(diff.removed), "same": 60, "update": len(diff.changed)}}


def _provider(resource: dict) -> str:
    return f"urn:pulumi:{resource['urn'].split('::')[0][len('urn:pulumi:'):]}::{resource['urn'].split('::')[1]}" \
           f"::pulumi:providers:gcp::default_8_41_1::04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _detail(path: str) -> str:
    # The engine's property paths index lists with brackets: template.containers[0].image.
    return path.replace("[mcp]", "[0]")


def _resource_state(resource: dict) -> dict:
    inputs = _blind(resource["inputs"])
    state = _state(resource["urn"], resource["type"], resource["custom"], resource["parent"], inputs, inputs)
    state.update({"id": f"{resource['name']}-id", "provider": _provider(resource)})
    if resource["dependencies"]:
        state["dependencies"] = resource["dependencies"]
    return state


def _state(urn: str, type_: str, custom: bool, parent: Any, inputs: dict, outputs: dict) -> dict:
    state = {"urn": urn, "custom": custom, "type": type_, "inputs": inputs, "outputs": outputs,
             "created": "2026-11-30T09:12:44.123456Z", "modified": "2026-11-30T09:12:44.123456Z"}
    return {**state, "parent": parent} if parent else state


def _blind(value: Any) -> Any:
    """Secrets as the engine's JSON display writes them: the string ``[secret]``."""
    if isinstance(value, dict):
        return "[secret]" if SECRET_SIG in value else {k: _blind(v) for k, v in value.items()}
    return [_blind(v) for v in value] if isinstance(value, list) else value


README = ROOT / "README.md"
_BLOCK = re.compile(r"(<!-- session-review:begin -->\n```text\n)(.*?)(```\n<!-- session-review:end -->)", re.S)


def readme_block(text: str) -> str:
    """The review the README shows (README "What a change does to live sessions and to who may call")."""
    match = _BLOCK.search(text)
    return match.group(2) if match else ""


def write_fixture_and_readme() -> None:
    base, head = plans()
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(preview_digest(base, head), indent=4) + "\n")
    review = to_text(diff_plans(base, head))
    README.write_text(_BLOCK.sub(lambda m: m.group(1) + review + m.group(3), README.read_text()))


if __name__ == "__main__":
    write_fixture_and_readme()
    print(f"{FIXTURE.relative_to(ROOT)} and the README's session review rewritten")
