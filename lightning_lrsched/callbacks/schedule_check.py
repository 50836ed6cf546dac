"""`ScheduleCheck`: find LR-schedule misconfigurations before they cost a training run.

The callback decides when to look and how to report; what it looks for is
:mod:`lightning_lrsched.schedules.checks` (Lightning-free). At the start of training it checks the
schedules against the run; on resume it compares the checkpoint's schedulers and run length with
this run's, before the training state is restored; the plateau monitor is checked after the first
validation run, when it must have been logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.lightning import plan_from_trainer
from lightning_lrsched.schedules.checks import (
    Finding,
    check_schedulers,
    plateau_monitors,
    resume_findings,
    unlogged_monitors,
)
from lightning_lrsched.schedules.run import RunPlan

# Finding, RunPlan, check_schedulers and resume_findings are here for the paths that imported them from this module.
__all__ = ["Finding", "RunPlan", "ScheduleCheck", "ScheduleWarning", "check_schedulers", "resume_findings"]


class ScheduleWarning(UserWarning):
    """The warning :class:`ScheduleCheck` gives (``strict=False``)."""


class ScheduleCheck(Callback):
    """Check the LR schedules against the run at the start of training, and report what is off.

    Reports, in one message (a :class:`ScheduleWarning`, or with ``strict=True`` a
    ``MisconfigurationException``): a schedule meant to end with the run that ends well before it
    (past its end the LR sits at its floor or, for a cosine, rises again) or well after it (the LR
    never decays); a milestone, ``total_iters`` or ``step_size`` the run never reaches; a warmup as long as the
    run; a per-step schedule (onecycle, cyclic, the warmup family, torch's OneCycleLR and CyclicLR)
    stepped per epoch; an epoch-style schedule stepped per optimizer step with durations that look
    like epochs; a torch OneCycleLR that would raise before the run ends; a catalog schedule built
    for one interval and stepped on the other.

    On resume, before the checkpoint's training state is restored, it reports a scheduler whose
    settings differ from the checkpoint's (and whether they will be refused, applied or, for torch's
    schedulers, silently replaced by the checkpoint's) and a run length that differs from the
    checkpoint's where it changes the resolved schedule (both lengths in optimizer steps, and the LR at
    the resume step before and after). Two resumes cannot go on and raise ``InvalidValue`` even when
    not strict: a torch scheduler given another scheduler's state, and a restored torch OneCycleLR
    that the resumed run would step past its end. After the first validation run it reports a plateau monitor
    that was not logged, naming the keys that were. Nothing found, nothing said.

    Args:
        strict: raise instead of warning.

    Attributes:
        findings: every :class:`Finding` reported so far.
        plan: the run plan of the current run (saved in checkpoints, to compare on resume).

    Example:
        >>> import lightning.pytorch as pl
        >>> trainer = pl.Trainer(callbacks=[ScheduleCheck(strict=True)], logger=False)
    """

    def __init__(self, strict: bool = False) -> None:
        if not isinstance(strict, bool):
            raise InvalidType(f"`strict` must be True or False: got strict={strict!r}")
        self.strict = strict
        self.findings: list[Finding] = []
        self.plan: RunPlan | None = None
        self._checkpoint_plan: RunPlan | None = None
        self._checkpoint: Mapping[str, Any] | None = None
        self._monitors: list[tuple[str, str]] = []
        self._monitors_reported = False

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._checkpoint = {"lr_schedulers": checkpoint.get("lr_schedulers", []), "step": checkpoint.get("global_step")}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning restores the schedulers' state after this hook, so this is the last moment to
        # say what a changed setting will do.
        self._check_resume(trainer)
        # Known now, so that the sanity check's validation can already report a misspelt monitor.
        self._monitors = plateau_monitors(trainer.lr_scheduler_configs)
        self._monitors_reported = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_resume(trainer)  # strategies that restore the checkpoint after on_fit_start
        configs = trainer.lr_scheduler_configs
        self.plan = plan_from_trainer(trainer)
        if not self._monitors_reported:
            self._monitors = plateau_monitors(configs)
        self._report(check_schedulers(configs, self.plan), f"the LR schedule of this run ({self.plan.describe()})")

    def _check_resume(self, trainer: pl.Trainer) -> None:
        checkpoint, self._checkpoint = self._checkpoint, None
        if checkpoint is None:
            return
        now = plan_from_trainer(trainer)
        step = int(checkpoint["step"] or 0)
        findings = resume_findings(
            trainer.lr_scheduler_configs, checkpoint["lr_schedulers"], self._checkpoint_plan, now, step
        )
        self._report(findings, f"resuming from the checkpoint at step {step}")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The sanity check logs what validation logs, so a misspelt monitor is reported at fit start; a
        # module that logs nothing in the sanity check is judged at its first real validation instead.
        if trainer.state.fn != "fit" or not self._monitors:
            return
        if trainer.sanity_checking and not trainer.callback_metrics:
            return
        monitors, self._monitors, self._monitors_reported = self._monitors, [], True
        when = "the sanity check's validation run" if trainer.sanity_checking else "the first validation run"
        self._report(unlogged_monitors(monitors, trainer.callback_metrics, when), "the plateau monitor")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        monitors, self._monitors = self._monitors, []
        when = "training (no validation ran, so the LR was never reduced)"
        self._report(unlogged_monitors(monitors, trainer.callback_metrics, when), "the plateau monitor")

    def _report(self, findings: list[Finding], subject: str) -> None:
        if not findings:
            return
        self.findings.extend(findings)
        lines = "\n".join(f"  - {f}" for f in findings)
        message = f"ScheduleCheck: {len(findings)} problem(s) with {subject}:\n{lines}"
        if self.strict:
            raise MisconfigurationException(message)
        fatal = [f for f in findings if f.fatal]
        if fatal:  # going on would crash or train with a wrong LR: refused even when not strict, in one line
            raise InvalidValue(f"ScheduleCheck: cannot go on with {subject}: {'; '.join(map(str, fatal))}")
        rank_zero_warn(message, category=ScheduleWarning)

    def state_dict(self) -> dict[str, Any]:
        return {"run": None if self.plan is None else asdict(self.plan)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Older checkpoints kept scheduler fingerprints here; the checkpoint's own scheduler states replace them.
        run = state_dict.get("run")
        names = {f.name for f in fields(RunPlan)}
        self._checkpoint_plan = None if not run else RunPlan(**{k: v for k, v in run.items() if k in names})
