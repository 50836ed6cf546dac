"""What the ``lrsched`` commands' command lines share: a ``--config`` YAML of a function's arguments, comma lists.

Light on purpose (no torch): a command's ``--help`` and its bad-input errors come before any training import.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from lightning_lrsched.errors import UsageError


def argument_names(function: Callable[..., Any]) -> list[str]:
    """The settings a ``--config`` YAML of a command may hold: its function's arguments (a console aside)."""
    return [name for name in inspect.signature(function).parameters if name != "console"]


def load_config(path_text: str | Path, keys: Sequence[str]) -> dict[str, Any]:
    """A command's ``--config`` YAML: a mapping of ``keys``' settings (else a one-line :class:`UsageError`)."""
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"--config: no such file {path_text!r}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise UsageError(f"--config: {path_text} is not valid YAML{where}: {problem}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"--config: {path_text} must hold a mapping of settings")
    unknown = sorted(set(loaded) - set(keys))
    if unknown:
        raise UsageError(f"--config: unknown setting(s) {', '.join(unknown)}: use {', '.join(keys)}")
    return loaded


def comma_list(flag: str, text: str, kind: type, example: str) -> list[Any]:
    """``--<flag> a,b,c`` as a list of ``kind`` (at least one), else a one-line :class:`UsageError`.

    Example:
        >>> comma_list("seeds", "0, 1,2", int, "0,1,2")
        [0, 1, 2]
    """
    try:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--{flag}: expected a comma-separated list of {kind.__name__}s: got {text!r}") from None
    if not values:
        raise UsageError(f"--{flag}: give at least one, e.g. --{flag} {example}: got {text!r}")
    return values
