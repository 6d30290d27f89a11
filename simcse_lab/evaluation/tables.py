"""The one table printer behind every printed result: STS, retrieval and the geometry report.

Cells arrive as strings (each caller formats its numbers); :func:`text_table` lines them up for a
terminal, :func:`markdown_table` writes the same rows for report.md."""

from __future__ import annotations


def text_table(head: list[str], rows: list[list[str]], width: int, min_first: int = 0) -> str:
    """First column left-aligned (as wide as its longest cell, at least ``min_first``), the others
    right-aligned in ``width``, single spaces between, a rule of dashes under the head."""
    first = max(min_first, len(head[0]), *(len(r[0]) for r in rows))

    def line(cells: list[str]) -> str:
        return f"{cells[0]:<{first}} " + " ".join(f"{c:>{width}}" for c in cells[1:])

    top = line(head)
    return "\n".join([top, "-" * len(top)] + [line(r) for r in rows])


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in rows])
