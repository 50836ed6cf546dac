"""`SyntheticDataModule` and `ShardedBatches`: seeded, learnable, identical on any number of processes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, DistributedSampler

from lightning_lrsched.models import SyntheticDataModule
from lightning_lrsched.models.data import ShardedBatches


def attach(dm: SyntheticDataModule, world_size: int = 1, rank: int = 0, epoch: int = 0) -> SyntheticDataModule:
    """Give ``dm`` the three things it reads from its trainer."""
    dm.trainer = SimpleNamespace(world_size=world_size, global_rank=rank, current_epoch=epoch)
    return dm


def global_batches(world_size: int, split: str, epoch: int = 0, **kwargs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The global batches of ``split`` as ``world_size`` processes see them, their parts concatenated in rank order."""
    parts = []
    for rank in range(world_size):
        dm = attach(SyntheticDataModule(**kwargs), world_size, rank, epoch)
        parts.append(list(getattr(dm, f"{split}_dataloader")()))
    return [(torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts])) for i in range(len(parts[0]))]


# -- ShardedBatches ---------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 60),
    batch_size=st.integers(1, 12),
    world_size=st.integers(1, 4),
    shuffled=st.booleans(),
)
def test_sharded_batches_concatenated_over_ranks_are_the_global_batches(n, batch_size, world_size, shuffled):
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    y = torch.arange(n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n)) if shuffled else None
    single = ShardedBatches(x, y, batch_size, 1, (lambda: order) if shuffled else None)
    sharded = ShardedBatches(x, y, batch_size, world_size, (lambda: order) if shuffled else None)
    assert len(single) == math.ceil(n / batch_size)
    assert len(sharded) == len(single) * world_size
    # what Lightning's DistributedSampler hands each rank: items r, r + W, r + 2W, ... (unshuffled)
    per_rank = [
        list(DataLoader(sharded, batch_size=None, sampler=DistributedSampler(sharded, world_size, r, shuffle=False)))
        for r in range(world_size)
    ]
    seen = []
    for b in range(len(single)):
        xs, ys = single[b]
        assert torch.equal(torch.cat([per_rank[r][b][0] for r in range(world_size)]), xs)
        assert torch.equal(torch.cat([per_rank[r][b][1] for r in range(world_size)]), ys)
        assert torch.equal(xs[:, 0] / 3, ys.float()), "inputs and labels come from different rows"
        seen += ys.tolist()
    assert sorted(seen) == list(range(n)), "each sample once per epoch"
    if shuffled:
        assert seen == order.tolist()


def test_sharded_batches_split_a_batch_evenly():
    x, y = torch.zeros(10, 2), torch.arange(10)
    sharded = ShardedBatches(x, y, 8, 2)
    assert [len(sharded[i][1]) for i in range(len(sharded))] == [4, 4, 1, 1]


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
    dm = attach(SyntheticDataModule(seed=2, shuffle=False), epoch=4)
    x = torch.cat([batch[0] for batch in dm.train_dataloader()])
    assert torch.equal(x, dm.x[dm.splits["train"]])


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
