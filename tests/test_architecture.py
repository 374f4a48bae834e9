"""The layout's rules, checked on the source: imports only point down the layers, no module imports itself
back through a circle, and the report layer reads files without training or modeling code."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mdr"
# lowest first: a module may import its own layer and the layers before it (docs/architecture.md)
LAYERS = ["runtime", "data", "modeling", "eval", "training", "report", "cli"]
REPORT_MAY_IMPORT = {"runtime", "data", "report"}
# ... and, from eval, the per-query file contract and the metric definitions it is recomputed with (no model code)
REPORT_MAY_READ = {"mdr.eval.outputs.per_query", "mdr.eval.metrics"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def mdr_imports(path: Path) -> set[str]:
    """Every ``mdr.*`` module imported anywhere in the file (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mdr"):
            out.add(node.module)
            out.update(
                f"{node.module}.{a.name}"
                for a in node.names
                if (SRC.parent / node.module.replace(".", "/") / a.name).with_suffix(".py").exists()
            )
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mdr"))
    return out


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


GRAPH = {module_name(p): mdr_imports(p) for p in SRC.rglob("*.py")}


def test_every_package_is_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert packages == set(LAYERS)
    assert all((SRC / name / "__init__.py").exists() for name in LAYERS)  # real packages, also when installed


def violations(module: str, graph: dict[str, set[str]]) -> list[str]:
    """What is wrong with ``module``'s imports: outside the layers, upward, or model code in the report."""
    own = layer(module)
    if own is None:
        return []
    out = []
    for imported in sorted(graph[module]):
        other = layer(imported)
        if other not in LAYERS:
            out.append(f"{module} imports {imported}, outside the layers")
        elif LAYERS.index(other) > LAYERS.index(own):
            out.append(f"{module} ({own}) imports {imported} ({other}), a higher layer")
        elif own == "report" and imported not in REPORT_MAY_READ and other not in REPORT_MAY_IMPORT:
            out.append(f"{module} imports {imported}: report reads files, no {other} code")
    return out


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a package importing its own ``__init__`` is none), or None."""

    def visit(node, stack, done):
        if node in stack:
            return [*stack[stack.index(node) :], node]
        if node in done:
            return None
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt in graph and nxt != node and not node.startswith(nxt + "."):
                found = visit(nxt, stack, done)
                if found:
                    return found
        stack.pop()
        done.add(node)
        return None

    done: set[str] = set()
    return next((c for module in graph if (c := visit(module, [], done))), None)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    assert violations(module, GRAPH) == []


def test_no_import_circles():
    circle = import_circle(GRAPH)
    assert circle is None, f"import circle: {' -> '.join(circle)}"


def test_the_checks_can_fail():
    """Each rule catches its violation, on a made-up graph (the real one is left alone)."""
    fake = {
        "mdr.eval.scorer": {"mdr.training.module", "mdr.eval.metrics"},  # eval importing training: upward
        "mdr.report.tables": {"mdr.modeling.encoder", "mdr.eval.metrics"},  # model code in the report
        "mdr.data.reader": {"mdr.plugins.x"},  # outside the layers
        "mdr.eval.a": {"mdr.eval.b"},
        "mdr.eval.b": {"mdr.eval.a"},
    }
    assert violations("mdr.eval.scorer", fake) == [
        "mdr.eval.scorer (eval) imports mdr.training.module (training), a higher layer"
    ]
    assert violations("mdr.report.tables", fake) == [
        "mdr.report.tables imports mdr.modeling.encoder: report reads files, no modeling code"
    ]
    assert violations("mdr.data.reader", fake) == [
        "mdr.data.reader imports mdr.plugins.x, outside the layers"
    ]
    assert import_circle(fake) == ["mdr.eval.a", "mdr.eval.b", "mdr.eval.a"]
    assert import_circle({k: v for k, v in fake.items() if k != "mdr.eval.b"}) is None


RUN_FOLDER_MODULE = SRC / "runtime" / "run_folder.py"
RUN_FOLDER_STRINGS = (".hydra", "overrides.yaml")
RUN_FOLDER_MARKERS = ("FAILED", "SKIPPED")


def run_folder_spellings(path: Path) -> list[str]:
    """Where a module spells out the run folder's layout itself: a string literal naming Hydra's files or a
    marker (docstrings aside), or ``.parent.parent`` (a checkpoint's run folder)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if any(s in node.value for s in RUN_FOLDER_STRINGS) or node.value in RUN_FOLDER_MARKERS:
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            inner = node.value
            if isinstance(inner, ast.Attribute) and inner.attr == "parent":
                found.append(f"{path.name}:{node.lineno}: .parent.parent")
    return found


def test_only_the_run_folder_module_spells_the_run_folder_layout():
    offenders = [s for p in SRC.rglob("*.py") if p != RUN_FOLDER_MODULE for s in run_folder_spellings(p)]
    assert offenders == [], f"use mdr.runtime.run_folder.RunFolder: {offenders}"
    assert run_folder_spellings(RUN_FOLDER_MODULE), "the check must see the module that owns the layout"


def test_no_driver_imports_another():
    drivers = {"mdr.cli.train", "mdr.cli.evaluate", "mdr.cli.merge"}
    for module in drivers:
        assert not (GRAPH[module] & (drivers - {module})), f"{module} imports another driver"


def test_the_architecture_doc_names_every_module_and_only_modules_that_exist():
    """docs/architecture.md's layer table lists each layer's modules: none missing, none that is gone."""
    import re

    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    rows = [re.match(r"\| \d \| `(\w+)/` \| (.*) \|$", row) for row in doc.splitlines()]
    rows = [m for m in rows if m]
    assert {m[1] for m in rows} == set(LAYERS)
    for m in rows:
        package, named = SRC / m[1], set(re.findall(r"`(\w+)\.py`", m[2]))
        on_disk = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
        assert on_disk <= named, f"{m[1]}/: not in docs/architecture.md: {sorted(on_disk - named)}"
        gone = sorted(n for n in named if not any(package.rglob(f"{n}.py")))
        assert not gone, f"{m[1]}/: docs/architecture.md names modules that do not exist: {gone}"
