"""``lrsched find``: the LR range test of a ``lrsched fit`` config, its figure, and the config with the LR filled in.

Example::

    lrsched find --config examples/configs/onecycle.yaml -o lr_find.png --write-config onecycle_found.yaml
    lrsched fit --config onecycle_found.yaml

The config is the one ``lrsched fit`` reads: ``seed_everything``, ``model:`` and ``data:`` (either
``class_path``/``init_args`` as in LightningCLI, or plain arguments of ``SyntheticClassifier`` and
``SyntheticDataModule``), and ``trainer:``, of which the range test uses the hardware settings
(``accelerator``, ``devices``, ``strategy``, ``precision``, ``accumulate_grad_batches``, ...) and not
the length of the run.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lightning_lrsched.errors import InvalidValue, RaisingArgumentParser, UsageError
from lightning_lrsched.finder.peak import peak_key, with_peak_lr
from lightning_lrsched.finder.rules import RULES
from lightning_lrsched.finder.sweep import DEFAULT_RULE, OWNED_TRAINER_ARGS, LRFinderResult, find_lr
from lightning_lrsched.validation import check_accelerator, unbound_arguments

RUN_ONLY_TRAINER_ARGS = (
    *OWNED_TRAINER_ARGS,
    "default_root_dir",
    "callbacks",
    "logger",
    "enable_checkpointing",
    "enable_progress_bar",
    "enable_model_summary",
    "log_every_n_steps",
)
"""``trainer:`` settings of a fit config that describe the real run, not the range test: left out of it."""

DEFAULT_CLASSES = {"model": "lightning_lrsched.SyntheticClassifier", "data": "lightning_lrsched.SyntheticDataModule"}
"""The class a config's section builds when it names none (as ``lrsched fit`` does)."""


def find_parser() -> argparse.ArgumentParser:
    parser = RaisingArgumentParser(
        prog="lrsched find",
        description=(
            "LR range test of a `lrsched fit` config: the LR rises exponentially from --min-lr to --max-lr "
            "over --num-steps steps; each rule suggests an LR from the smoothed loss. The model is not changed."
        ),
        epilog="example: lrsched find --config examples/configs/onecycle.yaml --write-config found.yaml",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="a `lrsched fit` YAML config (default: the synthetic classifier)"
    )
    parser.add_argument("--min-lr", type=float, default=1e-7, help="LR of the first step (default 1e-7)")
    parser.add_argument("--max-lr", type=float, default=10.0, help="LR of the last step (default 10)")
    parser.add_argument("--num-steps", type=int, default=100, help="optimizer steps, at least 25 (default 100)")
    parser.add_argument(
        "--rule",
        choices=tuple(RULES),
        default=DEFAULT_RULE,
        help=f"the suggestion --write-config uses (default {DEFAULT_RULE})",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("lr_find.png"), help="figure (default lr_find.png)")
    parser.add_argument(
        "--write-config", type=Path, default=None, help="write the config with the suggested LR as the schedule's peak"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the curve and the suggestions as JSON")
    return parser


def find_command(argv: list[str]) -> None:
    """Run ``lrsched find`` with the arguments after ``find``.

    Raises:
        UsageError: bad arguments or a config it cannot use (one line, exit status 2 in ``lrsched``).
    """
    parser = find_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (see `lrsched find --help`)")
    config = load_config(args.config)
    if (
        args.write_config is not None
        and args.config is not None
        and args.write_config.resolve() == args.config.resolve()
    ):
        raise UsageError(f"--write-config {args.write_config} is the --config itself: write the found config elsewhere")
    if args.write_config is not None and (why := unreplaceable(args.write_config, "lrsched find")):
        raise UsageError(f"--write-config {args.write_config}: {why}")
    from lightning_lrsched.plotting import check_image_path

    try:  # what is written after the test: refused before it runs, not as a traceback after it
        check_image_path("-o", args.output)
    except InvalidValue as error:
        raise UsageError(str(error)) from None
    if args.json is not None and args.json.is_dir():
        raise UsageError(f"--json {args.json} is a folder: give a file path (e.g. {args.json / 'lr_find.json'})")
    import lightning as L
    from lightning.pytorch.utilities import rank_zero_only

    # "Seed set to 0" is noise in front of the table.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    seed = config.get("seed_everything", 0)
    if seed is not False:
        L.seed_everything(None if seed is True else seed)
    model_class, model_args = resolve_section(config, "model")
    data_class, data_args = resolve_section(config, "data")
    if args.write_config is not None:
        check_writable(model_class, model_args)
    trainer_args, left_out = trainer_settings(config)
    model, datamodule = model_class(**model_args), data_class(**data_args)
    result = find_lr(
        model, datamodule, min_lr=args.min_lr, max_lr=args.max_lr, num_steps=args.num_steps, **trainer_args
    )

    @rank_zero_only
    def report() -> None:
        print(
            f"LR range test of {model_class.__name__}: {len(result.lrs)} of {result.num_steps} steps, "
            f"lr {result.min_lr:g} to {result.max_lr:g}"
        )
        if left_out:
            print(f"(settings of the real run, not used here: trainer {', '.join(left_out)})")
        print(result.table())
        subject = args.config.name if args.config is not None else model_class.__name__
        title = f"LR range test of {subject}: {len(result.lrs)} of {result.num_steps} steps"
        if result.diverged_at is not None:
            title += " (stopped: the loss diverged)"
        print(f"wrote {result.save_figure(args.output, title=title)}")
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result.to_dict(), indent=1))
            print(f"wrote {args.json}")
        if args.write_config is not None:
            print(write_config(config, result, args.rule, args.write_config, source=args.config))

    report()


def unreplaceable(path: Path, writer: str) -> str:
    """Why ``path`` must not be overwritten with a config ``writer`` writes (``""``: it may be).

    A file that ``writer`` wrote (its first line names it) is its own output, written again; any
    other file (a user's config) is kept.
    """
    if not path.exists():
        return ""
    if path.is_dir():
        return "is a folder: give a file path"
    try:
        with path.open(encoding="utf-8") as file:
            first = file.readline()
    except (OSError, UnicodeDecodeError):
        first = ""
    if first.startswith("# ") and f"`{writer}`" in first:
        return ""
    return f"exists and was not written by `{writer}`: give a new file name (it is kept as it is)"


def load_config(path: Path | None) -> dict[str, Any]:
    """The YAML config at ``path`` as a dict (``{}`` for none)."""
    if path is None:
        return {}
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UsageError(f"--config {path}: cannot read it ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise UsageError(f"--config {path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise UsageError(f"--config {path}: must be a mapping with model:, data:, trainer: sections")
    return dict(config)


def resolve_section(config: Mapping[str, Any], section: str) -> tuple[type, dict[str, Any]]:
    """The class and the arguments a ``model:`` or ``data:`` section describes.

    ``class_path`` is a dotted path or a name exported by ``lightning_lrsched``; without one, the
    section's keys are arguments of ``SyntheticClassifier`` / ``SyntheticDataModule``.
    """
    value = config.get(section) or {}
    if not isinstance(value, Mapping):
        raise UsageError(f"{section}: must be a mapping of arguments or class_path/init_args: got {value!r}")
    if "class_path" in value:
        unknown = sorted(set(value) - {"class_path", "init_args"})
        if unknown:
            raise UsageError(f"{section}: next to class_path only init_args is allowed: got {', '.join(unknown)}")
        path, init_args = value["class_path"], value.get("init_args") or {}
    else:
        path, init_args = DEFAULT_CLASSES[section], value
    if not isinstance(init_args, Mapping):
        raise UsageError(f"{section}.init_args: must be a mapping of arguments: got {init_args!r}")
    found = import_class(path, section)
    check_arguments(found, init_args, section)
    return found, dict(init_args)


def check_arguments(target: Any, arguments: Mapping[str, Any], section: str) -> None:
    """Refuse arguments ``target`` does not take, naming those it does, or a required one missing (a TypeError
    later would look like a bug)."""
    parameters = inspect.signature(target).parameters
    name = getattr(target, "__name__", str(target))
    unknown = [key for key in arguments if key not in parameters]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        raise UsageError(
            f"{section}: {name} takes no argument {', '.join(repr(k) for k in unknown)}; "
            f"it takes {', '.join(k for k in parameters if k != 'self')}"
        )
    if why := unbound_arguments(target, dict(arguments)):
        raise UsageError(f"{section}: {name}: {why}: give it in {section}.init_args")


def import_class(path: Any, section: str) -> type:
    if not isinstance(path, str) or not path:
        raise UsageError(f"{section}.class_path: must be a dotted class path: got {path!r}")
    module_name, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name or "lightning_lrsched"), name)
    except (ImportError, AttributeError):
        raise UsageError(f"{section}.class_path: cannot import {path!r}") from None
    if not inspect.isclass(found):
        raise UsageError(f"{section}.class_path: {path!r} is not a class")
    return found


def trainer_settings(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The ``trainer:`` settings the range test takes, and the names of those it leaves out."""
    trainer = config.get("trainer") or {}
    if not isinstance(trainer, Mapping):
        raise UsageError(f"trainer: must be a mapping of Trainer arguments: got {trainer!r}")
    kept, left_out = {}, []
    for key, value in trainer.items():
        if key in RUN_ONLY_TRAINER_ARGS:
            left_out.append(key)
        elif isinstance(value, Mapping):
            raise UsageError(f"trainer.{key}: lrsched find takes plain values, not class_path/init_args: got {value!r}")
        else:
            kept[key] = value
    import lightning as L

    check_arguments(L.Trainer, kept, "trainer")
    try:
        check_accelerator("trainer.accelerator", kept.get("accelerator"))
    except InvalidValue as error:
        raise UsageError(str(error)) from None
    return kept, left_out


def check_writable(model_class: type, model_args: Mapping[str, Any]) -> None:
    """Refuse --write-config for a model that has no argument to take the peak LR."""
    where = peak_key(model_args.get("scheduler"))
    accepted = inspect.signature(model_class).parameters
    needed = "scheduler" if where == "max_lr" else "lr"
    if needed not in accepted and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise UsageError(
            f"--write-config puts the LR into the model's `lr` (or its scheduler's `max_lr`): "
            f"{model_class.__name__} takes no `{needed}` argument"
        )


def write_config(
    config: Mapping[str, Any], result: LRFinderResult, rule: str, path: Path, source: Path | None = None
) -> str:
    """Write ``config`` with ``rule``'s LR as the model schedule's peak to ``path``; return what was done.

    The LR is rounded to 3 significant digits: the rules are estimates, and a config is read by people.
    """
    lr = float(f"{result.suggestion(rule):.3g}")
    out = dict(config)
    out["model"] = with_peak_lr(config.get("model") or {}, lr)
    model_args = out["model"].get("init_args", out["model"]) if "class_path" in out["model"] else out["model"]
    where = "model.scheduler.max_lr" if peak_key(model_args.get("scheduler")) == "max_lr" else "model.lr"
    if "class_path" in out["model"]:
        where = where.replace("model.", "model.init_args.")
    header = (
        f"# {source or 'the synthetic classifier'} with {where} = {lr:.3g}, the `{rule}` suggestion of `lrsched find`\n"
        f"# (range test: {len(result.lrs)} steps, lr {result.min_lr:g} to {result.max_lr:g}).\n"
        f"# Run: lrsched fit --config {path}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(out, sort_keys=False))
    return f"wrote {path}: {where} = {lr:.3g} ({rule})\nnext:  lrsched fit --config {path}"
