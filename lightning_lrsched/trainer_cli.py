"""`LRSchedCLI`: LightningCLI for ``lrsched fit``/``validate``/``test``, with this package's defaults.

What it adds to the stock LightningCLI:

- the synthetic classifier and data as the default model and data, and any other model or data class
  given with its own defaults (not the synthetic ones: see :meth:`LRSchedCLI.parse_arguments`);
- the terminal view of :mod:`lightning_lrsched.console` (one line per epoch, a progress bar in a terminal);
- ``LRLogger`` and ``ScheduleCheck`` on ``fit`` (``--lr_callbacks false`` leaves them out);
- torch schedulers given with ``--lr_scheduler`` built when the run is known, so ``OneCycleLR`` gets
  ``total_steps`` from the run and per-batch schedulers step per optimizer step;
- bad input found before training starts (missing checkpoint, unusable output folder, unavailable
  accelerator) raised as :class:`~lightning_lrsched.errors.UsageError`.

Example:
    >>> from lightning_lrsched.trainer_cli import LRSchedCLI
    >>> issubclass(LRSchedCLI, __import__("lightning.pytorch.cli", fromlist=["LightningCLI"]).LightningCLI)
    True
"""

from __future__ import annotations

import copy
import importlib
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback, instantiate_class
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR, ReduceLROnPlateau

from lightning_lrsched.callbacks import LRLogger, ScheduleCheck
from lightning_lrsched.console import EpochProgressBar, EpochReport
from lightning_lrsched.errors import InvalidValue, UsageError
from lightning_lrsched.lightning import plan_from_trainer
from lightning_lrsched.module_contract import ModuleContractError, check_automatic
from lightning_lrsched.validation import check_accelerator, make_output_dir

DEFAULT_MAX_EPOCHS = 20
"""``lrsched fit`` trains the tutorials' 20 epochs unless told otherwise (Lightning's own default is 1000)."""

PER_STEP_TORCH_SCHEDULERS = (OneCycleLR, CyclicLR)
"""Torch schedulers whose steps are optimizer steps (stock LightningCLI would step them per epoch)."""

DEFAULT_CLASSES = {
    "model": "lightning_lrsched.models.SyntheticClassifier",
    "data": "lightning_lrsched.models.SyntheticDataModule",
}
"""The model and data ``lrsched fit`` trains when the command line and config name none."""

CHECKPOINT_KEYWORDS = {"last", "best", "hpc", "registry"}
"""``--ckpt_path`` values that Lightning resolves itself instead of reading a file."""


class ConfigNextToLogs(SaveConfigCallback):
    """Save ``config.yaml`` into the logger's folder, and nowhere when there is no logger.

    Stock LightningCLI writes it to ``trainer.log_dir``, which is the current directory without a
    logger, so a second ``--trainer.logger false`` run there refused to overwrite it.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.loggers:
            super().setup(trainer, pl_module, stage)


STARTUP_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda")
"""Loggers of Lightning's start-up info lines (devices, tips, "Loading `train_dataloader`", CUDA_VISIBLE_DEVICES)."""


class StartupLines(Callback):
    """Hold Lightning's start-up info lines until the run starts; drop them if it fails before.

    A Trainer prints "GPU available ...", "TPU available ..." and a tip when it is built, and more
    while the run is set up; an error found then (a warmup longer than the run, a OneCycleLR shorter
    than it) would come after four to six such lines. Held, the error is the only line; once the
    run starts (``on_fit_start``, ``on_validation_start``, ``on_test_start``) they are printed, in
    order, as they would have been. Warnings are never held.
    """

    def __init__(self) -> None:
        self._held: list[tuple[logging.Logger, logging.LogRecord]] = []
        self._filters: list[tuple[logging.Logger, logging.Filter]] = []

    def hold(self) -> None:
        """Start holding (before the Trainer is built)."""
        for name in STARTUP_LOGGERS:
            logger = logging.getLogger(name)
            held = _Holder(logger, self._held)
            logger.addFilter(held)
            self._filters.append((logger, held))

    def release(self) -> None:
        """Stop holding and print what was held."""
        self._stop()
        held, self._held[:] = list(self._held), []
        for logger, record in held:
            logger.handle(record)

    def drop(self) -> None:
        """Stop holding and forget what was held: the run failed before it started."""
        self._stop()
        self._held.clear()

    def _stop(self) -> None:
        for logger, held in self._filters:
            logger.removeFilter(held)
        self._filters = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.release()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.release()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.release()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.drop()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.release()  # a run with nothing to do (no batches) still shows them


class _Holder(logging.Filter):
    def __init__(self, logger: logging.Logger, held: list[tuple[logging.Logger, logging.LogRecord]]) -> None:
        super().__init__()
        self.logger, self.held = logger, held

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        self.held.append((self.logger, record))
        return False


class LRSchedCLI(LightningCLI):
    """LightningCLI over :class:`~lightning_lrsched.models.SyntheticClassifier` (or any module).

    Takes LightningCLI's arguments; those not given get this command's defaults (:data:`DEFAULTS`).
    ``LRSchedCLI(args=["fit", "--trainer.max_epochs", "3"])`` runs what ``lrsched fit
    --trainer.max_epochs 3`` runs.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "model_class": L.LightningModule,
        "datamodule_class": L.LightningDataModule,
        "subclass_mode_model": True,
        "subclass_mode_data": True,
        "seed_everything_default": 0,
        "trainer_defaults": {"max_epochs": DEFAULT_MAX_EPOCHS},
        "save_config_callback": ConfigNextToLogs,
        "parser_kwargs": {"exit_on_error": False, "prog": "lrsched"},
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        given = inspect.signature(LightningCLI.__init__).bind_partial(self, *args, **kwargs).arguments
        kwargs.update({key: value for key, value in self.DEFAULTS.items() if key not in given})
        self.class_parsers: list[Any] = []  # the parsers that hold the model and data (one per subcommand)
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # `predict` needs a predict_step the synthetic classifier does not have; `lrsched` lists the rest.
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name != "predict"}

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument(
            "--lr_callbacks",
            type=bool,
            default=True,
            help="fit: attach LRLogger (the LR of every optimizer step in the logs) and ScheduleCheck "
            "(warns when the schedule and the run disagree); false leaves them out",
        )
        parser.set_defaults({key: {"class_path": path} for key, path in DEFAULT_CLASSES.items()})
        self.class_parsers.append(parser)

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, then parse again with the chosen model and data classes as the defaults, if they differ.

        jsonargparse keeps a default class's init args that the newly chosen class also accepts
        (jsonargparse issue #460): ``--model DigitsClassifier`` alone would train with the
        synthetic classifier's ``lr`` and ``hidden``, not the digits model's own. The first pass
        only learns which classes the command line and config choose (``--print_config`` waits for
        the second, which starts from those classes' own defaults).
        """
        if isinstance(args, (dict, Namespace)):
            self.config = parser.parse_object(args)
            chosen = self._chosen_classes()
            if not _same_classes(chosen, DEFAULT_CLASSES):
                self._set_class_defaults(chosen)
                self.config = parser.parse_object(args)
            return
        argv = list(sys.argv[1:] if args is None else args)
        self.config = parser.parse_args([a for a in argv if not _is_print_config(a)])
        chosen = self._chosen_classes()
        if not _same_classes(chosen, DEFAULT_CLASSES) or len(argv) != sum(not _is_print_config(a) for a in argv):
            self._set_class_defaults(chosen)
            self.config = parser.parse_args(argv)
        # LightningCLI then parses a --ckpt_path checkpoint's hyperparameters over these: keep what was asked.
        self._asked_model = {key: copy.deepcopy(self._model_args().get(key)) for key in _given_model_args(argv)}
        subcommand = self.config.get("subcommand")
        ckpt_path = (self.config.get(subcommand) or {}).get("ckpt_path") if subcommand else None
        if isinstance(ckpt_path, str) and Path(ckpt_path).is_file():
            _check_checkpoint_file(ckpt_path)  # before LightningCLI reads it

    def _model_args(self) -> dict[str, Any]:
        subcommand = self.config.get("subcommand")
        section = self.config.get(subcommand, self.config) if subcommand else self.config
        model = _plain(section.get("model")) or {}
        return dict(model.get("init_args") or {}) if isinstance(model, dict) else {}

    def _check_checkpoint_settings(self, ckpt_path: str) -> None:
        """Refuse a resume whose command line asks for model settings other than the checkpoint's.

        LightningCLI loads the checkpoint's hyperparameters over the parsed command line, so a
        ``--model.scheduler`` that differs would otherwise train the checkpoint's schedule without a word.
        """
        loaded = self._model_args()
        differences = [
            f"`{key}` was {_shown(loaded.get(key))}, now {_shown(asked)}"
            for key, asked in getattr(self, "_asked_model", {}).items()
            if _normal(loaded.get(key)) != _normal(asked)
        ]
        if differences:
            raise UsageError(
                f"--ckpt_path {ckpt_path}: the checkpoint was saved with other model settings: "
                + "; ".join(differences)
                + ": resume with the settings it was saved with (leave those options out), "
                "or start a new run (no --ckpt_path)"
            )

    def _chosen_classes(self) -> dict[str, str]:
        subcommand = self.config.get("subcommand")  # ``self.subcommand`` is set after parsing
        section = self.config.get(subcommand, self.config) if subcommand else self.config
        return {key: (section.get(key) or {}).get("class_path", path) for key, path in DEFAULT_CLASSES.items()}

    def _set_class_defaults(self, classes: dict[str, str]) -> None:
        for parser in self.class_parsers:
            parser.set_defaults({key: {"class_path": path} for key, path in classes.items()})

    def _section(self, config: Any) -> Any:
        """The parsed (or instantiated) settings of the subcommand that runs."""
        return config.get(self.subcommand, config) if self.subcommand else config

    def before_instantiate_classes(self) -> None:
        section = self._section(self.config)
        trainer = section.get("trainer") or {}
        if section.get("lr_scheduler") and not section.get("optimizer"):
            name = str(section["lr_scheduler"].get("class_path", "")).rsplit(".", 1)[-1]
            raise UsageError(
                f"--lr_scheduler {name} needs --optimizer (e.g. --optimizer SGD --optimizer.lr 0.1): it schedules "
                "that optimizer; or schedule the model's own with --model.scheduler (see `lrsched plot --list`)"
            )
        _check_accelerator(trainer.get("accelerator"))
        _check_trainer_counts(trainer)
        if trainer.get("logger") is False and trainer.get("enable_checkpointing") is None:
            # No logger, no folder: Lightning would write checkpoints/ into the current directory.
            if trainer.get("default_root_dir") is None and "trainer" in section:
                section["trainer"]["enable_checkpointing"] = False
        root = trainer.get("default_root_dir")
        if root is not None:
            make_output_dir("--trainer.default_root_dir", root)
        ckpt_path = section.get("ckpt_path")
        if isinstance(ckpt_path, str) and ckpt_path not in CHECKPOINT_KEYWORDS and "://" not in ckpt_path:
            if not Path(ckpt_path).is_file():
                raise UsageError(f"--ckpt_path: no such checkpoint file {ckpt_path!r}: give a .ckpt file, or 'last'")
            self._check_checkpoint_settings(ckpt_path)

    def instantiate_classes(self) -> None:
        # LightningCLI.instantiate_classes, except that the optimizer and a torch scheduler are built
        # in configure_optimizers, when the run's length is known.
        self.config_init = self.parser.instantiate_classes(self.config)
        section = self._section(self.config_init)
        self.datamodule = section.get("data")
        self.model = section.get("model")
        if section.get("lr_scheduler"):
            # Under manual optimization Lightning never steps a scheduler: the run would keep one LR silently.
            try:
                check_automatic(self.model)
            except ModuleContractError as error:
                raise UsageError(f"--lr_scheduler: {error}") from None
        if section.get("optimizer"):
            self.model.configure_optimizers = _configure_optimizers(
                self.model, _plain(section["optimizer"]), _plain(section.get("lr_scheduler")), self.configure_optimizers
            )
        try:
            self.trainer = self.instantiate_trainer()
        except MisconfigurationException as error:
            raise UsageError(f"--trainer: {str(error).splitlines()[0]}") from None

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        section = self._section(self.config_init)
        trainer = section.get("trainer") or {}
        given = trainer.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        startup = StartupLines()
        ours: list[Callback] = [startup, EpochReport()]
        if trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
            ours.append(EpochProgressBar())
        if self.subcommand == "fit" and section.get("lr_callbacks", True):
            ours += [cls() for cls in (LRLogger, ScheduleCheck) if not any(isinstance(c, cls) for c in given)]
        self.trainer_defaults = {**self.trainer_defaults, "callbacks": ours}
        startup.hold()
        try:
            return super().instantiate_trainer(**kwargs)
        except BaseException:
            startup.drop()
            raise

    @staticmethod
    def configure_optimizers(lightning_module: Any, optimizer: Any, lr_scheduler: Any = None) -> Any:
        """Lightning's scheduler dict for a torch scheduler given with ``--lr_scheduler``.

        Stock LightningCLI steps OneCycleLR/CyclicLR per epoch and gives torch's ReduceLROnPlateau no
        monitor; this steps them per optimizer step and monitors ``val_loss``.
        """
        if lr_scheduler is None:
            return optimizer
        config: dict[str, Any] = {"scheduler": lr_scheduler, "interval": "epoch", "frequency": 1}
        if isinstance(lr_scheduler, PER_STEP_TORCH_SCHEDULERS):
            config["interval"] = "step"
        if isinstance(lr_scheduler, ReduceLROnPlateau):
            # Validation may not run every epoch; skip (not fail) the epochs without a value.
            config.update(monitor=getattr(lr_scheduler, "monitor", "val_loss"), strict=False)
        return {"optimizer": optimizer, "lr_scheduler": config}


def _configure_optimizers(
    module: L.LightningModule, optimizer: dict[str, Any], lr_scheduler: dict[str, Any] | None, wrap: Callable[..., Any]
) -> Callable[[], Any]:
    """``configure_optimizers`` for a module trained with ``--optimizer`` (and ``--lr_scheduler``).

    It builds them when Lightning calls it, so a ``OneCycleLR`` without ``total_steps`` (and without
    ``epochs``) gets the run's optimizer steps, and one shorter than the run is refused before
    training instead of failing in torch at the step past its end.
    """

    def configure_optimizers() -> Any:
        built = _built("--optimizer", optimizer, module.parameters())
        if not lr_scheduler:
            return wrap(module, built)
        init = {"class_path": lr_scheduler["class_path"], "init_args": dict(lr_scheduler.get("init_args") or {})}
        if init["class_path"].rsplit(".", 1)[-1] == OneCycleLR.__name__:
            _fill_one_cycle(init["init_args"], plan_from_trainer(module.trainer).total_steps)
        return wrap(module, built, _built("--lr_scheduler", init, built))

    return configure_optimizers


def _built(option: str, init: dict[str, Any], target: Any) -> Any:
    """``instantiate_class(target, init)``; a value torch refuses (``ValueError``) is bad input naming ``option``."""
    try:
        return instantiate_class(target, init)
    except ValueError as error:  # torch's own checks: "Invalid learning rate: -1.0", ...
        name = str(init.get("class_path", "")).rsplit(".", 1)[-1]
        raise UsageError(f"{option} {name}: {error}") from None


def _check_checkpoint_file(path: str) -> None:
    """Refuse a file that is not a readable Lightning checkpoint (empty, cut short, damaged, something else)."""
    import zipfile

    import torch

    try:
        # mmap: the tensors are not read into memory here (LightningCLI and the Trainer load it again).
        loaded = torch.load(path, weights_only=True, map_location="cpu", mmap=zipfile.is_zipfile(path))
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a damaged file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise UsageError(
            f"--ckpt_path {path}: not a readable checkpoint ({reason}): give a .ckpt file that Lightning saved "
            "whole, or leave --ckpt_path out to start a new run"
        ) from None
    if not isinstance(loaded, dict) or "state_dict" not in loaded:
        held = f"keys {', '.join(map(str, list(loaded)[:5]))}" if isinstance(loaded, dict) else type(loaded).__name__
        raise UsageError(
            f"--ckpt_path {path}: not a Lightning checkpoint (it holds {held}, no state_dict): give a .ckpt "
            "file that Lightning saved, or leave --ckpt_path out to start a new run"
        )


def _given_model_args(argv: list[str]) -> set[str]:
    """The model's init args that the command line names (``--model.X``, ``--model.init_args.X``, a --config's)."""
    given: set[str] = set()
    for i, arg in enumerate(argv):
        option = arg.split("=", 1)[0]
        if option.startswith("--model."):
            key = option.removeprefix("--model.").removeprefix("init_args.")
            given.add(key.split(".", 1)[0])
        elif option in ("--config", "-c") and ("=" in arg or i + 1 < len(argv)):
            path = arg.split("=", 1)[1] if "=" in arg else argv[i + 1]
            given |= _config_model_args(path)
    return given


def _config_model_args(path: str) -> set[str]:
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, ValueError):
        return set()  # the parser has said what is wrong with it already, or will
    if not isinstance(loaded, dict):
        return set()
    model = loaded.get("model")
    for section in ("fit", "validate", "test"):
        if isinstance(loaded.get(section), dict) and "model" in loaded[section]:
            model = loaded[section]["model"]
    if not isinstance(model, dict):
        return set()
    init_args = model.get("init_args", model)
    return {key for key in init_args if key != "class_path"} if isinstance(init_args, dict) else set()


def _normal(value: Any) -> Any:
    """A schedule spec in one form: ``"cosine"`` and ``{"name": "cosine"}`` are the same."""
    value = _plain(value)
    if isinstance(value, dict) and set(value) == {"name"}:
        return value["name"]
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def _shown(value: Any) -> str:
    value = _normal(value)
    return repr(dict(value) if isinstance(value, dict) else value)


def _same_classes(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether two ``{key: class path}`` name the same classes (jsonargparse may shorten a path)."""

    def resolve(path: str) -> Any:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name, path) if module else path

    return a.keys() == b.keys() and all(resolve(a[key]) is resolve(b[key]) for key in a)


def _is_print_config(arg: str) -> bool:
    return arg == "--print_config" or arg.startswith("--print_config=")


def _plain(value: Any) -> Any:
    """A jsonargparse ``Namespace`` as nested dicts (anything else unchanged)."""
    return value.as_dict() if hasattr(value, "as_dict") else value


def _fill_one_cycle(args: dict[str, Any], run_steps: int | None) -> None:
    """Set OneCycleLR's ``total_steps`` to the run's optimizer steps (``None``: unknown), or check the one given."""
    if args.get("total_steps") is None and args.get("epochs") is None:
        if run_steps is None:
            raise UsageError(
                "--lr_scheduler OneCycleLR: the run has no fixed length to take total_steps from: "
                "set --trainer.max_epochs or --trainer.max_steps, or --lr_scheduler.total_steps"
            )
        args["total_steps"] = run_steps
        return
    total = args["total_steps"] if args.get("total_steps") is not None else None
    if total is None and args.get("steps_per_epoch") is not None:
        total = args["epochs"] * args["steps_per_epoch"]
    if total is not None and run_steps is not None and total < run_steps:
        raise UsageError(
            f"--lr_scheduler.total_steps {total} is shorter than the run ({run_steps} optimizer steps) and "
            "OneCycleLR cannot step past its end: leave total_steps out to use the run's length, or shorten the "
            "run (--trainer.max_epochs / --trainer.max_steps)"
        )


def _check_trainer_counts(trainer: Any) -> None:
    """Counts the Trainer takes without a word and fails on later (a division by zero, an unclear error)."""
    accumulate = trainer.get("accumulate_grad_batches")
    if isinstance(accumulate, int) and accumulate < 1:
        raise UsageError(
            f"--trainer.accumulate_grad_batches must be an integer >= 1 (batches per optimizer step): got {accumulate}"
        )
    devices = trainer.get("devices")
    number = devices if isinstance(devices, int) else None
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        number = int(devices)
    if (number is not None and number < 1 and number != -1) or devices in ([], ()):
        raise UsageError(
            f"--trainer.devices must be a number of devices >= 1, -1 (all), a list of device indices (e.g. [0, 1]) "
            f"or 'auto': got {devices!r}"
        )


def _check_accelerator(accelerator: Any) -> None:
    """Refuse an accelerator this machine does not have, naming the ones it has."""
    try:
        check_accelerator("--trainer.accelerator", accelerator)
    except InvalidValue as error:
        raise UsageError(str(error).replace("`--trainer.accelerator`", "--trainer.accelerator")) from None
