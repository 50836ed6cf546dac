"""Every Python example of README.md and docs/*.md runs as written; the README's links lead somewhere.

Each ```python block runs on its own (a fresh namespace, as a reader pastes it), in a temporary
working directory, so the files an example writes (a figure, a comparison's folder) land there.
The ```lrsched`` command lines run in ``tests/cli/test_readme_commands.py``; the docs site itself
builds in ``scripts/test`` (``mkdocs build --strict``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from doc_blocks import ROOT, code_blocks

from lightning_lrsched.schedules import get_schedule

PYTHON = code_blocks("python")


@pytest.mark.parametrize("block", [pytest.param(block, id=block.where) for block in PYTHON])
def test_python_example_runs_as_written(block, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(block.text, block.where, "exec")
    exec(code, {"__name__": "__doc_example__"})


@pytest.mark.parametrize("block", [pytest.param(block, id=block.where) for block in code_blocks("yaml")])
def test_yaml_example_schedule_builds(block):
    scheduler = yaml.safe_load(block.text)["model"]["scheduler"]
    assert get_schedule(**scheduler).name == scheduler["name"]


def test_the_docs_have_python_examples_of_every_kind():
    where = {block.where.split(":")[0] for block in PYTHON}
    assert {"docs/schedules.md", "docs/find.md", "docs/compare.md"} <= where, where


def test_the_readme_links_lead_to_files_of_the_checkout():
    readme = (ROOT / "README.md").read_text()
    targets = [target for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme) if "://" not in target]
    assert any(target.startswith("docs/") for target in targets), targets
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
