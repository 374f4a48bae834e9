"""Tables derived from a collected ``Report``: the alpha curve of hybrid runs and the robustness drops
(clean minus perturbed mAP)."""

from __future__ import annotations

from mdr.data.names import clean_name, is_perturbed
from mdr.report.collect import Report, sampler_name
from mdr.report.stats import Cell, mean_ci


def alpha_curve(r: Report) -> dict[tuple, dict[float, dict[str, Cell]]]:
    """Hybrid runs grouped by (model, finetune, other keys) -> alpha -> column -> mean / CI over seeds."""
    groups: dict[tuple, dict[float, dict[str, list[float]]]] = {}
    for rv in r.runs:
        sampler_cfg = rv.config.get("sampler", {})
        if sampler_name(rv.config, label_alpha=False) != "hybrid" or sampler_cfg.get("alpha") is None:
            continue
        rest = tuple(v for name, v in zip(r.key_names, rv.key) if name not in ("sampler", "sampler.alpha"))
        by_alpha = groups.setdefault(rest, {}).setdefault(float(sampler_cfg["alpha"]), {})
        for col, v in rv.values.items():
            by_alpha.setdefault(col, []).append(v)
    return {
        g: {a: {c: mean_ci(v) for c, v in cols.items()} for a, cols in sorted(by.items())}
        for g, by in groups.items()
        if len(by) > 1
    }


def robustness(r: Report) -> dict[tuple, dict[str, dict[str, Cell]]]:
    """Row -> perturbed dataset -> ``mono/cross/multi mAP`` -> drop (clean minus perturbed), over seeds."""
    out: dict[tuple, dict[str, dict[str, list[float]]]] = {}
    for rv in r.runs:
        for col, v in rv.values.items():
            ds, label = col.split("|")
            if not is_perturbed(ds) or not label.endswith("mAP"):
                continue
            clean = rv.values.get(f"{clean_name(ds)}|{label}")
            if clean is not None:
                out.setdefault(rv.key, {}).setdefault(ds, {}).setdefault(label, []).append(clean - v)
    return {
        k: {ds: {label: mean_ci(v) for label, v in labels.items()} for ds, labels in sorted(d.items())}
        for k, d in sorted(out.items())
    }
