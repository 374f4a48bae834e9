"""Refresh the results tables quoted in the docs from the tracked results folders.

A quoted table follows a marker
``<!-- report: python report.py results/X [--baseline k=v] [--claims FILE] [-> file.md] -->``
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
from mdr.runtime.errors import InputError

MARKER = re.compile(
    r"(<!-- report: python report.py (results/\S+)(?: --baseline (\S+))?(?: --claims (\S+))?(?: -> (\S+\.md))? -->\n)"
    r"(.*?)(\n\n)",
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


def refresh(doc: Path, root: Path, permutations: int = 10_000) -> list[str]:
    """Rewrite every quoted table of ``doc``; returns the folders whose table changed. report.py runs once
    per (folder, baseline): its results table and the files it writes beside it (claims.md, ...) share it."""
    text = doc.read_text()
    claims_of = {(m[2], m[3]): m[4] for m in MARKER.finditer(text) if m[4]}
    changed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        reports: dict = {}

        def replace(m: re.Match) -> str:
            marker, folder, baseline, _, written, old, gap = m.groups()
            if (folder, baseline) not in reports:
                out = Path(tmp) / str(len(reports))
                claims = claims_of.get((folder, baseline))
                report = write_report(
                    root / folder,
                    out,
                    baseline=baseline or None,
                    permutations=permutations,
                    claims=root / claims if claims else None,
                )
                reports[(folder, baseline)] = (out, report)
            out, report = reports[(folder, baseline)]
            new = first_table((out / written).read_text() if written else to_markdown(report))
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
