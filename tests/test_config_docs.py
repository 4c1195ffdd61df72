"""The README's configuration table, outputs table and list of APIs, and Pulumi.yaml's config block,
are generated from the stack model (itself derived from the components' settings, whose
``Field(description=...)`` are the meanings): they must not drift, and every key has a meaning."""

from __future__ import annotations

import sys

import pytest
import yaml

from conftest import ROOT, plan_stack

sys.path.insert(0, str(ROOT / "infra"))
import config_docs  # noqa: E402


@pytest.mark.parametrize("begin,end,generate", [
    (config_docs.BEGIN, config_docs.END, config_docs.markdown_table),
    (config_docs.OUTPUTS_BEGIN, config_docs.OUTPUTS_END, config_docs.outputs_table),
    (config_docs.APIS_BEGIN, config_docs.APIS_END, config_docs.markdown_list),
])
def test_readme_blocks_are_generated(begin, end, generate):
    text = (ROOT / "README.md").read_text()
    start = text.index(begin) + len(begin)
    assert text[start:text.index(end)].strip() == generate().strip(), (
        "README drifted from the models: run .venv/bin/python infra/config_docs.py")


def _properties(schema: dict):
    for definition in [schema, *schema.get("$defs", {}).values()]:
        for name, prop in definition.get("properties", {}).items():
            yield definition.get("title", "StackConfig"), name, prop


def test_every_settings_field_has_a_description():
    from stack_config import StackConfig

    missing = [(model, name) for model, name, prop in _properties(StackConfig.model_json_schema(by_alias=True))
               if not prop.get("description")]
    assert missing == []


def test_every_stack_output_is_declared():
    from outputs import StackOutputs

    for stack in ("dev", "staging", "prod"):
        assert set(plan_stack(stack).outputs) <= set(StackOutputs.model_fields), stack


def test_pulumi_yaml_config_block_is_generated_from_the_models():
    document = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert document["config"] == config_docs.pulumi_config_block(), "run .venv/bin/python infra/config_docs.py"


def test_every_key_has_a_type_and_a_meaning():
    rows = list(config_docs.rows())
    assert len(rows) > 80
    assert [key for key, _, _, meaning in rows if not meaning] == []
    keys = {key for key, *_ in rows}
    assert {"services.<name>.sessionMode", "meshServices.<name>.pinning", "gke.masterAuthorizedNetworks",
            "network.cloudNat", "services.<name>.methodRoutes.<name>.method"} <= keys


def test_a_new_settings_field_appears_in_the_table(monkeypatch):
    from pydantic import Field

    from mcp_affinity.settings import Model, config_model

    class DemoArgs(Model):
        """Demo."""

        answer_seconds: int = Field(default=42, ge=1, le=60, description="how long, in seconds.")

    rows = list(config_docs.rows(config_model(DemoArgs, exclude=frozenset())))
    assert rows == [("answerSeconds", "int 1–60", "`42`", "how long, in seconds.")]


def test_a_meaning_that_names_allowed_values_names_them_all():
    """A row whose meaning lists its allowed values (two or more, not a range ``A ... Z``) lists
    every one (the ``acknowledge`` row once left out ``unauthenticated``)."""
    import re

    partial = []
    for key, kind, _, meaning in config_docs.rows():
        allowed = re.findall(r"`([^`]+)`", kind) if "\\|" in kind else []
        named = [value for value in allowed if f"`{value}`" in meaning]
        if len(named) >= 2 and len(named) < len(allowed) and "..." not in meaning:
            partial.append((key, sorted(set(allowed) - set(named))))
    assert not partial, partial
