"""Shared fixtures: two-group optimizers, step-by-step LR traces, and one torch thread per test.

The factories are session-scoped, so Hypothesis tests can take them as arguments. ``one_thread`` is
function-scoped: a module applies it to all its tests with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch

LRS = (0.1, 0.03)


def _optimizer(kind: str = "sgd", lrs: Sequence[float] = LRS) -> torch.optim.Optimizer:
    """A fresh optimizer with one param group per entry of ``lrs``; its default lr is ``lrs[0]``."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0])
    if kind == "adagrad":
        return torch.optim.Adagrad(groups, lr=lrs[0])
    raise ValueError(f"unknown optimizer kind {kind!r}")


def _momenta(optimizer: torch.optim.Optimizer) -> list[float]:
    return [g["betas"][0] if "betas" in g else g.get("momentum", float("nan")) for g in optimizer.param_groups]


def _record(
    optimizer: torch.optim.Optimizer, scheduler: Any, steps: int, metrics: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """LRs and momenta (rows: after 0, 1, ..., ``steps`` scheduler steps; columns: param groups).

    ``optimizer.step()`` runs once first, so torch does not warn about the call order.
    With ``metrics``, scheduler step ``i`` gets ``metrics[i]`` (ReduceLROnPlateau's ``step(metric)``).
    """
    optimizer.step()
    lrs, moms = [list(scheduler.get_last_lr())], [_momenta(optimizer)]
    for i in range(steps):
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[i])
        lrs.append(list(scheduler.get_last_lr()))
        moms.append(_momenta(optimizer))
    return np.asarray(lrs, dtype=np.float64), np.asarray(moms, dtype=np.float64)


def _assert_tracks(ours: np.ndarray, reference: np.ndarray, rel: float = 1e-9) -> None:
    """Every column of ``ours`` is within ``rel`` x (that column's largest reference value) of ``reference``."""
    assert ours.shape == reference.shape
    for g in range(reference.shape[1]):
        scale = float(np.max(np.abs(reference[:, g])))
        err = np.abs(ours[:, g] - reference[:, g])
        worst = int(np.argmax(err))
        assert err[worst] <= rel * scale, (
            f"group {g}, step {worst}: ours={ours[worst, g]!r}, reference={reference[worst, g]!r}, "
            f"error {err[worst]:.3e} > {rel} x {scale}"
        )


@pytest.fixture(scope="session")
def make_optimizer() -> Callable[..., torch.optim.Optimizer]:
    """``make_optimizer(kind="sgd"|"adam"|"adagrad", lrs=(0.1, 0.03))``: a fresh optimizer."""
    return _optimizer


@pytest.fixture(scope="session")
def record() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``record(optimizer, scheduler, steps, metrics=None) -> (lrs, momenta)``, see :func:`_record`."""
    return _record


@pytest.fixture(scope="session")
def assert_tracks() -> Callable[..., None]:
    """``assert_tracks(ours, reference, rel=1e-9)``: per-group match relative to the group's peak."""
    return _assert_tracks


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run the test on one torch thread: the models are tiny, and extra intra-op threads only oversubscribe the
    cores that pytest-xdist's workers (and the tests' DDP and compare subprocesses) share, which can slow runs
    down many-fold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
