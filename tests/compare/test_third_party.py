"""compare on modules we did not write, as they are: Lightning's demo BoringModel and a tiny `transformers` ResNet.

BoringModel cannot be stacked (it does not say how to score a batch): auto trains it sequentially
and says why, stacked is an error before anything trains. The ResNet (BatchNorm) stacks; its
early validation losses in eval mode are not divergence.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lightning_lrsched.compare import compare

ROOT = Path(__file__).resolve().parents[2]
BORING = {"class_path": "tests.compare.third_party_models.LoggingBoringModel", "init_args": {}}
BORING_DATA = {"class_path": "lightning.pytorch.demos.boring_classes.BoringDataModule", "init_args": {}}
RESNET = {"class_path": "tests.compare.third_party_models.TinyResNet", "init_args": {}}
IMAGES = {"class_path": "tests.compare.third_party_models.TinyImages", "init_args": {}}
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(ROOT)


def test_boring_model_as_it_is_trains_sequentially_in_auto_and_is_refused_stacked(tmp_path):
    comparison = compare(
        ["step", "cosine"], max_epochs=1, output=tmp_path / "auto", logger="none", model=BORING, data=BORING_DATA
    )
    # Its own SGD at 0.1 on 32 random inputs a step (lr x |x|^2 ~ 3 > 2) really diverges: its training loss
    # passes 10 x the untrained one within the epoch (the validation loss is ~4e4), and says so.
    assert [(r.mode, r.status) for r in comparison.records] == [("sequential", "diverged")] * 2
    assert all(r.reason.startswith("the mean training loss of the epoch") for r in comparison.records)
    assert all(r.steps == 64 and r.lr_curve[0][1] == 0.1 for r in comparison.records)  # its own SGD's LR
    assert all(r.final_train_loss > 10 for r in comparison.records)  # the epoch it diverged in keeps its loss
    (note,) = comparison.notes
    assert "LoggingBoringModel has no `stacked_metrics(batch)` method" in note
    with pytest.raises(ValueError, match=r"mode='stacked': LoggingBoringModel has no `stacked_metrics"):
        compare(
            ["step", "cosine"],
            max_epochs=1,
            output=tmp_path / "stacked",
            logger="none",
            mode="stacked",
            model=BORING,
            data=BORING_DATA,
        )


@pytest.mark.parametrize("mode", ["sequential", "stacked"])
def test_a_batchnorm_resnet_from_transformers_trains_without_false_divergence(mode, tmp_path):
    schedules = ["step", "cosine", {"name": "exponential", "gamma": 0.5}]
    comparison = compare(schedules, max_epochs=2, output=tmp_path, logger="none", mode=mode, model=RESNET, data=IMAGES)
    assert [(r.mode, r.status) for r in comparison.records] == [(mode, "ok")] * 3, [
        r.reason for r in comparison.records
    ]
    assert all(r.lr_curve[0][1] == 0.05 for r in comparison.records)
