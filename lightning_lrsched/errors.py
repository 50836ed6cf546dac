"""The error types that mean "the user's input is wrong" (as opposed to a bug).

Every argument check in the package raises :class:`InvalidValue` (a ``ValueError``) or
:class:`InvalidType` (a ``TypeError``); the command line raises :class:`UsageError`. The
``lrsched`` command turns exactly these (and jsonargparse's parse errors) into one line on stderr
and exit status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class InvalidValue(ValueError):
    """An argument of the right kind with a value that is not allowed."""


class InvalidType(TypeError):
    """An argument of the wrong kind, or an unknown or missing argument."""


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class TrainingWarning(RuntimeWarning):
    """Something in a run the user should know (a plateau monitor never logged, a divergence).

    Its own class, so the ``lrsched`` command prints it as one of its own lines.
    """


USER_ERRORS: tuple[type[BaseException], ...] = (InvalidValue, InvalidType, UsageError)


class RaisingArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose parse errors raise :class:`UsageError` instead of printing usage and exiting.

    ``lrsched`` then reports them like every other bad input: one line on stderr, exit status 2.

    Example:
        >>> RaisingArgumentParser(prog="lrsched plot").parse_args(["--nosuch"])
        Traceback (most recent call last):
        ...
        lightning_lrsched.errors.UsageError: unrecognized arguments: --nosuch
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)
