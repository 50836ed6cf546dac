"""Copies of several seeds in one stacked run: each copy trains on its own seed's batches.

On a single-process device config a stacked run holds the copies of every seed: copy ``k`` is
built after its own seed (as its run of its own), and :class:`SeedStackedData` serves, at each
step, the batch each copy's own data module would serve it, stacked along a new leading dimension
(one row per copy). :class:`~lightning_lrsched.compare.stacked.StackedModule` then maps its
vectorised pass over that dimension too. Validation batches are stacked the same way, so a data
module whose validation split depends on the seed is judged on each copy's own split.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import default_collate

from lightning_lrsched.compare.grid import Unstackable


class _Samplers:
    """What Lightning calls ``set_epoch`` on at each epoch start: every seed's sampler."""

    def __init__(self, loaders: Sequence[Any]) -> None:
        self.loaders = loaders

    def set_epoch(self, epoch: int) -> None:
        for loader in self.loaders:
            set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)


class StackedLoader:
    """Zips one loader per seed; each item is ``batches[seed_of[k]]`` for every copy ``k``, stacked.

    Args:
        loaders: one loader per distinct seed, with as many batches each.
        seed_of: per copy, the index of its seed's loader.
    """

    def __init__(self, loaders: Sequence[Any], seed_of: Sequence[int]) -> None:
        self.loaders = list(loaders)
        self.seed_of = list(seed_of)
        # Where Lightning looks for a DataLoader's sampler (set_epoch; "is the validation data shuffled?").
        self.sampler = _Samplers(self.loaders)
        self.batch_sampler = None

    def __len__(self) -> int:
        return len(self.loaders[0])

    def __iter__(self) -> Iterator[Any]:
        for batches in zip(*self.loaders, strict=True):
            yield default_collate([batches[s] for s in self.seed_of])


class SeedStackedData(L.LightningDataModule):
    """The data of a stacked run across seeds: one data module per distinct seed, served per copy.

    Args:
        modules: one data module per distinct seed (built as each seed's run of its own builds it).
        seed_of: per copy, the index of its seed's data module.

    Raises:
        Unstackable: (at the first loader) the seeds' splits differ in their number of batches.
    """

    def __init__(self, modules: Sequence[L.LightningDataModule], seed_of: Sequence[int]) -> None:
        super().__init__()
        self.modules = list(modules)
        self.seed_of = list(seed_of)

    def prepare_data(self) -> None:
        for module in self.modules:
            module.prepare_data()

    def setup(self, stage: str) -> None:
        for module in self.modules:
            module.trainer = self.trainer  # a data module reads the trainer's world and overfit settings
            module.setup(stage)

    def teardown(self, stage: str) -> None:
        for module in self.modules:
            module.teardown(stage)

    def _stacked(self, split: str) -> StackedLoader:
        loaders = [getattr(module, f"{split}_dataloader")() for module in self.modules]
        try:
            sizes = [len(loader) for loader in loaders]
        except TypeError:  # an iterable dataset's: the seeds' batches could not be told to line up
            raise Unstackable(
                f"the seeds' {split} loaders have no length: copies of several seeds cannot be stacked"
            ) from None
        if len(set(sizes)) > 1:
            raise Unstackable(f"the seeds' {split} splits differ in batches ({sizes}): their copies cannot be stacked")
        return StackedLoader(loaders, self.seed_of)

    def train_dataloader(self) -> StackedLoader:
        return self._stacked("train")

    def val_dataloader(self) -> StackedLoader:
        return self._stacked("val")

    def test_dataloader(self) -> StackedLoader:
        return self._stacked("test")

    def state_dict(self) -> dict[str, Any]:
        return {str(i): module.state_dict() for i, module in enumerate(self.modules)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for i, module in enumerate(self.modules):
            module.load_state_dict(state_dict[str(i)])


def copy_batch_size(batch: Any) -> int:
    """Samples per copy in a batch stacked by :class:`StackedLoader` (its second dimension)."""
    first = batch
    while not isinstance(first, torch.Tensor):
        first = next(iter(first.values())) if isinstance(first, dict) else first[0]
    return int(first.shape[1])
