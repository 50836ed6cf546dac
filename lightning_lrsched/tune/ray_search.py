"""The search on Ray Tune (``executor="ray"``): one trial per configuration, ``OptunaSearch`` + ``ASHAScheduler``.

For a search that outgrows one machine: each configuration trains alone, as a Ray Tune trial (its
run of its own: seed ``search_seed``, then the model with the configuration's ``lr`` and schedule,
under the full run's Trainer, so its schedule is resolved against the full run as in the stacked
search), and reports its validation loss at every epoch. The proposals come from Optuna's TPE
sampler through Ray's ``OptunaSearch`` (define-by-run, the same space as the local search), and
``ASHAScheduler`` (asynchronous successive halving, Li et al. 2020) stops the worse trials at its
rungs: ``grace_period × eta**k`` epochs, ``grace_period`` the first rung of the local search.
A trial is not waited for at a rung (asynchronous), so the rungs, and which configurations stop
there, can differ from the local (synchronous) search's; the trials, the report and the
confirmation are the same.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning_lrsched import ray_session
from lightning_lrsched.tune.search import SEARCH_TRAINER, TrialResult
from lightning_lrsched.tune.space import Config, SearchSpace, Task


def ray_available() -> str | None:
    """Why Ray Tune with its Optuna search and ASHA cannot be used here, or ``None`` when it can."""
    return ray_session.ray_available("ray.tune.schedulers", "ray.tune.search.optuna")


def train_one(
    config: dict[str, Any],
    model_path: str,
    model_args: dict[str, Any],
    data_cfg: dict[str, Any],
    seed: int,
    max_epochs: int,
    trainer_args: dict[str, Any],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """Train one configuration alone for the full run, calling ``report`` at every epoch end.

    Each report holds ``val_loss`` (``inf`` once not finite: the trial then stops), ``curves`` (the
    JSON of its ``val_curve`` and ``lr_curve`` so far, as :class:`~.search.TrialResult` keeps them)
    and ``steps_per_epoch``.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback

    from lightning_lrsched.tune.api import _data, _import

    class Reporter(Callback):
        def __init__(self) -> None:
            self.val: list[list[float]] = []
            self.lrs: list[list[float]] = []

        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.lrs.append([trainer.current_epoch + 1, float(trainer.optimizers[0].param_groups[0]["lr"])])

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            value = trainer.callback_metrics.get("val_loss")
            loss = float(value) if value is not None else math.nan
            self.val.append([trainer.current_epoch + 1, loss])
            batches = trainer.num_training_batches
            per_epoch = math.ceil(batches / trainer.accumulate_grad_batches) if math.isfinite(batches) else 0
            curves = json.dumps({"val_curve": self.val, "lr_curve": self.lrs}, allow_nan=True)
            finite = math.isfinite(loss)
            report({"val_loss": loss if finite else math.inf, "curves": curves, "steps_per_epoch": per_epoch})
            if not finite:
                trainer.should_stop = True

    torch.set_num_threads(1)
    L.seed_everything(seed, verbose=False)
    model = _import(model_path)(**{**model_args, "lr": config["lr"], "scheduler": config["schedule"]})
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[Reporter()], **SEARCH_TRAINER, **trainer_args)
    trainer.fit(model, _data(data_cfg, seed))


class _Propose:
    """OptunaSearch's define-by-run space: the local search's proposal (picklable: Ray saves its searcher)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, trial: Any) -> dict[str, Any]:
        config = self.space.propose(trial)
        return {"config": {"label": config.label, "schedule": config.schedule, "lr": config.lr}}


def search_ray(
    space: SearchSpace,
    budget: int,
    rungs: Sequence[int],
    eta: int,
    sampler_seed: int,
    search_seed: int,
    task: Task,
    storage: Path,
    on_decided: Callable[[TrialResult], None],
) -> tuple[list[TrialResult], int]:
    """``budget`` Ray Tune trials, one per configuration; their results (label order) and steps per epoch."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    model_path, model_args = task.model["class_path"], dict(task.model["init_args"])

    def trainable(params: dict[str, Any]) -> None:
        train_one(
            params["config"], model_path, model_args, task.data, search_seed, task.max_epochs, task.trainer, tune.report
        )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = OptunaSearch(
        space=_Propose(space), metric="val_loss", mode="min", sampler=optuna.samplers.TPESampler(seed=sampler_seed)
    )
    scheduler = ASHAScheduler(
        time_attr="training_iteration", max_t=task.max_epochs, grace_period=rungs[0], reduction_factor=eta
    )
    with ray_session.ray_session():
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(
                metric="val_loss", mode="min", search_alg=search, scheduler=scheduler, num_samples=budget
            ),
            run_config=tune.RunConfig(storage_path=str(storage.resolve()), name="search", verbose=0),
        )
        grid = tuner.fit()
        results = [grid[i] for i in range(len(grid))]
    trials, per_epoch = [], 0
    for result in results:
        config = (result.config or {}).get("config", {})
        params = {k: v for k, v in (result.config or {}).items() if k != "config"}
        known = Config(config.get("label", "?"), config.get("schedule", {}), config.get("lr", math.nan), params)
        trial = _trial(known, result.metrics or {}, result.error, rungs, task.max_epochs)
        per_epoch = per_epoch or int((result.metrics or {}).get("steps_per_epoch") or 0)
        trials.append(trial)
    trials.sort(key=lambda t: t.label)
    for trial in trials:
        on_decided(trial)
    return trials, per_epoch


def _trial(
    config: Config, metrics: dict[str, Any], error: BaseException | None, rungs: Sequence[int], max_epochs: int
) -> TrialResult:
    """A Ray trial's outcome as the stacked search records a copy's."""
    curves = json.loads(metrics["curves"]) if "curves" in metrics else {"val_curve": [], "lr_curve": []}
    val, lrs = curves["val_curve"], curves["lr_curve"]
    epochs = len(val)
    finite = [v for _, v in val if isinstance(v, (int, float)) and math.isfinite(v)]
    if error is not None:
        state, reason = "invalid", (str(error).strip().splitlines() or [type(error).__name__])[-1]
    elif val and not math.isfinite(val[-1][1]):
        state, reason = "diverged", f"the validation loss of {config.label} is not finite at epoch {epochs}"
    else:
        state, reason = ("completed" if epochs >= max_epochs else "stopped"), ""
    return TrialResult(
        config.label,
        config.schedule,
        config.lr,
        config.params,
        state,
        epochs=epochs,
        rung=sum(r < epochs for r in rungs) if epochs < max_epochs else len(rungs) - 1,
        val_curve=val,
        lr_curve=lrs,
        best_val_loss=min(finite) if finite else math.nan,
        reason=reason,
    )
