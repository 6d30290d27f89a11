"""The package layout: capabilities in subpackages with a one-way import rule and no import cycle, entry points at
the top, no implicit objective protocol, functions within the size limits, and the README's Layout section
generated from the docstrings."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "simcse_lab"
SCRIPT = PACKAGE.parent / "scripts" / "layout.py"
EVAL = PACKAGE.parent / "eval"

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
        tests = re.findall(r"tests/(?:\w+/)?\w+\.py", doc.split("Tests:", 1)[-1]) if "Tests:" in doc else []
        assert tests, f"{init}: the docstring names no covering tests (a 'Tests:' line)"
        missing = [t for t in tests if not (PACKAGE.parent / t).is_file()]
        assert not missing, f"{init}: names missing tests {missing}"


def import_graph() -> dict[str, set[str]]:
    """module -> the simcse_lab modules it imports (module level and inside functions); ``from pkg import name``
    counts as importing ``pkg.name`` where that is a module, else ``pkg``."""
    found = {module: (path, is_package) for path, module, is_package in modules()}

    def resolve(name: str) -> str:
        parts = name.split(".")
        while parts and ".".join(parts) not in found:
            parts.pop()
        return ".".join(parts)

    return {module: {resolve(name) for _, name in imported_modules(path.read_text(), module, is_package)} - {module, ""}
            for module, (path, is_package) in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_in_a_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(group) for group in found)


def test_the_cycle_check_sees_function_level_cycles():
    """Two modules that import each other, one of them inside a function (the encoder <-> onnx_encoder shape)."""
    a = imported_modules("from simcse_lab.modeling.b import f\n", "simcse_lab.modeling.a", False)
    b = imported_modules("def g():\n    from simcse_lab.modeling.a import h\n", "simcse_lab.modeling.b", False)
    graph = {"simcse_lab.modeling.a": {name.rsplit(".", 1)[0] for _, name in a},
             "simcse_lab.modeling.b": {name.rsplit(".", 1)[0] for _, name in b}, "simcse_lab.modeling.c": set()}
    assert cycles(graph) == [["simcse_lab.modeling.a", "simcse_lab.modeling.b"]]


def _declared_on_objective() -> set[str]:
    """What the objectives' base class declares: class attributes, methods, ``self.x`` set in its methods, and
    what torch's nn.Module itself offers (``to``, ``train``, ...)."""
    from torch import nn

    tree = ast.parse((PACKAGE / "training" / "objectives" / "base.py").read_text())
    base = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Objective")
    names = set(dir(nn.Module))
    for node in ast.walk(base):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and getattr(node.value, "id", "") == "self":
            names.add(node.attr)
    return names


def _is_objective(node: ast.AST) -> bool:
    """``objective`` or ``something.objective``: how the training code names the objective it runs."""
    return (isinstance(node, ast.Name) and node.id == "objective") or \
        (isinstance(node, ast.Attribute) and node.attr == "objective")


def objective_reads(source: str) -> list[tuple[int, str]]:
    """(line, what) of every read of an objective's attribute: ``objective.x`` (-> ``x``) and any
    ``getattr``/``hasattr`` on an objective (-> ``getattr(objective, ...)``: an undeclared, optional protocol)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _is_objective(node.value):
            found.append((node.lineno, node.attr))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and node.args and _is_objective(node.args[0])):
            found.append((node.lineno, f"{node.func.id}(objective, ...)"))
    return found


def test_no_implicit_objective_protocol():
    """The training code (everything in training/ outside the objectives) reads of an objective only what the
    objectives' base class declares, and never probes it with getattr/hasattr."""
    declared = _declared_on_objective()
    hits = [f"{path.relative_to(PACKAGE.parent)}:{line} reads {what}"
            for path in sorted((PACKAGE / "training").glob("*.py"))
            for line, what in objective_reads(path.read_text()) if what not in declared]
    assert not hits, "read from an objective but not declared on training/objectives/base.py's Objective:\n" + \
        "\n".join(hits)


def test_the_objective_check_sees_undeclared_reads():
    planted = ("def f(objective, run):\n"
               "    a = getattr(objective, 'forward_only_inputs', ())\n"
               "    b = run.objective.hidden_thing\n"
               "    return objective.collate, hasattr(run.objective, 'mlm')\n")
    declared = _declared_on_objective()
    assert {"collate", "forward_only_inputs", "mlm", "data_columns"} <= declared
    assert [what for _, what in objective_reads(planted) if what not in declared] == [
        "getattr(objective, ...)", "hidden_thing", "hasattr(objective, ...)"]


MAX_LINES, MAX_PARAMS = 60, 8
# the one function allowed to be long: the training loop reads top to bottom (nanoGPT's loop is 88 lines)
LONG_BY_DESIGN = {"simcse_lab/training/loop.py:train"}


def function_sizes(source: str) -> list[tuple[str, int, int]]:
    """(qualified name, lines, parameters) of every function and method in ``source``, nested ones too;
    ``self``/``cls`` are not counted as parameters, ``*args``/``**kwargs`` are."""
    found = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = child.args
                names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs] + \
                    [p.arg for p in (a.vararg, a.kwarg) if p is not None]
                params = len([n for n in names if n not in ("self", "cls")])
                found.append((prefix + child.name, child.end_lineno - child.lineno + 1, params))
                walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
            else:
                walk(child, prefix)

    walk(ast.parse(source), "")
    return found


def oversized() -> dict[str, str]:
    """``file:function`` -> what is over the limits, for every function in simcse_lab/ and eval/."""
    found = {}
    for path in sorted([*PACKAGE.rglob("*.py"), *EVAL.rglob("*.py")]):
        for name, lines, params in function_sizes(path.read_text()):
            key = f"{path.relative_to(PACKAGE.parent).as_posix()}:{name}"
            over = ([f"{lines} lines"] if lines > MAX_LINES and key not in LONG_BY_DESIGN else []) + \
                ([f"{params} parameters"] if params > MAX_PARAMS else [])
            if over:
                found[key] = ", ".join(over)
    return found


def test_functions_stay_within_the_size_limits():
    found = oversized()
    assert not found, (f"functions over {MAX_LINES} lines or {MAX_PARAMS} parameters (split them; pass a record "
                       f"where arguments travel together):\n" + "\n".join(f"{k}: {v}" for k, v in found.items()))


def test_the_size_check_counts_lines_and_parameters():
    source = ("class A:\n"
              "    def m(self, a, b, *c, d, **e):\n"
              "        def inner(x):\n"
              "            return x\n"
              "        return inner\n")
    assert function_sizes(source) == [("A.m", 4, 5), ("A.m.inner", 2, 1)]


def test_readme_layout_is_generated():
    spec = importlib.util.spec_from_file_location("layout_script", SCRIPT)
    layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layout)
    block = layout.readme_block(layout.README.read_text())
    if block != layout.render():
        pytest.fail("README.md's Layout section differs from the package docstrings: "
                    "run `python scripts/layout.py --write`")


def test_a_test_module_imports_test_modules_of_its_own_folder_only():
    """pytest puts each test file's own folder on sys.path, and tests/ (the conftest's): a test module imported
    from another folder resolves only when that folder happened to be collected first."""
    tests = PACKAGE.parent / "tests"
    helpers = {p.stem for p in tests.glob("*.py")}  # conftest, families, tiny_backbones, ...
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top.startswith("test_") and top not in helpers and not (path.parent / f"{top}.py").is_file():
                    found.append(f"{path.relative_to(tests)}:{node.lineno} imports {top}")
    assert not found, "\n".join(found)
