"""The README's sample pull-request comment, regenerated from a real diff of two staging plans.

BASE is the staging stack as committed; HEAD deploys ``tools`` at image ``:1.4.0`` and adds the
region ``europe-north1``. Run ``.venv/bin/python tests/readme_sample.py`` to rewrite the README's
````markdown block; ``tests/test_readme_sample.py`` fails while the two differ.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from conftest import ROOT, plan_document  # noqa: E402
from mcp_affinity.cli import find_project, run_plan  # noqa: E402
from mcp_affinity.cli.diff import access_changes, access_markdown, diff_plans, to_markdown  # noqa: E402
from mcp_affinity.cli.plan_file import validate  # noqa: E402

README = ROOT / "README.md"
_BLOCK = re.compile(r"(## Reviewing changes\n.*?````markdown\n)(.*?)(````\n)", re.S)
HEADER = ("## mcp-affinity plan diff\n\n"
          "Credential-free plans (Pulumi mocks, no secrets) of 3f9c2e1 against the base, per stack. [Run](…)\n")


def head_plan() -> dict:
    """Staging with ``tools`` at ``:1.4.0`` and the region ``europe-north1`` added."""
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    config = stack["config"]
    tools = config["mcp-affinity:services"]["tools"]
    tools["image"] = tools["image"].rsplit(":", 1)[0] + ":1.4.0"
    config["mcp-affinity:network"]["subnets"]["europe-north1"] = {"ipCidrRange": "10.20.2.0/24"}
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project.update(main=str(ROOT / "infra"), stackConfigDir=".")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "Pulumi.yaml").write_text(yaml.safe_dump(project))
        (Path(folder) / "Pulumi.staging.yaml").write_text(yaml.safe_dump(stack))
        return run_plan(find_project(Path(folder)), "staging").document()


def sample() -> str:
    """The comment: dev unchanged, then the staging diff (prod and Mermaid pictures left out)."""
    dev = validate(plan_document("dev"))
    base, head = validate(plan_document("staging")), validate(head_plan())
    staging = to_markdown(diff_plans(base, head)) + access_markdown(access_changes(base, head))
    return f"{HEADER}\n{to_markdown(diff_plans(dev, dev))}\n---\n\n{staging}"


def readme_block(text: str) -> str:
    """The ````markdown block of the README's "Reviewing changes" section."""
    match = _BLOCK.search(text)
    if match is None:
        raise LookupError("README.md: no ````markdown block under '## Reviewing changes'")
    return match.group(2)


if __name__ == "__main__":
    text = README.read_text()
    README.write_text(_BLOCK.sub(lambda m: m.group(1) + sample() + m.group(3), text, count=1))
    print("README.md sample comment regenerated")
