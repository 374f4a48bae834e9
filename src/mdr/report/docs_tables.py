"""Refresh the results tables quoted in the docs from the tracked results folders.

A quoted table follows a marker ``<!-- report: python report.py results/X [--baseline k=v] [-> file.md] -->``
and ends at the first blank line; it is replaced by the first table of what report.py writes for that
folder today (results.md, or the named file such as adversarial.md). A test checks that the docs hold
exactly these tables, so after new cells land in results/: ``python -m mdr.report.docs_tables``.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from mdr.report.tables import to_markdown
from mdr.report.write import write_report

MARKER = re.compile(
    r"(<!-- report: python report.py (results/\S+)(?: --baseline (\S+))?(?: -> (\S+\.md))? -->\n)(.*?)(\n\n)",
    re.S,
)


def first_table(markdown: str) -> str:
    """The first run of Markdown table lines (``| ...``) in a report."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise ValueError("the report holds no table")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def rendered_table(
    root: Path, folder: str, baseline: str | None, written: str | None, permutations: int
) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(root / folder, tmp, baseline=baseline or None, permutations=permutations)
        text = (Path(tmp) / written).read_text() if written else to_markdown(report)
    return first_table(text)


def refresh(doc: Path, root: Path, permutations: int = 10_000) -> list[str]:
    """Rewrite every quoted table of ``doc``; returns the folders whose table changed."""
    text = doc.read_text()
    changed: list[str] = []

    def replace(m: re.Match) -> str:
        marker, folder, baseline, written, old, gap = m.groups()
        new = rendered_table(root, folder, baseline, written, permutations)
        if new != old:
            changed.append(folder + (f" ({written})" if written else ""))
        return marker + new + gap

    doc.write_text(MARKER.sub(replace, text))
    return changed


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("doc", nargs="?", default="docs/experiments.md")
    ap.add_argument("--root", default=".", help="the repository root (results/ lives there)")
    args = ap.parse_args()
    changed = refresh(Path(args.doc), Path(args.root))
    print("refreshed: " + (", ".join(changed) if changed else "nothing changed"))
