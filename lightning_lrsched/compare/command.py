"""``lrsched compare``: the command line of :func:`lightning_lrsched.compare`.

Exit status: 0 when every run of the grid finished (``ok`` or ``diverged``) and every cross-device
check passed; 1 when a run failed or a check did not match; 2 for bad input.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence
from typing import Any

import yaml

from lightning_lrsched.command_config import argument_names, comma_list, load_config
from lightning_lrsched.compare.executors import EXECUTORS
from lightning_lrsched.compare.grid import LOGGERS, MODES, WANDB_RUNS, resolve_entry
from lightning_lrsched.errors import InvalidType, InvalidValue, RaisingArgumentParser, UsageError
from lightning_lrsched.optim import is_schedule_free
from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES

SCHEDULES_HELP = (
    "comma-separated schedules, each a name or name(arg=value, ...) with YAML values, e.g. "
    "'cosine,onecycle(max_lr=0.5),multistep(milestones=[5, 8])' "
    f"(default: {','.join(TUTORIAL_SCHEDULES)}: bare seed names get the tutorials' arguments)"
)


LISTS = {"schedules": "cosine, step", "devices": "cpu:1", "seeds": "0,1,2"}
"""The settings that are lists, each with an example."""


def config_keys() -> list[str]:
    """The settings a ``--config`` YAML may hold: :func:`compare`'s arguments."""
    from lightning_lrsched.compare.api import compare

    return argument_names(compare)


def _parser() -> argparse.ArgumentParser:
    parser = RaisingArgumentParser(
        prog="lrsched compare",
        description="Train each schedule on each device config and seed; write results.jsonl and a report. "
        "Exit status 0: every run finished and the cross-device check passed; 1: a run failed or a check "
        "did not match (a rerun trains the failed runs again); 2: bad input.",
    )
    parser.add_argument("--config", help="YAML with any of compare()'s arguments (schedules as a list of specs)")
    parser.add_argument("--schedules", help=SCHEDULES_HELP)
    parser.add_argument("--devices", help="comma-separated device configs: cpu:1, cpu:2, cuda:1, mps:1, auto")
    parser.add_argument("--seeds", help="comma-separated seeds (default: 0); 3 or more: statistics over seeds")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--output", help="output folder (default: runs/compare)")
    parser.add_argument("--logger", choices=LOGGERS)
    parser.add_argument("--wandb-mode", choices=("offline", "online"))
    parser.add_argument("--experiment", help="W&B group name (default: the output folder's name)")
    parser.add_argument("--executor", choices=tuple(EXECUTORS))
    parser.add_argument(
        "--mode",
        choices=MODES,
        help="stacked: train the schedules of a device config and seed side by side in one run (fast); "
        "sequential: one run each; auto (default): stacked where the model allows it and a short probe finds it faster",
    )
    parser.add_argument(
        "--wandb-runs", choices=WANDB_RUNS, help="stacked mode: a W&B run per schedule (default) or one per stacked run"
    )
    parser.add_argument("--tolerance", type=float, help="cross-device relative tolerance on final val loss")
    parser.add_argument(
        "--divergence-factor",
        help="a run has diverged when an epoch's mean training loss is above this x its best so far (the untrained "
        "model's first-batch loss included); non-finite losses, parameters or LRs always are. A number > 1 "
        "(default: 10), or 'off' for the non-finite checks alone. A high validation loss is never divergence",
    )
    parser.add_argument("--run-timeout", type=float, help="seconds (> 0) before a run is stopped and recorded failed")
    parser.add_argument("--force", action="store_true", default=None, help="rerun runs already in results.jsonl")
    return parser


def split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets.

    Example:
        >>> split_top_level("step,multistep(milestones=[5, 8], gamma=0.5),cosine")
        ['step', 'multistep(milestones=[5, 8], gamma=0.5)', 'cosine']
    """
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def parse_schedule(text: str) -> str | dict[str, Any]:
    """One ``--schedules`` entry: a name, or ``name(arg=value, ...)`` as a spec dict.

    Example:
        >>> parse_schedule("onecycle(max_lr=0.5, pct_start=0.3)")
        {'name': 'onecycle', 'max_lr': 0.5, 'pct_start': 0.3}
        >>> parse_schedule("warmup_cosine(warmup=2ep)")
        {'name': 'warmup_cosine', 'warmup': '2ep'}
    """
    if "(" not in text:
        return text
    name, _, rest = text.partition("(")
    if not rest.endswith(")") or not name.strip():
        raise UsageError(f"--schedules: {text!r} must look like name(arg=value, ...), e.g. onecycle(max_lr=0.5)")
    spec: dict[str, Any] = {"name": name.strip()}
    for item in split_top_level(rest[:-1]):
        key, equals, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key.isidentifier():
            raise UsageError(f"--schedules: {item!r} in {text!r} must be arg=value, e.g. onecycle(max_lr=0.5)")
        # An empty value would read as YAML null, which means "the default" and trains silently.
        if not value:
            raise UsageError(f"--schedules: {key} has no value in {text!r}: give one ({key}=value) or leave {key} out")
        if key in spec:
            raise UsageError(f"--schedules: {key} given twice in {text!r}: give it once")
        try:
            spec[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"--schedules: cannot read the value of {key} in {text!r}") from None
    return spec


def _check_schedules(schedules: Sequence[Any]) -> None:
    """Resolve every schedule (or schedule-free optimizer) now, so a missing argument says how to give it."""
    for spec in schedules:
        try:
            resolve_entry(spec)
        except (InvalidValue, InvalidType) as error:
            if is_schedule_free(spec):  # a missing extra or a bad optimizer argument: the message says which
                raise UsageError(f"--schedules: {error}") from None
            name = spec if isinstance(spec, str) else spec.get("name", "?")
            raise UsageError(
                f"--schedules: {error} (give arguments inline, e.g. --schedules '{name}(arg=value)', "
                f"or in --config: schedules: [{{name: {name}, arg: value}}])"
            ) from None


def compare_settings(args: Sequence[str]) -> dict[str, Any]:
    """The keyword arguments of :func:`compare` that ``args`` (and its ``--config``) give."""
    opts = _parser().parse_args(list(args))
    settings: dict[str, Any] = load_config(opts.config, config_keys()) if opts.config else {}
    if opts.schedules is not None:
        settings["schedules"] = [parse_schedule(part) for part in split_top_level(opts.schedules)]
    for key, example in LISTS.items():
        if key in settings and not isinstance(settings[key], list):
            raise UsageError(
                f"--config {opts.config}: `{key}` must be a list, e.g. {key}: [{example}]: got {settings[key]!r}"
            )
    for key, kind in (("devices", str), ("seeds", int)):
        value = getattr(opts, key)
        if value is not None:
            settings[key] = comma_list(key, value, kind, LISTS[key])
    if opts.schedules is not None and not settings["schedules"]:
        example = LISTS["schedules"].replace(" ", "")
        raise UsageError(f"--schedules: give at least one, e.g. --schedules {example}: got {opts.schedules!r}")
    if opts.divergence_factor is not None:
        settings["divergence_factor"] = _divergence_factor(opts.divergence_factor)
    for key in config_keys():
        if key == "divergence_factor":
            continue
        value = getattr(opts, key, None)
        if value is not None and key not in ("schedules", "devices", "seeds"):
            settings[key] = value
    if "schedules" in settings:
        _check_schedules(settings["schedules"])
    return settings


def _divergence_factor(text: str) -> float | None:
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 1 < value < float("inf"):
        raise UsageError(f"--divergence-factor: expected a number > 1 or 'off': got {text!r}")
    return value


def compare_command(args: Sequence[str]) -> None:
    from lightning_lrsched.compare.api import compare
    from lightning_lrsched.validation import make_output_dir

    settings = compare_settings(args)
    # An unusable --output (a file, read-only, under /proc) is a one-line error before anything trains.
    make_output_dir("--output", settings.get("output", inspect.signature(compare).parameters["output"].default))
    comparison = compare(**settings)
    if not comparison.succeeded:
        raise SystemExit(1)
