"""Where the bench writes its results: docs/benchmark.md, one block per bench between
two HTML-comment markers that a new run replaces (the rest of the page is left as it is).

Pure and light (no bench workload imported), so that tests/unit/test_docs.py can check
the page and the marker mechanism without importing LangGraph.
"""

from __future__ import annotations

import re
from pathlib import Path

BENCH_DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmark.md"
"""The page every bench block is written into (the README links to it)."""


def replace_block(text: str, start: str, end: str, block: str) -> str:
    """``text`` with the part from marker ``start`` to marker ``end`` (the first such
    part) replaced by ``block``, which carries both markers; without the markers,
    ``block`` is appended as the page's last section."""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        # A function, not a string: the block's backslashes stay as they are.
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_block(path: Path, start: str, end: str, block: str) -> None:
    """Replace (or append) the block between ``start`` and ``end`` in the page ``path``."""
    text = path.read_text(encoding="utf-8")
    path.write_text(replace_block(text, start, end, block), encoding="utf-8")
