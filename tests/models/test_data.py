"""`SyntheticDataModule` and `GlobalBatchSampler`: seeded, learnable, identical on any process count, resumable."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from harness import quiet_trainer
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, DistributedSampler

from lightning_lrsched.models import SyntheticClassifier, SyntheticDataModule
from lightning_lrsched.models.data import GlobalBatchDataModule, GlobalBatchSampler


def attach(dm: GlobalBatchDataModule, world_size: int = 1, rank: int = 0) -> GlobalBatchDataModule:
    """Give ``dm`` the three things it reads from its trainer."""
    dm.trainer = SimpleNamespace(world_size=world_size, global_rank=rank, overfit_batches=0)
    return dm


def served(loader: DataLoader, epoch: int = 0) -> list:
    """The batches ``loader`` serves in ``epoch``, after Lightning's ``set_epoch`` call."""
    loader.sampler.set_epoch(epoch)
    return list(loader)


def global_batches(world_size: int, split: str, epoch: int = 0, **kwargs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The global batches of ``split`` as ``world_size`` processes see them, their parts concatenated in rank order."""
    parts = []
    for rank in range(world_size):
        dm = attach(SyntheticDataModule(**kwargs), world_size, rank)
        parts.append(served(getattr(dm, f"{split}_dataloader")(), epoch))
    return [(torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts])) for i in range(len(parts[0]))]


# -- GlobalBatchSampler -----------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 60),
    batch_size=st.integers(1, 12),
    world_size=st.integers(1, 4),
    shuffle=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_micro_batches_concatenated_over_ranks_are_the_global_batches(n, batch_size, world_size, shuffle, epoch):
    def sampler(rank: int) -> GlobalBatchSampler:
        s = GlobalBatchSampler(n, batch_size, world_size, rank, shuffle=shuffle, seed=n)
        s.set_epoch(epoch)
        return s

    one = GlobalBatchSampler(n, batch_size, shuffle=shuffle, seed=n)
    one.set_epoch(epoch)
    single = list(one)
    per_rank = [list(sampler(r)) for r in range(world_size)]
    assert all(len(parts) == len(single) == len(one) == math.ceil(n / batch_size) for parts in per_rank)
    seen = []
    for b, whole in enumerate(single):
        assert torch.equal(torch.cat([per_rank[r][b] for r in range(world_size)]), whole)
        assert len(whole) == min(batch_size, n - b * batch_size)
        seen += whole.tolist()
    assert sorted(seen) == list(range(n)), "each sample once per epoch"
    assert seen == one.order(epoch).tolist()


def test_a_batch_is_split_evenly_among_ranks():
    parts = [list(GlobalBatchSampler(10, 8, 2, rank)) for rank in (0, 1)]
    assert [[len(p) for p in rank] for rank in parts] == [[4, 1], [4, 1]]


def test_shuffled_orders_differ_by_epoch_and_seed_only():
    a, b = GlobalBatchSampler(50, 8, shuffle=True, seed=3), GlobalBatchSampler(50, 8, shuffle=True, seed=3)
    assert torch.equal(a.order(2), b.order(2))
    assert not torch.equal(a.order(2), a.order(3))
    assert not torch.equal(a.order(2), GlobalBatchSampler(50, 8, shuffle=True, seed=4).order(2))
    assert torch.equal(GlobalBatchSampler(50, 8).order(7), torch.arange(50))


def test_lightning_keeps_the_sampler_under_a_distributed_strategy():
    # Lightning replaces a loader's sampler by its own shuffling one unless it is a DistributedSampler
    assert isinstance(GlobalBatchSampler(10, 2), DistributedSampler)
    # ... and does keep ours: the loader a 2-process DDP Trainer prepares for fitting (no process starts here).
    from lightning.pytorch.trainer.states import RunningStage

    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False)
    data = SyntheticDataModule(num_samples=64, batch_size=16)
    data.trainer = trainer
    data.setup("fit")
    prepare = trainer._data_connector._prepare_dataloader  # Lightning's own step (private: no public entry)
    loader = data.train_dataloader()
    kept = prepare(loader, shuffle=True, mode=RunningStage.TRAINING)
    assert kept is loader and type(kept.sampler) is GlobalBatchSampler
    assert (kept.sampler.num_replicas, kept.sampler.rank) == (2, 0)
    plain = DataLoader(torch.utils.data.TensorDataset(torch.zeros(8)), batch_size=2)
    replaced = prepare(plain, shuffle=True, mode=RunningStage.TRAINING)  # the test can fail: a plain one is replaced
    assert replaced is not plain and type(replaced.sampler) is DistributedSampler


# -- where the epoch stands: state_dict / load_state_dict ---------------------------------------------
def take(sampler: GlobalBatchSampler, count: int) -> list[list[int]]:
    iterator = iter(sampler)
    return [next(iterator).tolist() for _ in range(count)]


@pytest.mark.parametrize("stop", [1, 3, 6])
@pytest.mark.parametrize(("saved_on", "resumed_on"), [(1, 1), (2, 2), (2, 1), (1, 2)])
def test_a_resumed_sampler_continues_after_the_last_batch_served(stop: int, saved_on: int, resumed_on: int):
    """Stop after ``stop`` of 7 batches of epoch 2 on ``saved_on`` processes; resume on ``resumed_on``."""

    def sampler(world: int, rank: int) -> GlobalBatchSampler:
        s = GlobalBatchSampler(50, 8, world, rank, shuffle=True, seed=1)
        s.set_epoch(2)
        return s

    first = sampler(saved_on, 0)
    take(first, stop)
    state = first.state_dict()
    assert state["epoch"] == 2 and state["batches"] == stop
    for rank in range(resumed_on):
        resumed = sampler(resumed_on, rank)
        resumed.load_state_dict(state)
        rest = [part.tolist() for part in resumed]
        assert rest == [part.tolist() for part in sampler(resumed_on, rank)][stop:]
        assert resumed.state_dict()["batches"] == 7, "the count goes on to the end of the epoch"
        assert len(list(resumed)) == 7, "the epoch after a resumed one is whole"


def test_a_second_resume_in_the_same_epoch_counts_from_the_epoch_start():
    sampler = GlobalBatchSampler(50, 8, shuffle=True)
    take(sampler, 2)
    again = GlobalBatchSampler(50, 8, shuffle=True)
    again.load_state_dict(sampler.state_dict())
    take(again, 3)
    assert again.state_dict()["batches"] == 5
    third = GlobalBatchSampler(50, 8, shuffle=True)
    third.load_state_dict(again.state_dict())
    assert [part.tolist() for part in third] == [batch.tolist() for batch in torch.split(sampler.order(0), 8)][5:]


def test_the_resume_point_applies_to_its_own_epoch_only():
    sampler = GlobalBatchSampler(50, 8, shuffle=True)
    sampler.set_epoch(4)
    take(sampler, 7)
    state = sampler.state_dict()  # an end-of-epoch checkpoint: Lightning goes on with epoch 5
    resumed = GlobalBatchSampler(50, 8, shuffle=True)
    resumed.load_state_dict(state)
    resumed.set_epoch(5)
    assert len(list(resumed)) == 7


def test_the_epoch_and_resume_point_are_read_when_iteration_starts():
    """Lightning creates the loader's iterator, then loads the state and calls set_epoch, then iterates."""
    saved = GlobalBatchSampler(50, 8, shuffle=True)
    saved.set_epoch(3)
    take(saved, 2)
    resumed = GlobalBatchSampler(50, 8, shuffle=True)
    iterator = iter(resumed)
    resumed.load_state_dict(saved.state_dict())
    resumed.set_epoch(3)
    assert [part.tolist() for part in iterator] == [batch.tolist() for batch in torch.split(saved.order(3), 8)][2:]


def test_a_loaded_state_is_saved_again_until_iteration_uses_it():
    sampler = GlobalBatchSampler(50, 8)
    take(sampler, 3)
    resumed = GlobalBatchSampler(50, 8)
    resumed.load_state_dict(sampler.state_dict())
    assert resumed.state_dict() == sampler.state_dict()


@pytest.mark.parametrize(("batch_size", "dataset_size"), [(4, 50), (8, 60)])
def test_resuming_mid_epoch_with_other_batches_is_an_error(batch_size: int, dataset_size: int):
    sampler = GlobalBatchSampler(50, 8)
    take(sampler, 3)
    other = GlobalBatchSampler(dataset_size, batch_size)
    with pytest.raises(ValueError, match=r"batch_size=8 over 50 samples; got batch_size=\d+ over \d+ samples"):
        other.load_state_dict(sampler.state_dict())
    # at an epoch's end the count is not a place in the next epoch: any batches will do
    sampler = GlobalBatchSampler(50, 8)
    list(sampler)
    other.load_state_dict(sampler.state_dict())
    other.set_epoch(1)
    assert len(list(other)) == len(other)


def test_the_loader_checkpoints_its_sampler():
    dm = SyntheticDataModule(num_samples=100, batch_size=10)
    loader = dm.train_dataloader()
    iterator = iter(loader)
    next(iterator), next(iterator)
    resumed = SyntheticDataModule(num_samples=100, batch_size=10).train_dataloader()
    resumed.load_state_dict(loader.state_dict())
    rest = [x for x, _ in resumed]
    assert len(rest) == len(loader) - 2 == 5
    for x, expected in zip(rest, [x for x, _ in iterator], strict=True):
        assert torch.equal(x, expected)


def test_the_data_module_resumes_the_training_loader_of_one_fit_only():
    dm = SyntheticDataModule(num_samples=100, batch_size=10)
    iterator = iter(dm.train_dataloader())
    next(iterator), next(iterator), next(iterator)
    state = dm.state_dict()
    resumed = SyntheticDataModule(num_samples=100, batch_size=10)
    resumed.load_state_dict(state)  # Lightning restores a data module before it asks for loaders
    assert len(list(resumed.train_dataloader())) == 4
    resumed.teardown("fit")
    assert len(list(resumed.train_dataloader())) == 7, "a later fit without the checkpoint starts afresh"


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"dataset_size": 0}, ValueError, "dataset_size"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.0}, TypeError, "batch_size"),
        ({"num_replicas": 0}, ValueError, "num_replicas"),
        ({"rank": 2, "num_replicas": 2}, ValueError, "rank"),
        ({"rank": -1}, ValueError, "rank"),
        ({"shuffle": 1}, TypeError, "shuffle"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_sampler_arguments_name_the_parameter(kwargs, error, name):
    with pytest.raises(error, match=name):
        GlobalBatchSampler(**{"dataset_size": 10, "batch_size": 2, **kwargs})


# -- the data module on 1 and 2 processes -----------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("epoch", [0, 3])
def test_two_processes_see_the_global_batches_of_one(split: str, epoch: int):
    one = global_batches(1, split, epoch, seed=5, num_samples=300, batch_size=16)
    two = global_batches(2, split, epoch, seed=5, num_samples=300, batch_size=16)
    assert len(one) == len(two) == math.ceil(len(SyntheticDataModule(num_samples=300).splits[split]) / 16)
    for (x1, y1), (x2, y2) in zip(one, two, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_the_training_order_changes_with_the_epoch_and_not_otherwise():
    first = global_batches(1, "train", 0, seed=5)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, global_batches(1, "train", 0, seed=5), strict=True))
    second = global_batches(1, "train", 1, seed=5)
    assert not torch.equal(first[0][0], second[0][0])
    # the same samples, in another order
    torch.testing.assert_close(torch.cat([x for x, _ in first]).sum(0), torch.cat([x for x, _ in second]).sum(0))


def test_shuffle_false_serves_the_split_in_order():
    dm = SyntheticDataModule(seed=2, shuffle=False)
    x = torch.cat([batch[0] for batch in served(dm.train_dataloader(), epoch=4)])
    assert torch.equal(x, dm.x[dm.splits["train"]])


def test_validation_is_never_shuffled():
    dm = SyntheticDataModule(seed=2)
    x = torch.cat([batch[0] for batch in served(dm.val_dataloader(), epoch=4)])
    assert torch.equal(x, dm.x[dm.splits["val"]])


def test_overfit_batches_trains_the_same_first_global_batches_every_epoch(tmp_path):
    class Inputs(L.Callback):
        def __init__(self) -> None:
            self.seen: list[torch.Tensor] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.seen.append(batch[0].clone())

    inputs = Inputs()
    trainer = quiet_trainer(tmp_path, inputs, devices=1, overfit_batches=2, max_epochs=3)
    dm = SyntheticDataModule(num_samples=200, batch_size=16, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(SyntheticClassifier(), dm)
    assert not [w for w in caught if "overfit" in str(w.message)], "Lightning replaced the sampler"
    first = dm.x[dm.splits["train"]][:32]
    assert len(inputs.seen) == 6
    for epoch in range(3):
        assert torch.equal(torch.cat(inputs.seen[2 * epoch : 2 * epoch + 2]), first)


def test_batch_size_must_divide_among_processes():
    dm = attach(SyntheticDataModule(batch_size=33), world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        dm.train_dataloader()


def test_no_trainer_means_one_process():
    dm = SyntheticDataModule(num_samples=100, batch_size=10)
    batches = list(dm.train_dataloader())
    assert len(batches) == 7 and all(len(y) == 10 for _, y in batches)


# -- seed and splits --------------------------------------------------------------------------------
def test_the_data_depends_only_on_the_seed():
    a, b = SyntheticDataModule(seed=11), SyntheticDataModule(seed=11)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    for split in ("train", "val", "test"):
        assert torch.equal(a.splits[split], b.splits[split])
    torch.manual_seed(123)  # the global RNG plays no part
    c = SyntheticDataModule(seed=11)
    assert torch.equal(a.x, c.x) and torch.equal(a.y, c.y)


def test_different_seeds_give_different_data():
    a, b = SyntheticDataModule(seed=0), SyntheticDataModule(seed=1)
    assert not torch.equal(a.x, b.x)
    assert not torch.equal(a.y, b.y)
    assert not torch.equal(a.splits["train"], b.splits["train"])


def test_splits_partition_the_samples():
    dm = SyntheticDataModule(num_samples=1000, val_fraction=0.2, test_fraction=0.1)
    sizes = {split: len(rows) for split, rows in dm.splits.items()}
    assert sizes == {"train": 700, "val": 200, "test": 100}
    rows = torch.cat(list(dm.splits.values()))
    assert sorted(rows.tolist()) == list(range(1000))


def test_no_test_split_is_an_error_when_testing():
    dm = SyntheticDataModule(test_fraction=0.0)
    assert len(dm.splits["test"]) == 0
    with pytest.raises(ValueError, match="test_fraction"):
        dm.test_dataloader()


def logistic_regression_accuracy(dm: SyntheticDataModule) -> tuple[float, float]:
    """Train and validation accuracy of a full-batch logistic regression fit to the training split."""
    generator = torch.Generator().manual_seed(0)
    train, val = dm.splits["train"], dm.splits["val"]
    model = torch.nn.Linear(dm.hparams.input_dim, dm.hparams.num_classes)
    with torch.no_grad():
        model.weight.normal_(0, 0.01, generator=generator)
        model.bias.zero_()
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(dm.x[train]), dm.y[train])
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        accuracy = lambda rows: (model(dm.x[rows]).argmax(1) == dm.y[rows]).float().mean().item()  # noqa: E731
        return accuracy(train), accuracy(val)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_are_learnable_but_noisy(seed: int):
    dm = SyntheticDataModule(seed=seed)
    train_acc, val_acc = logistic_regression_accuracy(dm)
    assert val_acc > 0.75, "a linear model should learn the teacher"
    assert train_acc < 1.0 and val_acc < 1.0, "the labels should be noisy"
    counts = torch.bincount(dm.y, minlength=2)
    assert counts.min() > 0.2 * len(dm.y), f"classes are unbalanced: {counts.tolist()}"


def test_without_noise_the_labels_are_separable():
    train_acc, _ = logistic_regression_accuracy(SyntheticDataModule(noise=0.0))
    assert train_acc == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"num_samples": 5}, ValueError, "num_samples"),
        ({"num_samples": 100.0}, TypeError, "num_samples"),
        ({"input_dim": 0}, ValueError, "input_dim"),
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"val_fraction": 0.0}, ValueError, "val_fraction"),
        ({"test_fraction": -0.1}, ValueError, "test_fraction"),
        ({"val_fraction": 0.6, "test_fraction": 0.4}, ValueError, "test_fraction"),
        ({"noise": -1.0}, ValueError, "noise"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": "0"}, TypeError, "seed"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, error, name):
    with pytest.raises(error, match=name):
        SyntheticDataModule(**kwargs)
