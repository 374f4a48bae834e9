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


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    own = layer(module)
    if own is None:
        return
    for imported in GRAPH[module]:
        other = layer(imported)
        assert other in LAYERS, f"{module} imports {imported}, outside the layers"
        assert LAYERS.index(other) <= LAYERS.index(own), (
            f"{module} ({own}) imports {imported} ({other}), a higher layer"
        )
        if own == "report" and imported not in REPORT_MAY_READ:
            assert other in REPORT_MAY_IMPORT, (
                f"{module} imports {imported}: report reads files, no {other} code"
            )


def test_no_import_circles():
    def visit(node, stack, done):
        if node in stack:
            raise AssertionError(f"import circle: {' -> '.join([*stack[stack.index(node) :], node])}")
        if node in done:
            return
        stack.append(node)
        for nxt in GRAPH.get(node, ()):
            if nxt in GRAPH and nxt != node and not node.startswith(nxt + "."):  # a package's own __init__
                visit(nxt, stack, done)
        stack.pop()
        done.add(node)

    done: set[str] = set()
    for module in GRAPH:
        visit(module, [], done)


def test_the_checks_can_fail():
    """The rules catch a violation: a fake graph with an upward import and a circle."""
    assert LAYERS.index("training") > LAYERS.index("eval")  # eval importing training would be flagged
    fake = {"mdr.eval.a": {"mdr.eval.b"}, "mdr.eval.b": {"mdr.eval.a"}}
    with pytest.raises(AssertionError, match="import circle"):
        GRAPH.update(fake)
        try:
            test_no_import_circles()
        finally:
            for key in fake:
                GRAPH.pop(key)
