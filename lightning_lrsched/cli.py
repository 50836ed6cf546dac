"""The ``lrsched`` command: ``fit``/``validate``/``test`` (LightningCLI), ``plot``, ``find``, ``compare`` and ``tune``.

Examples::

    lrsched fit --config examples/configs/cosine.yaml
    lrsched fit --model.scheduler '{name: onecycle, max_lr: 0.5}' --trainer.max_epochs 5
    lrsched plot cosine --T_max 50 --steps 100 -o lr.png
    lrsched plot --list

This module imports no Lightning (``lrsched --help`` and ``lrsched plot`` answer fast); the
LightningCLI subclass lives in :mod:`lightning_lrsched.trainer_cli` and is also reachable here as
``LRSchedCLI``.

Errors: an exception of a user-error type (:data:`lightning_lrsched.errors.USER_ERRORS`, or an
argument parser's ``ArgumentError``) is one line on stderr and exit status 2; any other exception
is a bug and keeps its traceback, with a note saying so.
"""

from __future__ import annotations

import difflib
import errno
import inspect
import logging
import re
import sys
import textwrap
import types
import warnings
from argparse import ArgumentError
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from lightning_lrsched import __version__
from lightning_lrsched.errors import USER_ERRORS, UsageError
from lightning_lrsched.quick_exit import leave

BUG_NOTE = (
    "lrsched: this is not an input error but an unexpected failure. If it does not come from your own "
    "model or data code, it is a bug in lightning-lrsched: please report it with the command line and this traceback."
)


# -- the command table and its overview -----------------------------------------------------------
def lightning_command(command: str, args: Sequence[str]) -> None:
    """Run LightningCLI (``fit``, ``validate`` or ``test``) over the synthetic classifier or any module."""
    if "-h" in args or "--help" in args:
        sys.stdout.write(lightning_help(command))
        sys.stdout.flush()
    _check_config_files(args)
    # "Seed set to 0" on every start would make a one-line error two lines.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    from lightning_lrsched.trainer_cli import LRSchedCLI

    with warnings.catch_warnings():
        # LightningCLI warns whenever `args` is given while sys.argv has arguments: always true here.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        _ignore_lightnings_deprecations()
        warnings.showwarning = _warning_printer(command, warnings.showwarning)
        LRSchedCLI(args=[command, *args])


def _ignore_lightnings_deprecations() -> None:
    """Lightning's own use of a torch API torch deprecated: nothing the user can act on (in a ``catch_warnings``)."""
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def _check_config_files(args: Sequence[str]) -> None:
    """A ``--config`` that is not valid YAML, named with the place and the problem (jsonargparse names neither)."""
    for i, arg in enumerate(args):
        option, equals, value = arg.partition("=")
        if option not in ("--config", "-c"):
            continue
        path = value if equals else (args[i + 1] if i + 1 < len(args) else "")
        try:
            with open(path) as handle:
                yaml.safe_load(handle)
        except OSError:
            continue  # a missing file: the parser says so
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or "not valid YAML"
            raise UsageError(f"--config {path}: not valid YAML{where}: {problem}") from None


def _warning_printer(command: str, show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints this package's warnings as ``lrsched fit: warning: ...``.

    They speak to the user (a ScheduleCheck finding), so the file and line that raised them would be noise.
    """

    def show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if category.__module__.startswith("lightning_lrsched"):
            from tqdm import tqdm

            # tqdm.write lifts a progress bar out of the way instead of writing onto it.
            tqdm.write(f"lrsched {command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    return show_warning


def plot_command(args: Sequence[str]) -> None:
    """``lrsched plot``: see :mod:`lightning_lrsched.plot_command`."""
    from lightning_lrsched.plot_command import plot_command as run

    run(list(args))


def compare_command(args: Sequence[str]) -> None:
    """``lrsched compare``: see :mod:`lightning_lrsched.compare.command`."""
    from contextlib import nullcontext

    from lightning_lrsched.compare.processes import Standby, Stopped, stop_on_signals  # no torch

    try:
        # SIGTERM and SIGHUP raise like Ctrl-C, so the workers (in sessions of their own) are ended too.
        with stop_on_signals():
            # The grid's first worker imports torch and Lightning while this process parses the arguments and
            # imports them too; a grid that needs no single-process worker, or bad arguments, stop it again.
            with Standby.early() if not {"-h", "--help"} & set(args) else nullcontext():
                from lightning_lrsched.compare.command import compare_command as run

                run(args)
    except KeyboardInterrupt as stop:
        name = stop.name if isinstance(stop, Stopped) else "SIGINT"
        print(
            f"lrsched compare: stopped by {name}: its workers were ended; the runs that finished are in "
            "results.jsonl and a rerun trains the others",
            file=sys.stderr,
        )
        raise SystemExit(128 + (stop.signum if isinstance(stop, Stopped) else 2)) from None


def find_command(args: Sequence[str]) -> None:
    """``lrsched find``: see :mod:`lightning_lrsched.finder.command`."""
    from lightning_lrsched.finder.command import find_command as run

    with warnings.catch_warnings():
        _ignore_lightnings_deprecations()
        run(list(args))


def tune_command(args: Sequence[str]) -> None:
    """``lrsched tune``: see :mod:`lightning_lrsched.tune.command`."""
    from lightning_lrsched.tune.command import tune_command as run

    run(list(args))


COMMANDS: dict[str, tuple[str, Callable[[Sequence[str]], None]]] = {
    "fit": (
        "train with a schedule (default: the synthetic classifier, 20 epochs)",
        lambda a: lightning_command("fit", a),
    ),
    "validate": ("evaluate on the validation set once (options as in fit)", lambda a: lightning_command("validate", a)),
    "test": ("evaluate on the test set once (options as in fit)", lambda a: lightning_command("test", a)),
    "plot": ("draw LR curves before training: lrsched plot cosine --steps 100", plot_command),
    "find": ("LR range test: 5 suggestion rules, a figure, a config with the LR", find_command),
    "compare": ("train schedules x devices x seeds side by side; report + W&B", compare_command),
    "tune": ("search schedule x peak LR x warmup (successive halving); confirm", tune_command),
}
"""Every subcommand: its one-line summary and what runs it. A new command is one entry here."""


def overview() -> str:
    """``lrsched --help``: every command in one line (no Lightning import, so it is instant)."""
    width = max(len(name) for name in COMMANDS) + 2
    lines = [f"  {name:<{width}}{summary}" for name, (summary, _) in COMMANDS.items()]
    return (
        f"usage: lrsched {{{','.join(COMMANDS)}}} [options]\n\n"
        "Learning-rate schedules for PyTorch Lightning: see them, train with them,\ncompare them.\n\n"
        "commands:\n" + "\n".join(lines) + "\n\n"
        "`lrsched COMMAND --help` shows a command's options; `lrsched plot --list`\nthe schedules.\n"
    )


def script() -> None:
    """The ``lrsched`` command and ``python -m lightning_lrsched``: :func:`main` on ``sys.argv``.

    After ``compare`` (whose files are all written and closed by then) the process leaves without
    Python's teardown of torch and Lightning, a second that would follow the report for nothing.
    """
    if sys.argv[1:2] != ["compare"]:
        main()
        return
    try:
        main()
    except SystemExit as stop:
        if stop.code is not None and not isinstance(stop.code, int):
            raise  # a message to print: the interpreter's exit does that
        leave(stop.code)
    leave(0)


def main(argv: Sequence[str] | None = None) -> None:
    """``lrsched`` with ``argv`` (default: ``sys.argv[1:]``); raises ``SystemExit`` with a non-zero status."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command in ("", "-h", "--help", "help"):
        sys.stdout.write(overview())
        return
    if command == "--version":
        print(f"lrsched {__version__}")
        return
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"lrsched: error: unknown command {command!r}: use one of {', '.join(COMMANDS)}{hint}", file=sys.stderr)
        raise SystemExit(2)
    try:
        COMMANDS[command][1](args[1:])
    except OSError as error:
        if error.errno not in MACHINE_FAULTS:
            error.add_note(BUG_NOTE)
            raise
        where = f": {error.filename}" if error.filename else ""
        print(
            f"lrsched {command}: error: {error.strerror or error}{where}: what was written before is kept; "
            "free space or fix the permissions (or choose another output folder) and run it again",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    except Exception as error:
        user = user_error(error)
        if user is None:
            error.add_note(BUG_NOTE)
            raise
        print(f"lrsched {command}: error: {error_line(user)}", file=sys.stderr)
        raise SystemExit(2) from None


MACHINE_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
"""Errors of the machine, not of lrsched nor of the input: a full disk, a folder made read-only mid-run."""


def user_error(error: BaseException) -> BaseException | None:
    """``error`` if its type says "bad input", or the bad-input error it was raised from, else ``None``.

    The argument parser wraps what a class raised while being built (``raise ValueError(...) from
    error``), so the explicit cause chain is followed; where an error was raised plays no part.
    """
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, (*USER_ERRORS, ArgumentError)):
            return cause
        cause = cause.__cause__
    return None


# -- one line per error ---------------------------------------------------------------------------
def error_line(error: BaseException) -> str:
    """The one line that tells the user what was wrong: the parser's reason, not its Union bookkeeping."""
    message = str(error)
    if isinstance(error, ArgumentError) or 'Parser key "' in message:
        return parser_reason(message)
    return " ".join(message.split())


def parser_reason(message: str) -> str:
    r"""The option and the underlying reason in a (nested) jsonargparse error message.

    Example:
        >>> parser_reason('Parser key "trainer.max_epochs":\n  Does not validate against any of the Union subtypes\n'
        ...     "  Subtypes: [<class 'int'>, <class 'NoneType'>]\n  Errors:\n    - Expected a <class 'int'>\n"
        ...     "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: abc")
        "--trainer.max_epochs: expected an int: got 'abc'"
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    keys = [match.group(1) for line in lines if (match := re.match(r'Parser key "([^"]+)"', line))]
    option = f"--{'.'.join(keys)}: " if keys else ""
    given = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Given value:")), None)
    got = re.search(r"Got value: (.*)$", message, flags=re.MULTILINE)
    given = got.group(1).strip() if got else given
    if given is not None and _non_finite(given):
        return f"{option}must be a finite number: got {given}"
    details = [
        line for line in lines if not re.match(r"(Parser key|Does not validate|Subtypes:|Errors:|Given value)", line)
    ]
    details = [line.lstrip("- ") for line in details]
    reasons = [d for d in details if not _noise(d)]
    expected = [m.group(1) for d in reasons if (m := re.fullmatch(r"Expected an? <class '(\w+)'>\.?.*", d))]
    if reasons and len(expected) == len(reasons):
        kinds = " or ".join(dict.fromkeys("null" if kind == "NoneType" else kind for kind in expected))
        article = "an" if kinds[0] in "aeiou" else "a"
        return f"{option}expected {article} {kinds}" + (f": got {given!r}" if given is not None else "")
    reason = reasons[-1] if reasons else (details[0] if details else message.strip())
    not_a_class = re.match(r"Expected a dot import path string: (\S+)", reason)
    if not_a_class and option in ("--optimizer: ", "--lr_scheduler: "):
        return option + _unknown_torch_class(not_a_class.group(1), option.strip(" :-"))
    unknown = re.search(r"Option '([^']+)' is not accepted", reason)
    class_path = re.search(r"class_path '([\w.]+)'", message)
    if unknown and class_path:
        reason += _accepted_options(class_path.group(1), unknown.group(1))
    return option + reason


def _unknown_torch_class(name: str, option: str) -> str:
    """``unknown optimizer class 'SGDD': use one of ... (did you mean 'SGD'?)`` from torch's own classes."""
    import torch

    base: type
    module: types.ModuleType
    if option == "optimizer":
        base, kind, module = torch.optim.Optimizer, "optimizer", torch.optim
    else:
        base, kind, module = torch.optim.lr_scheduler.LRScheduler, "scheduler", torch.optim.lr_scheduler
    names = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, base) and v is not base)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} class {name!r}: use one of {', '.join(names)}, or a dot import path{hint}"


def _non_finite(text: str) -> bool:
    try:
        return not abs(float(text)) < float("inf")
    except ValueError:
        return False


def _noise(detail: str) -> bool:
    """Lines of a Union error that only say the value is not one of the other alternatives."""
    return (
        detail.startswith("Problem with given class_path")
        or "does not correspond to a subclass" in detail
        or "<class 'NoneType'>" in detail
        or detail.startswith("Not a valid subclass")
    )


def _accepted_options(class_path: str, unknown: str) -> str:
    """``: use one of a, b, c (did you mean 'b'?)`` from the class's signature; empty if it cannot be read."""
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return ""
    names = [p for p in parameters if p not in ("self", "args", "kwargs")]
    close = difflib.get_close_matches(unknown, names, n=1)
    return f" by {name}: use one of {', '.join(names)}" + (f" (did you mean {close[0]!r}?)" if close else "")


# -- fit / validate / test help -------------------------------------------------------------------
FIT_OPTIONS = (
    ("--config FILE", "a YAML of options, e.g. examples/configs/cosine.yaml"),
    ("--model.scheduler SPEC", "the schedule: a name or '{name: cosine, eta_min: 0.001}' "
        "(arguments and defaults: lrsched plot --list); names: {names}"),
    ("--model.optimizer SPEC", "sgd, adam, adamw, rmsprop or '{name: sgd, momentum: 0.9}'"),
    ("--model.lr LR", "the optimizer's (peak) LR (default 0.1)"),
    ("--optimizer CLASS", "a torch optimizer replacing the model's own optimizer and schedule, "
        "e.g. --optimizer SGD --optimizer.lr 0.1"),
    ("--lr_scheduler CLASS", "a torch scheduler for --optimizer, e.g. --lr_scheduler OneCycleLR "
        "--lr_scheduler.max_lr 0.5 (total_steps: the run's)"),
    ("--lr_callbacks BOOL", "fit: attach LRLogger and ScheduleCheck (default true)"),
    ("--trainer.max_epochs N", "epochs to train (default 20)"),
    ("--trainer.logger false", "no logs (default: TensorBoard or CSV logs in lightning_logs/)"),
    ("--print_config", "print the whole resulting config and exit"),
)  # fmt: skip
"""The options ``lrsched fit --help`` shows first: (option, what it does)."""


def lightning_help(command: str) -> str:
    """Our options first (``lrsched fit --help``), before LightningCLI's full list; 80 columns wide."""
    from lightning_lrsched.schedules import available_schedules

    what = {
        "fit": "Train a LightningModule (default: SyntheticClassifier on SyntheticDataModule, 20 epochs), "
        "printing one line per epoch with the LR of the epoch's last optimizer step.",
        "validate": "Run the validation set once through the model (options as in `lrsched fit`).",
        "test": "Run the test set once through the model (options as in `lrsched fit`).",
    }[command]
    lines = [f"usage: lrsched {command} [--config FILE] [options]", "", *textwrap.wrap(what, 80), ""]
    lines.append("Most used options (each can also be set in a --config YAML):")
    for option, description in FIT_OPTIONS:
        text = description.replace("{names}", ", ".join(available_schedules()))
        wrapped = textwrap.wrap(text, 80 - 26)
        lines.append(f"  {option:<24}{wrapped[0]}")
        lines += [" " * 26 + line for line in wrapped[1:]]
    return "\n".join([*lines, "", "Every LightningCLI option follows.", "", ""])


def __getattr__(name: str) -> Any:
    # `LRSchedCLI` imports Lightning: load it on first use, so `lrsched --help` stays instant.
    if name == "LRSchedCLI":
        from lightning_lrsched.trainer_cli import LRSchedCLI

        return LRSchedCLI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
