"""Argument checks shared by every constructor in the package (schedules, callbacks, compare).

Each check raises :class:`~lightning_lrsched.errors.InvalidType` (wrong kind of value) or
:class:`~lightning_lrsched.errors.InvalidValue` (right kind, bad value)
with a message that names the parameter, the value it got and what would be valid.
"""

from __future__ import annotations

import errno
import inspect
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from lightning_lrsched.errors import InvalidType, InvalidValue

Choice = TypeVar("Choice")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_number(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    if not _is_number(value):
        raise InvalidType(f"`{name}` must be a number: got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise InvalidValue(f"`{name}` must be finite: got {name}={value!r}")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    number = check_number(name, value)
    if number <= 0:
        raise InvalidValue(f"`{name}` must be > 0: got {name}={value!r}")
    return number


def check_non_negative(name: str, value: Any) -> float:
    number = check_number(name, value)
    if number < 0:
        raise InvalidValue(f"`{name}` must be >= 0: got {name}={value!r}")
    return number


def check_range(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """Check ``low <= value <= high`` (``low < value`` when ``low_open``)."""
    number = check_number(name, value)
    below = number <= low if low_open else number < low
    if below or number > high:
        bracket = "(" if low_open else "["
        raise InvalidValue(f"`{name}` must be in {bracket}{low}, {high}]: got {name}={value!r}")
    return number


def check_int(name: str, value: Any, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidType(f"`{name}` must be an integer >= {minimum}: got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise InvalidValue(f"`{name}` must be an integer >= {minimum}: got {name}={value!r}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Choice]) -> Choice:
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise InvalidValue(f"`{name}` must be one of {valid}: got {name}={value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidType(f"`{name}` must be True or False: got {value!r} ({type(value).__name__})")
    return value


def check_per_group(
    name: str, value: Any, check: Callable[[str, Any], float] = check_non_negative
) -> float | tuple[float, ...]:
    """A float for every param group, or a list with one float per group (checked at build)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidValue(f"`{name}` must be a number or a non-empty list of numbers: got {name}={value!r}")
        return tuple(check(f"{name}[{i}]", v) for i, v in enumerate(value))
    return check(name, value)


def per_group(name: str, value: float | tuple[float, ...] | list[float], num_groups: int) -> list[float]:
    """Expand a per-group value to one entry per param group."""
    if isinstance(value, (tuple, list)):
        if len(value) != num_groups:
            raise InvalidValue(
                f"`{name}` has {len(value)} values but the optimizer has {num_groups} param groups: "
                f"give one value, or one per group"
            )
        return list(value)
    return [value] * num_groups


def make_output_dir(name: str, path: str | os.PathLike[str], *, given: str | os.PathLike[str] | None = None) -> Path:
    """Create the output folder ``path`` (with its parents) and check that files can be written in it.

    Raises :class:`InvalidValue` naming ``name`` and the system's reason when ``path`` is a file,
    lies under a file, or is on a folder or file system this process may not write to. ``given``
    is the value the user gave, when ``path`` is derived from it (the folder of an output file).

    Example:
        >>> make_output_dir("--output", "/proc/lrsched/out")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_lrsched.errors.InvalidValue: `--output` cannot be written: got --output='/proc/lrsched/out' (...)
    """
    folder = Path(path)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file, not a folder", str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        # Permission bits do not stop root and say nothing of read-only file systems: try it.
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(folder)) from None
    except OSError as error:
        where = f"{error.filename!r}: " if error.filename else ""
        shown = str(path if given is None else given)
        raise InvalidValue(
            f"`{name}` cannot be written: got {name}={shown!r} ({where}{error.strerror or error})"
        ) from None
    return folder


def check_accelerator(name: str, value: Any) -> Any:
    """``value`` if it is an accelerator this machine has (or ``"auto"``, or an Accelerator instance).

    Lightning itself fails on an unavailable one with an import error (``accelerator="tpu"`` without
    ``torch_xla``) or a message that does not list what would work.

    Example:
        >>> check_accelerator("accelerator", "cpu")
        'cpu'
    """
    if not isinstance(value, str) or value.lower() == "auto":
        return value
    from lightning.pytorch.accelerators import AcceleratorRegistry

    names = sorted(AcceleratorRegistry.available_accelerators())
    available = [n for n in names if AcceleratorRegistry[n]["accelerator"].is_available()]
    usable = {*available, "auto"} | ({"gpu"} if {"cuda", "mps"} & set(available) else set())
    if value.lower() not in usable:
        known = "" if value.lower() in {*names, "gpu"} else "unknown accelerator; "
        raise InvalidValue(
            f"`{name}` {value!r}: {known}not available on this machine: use one of {', '.join(sorted(usable))}"
        )
    return value


def unbound_arguments(target: Callable[..., Any], arguments: dict[str, Any], given: Sequence[str] = ()) -> str | None:
    """Why ``target(**arguments)`` cannot be called (an argument it lacks or takes no such one), or ``None``.

    ``given``: arguments the caller adds itself, which ``arguments`` need not hold (a compared
    module's ``scheduler``). Checked before anything trains, where a ``TypeError`` later would read as a bug.

    Example:
        >>> unbound_arguments(lambda lr, scheduler=None: None, {})
        "missing a required argument: 'lr'"
        >>> unbound_arguments(lambda lr, scheduler: None, {}, given=["lr", "scheduler"]) is None
        True
    """
    signature = inspect.signature(target)
    try:
        signature.bind(**{**{key: None for key in given if key in signature.parameters}, **arguments})
    except TypeError as error:
        return str(error)
    return None
