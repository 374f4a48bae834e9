"""What both drivers (``train.py``, ``eval.py``) share: instantiation that surfaces a constructor's own
error, the run folder's ``FAILED`` marker, and the checks that fail a run before anything is loaded."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from mdr.eval.plan import EvalPlan
from mdr.eval.suite import EvalSettings
from mdr.runtime import progress
from mdr.runtime.files import atomic_write_text


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


@contextlib.contextmanager
def failure_marker(run_dir: Path) -> Iterator[None]:
    """Leave ``<run>/FAILED`` with the reason when the body raises (report.py lists such runs); a run that
    starts again in the same folder (a resume) starts without it."""
    (run_dir / "FAILED").unlink(missing_ok=True)
    try:
        yield
    except BaseException as e:
        atomic_write_text(run_dir / "FAILED", f"{type(e).__name__}: {e}\n")
        raise


def configure_progress(cfg: DictConfig) -> None:
    """``progress.*``: a bar on a terminal, plain lines in logs (see ``mdr.runtime.progress``). Also lets
    Lightning's messages reach the run's log handlers (console and train.log) once, not twice."""
    node = cfg.get("progress") or {}
    progress.configure(str(node.get("mode", "auto")), float(node.get("every_s", 60)))
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
