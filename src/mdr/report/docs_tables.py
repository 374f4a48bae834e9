"""Refresh the results tables quoted in the docs from the tracked results folders.

A quoted table follows a marker
``<!-- report: python report.py results/X [--baseline k=v] [--claims FILE[,FILE...]] [--twins results/Y] [-> file.md] -->``
and ends at the first blank line; it is replaced by the first table of what report.py writes for that
folder today (results.md, or the named file such as adversarial.md). A test checks that the docs hold
exactly these tables, so after new cells land in results/: ``python -m mdr.report.docs_tables``.

Beside the doc it writes ``<doc>.tables.json``: per marker, a digest of everything the table is computed
from (the results folder's files, the claims file, the source of every ``mdr`` module the report imports,
and the numpy / scipy versions) and of the table itself. A check (``stale_tables``) recomputes only the
tables whose inputs changed since, so its cost does not grow with results/, and still fails when a tracked
result or the code that turns results into tables changes a number.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import tempfile
from pathlib import Path

from mdr.report.claims import claims_paths
from mdr.report.tables import to_markdown
from mdr.report.write import write_report
from mdr.runtime.errors import InputError

MARKER = re.compile(
    r"(<!-- report: python report.py (results/\S+)(?: --baseline (\S+))?(?: --claims (\S+))?(?: --twins (results/\S+))?"
    r"(?: -> (\S+\.md))? -->\n)(.*?)(\n\n)",
    re.S,
)


def first_table(markdown: str) -> str:
    """The first run of Markdown table lines (``| ...``) in a report."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise InputError("the report holds no table")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


REPORT_ENTRY = ("mdr.report.write", "mdr.report.docs_tables")


SRC = Path(__file__).resolve().parents[2]  # the folder holding the mdr package


def module_file(name: str) -> Path | None:
    """The source file of an ``mdr`` module or package, found without importing it (None: not a module)."""
    base = SRC / name.replace(".", "/")
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def report_code(entry: tuple[str, ...] = REPORT_ENTRY) -> list[Path]:
    """The source files of every ``mdr`` module the report imports (followed statically, also imports inside
    functions): the code that can change a number in a table."""
    seen: dict[str, Path] = {}
    todo = list(entry)
    while todo:
        name = todo.pop()
        path = None if name in seen else module_file(name)
        if path is None:
            continue
        seen[name] = path
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mdr"):
                todo += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("mdr")]
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # packages' __init__
    return sorted(set(seen.values()))


def inputs_digest(
    root: Path, folder: str, claims: str | None, code: list[Path], twins_of: str | None = None
) -> str:
    """sha256 over the results folder's files (and the twins' folder), the claims file, the report's code and
    numpy/scipy versions."""
    import numpy
    import scipy

    root = root.resolve()  # the same relative names whether root was given as "." or as an absolute path
    h = hashlib.sha256(f"numpy {numpy.__version__} scipy {scipy.__version__}\n".encode())
    files = sorted(p for f in (folder, twins_of) if f for p in (root / f).rglob("*") if p.is_file())
    for path in [*files, *(root / p for p in claims_paths(claims or "")), *code]:
        rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        h.update(f"{rel}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def marker_key(m: re.Match) -> str:
    return m.group(1).strip()


def table_digest(table: str) -> str:
    return hashlib.sha256(table.strip().encode()).hexdigest()


def lock_path(doc: Path) -> Path:
    return doc.with_name(f"{doc.stem}.tables.json")


def write_lock(doc: Path, root: Path) -> None:
    """Record, per marker of ``doc``, the digest of its inputs and of the table now quoted."""
    text, code = doc.read_text(), report_code()
    lock = {
        marker_key(m): {"inputs": inputs_digest(root, m[2], m[4], code, m[5]), "table": table_digest(m[7])}
        for m in MARKER.finditer(text)
    }
    lock_path(doc).write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")


class QuotedTables:
    """report.py once per (folder, baseline) of a doc's markers, into ``tmp``: its results table and the files
    it writes beside it (claims.md, adversarial.md, ...) share one report."""

    def __init__(self, text: str, root: Path, tmp: Path, permutations: int):
        self.claims_of: dict = {}  # (folder, baseline) -> the first claims its markers name: a marker without
        for m in MARKER.finditer(text):  # claims shares that report (its results table is the same)
            if m[4]:
                self.claims_of.setdefault((m[2], m[3]), m[4])
        self.twins_of = {(m[2], m[3]): m[5] for m in MARKER.finditer(text) if m[5]}
        self.root, self.tmp, self.permutations = root, tmp, permutations
        self.reports: dict = {}

    def table(self, m: re.Match) -> str:
        """What the marker quotes, as report.py writes it today."""
        _, folder, baseline, claims, _, written, _, _ = m.groups()
        claims = claims or self.claims_of.get((folder, baseline))
        key = (folder, baseline, claims)
        if key not in self.reports:
            out = self.tmp / str(len(self.reports))
            twins_of = self.twins_of.get((folder, baseline))
            report = write_report(
                self.root / folder,
                out,
                baseline=baseline or None,
                permutations=self.permutations,
                claims=[self.root / p for p in claims_paths(claims)] if claims else None,
                twins_of=self.root / twins_of if twins_of else None,
            )
            self.reports[key] = (out, report)
        out, report = self.reports[key]
        return first_table((out / written).read_text() if written else to_markdown(report))


def stale_tables(doc: Path, root: Path, tmp: Path, permutations: int = 10_000) -> tuple[list[str], int]:
    """The markers whose quoted table differs from what report.py computes today, and how many tables were
    recomputed: a table whose inputs and text match the lock was computed from exactly these inputs when the
    lock was written, so only the others are recomputed."""
    text, code = doc.read_text(), report_code()
    path = lock_path(doc)
    lock = json.loads(path.read_text()) if path.is_file() else {}
    quoted = QuotedTables(text, root, tmp, permutations)
    stale, recomputed = [], 0
    for m in MARKER.finditer(text):
        digest = inputs_digest(root, m[2], m[4], code, m[5])
        if lock.get(marker_key(m)) == {"inputs": digest, "table": table_digest(m[7])}:
            continue
        recomputed += 1
        if quoted.table(m).strip() != m[7].strip():
            stale.append(marker_key(m))
    return stale, recomputed


def refresh(doc: Path, root: Path, permutations: int = 10_000) -> list[str]:
    """Rewrite every quoted table of ``doc`` and its lock; returns the folders whose table changed."""
    text = doc.read_text()
    changed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        quoted = QuotedTables(text, root, Path(tmp), permutations)

        def replace(m: re.Match) -> str:
            marker, folder, _, _, _, written, old, gap = m.groups()
            new = quoted.table(m)
            if new != old:
                changed.append(folder + (f" ({written})" if written else ""))
            return marker + new + gap

        doc.write_text(MARKER.sub(replace, text))
    write_lock(doc, root)
    return changed


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("doc", nargs="?", default="docs/experiments.md")
    ap.add_argument("--root", default=".", help="the repository root (results/ lives there)")
    args = ap.parse_args()
    changed = refresh(Path(args.doc), Path(args.root))
    print("refreshed: " + (", ".join(changed) if changed else "nothing changed"))
