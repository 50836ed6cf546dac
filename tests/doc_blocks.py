"""The code blocks of the documentation: README.md and every page under docs/.

Each example is taken once, where it first appears (README.md, then the pages in name order), so a
command shown both in the README's tour and on a docs page runs once.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A fenced block, possibly indented inside a list item: its indent, language and body.
_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, its text (dedented) and where it is (``docs/cli.md:12``)."""

    lang: str
    text: str
    where: str


def documentation_pages() -> list[Path]:
    """README.md, then every Markdown page under docs/, in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks(lang: str) -> list[Block]:
    """Every ``lang`` block of the documentation, each distinct text once."""
    blocks: dict[str, Block] = {}
    for page in documentation_pages():
        source = page.read_text()
        for match in _FENCE.finditer(source):
            if match["lang"] != lang:
                continue
            text = textwrap.dedent(match["body"])
            line = source.count("\n", 0, match.start()) + 1
            blocks.setdefault(text, Block(lang, text, f"{page.relative_to(ROOT)}:{line}"))
    return list(blocks.values())
