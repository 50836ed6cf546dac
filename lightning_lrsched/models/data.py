"""In-memory data served as global batches, identical on any device count and resumable mid-epoch.

:class:`GlobalBatchDataModule` is the base of the package's data modules, :class:`SyntheticDataModule`
the tutorials' synthetic classification data. Their loaders (a :class:`ResumableLoader` over a
:class:`GlobalBatchSampler`) give every process its share of the same global batch at each step, and
a Lightning checkpoint saved mid-epoch records how many batches of the epoch were served, so a
resumed run continues with the next one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler, TensorDataset

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.validation import check_bool, check_int, check_non_negative, check_range


class GlobalBatchSampler(DistributedSampler):
    """Hands one process its micro-batch of every global batch, in a seeded per-epoch order.

    Each item is a tensor of sample indices: process ``rank``'s part (``torch.tensor_split`` into
    ``num_replicas`` parts) of the next ``batch_size`` samples of the epoch's order. Concatenated in
    rank order, the processes' parts are the global batch, so the mean of their gradients is the
    gradient of the global batch and runs on 1 and N processes match. The order is the identity, or
    with ``shuffle`` a permutation seeded by ``seed`` and the epoch that :meth:`set_epoch` sets
    (Lightning calls it at every epoch start, as for torch's ``DistributedSampler``).

    The sampler also knows where the epoch stands: :meth:`state_dict` records the epoch and the
    number of global batches served in it, and after :meth:`load_state_dict` the next iteration of
    that same epoch starts after them. The count is the same on every process, so a state saved on
    any number of processes resumes on any other. It counts batches as the loader hands them out,
    which holds for a ``DataLoader`` without worker processes (workers would fetch ahead).

    It subclasses ``DistributedSampler`` so that Lightning keeps it under a distributed strategy
    instead of substituting its own shuffling sampler, which would give the processes parts of
    different global batches.

    Args:
        dataset_size: samples in the split.
        batch_size: samples per global batch (the last one may be smaller).
        num_replicas: processes sharing each global batch.
        rank: this process's index among them.
        shuffle: a new seeded order every epoch; otherwise the split's own order.
        seed: the seed of the per-epoch orders.

    Example:
        >>> sampler = GlobalBatchSampler(10, batch_size=4, num_replicas=2, rank=1)
        >>> [part.tolist() for part in sampler]
        [[2, 3], [6, 7], [9]]
    """

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        check_int("dataset_size", dataset_size, minimum=1)
        check_int("batch_size", batch_size, minimum=1)
        check_int("num_replicas", num_replicas, minimum=1)
        check_int("rank", rank, minimum=0)
        if rank >= num_replicas:
            raise InvalidValue(f"`rank` must be below `num_replicas`: got rank={rank}, num_replicas={num_replicas}")
        check_bool("shuffle", shuffle)
        check_int("seed", seed, minimum=0)
        # torch annotates `dataset` as a Dataset but only takes its len(): a range of indices is enough.
        super().__init__(range(dataset_size), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
        self.dataset_size, self.batch_size = dataset_size, batch_size
        self.num_batches = math.ceil(dataset_size / batch_size)
        # (epoch, global batches served in it): the position a checkpoint records
        self._position = (0, 0)
        self._resuming = False

    def __len__(self) -> int:
        return self.num_batches

    def order(self, epoch: int) -> torch.Tensor:
        """The sample indices of ``epoch`` in the order they are served (on every process)."""
        if not self.shuffle:
            return torch.arange(self.dataset_size)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + 1)
        return torch.randperm(self.dataset_size, generator=generator)

    def __iter__(self) -> Iterator[torch.Tensor]:
        # A generator: the epoch and the resume point are read at the first batch, after Lightning has
        # loaded the checkpoint's state and called set_epoch, even though it creates the iterator before.
        epoch = self.epoch
        saved_epoch, served = self._position
        start = served if self._resuming and saved_epoch == epoch else 0
        self._resuming = False
        self._position = (epoch, start)
        order = self.order(epoch)
        for batch in range(start, self.num_batches):
            part = torch.tensor_split(order[batch * self.batch_size : (batch + 1) * self.batch_size], self.num_replicas)
            self._position = (epoch, batch + 1)
            yield part[self.rank]

    def state_dict(self) -> dict[str, int]:
        """Where the epoch stands: ``epoch``, global ``batches`` served in it, and the sizes they count in."""
        epoch, served = self._position
        return {"epoch": epoch, "batches": served, "batch_size": self.batch_size, "dataset_size": self.dataset_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume after ``state["batches"]`` global batches if the next iteration is of ``state["epoch"]``.

        Raises:
            InvalidValue: the state stopped mid-epoch, and the batches it counted were of another size
                or over another split, so the same count would not be the same place.
        """
        epoch, served = state["epoch"], state["batches"]
        saved = (state["batch_size"], state["dataset_size"])
        if 0 < served < math.ceil(saved[1] / saved[0]) and saved != (self.batch_size, self.dataset_size):
            raise InvalidValue(
                f"cannot resume mid-epoch with other batches: the checkpoint stopped after {served} batches of "
                f"batch_size={saved[0]} over {saved[1]} samples; got batch_size={self.batch_size} over "
                f"{self.dataset_size} samples. Keep the checkpoint's batch_size and data, or resume from an "
                "end-of-epoch checkpoint"
            )
        self._position, self._resuming = (epoch, served), True


# A SequentialSampler by type only (for Lightning's isinstance check): it iterates global batches, not indices.
class SequentialGlobalBatchSampler(GlobalBatchSampler, SequentialSampler):  # type: ignore[misc]
    """A :class:`GlobalBatchSampler` that never shuffles, and says so by its type.

    Under ``Trainer(overfit_batches=...)`` Lightning rebuilds every loader whose sampler is not a
    ``SequentialSampler`` around one over single samples, which would break the global batches;
    this one it leaves in place, so the same first batches are trained every epoch.

    Args:
        dataset_size: samples in the split.
        batch_size: samples per global batch (the last one may be smaller).
        num_replicas: processes sharing each global batch.
        rank: this process's index among them.
    """

    def __init__(self, dataset_size: int, batch_size: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset_size, batch_size, num_replicas, rank)
        self.data_source = self.dataset  # type: ignore[assignment]  # what a SequentialSampler holds (a range: Sized)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`GlobalBatchSampler` whose position Lightning checkpoints.

    Lightning saves the ``state_dict()`` of a training loader that has one with the loops' state, and
    gives it back to ``load_state_dict`` when ``trainer.fit(..., ckpt_path=...)`` resumes, so a
    checkpoint saved mid-epoch resumes at the next batch instead of the epoch's first.

    Args:
        dataset: the split, indexed by a tensor of sample indices (a ``TensorDataset``).
        sampler: the sampler that chooses each process's micro-batches.
    """

    sampler: GlobalBatchSampler

    def __init__(self, dataset: TensorDataset, sampler: GlobalBatchSampler) -> None:
        # batch_size=None: the sampler yields whole micro-batches of indices; no workers, whose
        # fetching ahead would make the sampler's count of served batches run ahead of training.
        super().__init__(dataset, batch_size=None, sampler=sampler)

    def state_dict(self) -> dict[str, int]:
        """The sampler's position (see :meth:`GlobalBatchSampler.state_dict`)."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (see :meth:`GlobalBatchSampler.load_state_dict`)."""
        self.sampler.load_state_dict(state)


class GlobalBatchDataModule(L.LightningDataModule):
    """Train/val/test splits of in-memory tensors, served as global batches split among the processes.

    The base of the package's data modules. A subclass makes its data in ``__init__`` and sets
    ``self.x`` (inputs), ``self.y`` (labels) and ``self.splits`` (``"train"``, ``"val"``, ``"test"`` →
    row indices). Every loader is a :class:`ResumableLoader`: each process trains on its part of the
    same global batch at each step, the training order is reshuffled every epoch from ``seed``
    alone, and a mid-epoch checkpoint resumes at the next batch.

    The position in the epoch reaches the checkpoint twice: through the training loader's own
    ``state_dict`` (Lightning's stateful-loader path) and through this data module's. Lightning
    restores the first only if nothing asked for ``trainer.estimated_stepping_batches`` before the
    restore (Lightning issue #20550), and every schedule resolving its length in
    ``configure_optimizers`` does; a data module's state is restored before that.

    Args:
        batch_size: global batch size (must divide evenly among the processes).
        seed: the seed of the per-epoch training order.
        shuffle: reshuffle the training set every epoch; otherwise serve it in its split order.
    """

    x: torch.Tensor
    y: torch.Tensor
    splits: dict[str, torch.Tensor]

    def __init__(self, batch_size: int, seed: int, shuffle: bool) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        self.shuffle = check_bool("shuffle", shuffle)
        self._train_loader: ResumableLoader | None = None
        # the checkpoint's position, for the training loaders of the fit that resumes from it
        self._resume_from: dict[str, int] | None = None

    def _world(self) -> tuple[int, int]:
        """``(world_size, rank)`` of this process: from the trainer, or one process without one."""
        if self.trainer is None:
            return 1, 0
        world, rank = self.trainer.world_size, self.trainer.global_rank
        if self.batch_size % world:
            raise InvalidValue(
                f"`batch_size`={self.batch_size} must divide evenly among {world} processes, so that "
                "every device config trains on the same global batches: use a multiple of the device count"
            )
        return world, rank

    def _loader(self, split: str, shuffle: bool = False) -> ResumableLoader:
        rows = self.splits[split]
        world, rank = self._world()
        sampler: GlobalBatchSampler
        if self.trainer is not None and self.trainer.overfit_batches > 0:  # type: ignore[attr-defined]  # set at init
            sampler = SequentialGlobalBatchSampler(len(rows), self.batch_size, world, rank)
        else:
            sampler = GlobalBatchSampler(len(rows), self.batch_size, world, rank, shuffle=shuffle, seed=self.seed)
        return ResumableLoader(TensorDataset(self.x[rows], self.y[rows]), sampler)

    def train_dataloader(self) -> ResumableLoader:
        self._train_loader = self._loader("train", shuffle=self.shuffle)
        if self._resume_from is not None:
            self._train_loader.load_state_dict(self._resume_from)
        return self._train_loader

    def val_dataloader(self) -> ResumableLoader:
        return self._loader("val")

    def test_dataloader(self) -> ResumableLoader:
        if not len(self.splits["test"]):
            raise InvalidValue("`test_fraction` is 0: there is no test split; set test_fraction > 0 to test")
        return self._loader("test")

    def state_dict(self) -> dict[str, Any]:
        """The training loader's position in its epoch (see :meth:`GlobalBatchSampler.state_dict`)."""
        return {} if self._train_loader is None else {"train_position": self._train_loader.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the training loader, made now or later in this fit, at the checkpoint's position."""
        self._resume_from = state_dict.get("train_position")
        if self._resume_from is not None and self._train_loader is not None:
            self._train_loader.load_state_dict(self._resume_from)

    def teardown(self, stage: str) -> None:
        # the checkpoint's position was this fit's: a later fit without ckpt_path starts afresh
        self._resume_from = None


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Check that validation and test shares are valid and leave samples to train on."""
    check_range("val_fraction", val_fraction, 0.0, 1.0, low_open=True)
    check_range("test_fraction", test_fraction, 0.0, 1.0)
    if val_fraction + test_fraction >= 1.0:
        raise InvalidValue(
            f"`val_fraction` + `test_fraction` must leave samples to train on: got "
            f"val_fraction={val_fraction}, test_fraction={test_fraction}"
        )


def split_rows(
    num_samples: int, val_fraction: float, test_fraction: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A seeded partition of ``range(num_samples)`` into ``{"test", "val", "train"}`` row indices."""
    perm = torch.randperm(num_samples, generator=generator)
    n_test, n_val = int(num_samples * test_fraction), max(1, int(num_samples * val_fraction))
    return {"test": perm[:n_test], "val": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}


class SyntheticDataModule(GlobalBatchDataModule):
    """Seeded, learnable synthetic classification data, in memory, served as whole batches.

    Inputs are standard normal; labels are the argmax of a fixed random linear "teacher" plus
    Gaussian ``noise``, so a linear model can learn them well but not perfectly and schedules
    differ measurably. The same ``seed`` gives the same data, split and batch order on any
    number of devices; ``batch_size`` is the *global* batch, divided among the processes.
    A checkpoint saved mid-epoch resumes at the next batch (see :class:`GlobalBatchSampler`).

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
        super().__init__(batch_size, seed, shuffle)
        check_int("num_samples", num_samples, minimum=10)
        check_int("input_dim", input_dim, minimum=1)
        check_int("num_classes", num_classes, minimum=2)
        check_fractions(val_fraction, test_fraction)
        check_non_negative("noise", noise)
        self.save_hyperparameters()
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(num_samples, input_dim, generator=generator)
        teacher = torch.randn(input_dim, num_classes, generator=generator)
        logits = x @ teacher
        logits = logits + noise * logits.std() * torch.randn(num_samples, num_classes, generator=generator)
        self.x, self.y = x, logits.argmax(dim=1)
        self.splits = split_rows(num_samples, val_fraction, test_fraction, generator)
