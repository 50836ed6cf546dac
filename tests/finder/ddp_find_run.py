"""`find_lr` on two CPU processes (DDP); run by test_find_ddp.py.

Usage: ``python ddp_find_run.py OUT_DIR``. Each rank writes ``OUT_DIR/rank<r>.json`` with its result.
``strategy="ddp"`` re-launches this script for rank 1, which is why it takes its arguments from the
command line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch

from lightning_lrsched import SyntheticClassifier, SyntheticDataModule, find_lr

NUM_STEPS = 30
DATA = {"num_samples": 200, "batch_size": 20}


def run(out: Path, **trainer_kwargs) -> dict:
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    model = SyntheticClassifier(optimizer="adam", hidden=[16], scheduler=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(
        model,
        SyntheticDataModule(**DATA),
        num_steps=NUM_STEPS,
        max_lr=100.0,  # diverges before the last step: every rank must stop at the same one
        accelerator="cpu",
        default_root_dir=str(out),
        **trainer_kwargs,
    )
    record = result.to_dict()
    record["restored"] = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    return record


if __name__ == "__main__":
    out = Path(sys.argv[1])
    record = run(out, strategy="ddp", devices=2)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    (out / f"rank{rank}.json").write_text(json.dumps(record))
