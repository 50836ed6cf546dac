"""Every ``lrsched`` command line in README.md and docs/*.md runs as written, with its outputs in a temporary folder.

The lines run in-process through :func:`lightning_lrsched.cli.main` (no subprocess per line), from
a temporary working directory that sees the checkout's ``examples/``. Lines that do not set their
run's length train 2 epochs (see ``SHORTER``). The big grid (DDP on cpu:2) and the Ray line take
about 30 s and 13 s: they run in the normal suite too, so every line is checked on every change.
A line shown on two pages (the README's tour and its docs page) runs once.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from doc_blocks import ROOT, code_blocks

from lightning_lrsched.cli import main


def documented_command_lines() -> list[str]:
    """The lines of the docs' ```bash blocks that start with ``lrsched``, trailing comments removed, each once."""
    lines = [line for block in code_blocks("bash") for line in block.text.splitlines() if line.startswith("lrsched ")]
    return list(dict.fromkeys(shlex.join(shlex.split(line, comments=True)) for line in lines))


LINES = documented_command_lines()
# Lines that do not set the run's length train 2 epochs here: their schedules take their length
# from the run (cosine's T_max, OneCycleLR's total_steps), so the line means the same.
SHORTER = {"fit": ("max_epochs", ["--trainer.max_epochs", "2"]), "compare": ("--max-epochs", ["--max-epochs", "2"])}


def argv_of(line: str) -> list[str]:
    argv = shlex.split(line)[1:]
    epochs_option, shorter = SHORTER.get(argv[0], (None, []))
    if epochs_option is not None and not any(epochs_option in arg for arg in argv):
        argv += shorter
    return argv


def test_the_docs_have_command_lines_of_every_kind():
    kinds = {shlex.split(line)[1] for line in LINES}
    assert {"--help", "fit", "plot", "find", "compare"} <= kinds, LINES


@pytest.mark.parametrize("line", [pytest.param(line, id=line) for line in LINES])
def test_documented_command_line_runs_as_written(line: str, tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    try:
        main(argv_of(line))
    except SystemExit as error:
        assert error.code in (0, None), f"`{line}` exited with {error.code}: {capsys.readouterr().err[-2000:]}"
    out = capsys.readouterr().out
    written = [path for path in tmp_path.rglob("*") if path.is_file() and "examples" not in path.parts]
    if " -o " in line or (line.startswith(("lrsched fit", "lrsched compare")) and "logger false" not in line):
        assert written, f"`{line}` wrote nothing into its working directory"
    if line.startswith("lrsched fit"):
        assert "Epoch" in out and "final lr" in out
    if " -o " in line:
        assert (tmp_path / shlex.split(line)[-1]).is_file()
