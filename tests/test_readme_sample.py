"""The README's sample PR comment is what `mcp-affinity diff` prints for the change it describes."""

from __future__ import annotations

from readme_sample import README, readme_block, sample


def test_readme_sample_comment_is_regenerated_from_a_real_diff():
    assert readme_block(README.read_text()) == sample(), "run: .venv/bin/python tests/readme_sample.py"
