"""The search space of `tune`: schedules (fixed or searched arguments), a peak-LR range, warmups; the rungs.

A space is plain data, checked when it is made, so that bad input is one line before anything trains::

    schedules:
      - cosine                                                  # the tutorial's arguments
      - {name: step, step_size: {choices: [5, 10]}, gamma: {low: 0.1, high: 0.5}}
      - {name: warmup_cosine, min_lr_ratio: 0.01}
    lr: {low: 0.01, high: 1.0}      # log-uniform; leave it out to centre it on find_lr's valley
    warmup: [0, 1ep, 10%]           # durations; 0 is none

A searched argument is ``{choices: [...]}`` (categorical) or ``{low: a, high: b}`` (float, log-scale
with ``log: true``; int when both bounds are ints); any other value is fixed (lists included:
``milestones: [10, 15]``). Each configuration is one point: a schedule, its searched arguments, a
peak LR and a warmup. The peak LR goes into the model's ``lr`` argument; a schedule with an
absolute peak (``max_lr``: ``cyclic``, ``onecycle``) gets it as its ``max_lr`` too, and ``cyclic``'s
``base_lr`` keeps its ratio to ``max_lr``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.curve import CATALOG
from lightning_lrsched.schedules.duration import parse_duration
from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES, resolve_schedule

SEARCH_KEYS = ({"choices"}, {"low", "high"}, {"low", "high", "log"})
"""The shapes of a searched argument; anything else is a fixed value."""
COMMON_ARGS = ("warmup", "interval")
"""Arguments every schedule takes besides its own (a generic warmup in front; the stepping interval)."""


def is_searched(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) in SEARCH_KEYS


@dataclass(frozen=True)
class Searched:
    """One searched argument: categorical ``choices`` or a ``low``..``high`` range (``log`` scale or not)."""

    name: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

    @classmethod
    def parse(cls, name: str, value: Mapping[str, Any], where: str = "") -> Searched:
        """``name``: the schedule's argument; ``where``: how the space names it, in errors."""
        shown = where or name
        if "choices" in value:
            choices = value["choices"]
            if not isinstance(choices, (list, tuple)) or not choices:
                raise InvalidValue(f"`{shown}.choices` must be a non-empty list: got {choices!r}")
            return cls(name, choices=tuple(choices))
        low, high, log = value["low"], value["high"], value.get("log", False)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not low < high:
            raise InvalidValue(f"`{shown}` must have numbers low < high: got low={low!r}, high={high!r}")
        if log and low <= 0:
            raise InvalidValue(f"`{shown}` with log: true must have low > 0: got low={low!r}")
        return cls(name, low=low, high=high, log=bool(log))

    def suggest(self, trial: Any, key: str) -> Any:
        """The value an Optuna trial proposes for this argument (parameter ``key`` of the study)."""
        if self.choices:
            return trial.suggest_categorical(key, list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int):
            return trial.suggest_int(key, self.low, self.high, log=self.log)
        low, high = self.low, self.high
        if low is None or high is None:
            raise InvalidValue(f"`{key}` needs `choices`, or `low` and `high`")
        return trial.suggest_float(key, float(low), float(high), log=self.log)

    def first(self) -> Any:
        return self.choices[0] if self.choices else self.low


@dataclass(frozen=True)
class ScheduleChoice:
    """One schedule of the space: its name, its fixed arguments and its searched ones."""

    label: str
    name: str
    fixed: dict[str, Any]
    searched: tuple[Searched, ...] = ()

    def spec(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": self.name, **self.fixed, **values}


@dataclass(frozen=True)
class Config:
    """One configuration: what one copy of the search (and one confirmed schedule) trains.

    Attributes:
        label: ``t<trial>-<schedule>``: distinct in a search.
        schedule: the schedule spec (searched arguments, warmup and an absolute peak filled in).
        lr: the peak LR: the model's ``lr`` argument.
        params: the Optuna parameters that made it (``schedule``, ``lr``, ``warmup``, ``<schedule>.<arg>``).
    """

    label: str
    schedule: dict[str, Any]
    lr: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpace:
    """Schedules × peak LR × warmup, checked when made (see the module docstring).

    Args:
        schedules: names (tutorial arguments for the seed six) or specs with fixed or searched arguments.
        lr: ``(low, high)`` of the log-uniform peak LR, or ``None`` (centred on ``find_lr``'s valley).
        warmup: the warmup durations to choose from (``0``: none).

    Example:
        >>> step = {"name": "step", "step_size": 5, "gamma": {"low": 0.1, "high": 0.5}}
        >>> lr = {"low": 0.01, "high": 1.0}
        >>> space = SearchSpace.parse({"schedules": ["cosine", step], "lr": lr, "warmup": [0, "1ep"]})
        >>> [s.label for s in space.schedules], space.lr, space.warmup
        (['cosine', 'step'], (0.01, 1.0), (0, '1ep'))
    """

    schedules: tuple[ScheduleChoice, ...]
    lr: tuple[float, float] | None = None
    warmup: tuple[Any, ...] = (0,)

    @classmethod
    def parse(cls, space: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(space, Mapping):
            raise InvalidType(f"`space` must be a mapping with schedules, lr and warmup: got {space!r}")
        unknown = sorted(set(space) - {"schedules", "lr", "warmup"})
        if unknown:
            raise InvalidValue(f"`space` has unknown keys {unknown}: use schedules, lr, warmup")
        entries = space.get("schedules")
        if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence) or not entries:
            raise InvalidValue(
                f"`space.schedules` is empty: name at least one schedule, e.g. [cosine, step]: got {entries!r}"
            )
        choices = [_schedule_choice(i, entry) for i, entry in enumerate(entries)]
        names = [c.label for c in choices]
        labels = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]
        choices = [ScheduleChoice(label, c.name, c.fixed, c.searched) for c, label in zip(choices, labels, strict=True)]
        return cls(tuple(choices), _lr_range(space.get("lr")), _warmups(space.get("warmup", [0])))

    def with_lr(self, low: float, high: float) -> SearchSpace:
        return SearchSpace(self.schedules, _lr_range({"low": low, "high": high}), self.warmup)

    def propose(self, trial: Any) -> Config:
        """The configuration an Optuna trial proposes (its sampler chooses each parameter)."""
        if self.lr is None:
            raise InvalidValue("the space has no `lr` range yet: give one or let tune centre it on find_lr's valley")
        by_label = {c.label: c for c in self.schedules}
        label = trial.suggest_categorical("schedule", list(by_label))
        choice = by_label[label]
        values = {s.name: s.suggest(trial, f"{label}.{s.name}") for s in choice.searched}
        lr = trial.suggest_float("lr", self.lr[0], self.lr[1], log=True)
        warmup = trial.suggest_categorical("warmup", [str(w) for w in self.warmup])
        spec = with_warmup(choice.spec(values), _duration_value(warmup))
        return Config(f"t{trial.number:03d}-{label}", with_absolute_peak(spec, lr), lr, dict(trial.params))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedules": [
                {"name": c.name, **c.fixed, **{s.name: _searched_dict(s) for s in c.searched}} for c in self.schedules
            ],
            "lr": None if self.lr is None else {"low": self.lr[0], "high": self.lr[1]},
            "warmup": list(self.warmup),
        }


def _searched_dict(s: Searched) -> dict[str, Any]:
    if s.choices:
        return {"choices": list(s.choices)}
    return {"low": s.low, "high": s.high, **({"log": True} if s.log else {})}


def _schedule_choice(i: int, entry: Any) -> ScheduleChoice:
    where = f"space.schedules[{i}]"
    if isinstance(entry, str):
        resolve_schedule(entry)  # the catalog's error for an unknown name
        return ScheduleChoice(entry, entry, dict(TUTORIAL_SCHEDULES.get(entry, {})))
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise InvalidType(f"`{where}` must be a schedule name or a mapping with a `name`: got {entry!r}")
    name = entry["name"]
    if name not in CATALOG:
        resolve_schedule(entry)  # unknown name: the catalog's own message lists the valid ones
    accepted = [*CATALOG[name].parameters(), *COMMON_ARGS]
    fixed, searched = {}, []
    for arg, value in entry.items():
        if arg == "name":
            continue
        if arg not in accepted:
            raise InvalidValue(
                f"`{where}`: {name} takes no argument {arg!r}; "
                f"it takes {', '.join(a for a in accepted if a != 'schedules')}"
            )
        if is_searched(value):
            searched.append(Searched.parse(arg, value, f"{where}.{arg}"))
        else:
            fixed[arg] = value
    choice = ScheduleChoice(name, name, fixed, tuple(searched))
    # Every searched value must make a valid schedule: checked with the first choice or the low end.
    # (an absolute peak, `max_lr`, is the searched LR: any positive value checks the rest).
    resolve_schedule(with_absolute_peak(choice.spec({s.name: s.first() for s in searched}), 1.0))
    if any(s.name == "warmup" for s in searched):
        raise InvalidValue(f"`{where}`: search warmups with the space's `warmup` list, not as a schedule argument")
    return choice


def _lr_range(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, Mapping) and set(value) == {"low", "high"}:
        low, high = value["low"], value["high"]
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = value
    else:
        raise InvalidValue(f"`space.lr` must be {{low: a, high: b}} (a log range of the peak LR): got {value!r}")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    if not numbers or not 0 < low < high:
        raise InvalidValue(
            f"`space.lr` must be positive and increasing (0 < low < high): got low={low!r}, high={high!r}"
        )
    return float(low), float(high)


def _warmups(value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidValue(f"`space.warmup` must be a non-empty list of durations (0, '1ep', '10%'): got {value!r}")
    for i, w in enumerate(value):
        parse_duration(f"space.warmup[{i}]", w)
    return tuple(dict.fromkeys(value))


def _duration_value(text: str) -> Any:
    return int(text) if text.isdigit() else text


def with_warmup(spec: dict[str, Any], warmup: Any) -> dict[str, Any]:
    """``spec`` with a warmup (none for ``0``); a schedule of the warmup family takes it as its own argument."""
    out = dict(spec)
    if warmup in (0, "0"):
        if CATALOG[out["name"]].own_warmup and "warmup" not in out:
            out["warmup"] = 0
        return out
    out["warmup"] = warmup
    return out


def with_absolute_peak(spec: dict[str, Any], lr: float) -> dict[str, Any]:
    """``spec`` peaking at ``lr``: a schedule with an absolute ``max_lr`` gets it (``cyclic``'s ``base_lr`` scaled too).

    Example:
        >>> with_absolute_peak({"name": "cyclic", "base_lr": 0.001, "max_lr": 0.1}, 0.5)
        {'name': 'cyclic', 'base_lr': 0.005, 'max_lr': 0.5}
        >>> with_absolute_peak({"name": "cosine"}, 0.5)
        {'name': 'cosine'}
    """
    out = dict(spec)
    parameters = CATALOG[out["name"]].parameters()
    if "max_lr" not in parameters:
        return out
    old = out.get("max_lr", parameters["max_lr"])  # may be unset (inspect's `empty`): then base_lr stays
    if "base_lr" in parameters and isinstance(old, (int, float)) and old > 0:
        base = out.get("base_lr", parameters["base_lr"])
        if isinstance(base, (int, float)):
            out["base_lr"] = float(f"{base * lr / old:.6g}")
    out["max_lr"] = lr
    return out


def rung_epochs(max_epochs: int, eta: int, rungs: int) -> list[int]:
    """The epochs at which copies are judged: ``max_epochs / eta**k``, ``k = rungs..1`` (rounded, >= 1), then the end.

    Rungs that round to the same epoch, or to the end, are one.

    Example:
        >>> rung_epochs(30, 3, 2), rung_epochs(27, 3, 3), rung_epochs(3, 3, 2)
        ([3, 10, 30], [1, 3, 9, 27], [1, 3])
    """
    marks = {max(1, round(max_epochs / eta**k)) for k in range(rungs, 0, -1)}
    return [*sorted(m for m in marks if m < max_epochs), max_epochs]


def survivors(n: int, eta: int) -> int:
    """How many of ``n`` copies go on past a rung: the best ``n // eta``, at least one (successive halving).

    Example:
        >>> [survivors(n, 3) for n in (48, 16, 5, 2, 1)]
        [16, 5, 1, 1, 1]
    """
    return max(1, n // eta)


def check_model_takes_lr(model_class: type) -> None:
    """Refuse a model without an ``lr`` argument: tune gives each configuration its peak LR through it."""
    parameters = inspect.signature(model_class).parameters
    if "lr" not in parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        raise InvalidValue(
            f"`model`: tune sets each configuration's peak LR through the model's `lr` argument, "
            f"and {model_class.__name__} takes none (give it an `lr` argument that its configure_optimizers uses)"
        )


@dataclass(frozen=True)
class Task:
    """What every run of a search and its confirmation trains: model and data (LightningCLI-style
    ``{"class_path", "init_args"}``), extra ``Trainer`` arguments, and the full run's epochs."""

    model: dict[str, Any]
    data: dict[str, Any]
    trainer: dict[str, Any]
    max_epochs: int
