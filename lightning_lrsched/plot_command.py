"""``lrsched plot``: draw LR curves before training, and ``lrsched plot --list``: the schedule catalog.

Examples::

    lrsched plot cosine --T_max 50 --steps 100 -o lr.png
    lrsched plot cosine --T_max 50 step --step_size 10 --steps 100
    lrsched plot --list

Each schedule name is followed by its own ``--argument value`` pairs (torch's argument names).
No Lightning import: the command answers fast.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import re
import shutil
import textwrap
from collections.abc import Sequence
from typing import Any

import yaml

from lightning_lrsched.errors import RaisingArgumentParser, UsageError


def _plot_parser() -> argparse.ArgumentParser:
    parser = RaisingArgumentParser(
        prog="lrsched plot",
        usage="lrsched plot NAME [--ARG VALUE ...] [NAME [--ARG VALUE ...] ...] --steps N [options]",
        description="Draw LR curves. Each schedule name is followed by its own --argument value pairs "
        "(torch's argument names; `lrsched plot --list` shows them with their defaults).",
        epilog="example: lrsched plot cosine --T_max 50 step --step_size 10 --steps 100 -o lr.png",
    )
    parser.add_argument("--steps", type=int, help="optimizer steps to draw (the run length)")
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="optimizer steps per epoch; needed by durations in epochs ('2ep'); without it an epoch "
        "of an epoch-interval schedule is drawn as one step, and the figure says so",
    )
    parser.add_argument("--base-lr", type=float, default=1.0, help="the optimizer's LR (default 1.0)")
    parser.add_argument("--x", choices=("steps", "epochs"), default=None, help="x axis (default: epochs if known)")
    parser.add_argument(
        "-o", "--output", default="lr.png", help="image file to write: .png, .pdf, .svg, ... (default lr.png)"
    )
    parser.add_argument("--title", default=None)
    parser.add_argument("--list", action="store_true", help="show every schedule with its arguments and defaults")
    return parser


MAX_PLOT_STEPS = 10_000_000
"""``lrsched plot --steps`` at most: a point per step (80 MB a curve), far more than a figure's pixels."""

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
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 2
            else:
                raise UsageError(f"{token} needs a value, e.g. {token} 10 or {token}=10")
            specs[-1][option[2:].replace("-", "_")] = _literal(value)
        elif token in names:
            specs.append({"name": token})
            i += 1
        else:
            close = difflib.get_close_matches(token, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown schedule {token!r}: use one of {', '.join(sorted(names))}{hint}")
    return options, specs


def _literal(text: str) -> Any:
    """``"0.1"`` -> 0.1, ``"[3, 5]"`` -> [3, 5], ``"true"`` -> True, ``"25%"`` -> "25%"."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _in_epochs(value: Any) -> bool:
    """Whether a schedule argument holds a duration in epochs (``"2ep"``, or a list with one)."""
    if isinstance(value, str):
        return bool(re.fullmatch(r"\s*\d+(\.\d+)?\s*ep\s*", value))
    if isinstance(value, (list, tuple)):
        return any(_in_epochs(v) for v in value)
    if isinstance(value, dict):
        return any(_in_epochs(v) for v in value.values())
    return False


def plot_command(args: Sequence[str]) -> None:
    """``lrsched plot``: draw the named schedules over ``--steps`` optimizer steps into ``-o``."""
    from lightning_lrsched.schedules.tutorial import resolve_schedule

    options, specs = split_schedule_args(args)
    opts = _plot_parser().parse_args(options)
    if opts.list:
        print_catalog()
        return
    if not specs:
        raise UsageError("name at least one schedule, e.g. `lrsched plot cosine --steps 100` (see --list)")
    schedules = [resolve_schedule(spec["name"] if len(spec) == 1 else spec) for spec in specs]
    if opts.steps is None or opts.steps < 1:
        raise UsageError(f"--steps must be a positive number of optimizer steps: got {opts.steps}")
    if opts.steps > MAX_PLOT_STEPS:
        raise UsageError(
            f"--steps must be at most {MAX_PLOT_STEPS:,} (a figure cannot show more points; the curve's shape "
            f"does not need them: draw a run {opts.steps // MAX_PLOT_STEPS + 1}x shorter with durations scaled alike): "
            f"got {opts.steps}"
        )
    if opts.steps_per_epoch is not None and opts.steps_per_epoch < 1:
        raise UsageError(f"--steps-per-epoch must be >= 1: got {opts.steps_per_epoch}")
    if opts.steps_per_epoch is None:
        for schedule in schedules:
            in_epochs = [f"{k}={v!r}" for k, v in schedule.to_dict().items() if _in_epochs(v)]
            if in_epochs:
                raise UsageError(
                    f"{schedule.name}: {', '.join(in_epochs)} is in epochs: give --steps-per-epoch N "
                    "(optimizer steps per epoch) so it can be drawn in optimizer steps"
                )
    from lightning_lrsched.plotting import check_image_path, save_figure, schedule_figure

    check_image_path("-o", opts.output)
    x = opts.x or ("epochs" if opts.steps_per_epoch else "steps")
    figure = schedule_figure(
        schedules, opts.steps, steps_per_epoch=opts.steps_per_epoch, base_lr=opts.base_lr, x=x, title=opts.title
    )
    print(f"wrote {save_figure(figure, opts.output)}")


def print_catalog(width: int | None = None) -> None:
    """``lrsched plot --list``: each schedule, its interval, summary, arguments with defaults, tutorial values.

    Plain text wrapped to the terminal (80 columns through a pipe), so nothing is cut.
    """
    from lightning_lrsched.schedules.curve import CATALOG
    from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES

    width = width or min(shutil.get_terminal_size((80, 24)).columns, 100)
    indent = "    "
    out = textwrap.wrap(
        "Schedules, by name: get_schedule(name, ...) in Python, --model.scheduler '{name: ..., ...}' in "
        "lrsched fit, lrsched plot NAME --ARG VALUE. Durations: an int (scheduler steps), '10ep', '500st', '25%'.",
        width,
    )
    for name in sorted(CATALOG):
        entry = CATALOG[name]
        interval = "the parts' interval" if entry.parts else entry.interval
        out.append("")
        out += textwrap.wrap(
            f"{name} ({interval}): {entry.summary.replace('``', '')}",
            width,
            subsequent_indent=indent,
        )
        args = [k + ("" if v is inspect.Parameter.empty else f"={v!r}") for k, v in entry.parameters().items()]
        if not entry.own_warmup:
            args.append("warmup=None")
        out += textwrap.wrap(
            "arguments: " + ", ".join(args), width, initial_indent=indent, subsequent_indent=indent * 2
        )
        if name in TUTORIAL_SCHEDULES:
            tutorial = ", ".join(f"{k}={v!r}" for k, v in TUTORIAL_SCHEDULES[name].items())
            out += textwrap.wrap(
                f"tutorial (the bare name {name!r} in fit and compare): {tutorial}",
                width,
                initial_indent=indent,
                subsequent_indent=indent * 2,
            )
    print("\n".join(out))
