"""The error types that mean "the user's input is wrong" (as opposed to a bug).

Every argument check in the package raises :class:`InvalidValue` (a ``ValueError``) or
:class:`InvalidType` (a ``TypeError``); the command line raises :class:`UsageError`. The
``lrsched`` command turns exactly these (and jsonargparse's parse errors) into one line on stderr
and exit status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class InvalidValue(ValueError):
    """An argument of the right kind with a value that is not allowed."""


class InvalidType(TypeError):
    """An argument of the wrong kind, or an unknown or missing argument."""


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


USER_ERRORS: tuple[type[BaseException], ...] = (InvalidValue, InvalidType, UsageError)
