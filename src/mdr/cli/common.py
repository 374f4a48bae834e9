"""What the drivers (``train.py``, ``eval.py``, ``merge.py``) share: instantiation that surfaces a constructor's
own error, progress display, the evaluation plan built before anything is loaded, and a checkpoint's own
fine-tuning mode."""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig

from mdr.eval.plan import EvalPlan
from mdr.eval.suite import EvalSettings
from mdr.modeling.finetune import FinetuneMode, finetune_mode
from mdr.runtime import progress

log = logging.getLogger(__name__)


def make(node, **kwargs):
    """``hydra.utils.instantiate``, but a failing constructor's own error (which names the fix) is raised as
    itself rather than wrapped in Hydra's InstantiationException."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise


def configure_progress(cfg: DictConfig) -> None:
    """``progress.*``: a bar on a terminal, plain lines in logs (see ``mdr.runtime.progress``). Also lets
    Lightning's messages reach the run's log handlers (console and train.log) once, not twice."""
    progress.configure(cfg.progress.mode, cfg.progress.every_s)
    if logging.getLogger().handlers:  # Hydra configured logging: Lightning's own stderr handlers duplicate it
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)
            logger.propagate = True


def eval_plan(cfg: DictConfig) -> EvalPlan:
    """The ``eval:`` group as one plan: settings checked and every evaluation set read, once, before any
    training or model loading is spent; the run's evaluations all score these loaded sets."""
    settings: EvalSettings = make(cfg.eval)
    return EvalPlan.build(settings, cfg.paths.data_dir, cfg.paths.get("cache_dir"))


CKPT_FIX = "pass ckpt=outputs/<date>/<time>/checkpoints/best.ckpt (a checkpoint written by train.py)"


def checkpoint_finetune(cfg: DictConfig, trained_with: dict | None) -> FinetuneMode:
    """The configured fine-tuning mode, or the checkpoint's own when its run folder says it differs."""
    own: FinetuneMode = make(cfg.finetune)
    theirs = (trained_with or {}).get("finetune") or {}
    if theirs.get("mode") not in (None, own.mode):
        log.info("using the checkpoint's finetune=%s (from its run folder)", theirs["mode"])
        return finetune_mode(theirs)
    return own
