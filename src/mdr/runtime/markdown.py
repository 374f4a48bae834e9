"""Markdown tables in one place: a header and rows of cells, joined the same way everywhere."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """``| a | b |`` lines: the header, its ``|---|`` rule, one line per row (no trailing newline)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
