"""``lrsched compare``: the command line of :func:`lightning_lrsched.compare`."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lightning_lrsched.compare.grid import LOGGERS, MODES, SEED_SCHEDULES, WANDB_RUNS
from lightning_lrsched.errors import RaisingArgumentParser

CONFIG_KEYS = {
    "schedules", "devices", "seeds", "max_epochs", "output", "logger", "wandb_mode", "project", "experiment",
    "model", "data", "trainer", "executor", "mode", "wandb_runs", "force", "tolerance", "divergence_factor",
    "run_timeout",
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = RaisingArgumentParser(
        prog="lrsched compare",
        description="Train each schedule on each device config and seed; write results.jsonl and a report.",
    )
    parser.add_argument("--config", help="YAML with any of: " + ", ".join(sorted(CONFIG_KEYS)))
    parser.add_argument("--schedules", help=f"comma-separated names (default: {','.join(SEED_SCHEDULES)})")
    parser.add_argument("--devices", help="comma-separated device configs: cpu:1, cpu:2, cuda:1, mps:1, auto")
    parser.add_argument("--seeds", help="comma-separated seeds (default: 0)")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--output", help="output folder (default: runs/compare)")
    parser.add_argument("--logger", choices=LOGGERS)
    parser.add_argument("--wandb-mode", choices=("offline", "online"))
    parser.add_argument("--experiment", help="W&B group name (default: the output folder's name)")
    parser.add_argument("--executor", choices=("local", "ray"))
    parser.add_argument(
        "--mode",
        choices=MODES,
        help="stacked: train the schedules of a device config and seed side by side in one run (fast); "
        "sequential: one run each; auto (default): stacked where the model allows it",
    )
    parser.add_argument(
        "--wandb-runs", choices=WANDB_RUNS, help="stacked mode: a W&B run per schedule (default) or one per stacked run"
    )
    parser.add_argument("--tolerance", type=float, help="cross-device relative tolerance on final val loss")
    parser.add_argument("--run-timeout", type=float, help="seconds before a run is stopped as failed")
    parser.add_argument("--force", action="store_true", default=None, help="rerun runs already in results.jsonl")
    return parser


def compare_command(args: Sequence[str]) -> None:
    from lightning_lrsched.compare.api import compare
    from lightning_lrsched.errors import UsageError
    from lightning_lrsched.validation import make_output_dir

    opts = _parser().parse_args(list(args))
    settings: dict[str, Any] = {}
    if opts.config:
        path = Path(opts.config)
        if not path.is_file():
            raise UsageError(f"--config: no such file {opts.config!r}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "not valid YAML"
            raise UsageError(f"--config: {opts.config} is not valid YAML{where}: {problem}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--config: {opts.config} must hold a mapping of settings")
        unknown = sorted(set(loaded) - CONFIG_KEYS)
        if unknown:
            raise UsageError(f"--config: unknown setting(s) {', '.join(unknown)}: use {', '.join(sorted(CONFIG_KEYS))}")
        settings.update(loaded)
    lists = {"schedules": str, "devices": str, "seeds": int}
    for key, kind in lists.items():
        value = getattr(opts, key)
        if value is not None:
            try:
                settings[key] = [kind(v.strip()) for v in value.split(",") if v.strip()]
            except ValueError:
                raise UsageError(
                    f"--{key}: expected a comma-separated list of {kind.__name__}s: got {value!r}"
                ) from None
    for key in (
        "max_epochs",
        "output",
        "logger",
        "wandb_mode",
        "experiment",
        "executor",
        "mode",
        "wandb_runs",
        "tolerance",
        "run_timeout",
        "force",
    ):
        value = getattr(opts, key)
        if value is not None:
            settings[key] = value
    # A bad output folder is the user's to fix: say so before any run starts, not as a traceback mid-grid.
    make_output_dir("--output", settings.get("output", inspect.signature(compare).parameters["output"].default))
    comparison = compare(**settings)
    if any(not check.passed for check in comparison.checks):
        raise SystemExit(1)
