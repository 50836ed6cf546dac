"""``lrsched tune``: the command line of :func:`lightning_lrsched.tune`.

Example::

    lrsched tune --config examples/configs/tune/digits.yaml --write-config best.yaml
    lrsched fit --config best.yaml

The ``--config`` YAML holds any of :func:`~lightning_lrsched.tune.api.tune`'s arguments (``space``,
``budget``, ``max_epochs``, ``model``, ``data``, ``trainer``, ...); options on the command line
override it. Exit status: 0 when the search (and the confirmation) finished; 1 when a confirmation
run did not; 2 for bad input, before anything trains.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lightning_lrsched.command_config import argument_names, comma_list, load_config
from lightning_lrsched.errors import RaisingArgumentParser, UsageError


def config_keys() -> list[str]:
    """The settings a ``--config`` YAML may hold: :func:`tune`'s arguments."""
    from lightning_lrsched.tune.api import tune

    return argument_names(tune)


def tune_parser() -> argparse.ArgumentParser:
    parser = RaisingArgumentParser(
        prog="lrsched tune",
        description="Search schedules x peak LR x warmup: the configurations start together as copies of one "
        "stacked run and the worse are stopped at each rung (successive halving; proposals from Optuna's TPE); "
        "then the best are trained in full on 3 or more seeds and compared seed by seed. "
        "Exit status 0: done; 1: a confirmation run failed (a rerun trains it again); 2: bad input.",
        epilog="example: lrsched tune --config examples/configs/tune/digits.yaml --write-config best.yaml",
    )
    parser.add_argument("--config", type=Path, help="YAML with tune()'s arguments (space: schedules, lr, warmup)")
    parser.add_argument("--budget", type=int, help="configurations in the search (default 24)")
    parser.add_argument("--max-epochs", type=int, help="epochs of the full run (default 20)")
    parser.add_argument("--eta", type=int, help="each rung keeps the best 1/eta (default 3)")
    parser.add_argument("--rungs", type=int, help="rungs before the end; the first: max_epochs/eta**rungs (default 2)")
    parser.add_argument("--top-k", type=int, help="configurations confirmed on every seed (default 3)")
    parser.add_argument("--seeds", help="comma-separated seeds of the confirmation, at least 3 (default 0,1,2)")
    parser.add_argument("--device", help="one single-process device config: cpu:1 (default), cuda:1, mps:1")
    parser.add_argument("--output", help="output folder (default runs/tune)")
    parser.add_argument("--logger", choices=("csv", "wandb", "none"), help="the confirmation runs' logger")
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        help="local (default): one stacked run; ray: one Ray Tune trial per configuration",
    )
    parser.add_argument("--write-config", type=Path, help="write a `lrsched fit` config of the best configuration")
    parser.add_argument("--no-confirm", action="store_true", help="the search alone, without the confirmation")
    parser.add_argument("--force", action="store_true", default=None, help="train the search again")
    return parser


def tune_settings(argv: list[str]) -> dict[str, Any]:
    """The keyword arguments of :func:`tune` that ``argv`` (and its ``--config``) give."""
    opts = tune_parser().parse_args(argv)
    settings = load_config(opts.config, config_keys()) if opts.config else {}
    if "space" not in settings:
        raise UsageError("lrsched tune needs a search space: give --config with space: {schedules: [...], ...}")
    if opts.seeds is not None:
        settings["seeds"] = comma_list("seeds", opts.seeds, int, "0,1,2")
    for key in ("budget", "max_epochs", "eta", "rungs", "top_k", "device", "output", "logger", "executor", "force"):
        value = getattr(opts, key)
        if value is not None:
            settings[key] = value
    if opts.write_config is not None:
        if opts.config is not None and opts.write_config.resolve() == opts.config.resolve():
            raise UsageError(f"--write-config {opts.write_config} is the --config itself: write it elsewhere")
        settings["write_config"] = opts.write_config
    if opts.no_confirm:
        settings["confirm"] = False
    return settings


def tune_command(argv: list[str]) -> None:
    from lightning_lrsched.tune.api import tune

    tuning = tune(**tune_settings(argv))
    failed = [r for r in tuning.records if not r.finished]
    if tuning.statistics is not None and failed:
        raise SystemExit(1)
