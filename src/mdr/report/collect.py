"""Collect a sweep's run folders into a paper-style results table.

A run folder is any folder with a Hydra config (``mdr.runtime.run_folder``). A complete run has
``metrics.json`` (written last and atomically); a failed run is listed with its reason; a run with neither
(killed, still running) is listed as incomplete. Failed and incomplete runs are never read into the table.

Rows = sampler x model x finetune (seeds pooled), plus one column per other swept override that takes
more than one value in the collection (``sampler.alpha``, ``data``, ``pretrain.enabled``: read from each
run's recorded overrides). Per LAReQA dataset the columns are mono / cross / multi mAP, P@1 and MRR@5
of the cross-lingual settings, and the rank distance; cells are mean +- the half-width of a 95%
t-interval over seeds. The best mean of each column is marked (lowest for rank distance) where a column
has two or more rows.

``subset="unseen"`` (or ``"seen"``) reads the summaries restricted to languages unseen (seen) in training.
Datasets evaluated on perturbed queries (``xquad_r~char_noise@0.1``, from ``eval.perturb``) are kept out
of the main table and reported as mAP drops against their clean dataset (``robustness``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mdr.data.names import is_variant
from mdr.report.stats import Cell, mean_ci
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.provenance import block_of
from mdr.runtime.run_folder import RunFolder

SAMPLERS = {"XXSampler": "xx", "XYSampler": "xy", "HybridSampler": "hybrid", "MixedSampler": "mixed"}

# (column label, path into a dataset's summary, higher is better): LAReQA sets ...
COLUMNS = [
    ("mono mAP", ("mono", "map"), True),
    ("cross mAP", ("cross", "map"), True),
    ("multi mAP", ("multi", "map"), True),
    ("P@1 (X->Y)", ("cross", "p@1"), True),
    ("MRR@5 (X->Y)", ("cross", "mrr@5"), True),
    ("rank dist", ("multi", "rank_distance"), False),
]
# ... and bitext sets (Tatoeba): accuracy averaged over both directions, per language group
BITEXT_COLUMNS = [
    ("acc", ("all", "accuracy"), True),
    ("acc XTREME-36", ("xtreme36", "accuracy"), True),
    ("acc low-res", ("low_resource", "accuracy"), True),
]


def columns_for(entry: dict) -> list[tuple[str, tuple[str, str], bool]]:
    return BITEXT_COLUMNS if entry.get("kind") == "bitext" else COLUMNS


def column_path(entry: dict, label: str) -> tuple[str, str]:
    """Where a table column's value sits in a dataset's summary (also: what its per-query units measure)."""
    return next(path for lab, path, _ in columns_for(entry) if lab == label)


BASE_KEYS = ["sampler", "model", "finetune"]

NOT_A_ROW_KEY = {
    "seed",
    "sampler",
    "model",
    "finetune",
    "experiment",
    "ckpt",
    "results_dir",
    "ckpt_path",
    "fusion",
}
NOT_A_ROW_PREFIX = (
    "merge.",
    "eval.fusion",
    "eval.cosine_gap",
    "preemption.",
    "progress.",
)  # which merged rows a run adds is not a row of its own


@dataclass
class RunValues:
    """One complete run: its row key and its metric values (``dataset|label`` -> value)."""

    path: Path
    key: tuple[str, ...]
    config: dict
    values: dict[str, float]
    seed: int | None = None
    datasets: dict = field(default_factory=dict)  # metrics.json's datasets (for per-query tests)
    provenance: dict | None = None  # where and on what code it ran (mdr.runtime.provenance)

    @property
    def block(self) -> str:
        """The run's seed block: CPU kind and major library versions (``mdr.runtime.provenance.block_of``)."""
        return block_of(self.provenance)


@dataclass
class Report:
    rows: dict[tuple[str, ...], dict[str, Cell]] = field(default_factory=dict)
    key_names: list[str] = field(default_factory=lambda: list(BASE_KEYS))
    columns: list[tuple[str, str, bool]] = field(default_factory=list)  # (dataset, label, higher is better)
    best: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    complete: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # results_dir already held their cell
    runs: list[RunValues] = field(default_factory=list)
    subset: str | None = None
    baseline: dict | None = None  # report.py --baseline: row key -> the baseline row it is tested against
    comparisons: dict = field(default_factory=dict)  # row key -> column -> significance.Comparison


def sampler_name(config: dict, label_alpha: bool = True) -> str:
    if "sampler" not in config and not config.get("ckpt"):
        return "untrained"  # eval.py of a backbone as it is (no training checkpoint)
    sampler = config.get("sampler", {}).get("_target_", "?").rsplit(".", 1)[-1]
    sampler = SAMPLERS.get(sampler, sampler)
    alpha = config.get("sampler", {}).get("alpha")
    if label_alpha and sampler == "hybrid" and alpha is not None and float(alpha) != 0.5:
        sampler = f"hybrid a={alpha}"
    return sampler


def row_key(config: dict, label_alpha: bool = True) -> tuple[str, ...]:
    """(sampler, model, fine-tuning mode); BM25 is the row ``bm25`` and a fused row ``<sampler> rrf bm25``, so
    a selector such as ``sampler=untrained`` names the dense backbone alone."""
    merged = config.get("merged") or {}
    if merged.get("row"):  # a merge of several runs: its parents' keys joined (mdr.cli.merge.soup_row_key)
        return tuple(merged["row"])
    lexical = str(config.get("model", {}).get("encoder", {}).get("_target_", "")).endswith("lexical.BM25")
    sampler = "bm25" if lexical else sampler_name(config, label_alpha)
    return (
        f"{sampler} rrf bm25" if config.get("fused") else sampler,
        str(config.get("model", {}).get("name", "?")),
        "none" if lexical else str(config.get("finetune", {}).get("mode", "?")),
    )


def read_overrides(run: Path) -> dict[str, str]:
    """The command-line overrides of a run (``key=value``), as Hydra recorded them."""
    return RunFolder(run).override_map()


def summary_values(metrics: dict, subset: str | None) -> dict[str, float]:
    """``dataset|label`` -> value for every LAReQA dataset of a run (``subset``: seen / unseen only)."""
    out = {}
    for ds, d in sorted(metrics.get("datasets", {}).items()):
        summary = d.get("summary")
        if summary is None:
            continue
        if subset:
            summary = summary.get(subset) or {}
        for label, (kind, metric), _ in columns_for(d):
            v = (summary.get(kind) or {}).get(metric)
            if v is not None:
                out[f"{ds}|{label}"] = float(v)
    return out


def check_distinct_seeds(runs: list[RunValues]) -> None:
    """Two run folders of one row with the same training seed (a copy, a rerun under another name) would count
    one seed twice: refuse, naming both."""
    first: dict[tuple, Path] = {}
    for rv in runs:
        if rv.seed is None:
            continue
        other = first.setdefault((rv.key, rv.seed), rv.path)
        if other != rv.path:
            raise InputError(
                f"row {'/'.join(rv.key)} has seed {rv.seed} twice: {other} and {rv.path}; keep one of the two "
                "folders (counting both would add a seed that is not distinct)"
            )


def collect(root: str | Path, subset: str | None = None) -> Report:
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(f"{root} is not a folder: pass a multirun/<date>/<time> folder or outputs/")
    if subset not in (None, "seen", "unseen"):
        raise InputError(f"subset={subset!r}: choose seen or unseen (or none for all languages)")
    report = Report(subset=subset)
    runs = RunFolder.find_all(root)
    if not runs:
        raise MissingInputError(f"no run folders (with a Hydra config) under {root}")
    found = []
    for run in runs:
        if (reason := run.failed()) is not None:
            report.failed.append((run.path, reason))
            continue
        if (reason := run.skipped()) is not None:
            report.skipped.append((run.path, reason))
            continue
        if not run.complete:
            report.incomplete.append(run.path)
            continue
        metrics = run.metrics()
        config = metrics.get("config") or run.config()
        config = config.get("trained_with") or config  # eval.py of a training run's checkpoint
        found.append((run.path, config, run.override_map(), summary_values(metrics, subset), metrics))
        report.complete.append(run.path)
    swept: dict[str, set[str]] = {}
    for _, _, overrides, _, _ in found:
        for k, v in overrides.items():
            if k not in NOT_A_ROW_KEY and not k.startswith(NOT_A_ROW_PREFIX):
                swept.setdefault(k, set()).add(v)
    extra = sorted(k for k, vs in swept.items() if len(vs) > 1 or any(k not in o for _, _, o, _, _ in found))
    report.key_names = BASE_KEYS + extra
    kinds: dict[str, dict] = {}
    for run, config, overrides, values, metrics in found:
        key = row_key(config, label_alpha="sampler.alpha" not in extra)
        key += tuple(overrides.get(k, "default") for k in extra)
        datasets = metrics["datasets"]
        provenance = RunFolder(run).provenance(metrics)
        report.runs.append(RunValues(run, key, config, values, config.get("seed"), datasets, provenance))
        kinds.update({ds: entry for ds, entry in datasets.items() if ds not in kinds})
    check_distinct_seeds(report.runs)
    pooled: dict[tuple, dict[str, list[float]]] = {}
    for rv in report.runs:
        for col, v in rv.values.items():
            pooled.setdefault(rv.key, {}).setdefault(col, []).append(v)
    datasets = sorted({col.split("|")[0] for cols in pooled.values() for col in cols} - set())
    clean = [ds for ds in datasets if not is_variant(ds)]  # perturbed and attacked sets have their own tables
    report.columns = [
        (ds, label, higher) for ds in clean for label, _, higher in columns_for(kinds.get(ds, {}))
    ]
    for key in sorted(pooled):
        report.rows[key] = {col: mean_ci(v) for col, v in pooled[key].items()}
    for ds, label, higher in report.columns:
        col = f"{ds}|{label}"
        cands = [(cells[col].mean, key) for key, cells in report.rows.items() if col in cells]
        if len(cands) > 1:  # a column with one row (e.g. a dataset only one setting evaluates) has no best
            report.best[(ds, label)] = (max if higher else min)(cands)[1]
    return report
