"""Weights & Biases: choose the logger (falling back to CSV when wandb is not set up) and log the end of a run.

At the end of training the run gets, per evaluated dataset: headline numbers in its summary
(``final/<dataset>/<metric>``), a table of every setting's metrics, the language-pair heatmap and the
language-bias plot as images.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

log = logging.getLogger(__name__)

NO_KEY_MODES = {"offline", "disabled", "dryrun"}
WANDB_TARGET = "lightning.pytorch.loggers.WandbLogger"
CSV_FALLBACK = {
    "_target_": "lightning.pytorch.loggers.CSVLogger",
    "name": "csv",
    "version": "",
}


def wandb_problem() -> str | None:
    """Why wandb cannot log here (None when it can): not installed, or online without credentials."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        return "the wandb package is not installed (pip install wandb)"
    if os.environ.get("WANDB_MODE", "").lower() in NO_KEY_MODES or os.environ.get("WANDB_API_KEY"):
        return None
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError):
        auth = None
    if auth:
        return None
    return "no W&B credentials (run `wandb login` or set WANDB_API_KEY; WANDB_MODE=offline logs without them)"


def logger_config(logger_cfg: dict, save_dir: str) -> dict:
    """The logger config to instantiate: the W&B one, or a CSV logger (with a warning) when W&B is not set up."""
    if logger_cfg.get("_target_") != WANDB_TARGET:
        return logger_cfg
    problem = wandb_problem()
    if problem is None:
        return logger_cfg
    log.warning("logger=wandb: %s; logging to CSV in %s/csv instead", problem, save_dir)
    return {**CSV_FALLBACK, "save_dir": save_dir}


def log_final(logger, report: dict, run_dir: Path) -> None:
    """Headline numbers, per-setting tables and the heatmap / bias images of every dataset, to W&B."""
    import wandb

    run = logger.experiment
    for ds, d in report.get("datasets", {}).items():
        for metric, value in (report.get("headline", {}).get(ds) or {}).items():
            run.summary[f"final/{ds}/{metric}"] = value
        pairs = d.get("pairs")
        if pairs:
            cols = [
                "setting",
                "type",
                "query_lang",
                "pool",
                "map",
                "p@1",
                "mrr@5",
                "r@10",
                "ndcg@10",
                "rank_distance",
            ]
            table = wandb.Table(columns=cols)
            for name, row in pairs.items():
                table.add_data(name, *(row.get(c) for c in cols[1:]))
            run.log({f"final/{ds}/settings": table})
        images = {}
        for kind in ("heatmap", "bias"):
            path = run_dir / "eval" / ds / f"{kind}.png"
            if path.exists():
                images[f"final/{ds}/{kind}"] = wandb.Image(str(path))
        if images:
            run.log(images)
