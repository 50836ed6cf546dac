"""The ``lrsched`` command: ``fit``/``validate``/``test`` (LightningCLI), ``plot`` and ``compare``.

Examples::

    lrsched fit --config examples/configs/cosine.yaml
    lrsched fit --model.scheduler onecycle_tutorial --trainer.max_epochs 5
    lrsched plot cosine --T_max 50 --steps 100 -o lr.png
    lrsched plot --list
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from argparse import ArgumentError
from collections.abc import Sequence
from typing import Any

import yaml

from lightning_lrsched.errors import UsageError

USAGE = """usage: lrsched {fit,validate,test,plot,compare} ...

  fit, validate, test   train/evaluate with LightningCLI (default: the synthetic classifier);
                        see `lrsched fit --help`
  plot                  draw LR curves: lrsched plot cosine --T_max 50 --steps 100 -o lr.png
  compare               compare schedules across devices and seeds; see `lrsched compare --help`
"""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``lrsched`` and ``python -m lightning_lrsched``."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    try:
        if command == "plot":
            plot_command(args[1:])
        elif command == "compare":
            from lightning_lrsched.compare.command import compare_command

            compare_command(args[1:])
        elif command in ("fit", "validate", "test") or command.startswith("-"):
            lightning_command(args, from_argv=argv is None)
        else:
            sys.stdout.write(USAGE)
            raise SystemExit(0 if command in ("", "help") else 2)
    except (UsageError, ValueError, TypeError, ArgumentError) as error:
        ours = error if isinstance(error, (UsageError, ArgumentError)) else _our_error(error)
        if ours is None:
            raise
        print(f"lrsched {command}: error: {_one_line(str(ours))}", file=sys.stderr)
        raise SystemExit(2) from None


def _our_error(error: BaseException | None) -> BaseException | None:
    """The error our own argument checks raised (bad input) in ``error``'s chain, if any.

    Anything else, a bug in Lightning or here, keeps its traceback.
    """
    while error is not None:
        tb = error.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if isinstance(error, (ValueError, TypeError)) and tb is not None:
            if "lightning_lrsched" in tb.tb_frame.f_code.co_filename:
                return error
        error = error.__cause__ or error.__context__
    return None


def _one_line(message: str) -> str:
    r"""The informative line of a (possibly multi-line, nested) argument-parser message.

    Example:
        >>> _one_line('Parser key "model":\n  Errors:\n    - Problem\n  Parser key "lr":\n  Expected a float. Got: abc')
        '--model.lr: Expected a float. Got: abc'
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    keyed = [(i, re.match(r'Parser key "([^"]+)"', line)) for i, line in enumerate(lines)]
    keys = [(i, match.group(1)) for i, match in keyed if match]
    if keys and keys[-1][0] + 1 < len(lines):
        return "--" + ".".join(key for _, key in keys) + ": " + lines[keys[-1][0] + 1].lstrip("- ")
    bullets = [line[2:] for line in lines if line.startswith("- ") and "NoneType" not in line]
    return bullets[0] if bullets else (lines[0] if lines else message)


# -- fit / validate / test ------------------------------------------------------------------------
def lightning_command(args: list[str], *, from_argv: bool = False) -> None:
    """Run LightningCLI over the synthetic classifier (or any module given with ``--model``)."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.utilities.exceptions import MisconfigurationException
    from torch.optim.lr_scheduler import CyclicLR, OneCycleLR, ReduceLROnPlateau

    from lightning_lrsched.console import EpochReport

    # "Seed set to 0" on every start would make a one-line error two lines.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)

    class LRSchedCLI(LightningCLI):
        """LightningCLI that also schedules torch's own schedulers correctly."""

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.set_defaults(
                {
                    "model": {"class_path": "lightning_lrsched.models.SyntheticClassifier"},
                    "data": {"class_path": "lightning_lrsched.models.SyntheticDataModule"},
                }
            )

        def instantiate_classes(self) -> None:
            try:
                super().instantiate_classes()
            except MisconfigurationException as error:
                raise UsageError(str(error).splitlines()[0]) from None

        @staticmethod
        def configure_optimizers(lightning_module: Any, optimizer: Any, lr_scheduler: Any = None) -> Any:
            """Stock LightningCLI steps OneCycleLR/CyclicLR per epoch and gives torch's
            ReduceLROnPlateau no monitor; this steps them per step and monitors ``val_loss``."""
            if lr_scheduler is None:
                return optimizer
            config: dict[str, Any] = {"scheduler": lr_scheduler, "interval": "epoch", "frequency": 1}
            if isinstance(lr_scheduler, (OneCycleLR, CyclicLR)):
                config["interval"] = "step"
            if isinstance(lr_scheduler, ReduceLROnPlateau):
                # Validation may not run every epoch; skip (not fail) the epochs without a value.
                config.update(monitor=getattr(lr_scheduler, "monitor", "val_loss"), strict=False)
            return {"optimizer": optimizer, "lr_scheduler": config}

    LRSchedCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults={"callbacks": [*_default_callbacks(), EpochReport()]},
        parser_kwargs={"exit_on_error": False},
        args=None if from_argv else args,
    )


def _default_callbacks() -> list[Any]:
    from lightning.pytorch.callbacks import RichProgressBar

    return [RichProgressBar(leave=True)]


# -- plot -----------------------------------------------------------------------------------------
def _plot_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrsched plot",
        description="Draw LR curves. Each schedule name is followed by its own --argument value pairs.",
        epilog="example: lrsched plot cosine --T_max 50 step --step_size 10 --steps 100 -o lr.png",
    )
    parser.add_argument("--steps", type=int, help="optimizer steps to draw (the run length)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="optimizer steps per epoch")
    parser.add_argument("--base-lr", type=float, default=1.0, help="the optimizer's LR (default 1.0)")
    parser.add_argument("--x", choices=("steps", "epochs"), default=None, help="x axis (default: epochs if known)")
    parser.add_argument("-o", "--output", default="lr.png", help="image file to write (default lr.png)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--list", action="store_true", help="show the catalog with arguments and defaults")
    return parser


GLOBAL_OPTIONS = {"--steps", "--steps-per-epoch", "--base-lr", "--x", "-o", "--output", "--title"}


def split_schedule_args(args: Sequence[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """Split ``plot`` arguments into global options and one spec per schedule name.

    Example:
        >>> split_schedule_args(["cosine", "--T_max", "50", "--steps", "100"])
        (['--steps', '100'], [{'name': 'cosine', 'T_max': 50}])
    """
    from lightning_lrsched.schedules import available_schedules

    names = set(available_schedules())
    options: list[str] = []
    specs: list[dict[str, Any]] = []
    i = 0
    while i < len(args):
        token = args[i]
        option, _, inline = token.partition("=")
        if option in GLOBAL_OPTIONS or token in ("--list", "-h", "--help"):
            takes_value = option in GLOBAL_OPTIONS and not inline
            options += args[i : i + (2 if takes_value else 1)]
            i += 2 if takes_value else 1
        elif token.startswith("--"):
            if not specs:
                raise UsageError(f"{token} comes before any schedule name: put it after the schedule it belongs to")
            if inline:
                value, i = inline, i + 1
            elif i + 1 < len(args):
                value, i = args[i + 1], i + 2
            else:
                raise UsageError(f"{token} needs a value")
            specs[-1][option[2:].replace("-", "_")] = _literal(value)
        elif token in names:
            specs.append({"name": token})
            i += 1
        else:
            raise UsageError(f"unknown schedule {token!r}: use one of {', '.join(sorted(names))}")
    return options, specs


def _literal(text: str) -> Any:
    """``"0.1"`` -> 0.1, ``"[3, 5]"`` -> [3, 5], ``"true"`` -> True, ``"25%"`` -> "25%"."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def plot_command(args: Sequence[str]) -> None:
    from lightning_lrsched.schedules.tutorial import resolve_schedule

    options, specs = split_schedule_args(args)
    opts = _plot_parser().parse_args(options)
    if opts.list:
        _print_catalog()
        return
    if not specs:
        raise UsageError("name at least one schedule, e.g. `lrsched plot cosine --steps 100` (see --list)")
    if opts.steps is None or opts.steps < 1:
        raise UsageError(f"--steps must be a positive number of optimizer steps: got {opts.steps}")
    if opts.steps_per_epoch is not None and opts.steps_per_epoch < 1:
        raise UsageError(f"--steps-per-epoch must be >= 1: got {opts.steps_per_epoch}")
    from lightning_lrsched.plotting import save_figure, schedule_figure

    schedules = [resolve_schedule(spec["name"] if len(spec) == 1 else spec) for spec in specs]
    x = opts.x or ("epochs" if opts.steps_per_epoch else "steps")
    figure = schedule_figure(
        schedules, opts.steps, steps_per_epoch=opts.steps_per_epoch, base_lr=opts.base_lr, x=x, title=opts.title
    )
    print(f"wrote {save_figure(figure, opts.output)}")


def _print_catalog() -> None:
    import inspect

    from rich.console import Console
    from rich.table import Table

    from lightning_lrsched.schedules.curve import CATALOG
    from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES

    table = Table(title="lightning-lrsched schedules", show_lines=True)
    for column in ("name", "interval", "arguments (default)", "what it does"):
        table.add_column(column, no_wrap=column == "name")
    for name in sorted(CATALOG):
        entry = CATALOG[name]
        args = [f"{k}" + ("" if v is inspect.Parameter.empty else f"={v!r}") for k, v in entry.parameters().items()]
        if not entry.own_warmup:
            args.append("warmup=None")
        if name in TUTORIAL_SCHEDULES:
            args.append(f"[tutorial: {TUTORIAL_SCHEDULES[name]}]")
        table.add_row(name, entry.interval, "\n".join(args), entry.summary.replace("``", ""))
    Console().print(table)
