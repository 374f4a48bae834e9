"""Turn a sweep into a results table: `python report.py multirun/<date>/<time> [--out DIR]`.

Writes results.md, results.csv and results.tex (mean +- 95% CI over seeds, best cells marked) and lists
failed and incomplete runs instead of reading them.
"""

import argparse

from mdr.report import to_markdown, write_report

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", help="a multirun folder (or any folder holding run folders)")
    ap.add_argument("--out", default=None, help="where to write results.* (default: the root folder)")
    args = ap.parse_args()
    report = write_report(args.root, args.out)
    print(to_markdown(report))
