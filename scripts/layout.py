#!/usr/bin/env python3
"""Print the package layout from the docstrings: each subpackage's docstring, then each of its modules
with the first line of its docstring. ``--write`` puts it into README.md's Layout section (between the
layout markers); tests/test_layout.py fails when the README and this output differ."""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "simcse_lab"
README = ROOT / "README.md"
BEGIN = "<!-- layout:begin (generated from the docstrings by `python scripts/layout.py --write`; do not edit) -->"
END = "<!-- layout:end -->"
ENTRY_POINTS = ("__main__", "cli", "errors", "io")  # the only modules outside a subpackage
# subpackages in import order: each may import those before it (tests/test_layout.py has the exact rule)
ORDER = ("data", "runtime", "modeling", "evaluation", "analysis", "training", "export", "search", "experiments",
         "commands")


def docstring(path: Path) -> list[str]:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    if not doc:
        raise SystemExit(f"{path.relative_to(ROOT)}: no docstring (every module says what it is)")
    doc = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", doc).replace("``", "`")
    return doc.splitlines()


def entries(package: Path, depth: int) -> list[tuple[str, list[str]]]:
    """(indented name, description lines) for a package and, below it, its modules and subpackages."""
    pad = "  " * depth
    rows = [(f"{pad}{package.name}/", [line for line in docstring(package / "__init__.py") if line.strip()])]
    children = sorted(p for p in package.iterdir() if p.suffix == ".py" and p.stem != "__init__")
    if depth == 0:
        children = [package / f"{name}.py" for name in ENTRY_POINTS]
    for path in children:
        rows.append((f"{pad}  {path.name}", docstring(path)[:1]))
    subpackages = [package / name for name in ORDER] if depth == 0 else sorted(
        p for p in package.iterdir() if (p / "__init__.py").is_file())
    for sub in subpackages:
        rows += entries(sub, depth + 1)
    return rows


def render() -> str:
    """The Layout block of README.md: a code block listing the package."""
    rows = entries(PACKAGE, 0)
    width = max(len(name) for name, _ in rows) + 2
    lines = []
    for name, description in rows:
        lines.append(f"{name:<{width}}{description[0]}")
        lines += [f"{'':<{width}}{line}" for line in description[1:]]
    return "```\n" + "\n".join(line.rstrip() for line in lines) + "\n```\n"


def readme_block(text: str) -> str | None:
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].lstrip("\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="replace README.md's Layout section with the output")
    args = parser.parse_args()
    block = render()
    if not args.write:
        sys.stdout.write(block)
        return 0
    text = README.read_text()
    if readme_block(text) is None:
        raise SystemExit(f"{README}: no layout markers ({BEGIN} ... {END})")
    head, rest = text.split(BEGIN, 1)
    README.write_text(head + BEGIN + "\n" + block + END + rest.split(END, 1)[1])
    print(f"wrote the Layout section of {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
