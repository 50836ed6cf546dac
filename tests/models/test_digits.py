"""`DigitsDataModule` and `DigitsClassifier`: scikit-learn's digits, split and batched like the synthetic data."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from harness import quiet_trainer
from sklearn.datasets import load_digits

from lightning_lrsched.models import DigitsClassifier, DigitsDataModule, SyntheticClassifier


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Model initialisation draws from the global RNG: make it independent of the tests run before."""
    torch.manual_seed(0)


def epoch_inputs(dm: DigitsDataModule, epoch: int = 0, world_size: int = 1, rank: int = 0) -> list[torch.Tensor]:
    dm.trainer = SimpleNamespace(world_size=world_size, global_rank=rank, overfit_batches=0)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return [x for x, _ in loader]


# -- data -------------------------------------------------------------------------------------------
def test_the_images_are_scikit_learns_scaled_to_the_unit_interval():
    images, labels = load_digits(return_X_y=True)
    dm = DigitsDataModule()
    assert dm.x.shape == (1797, 64) and dm.x.dtype == torch.float32
    assert torch.equal(dm.x * 16, torch.as_tensor(images, dtype=torch.float32))
    assert torch.equal(dm.y, torch.as_tensor(labels))
    assert dm.x.min() == 0 and dm.x.max() == 1


@pytest.mark.parametrize(
    ("val_fraction", "test_fraction", "sizes"),
    [(0.2, 0.0, {"train": 1438, "val": 359, "test": 0}), (0.25, 0.1, {"train": 1169, "val": 449, "test": 179})],
)
def test_splits_partition_the_images(val_fraction: float, test_fraction: float, sizes: dict[str, int]):
    dm = DigitsDataModule(val_fraction=val_fraction, test_fraction=test_fraction)
    assert {split: len(rows) for split, rows in dm.splits.items()} == sizes
    assert sorted(torch.cat(list(dm.splits.values())).tolist()) == list(range(1797))
    assert set(dm.y[dm.splits["val"]].tolist()) == set(range(10)), "every digit is validated"


def test_the_split_is_fixed_across_seeds_and_follows_split_seed():
    a, b = DigitsDataModule(seed=0), DigitsDataModule(seed=1)
    assert all(torch.equal(a.splits[s], b.splits[s]) for s in a.splits)
    assert not torch.equal(a.splits["val"], DigitsDataModule(split_seed=1).splits["val"])
    assert not torch.equal(epoch_inputs(a)[0], epoch_inputs(b)[0]), "the seed chooses the training order"


def test_the_training_order_changes_with_the_epoch_only():
    dm = DigitsDataModule(seed=4)
    first, again, second = epoch_inputs(dm, 0), epoch_inputs(DigitsDataModule(seed=4), 0), epoch_inputs(dm, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], second[0])
    assert torch.equal(torch.cat(first).sum(0), torch.cat(second).sum(0)), "the same images, in another order"


def test_two_processes_see_the_global_batches_of_one():
    one = epoch_inputs(DigitsDataModule(batch_size=32), epoch=2)
    parts = [epoch_inputs(DigitsDataModule(batch_size=32), 2, world_size=2, rank=r) for r in (0, 1)]
    assert len(one) == len(parts[0]) == len(parts[1]) == 45
    for whole, *halves in zip(one, *parts, strict=True):
        assert torch.equal(whole, torch.cat(halves))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"val_fraction": 0.0}, ValueError, "val_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, ValueError, "test_fraction"),
        ({"seed": -1}, ValueError, "seed"),
        ({"split_seed": 1.5}, TypeError, "split_seed"),
        ({"shuffle": "yes"}, TypeError, "shuffle"),
    ],
)
def test_bad_data_arguments_name_the_parameter(kwargs, error, name):
    with pytest.raises(error, match=name):
        DigitsDataModule(**kwargs)


# -- model ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hidden", [(), (16,), (32, 16)])
def test_the_mlp_maps_64_pixels_through_the_hidden_layers_to_10_classes(hidden: tuple[int, ...]):
    model = DigitsClassifier(hidden=hidden)
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == list(zip((64, *hidden), (*hidden, 10), strict=True))
    assert model(torch.zeros(5, 64)).shape == (5, 10)


def test_bad_model_arguments_name_the_parameter():
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        DigitsClassifier(hidden=[8, 0])
    with pytest.raises(ValueError, match="lr"):
        DigitsClassifier(lr=-1.0)
    with pytest.raises(ValueError, match="nosuch"):
        DigitsClassifier(scheduler="nosuch")


def test_two_epochs_learn_the_digits_on_the_schedule_and_the_model_reloads_from_its_checkpoint(tmp_path: Path):
    model = DigitsClassifier(hidden=[48], scheduler="cosine")
    trainer = quiet_trainer(tmp_path, devices=1, max_epochs=2)
    trainer.fit(model, DigitsDataModule())
    assert trainer.callback_metrics["val_acc"] > 0.85, "an MLP learns the digits within two epochs (chance: 0.1)"
    (config,) = trainer.lr_scheduler_configs
    assert config.scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12), "cosine ends at eta_min=0"
    trainer.save_checkpoint(tmp_path / "digits.ckpt")
    restored = DigitsClassifier.load_from_checkpoint(tmp_path / "digits.ckpt")
    assert restored.hparams.hidden == [48] and restored.hparams.scheduler == "cosine"
    assert all(
        torch.equal(a, b) for a, b in zip(restored.state_dict().values(), model.state_dict().values(), strict=True)
    )


def test_the_digits_model_is_the_synthetic_classifier_with_the_digits_sizes():
    """So it shares configure_optimizers, its logged metrics and stacked mode's way to score a batch."""
    model = DigitsClassifier(hidden=[8])
    assert isinstance(model, SyntheticClassifier)
    assert (model.hparams.input_dim, model.hparams.num_classes) == (64, 10)
