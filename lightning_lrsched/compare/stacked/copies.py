"""One copy of a stacked run seen as a run of its own (its divergence detector, its logger); the copies' callbacks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from lightning_lrsched.callbacks import PlateauDetector

if TYPE_CHECKING:
    pass


class CopyDetector(PlateauDetector):
    """The run's :class:`PlateauDetector` for one copy: plateaus of ``val_loss/<label>``, recorded as events.

    Divergence is not its to judge (the copy's :class:`~lightning_lrsched.compare.divergence.DivergenceCheck`
    does); once the copy is frozen (:attr:`stopped`) it reads nothing more.
    """

    def __init__(self, label: str) -> None:
        super().__init__(monitor=f"val_loss/{label}", action="log", check_finite=False)
        self.stopped = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.stopped:
            super().on_validation_end(trainer, pl_module)


def copy_key(key: str, label: str) -> str | None:
    """The key a copy's own run logs for the stacked run's ``key``; ``None`` if it is another copy's.

    The stacked module logs a copy's metrics as ``<name>/<label>``; keys without a label are the
    run's (the epoch) and go to every copy.

    Example:
        >>> [copy_key(k, "step") for k in ("val_loss/step", "diverged-val_loss/step", "val_loss/cosine", "epoch")]
        ['val_loss', 'diverged-val_loss', None, 'epoch']
    """
    head, slash, tail = key.rpartition("/")
    if not slash:
        return key
    return head if tail == label else None


class CopyLogger(Logger):
    """Passes one copy's metrics, under the names a run of its own would use, to that run's logger.

    Args:
        inner: the copy's own logger (a ``WandbLogger`` or ``CSVLogger``, one run per copy).
        label: the copy's label.
        hparams: the copy's hyperparameters, logged in place of the stacked module's.
    """

    def __init__(self, inner: Logger, label: str, hparams: Mapping[str, Any]) -> None:
        super().__init__()
        self.inner = inner
        self.label = label
        self.hparams = dict(hparams)
        self.stopped = False

    @property
    def name(self) -> str | None:
        return self.inner.name

    @property
    def version(self) -> int | str | None:
        return self.inner.version

    @property
    def save_dir(self) -> str | None:
        return self.inner.save_dir

    @property
    def log_dir(self) -> str | None:
        return getattr(self.inner, "log_dir", None)

    @property
    def experiment(self) -> Any:
        return self.inner.experiment  # type: ignore[attr-defined]  # every logger has one; Logger does not declare it

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.inner.log_hyperparams(self.hparams)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.stopped:
            return
        own: dict[str, float] = {}
        mine = False
        for key, value in metrics.items():
            renamed = copy_key(key, self.label)
            if renamed is not None:
                own[renamed] = value
                mine = mine or renamed != key
        # Rows with only shared keys (the epoch) or other copies' metrics are not this copy's.
        if mine:
            self.inner.log_metrics(own, step)

    def save(self) -> None:
        self.inner.save()

    def finalize(self, status: str) -> None:
        self.inner.finalize(status)


_HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_") or name in ("setup", "teardown"))


class CopyCallbacks(Callback):
    """The copies' callbacks of a stacked run as one callback, calling each hook on those that define it.

    Lightning calls every hook of every callback at every step, each in its own profiler context;
    with two callbacks per copy (recorder, detector) of 18 copies that dispatch costs about as much
    as the vectorised step itself. Here a hook reaches only the callbacks that override it, in order.

    Args:
        callbacks: the callbacks, in the order Lightning would call them.
    """

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)
        self._by_hook = {
            name: [getattr(c, name) for c in self.callbacks if getattr(type(c), name) is not getattr(Callback, name)]
            for name in _HOOKS
        }

    def state_dict(self) -> dict[str, Any]:
        return {str(i): callback.state_dict() for i, callback in enumerate(self.callbacks)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for i, callback in enumerate(self.callbacks):
            if str(i) in state_dict:
                callback.load_state_dict(state_dict[str(i)])


def _forward(name: str) -> Callable[..., None]:
    def hook(self: CopyCallbacks, *args: Any, **kwargs: Any) -> None:
        for own in self._by_hook[name]:
            own(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


for _name in _HOOKS:
    setattr(CopyCallbacks, _name, _forward(_name))
