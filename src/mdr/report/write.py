"""Everything ``report.py`` writes for a sweep folder."""

from __future__ import annotations

import csv
from pathlib import Path

from mdr.report.adversarial import adversarial, adversarial_csv_rows, adversarial_markdown, plot_adversarial
from mdr.report.blocks import block_labels
from mdr.report.claims import family_coverage, judge, load_claims_files
from mdr.report.claims_tables import write_verdicts
from mdr.report.collect import Report, collect
from mdr.report.derived import alpha_curve, robustness
from mdr.report.plots import plot_alpha_curve, plot_bars, plot_bias, plot_pareto, plot_robustness, row_label
from mdr.report.poison import plot_poison_transfer, poison_markdown, poison_rows, write_poison_csv
from mdr.report.recommend import recommend, recommend_markdown
from mdr.report.significance import baseline_rows, compare_to_baseline
from mdr.report.tables import alpha_markdown, robustness_markdown, to_latex, to_markdown, write_csv
from mdr.report.twins import twins, write_twins


def row_namer(r):
    """selector -> the row it names in ``r`` ("hybrid / me5_small / full"), or the selector when it names none."""
    from mdr.report.claims import runs_of
    from mdr.runtime.errors import InputError

    def name(selector: str) -> str:
        try:
            runs = runs_of(r, selector)
        except InputError:
            return selector
        return " / ".join(part for part in runs[0].key if part != "default") if runs else selector

    return name


def write_report(
    root: str | Path,
    out_dir: str | Path | None = None,
    subset: str | None = None,
    baseline: str | None = None,
    permutations: int = 10_000,
    claims: str | Path | list | None = None,
    blocks: str = "stratify",
    twins_of: str | Path | None = None,
) -> Report:
    """results.{md,csv,tex}, results_bars.png, bias.png, pareto.png (rows with XQuAD-R and Tatoeba); alpha_curve.{md,png} and robustness.{md,png} when the
    runs hold an alpha sweep or perturbed evaluations, adversarial.{md,csv,png} when they hold attacks. ``subset`` names the files ``results_unseen.*``;
    ``baseline`` (``sampler=xx``) tests every other row against that row, or against the one of its group
    when several rows match (``significance.baseline_rows``), per cell. ``blocks``: how claims treat seed
    blocks (``stratify``, the default, with the pooled verdict beside; ``pool``: as declared only).
    ``twins_of``: the folder of archived cells these runs retrain (twins.{md,csv}: the paired block measure)."""
    claims_file = load_claims_files(claims) if claims else None  # a bad claims file fails before any reading
    r = collect(root, subset)
    if baseline:
        r.baseline = baseline_rows(sorted({rv.key for rv in r.runs}), r.key_names, baseline)
        r.comparisons = compare_to_baseline(r, r.baseline, permutations) if r.rows else {}
    # every per-query archive is read (and checked) before the first file is written: no half-written report
    verdicts = (
        judge(r, claims_file.claims, permutations, blocks=blocks, families=claims_file.families)
        if claims_file
        else None
    )
    attacked = adversarial(r, r.baseline, permutations)
    poisoned = poison_rows(r, r.baseline)
    paired = twins(r, collect(twins_of, subset)) if twins_of else None
    out = Path(out_dir) if out_dir else Path(root)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"results_{subset}" if subset else "results"
    (out / f"{stem}.md").write_text(to_markdown(r))
    (out / f"{stem}.tex").write_text(to_latex(r))
    write_csv(r, out / f"{stem}.csv")
    if r.rows and r.columns:
        plot_bars(r, out / f"{stem}_bars.png")
        plot_bias(r, out / ("bias_" + subset + ".png" if subset else "bias.png"))
    if not subset:
        plot_pareto(r, out / "pareto.png")  # when the rows have XQuAD-R and Tatoeba (experiment=decisive)
    curves = alpha_curve(r)
    if curves:
        (out / "alpha_curve.md").write_text(alpha_markdown(curves))
        plot_alpha_curve(curves, out / "alpha_curve.png")
    drops = robustness(r)
    if drops:
        (out / "robustness.md").write_text(robustness_markdown(r, drops))
        plot_robustness(r, drops, out / "robustness.png")
    if attacked:
        stem = f"adversarial_{subset}" if subset else "adversarial"
        (out / f"{stem}.md").write_text(adversarial_markdown(attacked, r.key_names, r.baseline))
        with (out / f"{stem}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [*r.key_names, "dataset", "setting", "column", "mean", "ci95_half_width", "n_seeds"]
                + ["diff_vs_baseline", "p_value", "p_holm"]
            )
            w.writerows(adversarial_csv_rows(attacked))
        plot_adversarial(attacked, out / f"{stem}.png", lambda key: row_label(r, key).replace("\n", " "))
    if poisoned:
        (out / "poison.md").write_text(poison_markdown(poisoned, r.key_names))
        write_poison_csv(poisoned, r.key_names, out / "poison.csv")
        plot_poison_transfer(
            poisoned, lambda key: row_label(r, key).replace("\n", " "), out / "poison_transfer.png"
        )
    if paired is not None:
        write_twins(paired, out)
    if verdicts is not None:
        coverage = family_coverage(r, claims_file.families)
        write_verdicts(verdicts, out, permutations, claims_file.families, block_labels(r.runs), coverage)
        (out / "recommend.md").write_text(recommend_markdown(recommend(verdicts, row_namer(r))))
    return r
