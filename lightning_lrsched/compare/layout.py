"""`OutputLayout`: where everything a comparison writes lives, under its ``--output`` folder.

::

    <output>/results.jsonl        one RunRecord per line (append-only; the newest line of a key counts)
    <output>/results.torn.jsonl   lines of results.jsonl that did not parse, set aside (their runs retrain)
    <output>/report.{md,csv,png}  the report, rewritten after every job
    <output>/logs/<job>.log       each worker process's output
    <output>/wandb/               W&B runs (offline: upload with `wandb sync`)
    <output>/csv/<run>/           CSV logs (``logger="csv"``)
    <output>/lightning/           the Trainer's default_root_dir
    <output>/.lock                held while a grid runs on this folder
    <output>/.workers/<worker>/   each running worker's batch and records (left by a killed grid: recovered)
    <output>/wandb/stopped/       W&B runs of a killed grid that stopped mid-way (their runs trained again)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OutputLayout:
    """The paths of one comparison's output folder."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def results(self) -> Path:
        return self.root / "results.jsonl"

    @property
    def torn(self) -> Path:
        return self.root / "results.torn.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_csv(self) -> Path:
        return self.root / "report.csv"

    @property
    def report_png(self) -> Path:
        return self.root / "report.png"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, job: str) -> Path:
        return self.logs / f"{job}.log"

    @property
    def wandb_save_dir(self) -> Path:
        """What W&B is given as ``dir``: it puts its ``wandb/`` folder inside."""
        return self.root

    @property
    def wandb(self) -> Path:
        return self.root / "wandb"

    @property
    def csv(self) -> Path:
        return self.root / "csv"

    @property
    def workers(self) -> Path:
        return self.root / ".workers"

    @property
    def wandb_stopped(self) -> Path:
        return self.wandb / "stopped"

    @property
    def lightning(self) -> Path:
        return self.root / "lightning"
