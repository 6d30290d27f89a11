"""The package layout: capabilities in subpackages with a one-way import rule, entry points at the top,
no implicit objective protocol, and the README's Layout section generated from the docstrings."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "simcse_lab"
SCRIPT = PACKAGE.parent / "scripts" / "layout.py"

# what each part may import besides errors, io and the package root (which anyone may import);
# a subpackage may always import its own modules; nothing imports commands or cli (but __main__ runs cli)
ALLOWED = {
    "data": set(),
    "runtime": set(),
    "modeling": {"data", "runtime"},
    "evaluation": {"data", "runtime", "modeling"},
    "analysis": {"data", "runtime", "modeling", "evaluation"},
    "training": {"data", "runtime", "modeling", "evaluation", "analysis"},
    "export": {"data", "runtime", "modeling", "evaluation"},
    "search": {"data", "runtime", "modeling", "evaluation"},
    "experiments": {"data", "runtime", "modeling", "evaluation", "analysis", "training"},
    "commands": {"data", "runtime", "modeling", "evaluation", "analysis", "training", "export", "search",
                 "experiments"},
    "cli": set(),
    "__main__": {"cli"},
    "errors": set(),
    "io": set(),
    "": set(),  # the package root: its version, nothing else
}
ANYONE = {"errors", "io", ""}
ENTRY_POINTS = {"__init__", "__main__", "cli", "errors", "io"}


def part_of(module: str) -> str:
    """``simcse_lab.training.objectives.sup`` -> ``training``; the package root itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every simcse_lab import in ``source``, at any depth (functions too),
    including ``from simcse_lab import sub`` (a submodule) and ``importlib.import_module("simcse_lab...")``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name == "simcse_lab" or name.startswith("simcse_lab.")]


def target_part(name: str) -> str:
    """The part an imported name belongs to: ``simcse_lab.io`` -> io, ``simcse_lab.__version__`` -> the root."""
    part = part_of(name)
    return part if part in ALLOWED else ""


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    mine = part_of(module)
    allowed = ALLOWED[mine] | ANYONE | {mine}
    return [f"{module}:{line} imports {name} ({mine} may import {', '.join(sorted(ALLOWED[mine])) or 'nothing'})"
            for line, name in imported_modules(source, module, is_package)
            if target_part(name) not in allowed]


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        yield path, ".".join(parts), is_package


def test_imports_follow_the_one_way_rule():
    found = [v for path, module, is_package in modules()
             for v in violations(path.read_text(), module, is_package)]
    assert not found, "forbidden import direction:\n" + "\n".join(found)


def test_the_checker_sees_imports_at_any_depth():
    """A planted violation in a function body, a relative one and one through importlib are all caught."""
    planted = ("import numpy\n"
               "def f():\n"
               "    from simcse_lab.analysis.geometry import mean_cosine\n"
               "    from ..training import loop\n"
               "    importlib.import_module('simcse_lab.commands.train')\n")
    got = violations(planted, "simcse_lab.evaluation.sts")
    assert [v.split(" imports ")[1].split(" ")[0] for v in got] == [
        "simcse_lab.analysis.geometry.mean_cosine", "simcse_lab.training.loop", "simcse_lab.commands.train"]
    assert not violations("from simcse_lab.evaluation import vectors\nfrom simcse_lab import io\n",
                          "simcse_lab.analysis.report")


def test_top_level_holds_only_entry_points_and_subpackages():
    files = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert files <= ENTRY_POINTS, f"modules outside a subpackage: {sorted(files - ENTRY_POINTS)}"
    assert len(packages) >= 5 and packages <= set(ALLOWED)
    for init in sorted(PACKAGE.rglob("*/__init__.py")):  # each subpackage: what lives there, which tests cover it
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        tests = re.findall(r"tests/\w+\.py", doc.split("Tests:", 1)[-1]) if "Tests:" in doc else []
        assert tests, f"{init}: the docstring names no covering tests (a 'Tests:' line)"
        missing = [t for t in tests if not (PACKAGE.parent / t).is_file()]
        assert not missing, f"{init}: names missing tests {missing}"


def test_no_implicit_objective_protocol():
    hits = [f"{path}:{n}" for path in PACKAGE.rglob("*.py")
            for n, line in enumerate(path.read_text().splitlines(), 1) if "hasattr(objective" in line]
    assert not hits, hits


def test_readme_layout_is_generated():
    spec = importlib.util.spec_from_file_location("layout_script", SCRIPT)
    layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layout)
    block = layout.readme_block(layout.README.read_text())
    if block != layout.render():
        pytest.fail("README.md's Layout section differs from the package docstrings: "
                    "run `python scripts/layout.py --write`")
