"""`SyntheticDataModule`: the tutorials' synthetic classification data, identical on any device count."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.validation import check_int, check_non_negative, check_range


class ShardedBatches(Dataset):
    """A split served as whole global batches, each cut into one micro-batch per process.

    Item ``j`` is process ``j % world_size``'s share of global batch ``j // world_size``. The data
    module's unshuffled DistributedSampler hands process ``r`` the items ``r, r + W, r + 2W, ...``, so
    every process sees its part of the same global batch at the same step, and the mean of the
    processes' gradients is the gradient of the global batch: runs on 1 and N devices match.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        world_size: int,
        order: Callable[[], torch.Tensor] | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size, self.world_size = batch_size, world_size
        self.order = order
        self.num_batches = math.ceil(len(x) / batch_size)

    def __len__(self) -> int:
        return self.num_batches * self.world_size

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch, rank = divmod(item, self.world_size)
        rows = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        index = (self.order() if self.order is not None else torch.arange(len(self.x)))[rows]
        part = torch.tensor_split(index, self.world_size)[rank]
        return self.x[part], self.y[part]


class SyntheticDataModule(L.LightningDataModule):
    """Seeded, learnable synthetic classification data, in memory, served as whole batches.

    Inputs are standard normal; labels are the argmax of a fixed random linear "teacher" plus
    Gaussian ``noise``, so a linear model can learn them well but not perfectly and schedules
    differ measurably. The same ``seed`` gives the same data, split and batch order on any
    number of devices; ``batch_size`` is the *global* batch, divided among the processes.

    Args:
        num_samples: samples in all three splits together.
        input_dim: features per sample.
        num_classes: number of classes.
        batch_size: global batch size (must divide evenly among the processes).
        val_fraction: share of samples for validation.
        test_fraction: share of samples for testing.
        noise: standard deviation of the label noise, relative to the teacher's logits.
        seed: the one seed for data, split and per-epoch shuffling.
        shuffle: reshuffle the training set every epoch (seeded by ``seed`` and the epoch).

    Example:
        >>> dm = SyntheticDataModule(num_samples=100, batch_size=10)
        >>> dm.setup("fit")
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), tuple(y.shape)
        ((10, 10), (10,))
    """

    def __init__(
        self,
        num_samples: int = 1000,
        input_dim: int = 10,
        num_classes: int = 2,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        test_fraction: float = 0.1,
        noise: float = 0.5,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        check_int("num_samples", num_samples, minimum=10)
        check_int("input_dim", input_dim, minimum=1)
        check_int("num_classes", num_classes, minimum=2)
        check_int("batch_size", batch_size, minimum=1)
        check_range("val_fraction", val_fraction, 0.0, 1.0, low_open=True)
        check_range("test_fraction", test_fraction, 0.0, 1.0)
        if val_fraction + test_fraction >= 1.0:
            raise InvalidValue(
                f"`val_fraction` + `test_fraction` must leave samples to train on: got "
                f"val_fraction={val_fraction}, test_fraction={test_fraction}"
            )
        check_non_negative("noise", noise)
        check_int("seed", seed, minimum=0)
        self.save_hyperparameters()
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(num_samples, input_dim, generator=generator)
        teacher = torch.randn(input_dim, num_classes, generator=generator)
        logits = x @ teacher
        logits = logits + noise * logits.std() * torch.randn(num_samples, num_classes, generator=generator)
        y = logits.argmax(dim=1)
        perm = torch.randperm(num_samples, generator=generator)
        n_test, n_val = int(num_samples * test_fraction), max(1, int(num_samples * val_fraction))
        self.splits = {
            "test": perm[:n_test],
            "val": perm[n_test : n_test + n_val],
            "train": perm[n_test + n_val :],
        }
        self.x, self.y = x, y
        self._orders: dict[int, torch.Tensor] = {}

    def _world_size(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.hparams.batch_size % world:
            raise InvalidValue(
                f"`batch_size`={self.hparams.batch_size} must divide evenly among {world} processes, so that "
                "every device config trains on the same global batches: use a multiple of the device count"
            )
        return world

    def _epoch_order(self) -> torch.Tensor:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        if epoch not in self._orders:
            generator = torch.Generator().manual_seed(self.hparams.seed * 1_000_003 + epoch + 1)
            self._orders = {epoch: torch.randperm(len(self.splits["train"]), generator=generator)}
        return self._orders[epoch]

    def _loader(self, split: str, order: Callable[[], torch.Tensor] | None = None) -> DataLoader:
        rows = self.splits[split]
        batches = ShardedBatches(self.x[rows], self.y[rows], self.hparams.batch_size, self._world_size(), order)
        # Our own unshuffled sampler: under any distributed strategy Lightning would otherwise add one that
        # shuffles the training items, handing processes parts of different global batches.
        rank = self.trainer.global_rank if self.trainer is not None else 0
        return DataLoader(
            batches, batch_size=None, sampler=DistributedSampler(batches, batches.world_size, rank, shuffle=False)
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self._epoch_order if self.hparams.shuffle else None)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        if not len(self.splits["test"]):
            raise InvalidValue("`test_fraction` is 0: there is no test split; set test_fraction > 0 to test")
        return self._loader("test")
