"""Turn a sweep into a results table: `python report.py multirun/<date>/<time> [--out DIR]`.

Writes results.md, results.csv and results.tex (mean +- 95% CI over seeds, best cells marked), the plots
results_bars.png and bias.png, pareto.png for rows evaluated on XQuAD-R and Tatoeba (every
recipe against the untrained backbone), alpha_curve.{md,png} for an alpha sweep, robustness.{md,png} for runs
evaluated on perturbed queries, adversarial.{md,csv,png} for runs evaluated with eval.attack
(experiment=adversarial), poison.{md,csv} and poison_transfer.png for runs evaluated with eval.poison, and lists failed and incomplete runs instead of reading them.
`--subset unseen` reports the languages unseen in training only (results_unseen.*).
`--baseline sampler=xx` marks cells that differ significantly from that row (paired randomization test
over queries, Holm-corrected; p-values in results.csv).
`--claims conf/claims/hybrid_2408.10536.yaml` judges a paper's claims one by one (claims.{md,csv}); seeds from
different blocks (CPU kind, library versions) are compared within the blocks both rows share (`--blocks pool`:
every seed pooled, as a family was declared).
`--twins results/decisive` pairs each run with the archived cell of the same config and seed (twins.{md,csv}).
"""

import argparse
from pathlib import Path

from mdr.cli.entry import report_input_errors
from mdr.report.tables import to_markdown
from mdr.report.write import write_report

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", help="a multirun folder (or any folder holding run folders)")
    ap.add_argument("--out", default=None, help="where to write results.* (default: the root folder)")
    ap.add_argument(
        "--subset", choices=["seen", "unseen"], default=None, help="languages seen / unseen in training"
    )
    ap.add_argument(
        "--baseline",
        default=None,
        help="a row selector such as sampler=xx: test every other row against it (paired, over queries)",
    )
    ap.add_argument("--permutations", type=int, default=10_000, help="random sign flips per paired test")
    ap.add_argument(
        "--claims",
        default=None,
        help="a YAML list of claims (e.g. conf/claims/hybrid_2408.10536.yaml), or several comma-separated (every "
        "family declared on the folder, judged together; Holm within each family): claims.{md,csv}, one verdict each",
    )
    ap.add_argument(
        "--blocks",
        choices=["stratify", "pool"],
        default="stratify",
        help="claims across seed blocks (CPU kind, library versions): compare within shared blocks (default; "
        "the pooled verdict is shown beside) or pool every seed as the family was declared",
    )
    ap.add_argument(
        "--recommend",
        action="store_true",
        help="with --claims: per user priority, the recipe the declared claims name, or 'undecided between' "
        "(recommend.md; means are never ranked)",
    )
    ap.add_argument(
        "--twins",
        default=None,
        help="the folder of archived cells these runs retrain at the same config and seed (e.g. results/decisive): "
        "twins.{md,csv}, the per-seed difference retrained - archived (how much results move between blocks)",
    )
    args = ap.parse_args()
    if args.recommend and not args.claims:
        ap.error("--recommend reads declared claims: add --claims conf/claims/<family>.yaml")
    report = report_input_errors(
        lambda: write_report(
            args.root,
            args.out,
            args.subset,
            args.baseline,
            args.permutations,
            args.claims,
            args.blocks,
            args.twins,
        ),
        "report.py",
    )
    print(to_markdown(report))
    out = Path(args.out or args.root)
    adversarial = f"adversarial_{args.subset}.md" if args.subset else "adversarial.md"
    # the claims' primary table on the terminal; every claim is in claims.md
    for extra in (
        "alpha_curve.md",
        "robustness.md",
        adversarial,
        "poison.md",
        *(["claims_primary.md"] if args.claims else []),
        *(["recommend.md"] if args.recommend else []),
        *(["twins.md"] if args.twins else []),
    ):
        if (out / extra).exists():
            print((out / extra).read_text())
