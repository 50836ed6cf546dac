"""`RunRecord`: the result of one run of a comparison, and its one JSON form.

A record is written by the worker that trained the run, passed to the grid as JSON, appended to
``results.jsonl`` and read back by the report: every one of those goes through
:meth:`RunRecord.to_json` and :meth:`RunRecord.from_json`. The JSON is strict (RFC 8259, readable
by any tool): a number that is not finite is written as ``null``, and the record's ``status`` and
``reason`` say why (a diverged run's loss, a run that never validated).
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from lightning_lrsched.compare.jsonlines import dumps

STATUSES = ("ok", "diverged", "failed")
"""``ok`` and ``diverged`` are results (a rerun skips them); ``failed`` (an error, a timeout, a
killed process, an invalid schedule) is retried by the next invocation."""

Point = list[float]


@dataclass
class RunRecord:
    """One run of the grid: what trained (identity), how it ended, and its curves by samples seen.

    Attributes:
        key: the run's identity (see :attr:`RunSpec.key`); reruns skip on it.
        status: one of :data:`STATUSES`.
        reason: why a run diverged or failed (empty when ``ok``).
        mode_reason: why ``mode="auto"`` trained it this way: the stacking probe's figures, or why its
            module could not be stacked (empty otherwise).
        final_lr: the LR the last optimizer step used (first param group of the run).
        lr_curve: ``[samples, lr]`` at every optimizer step (thinned past a bound).
        val_curve: ``[samples, val_loss, val_acc]`` at every validation.
        train_curve: ``[samples, train_loss]`` at every epoch end.
        events: the run's plateau and divergence events (``step``, ``epoch``, ``value``, ``action``, ``reason``).
        wandb_dir: the run's W&B folder, when logged to W&B.
    """

    key: str
    label: str
    schedule: str
    params: dict[str, Any]
    device: str
    seed: int
    max_epochs: int
    mode: str
    logger: str
    status: str
    reason: str = ""
    epochs: int = 0
    steps: int = 0
    samples: int = 0
    wall_time: float = math.nan
    steps_per_s: float = math.nan
    final_train_loss: float = math.nan
    final_val_loss: float = math.nan
    final_val_acc: float = math.nan
    best_val_loss: float = math.nan
    best_val_acc: float = math.nan
    best_samples: float = math.nan
    final_lr: float = math.nan
    lr_curve: list[Point] = field(default_factory=list)
    val_curve: list[Point] = field(default_factory=list)
    train_curve: list[Point] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    wandb_dir: str | None = None
    mode_reason: str = ""

    @property
    def finished(self) -> bool:
        """Whether the run is a result (``ok`` or ``diverged``); a ``failed`` one is retried."""
        return self.status in ("ok", "diverged")

    @property
    def name(self) -> str:
        return f"{self.label} {self.device} seed {self.seed}"

    def to_json(self) -> str:
        """One line of strict JSON (non-finite numbers as ``null``)."""
        return dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> RunRecord:
        """The record of one JSON line.

        Raises:
            ValueError: not JSON (a torn line), or :class:`InvalidRecord`: JSON but not a record's fields.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise InvalidRecord(f"not a JSON object: {str(text)[:80]!r}")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """The record of a parsed line.

        Raises:
            InvalidRecord: a field is missing or of the wrong kind (``"seed": "zero"``, a string curve).
        """
        known = {f.name: f for f in fields(cls)}
        missing = [name for name, f in known.items() if f.default is f.default_factory is MISSING and name not in data]
        if missing:
            raise InvalidRecord(f"a run record needs {', '.join(missing)}")
        values = {k: v for k, v in data.items() if k in known}
        for name, value in values.items():
            kind = str(known[name].type)
            if value is None and kind == "float":
                values[name] = math.nan
            elif not _FIELD_CHECKS[kind](value):
                raise InvalidRecord(f"field {name} must be {_FIELD_KINDS[kind]}: got {value!r}"[:200])
        if values["status"] not in STATUSES:
            raise InvalidRecord(f"field status must be one of {', '.join(STATUSES)}: got {values['status']!r}")
        for name in ("lr_curve", "val_curve", "train_curve"):
            values[name] = [[math.nan if v is None else v for v in point] for point in values.get(name) or []]
        return cls(**values)


class InvalidRecord(ValueError):
    """A line that parses as JSON but is not a run record (a field missing or of the wrong kind)."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _curve(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(point, list) and all(v is None or _number(v) for v in point) for point in value
    )


_FIELD_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _number,
    "dict[str, Any]": lambda v: isinstance(v, dict),
    "list[Point]": _curve,
    "list[dict[str, Any]]": lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
    "str | None": lambda v: v is None or isinstance(v, str),
}
_FIELD_KINDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number or null",
    "dict[str, Any]": "an object",
    "list[Point]": "a list of [number, ...] points",
    "list[dict[str, Any]]": "a list of objects",
    "str | None": "a string or null",
}
