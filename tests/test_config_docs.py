"""The README's configuration table and Pulumi.yaml's config block are generated from the stack
model (itself derived from the components' settings): they must not drift, and every key has a meaning."""

from __future__ import annotations

import sys

import yaml

from conftest import ROOT

sys.path.insert(0, str(ROOT / "infra"))
import config_docs  # noqa: E402


def test_readme_table_is_generated_from_the_models():
    text = (ROOT / "README.md").read_text()
    start = text.index(config_docs.BEGIN) + len(config_docs.BEGIN)
    assert text[start:text.index(config_docs.END)].strip() == config_docs.markdown_table().strip(), (
        "README drifted from the models: run .venv/bin/python infra/config_docs.py")


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
        """Demo.

        - ``answer_seconds``: how long, in seconds.
        """

        answer_seconds: int = Field(default=42, ge=1, le=60)

    rows = list(config_docs.rows(config_model(DemoArgs, exclude=frozenset())))
    assert rows == [("answerSeconds", "int 1–60", "`42`", "how long, in seconds.")]
