"""A griffe extension that reads the package's docstrings the way the house writes them.

The docstrings are Google style with two habits griffe's Google parser does not know: an ``Example:``
section (griffe knows ``Examples:``, and would show the doctest as quoted prose) and Sphinx roles
(``:func:`get_schedule```), which Markdown would show as ``:func:`` followed by code. The first is
renamed, the second becomes the code span alone.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|exc|obj|ref):`~?([^`]+)`")


def house_docstring(text: str) -> str:
    """The docstring ``text`` with ``Example:`` sections named ``Examples:`` and Sphinx roles as code."""
    text = _EXAMPLE.sub(r"\1Examples:", text)
    return _ROLE.sub(lambda match: f"`{match.group(1).rsplit('.', 1)[-1]}`", text)


class HouseStyle(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = house_docstring(obj.docstring.value)
