"""Checkpoint and resume state, in one place.

What a checkpoint holds beyond Lightning's own (weights, optimiser, schedule, loop counters):
- the RNG states (``RNG_KEY``), saved and restored by the module's checkpoint hooks with the functions here,
  so dropout after a resume continues the same stream;
- the datamodule's ``state_dict``: the next sampler step and the training languages (Lightning stores it
  under the datamodule's class name).

Also here: which checkpoint a run resumes from, the checkpoint callbacks a run uses (``best.ckpt``, and the
one ``last.ckpt`` written by ``mdr.training.preemption.ResumeCheckpoint``), and loading a checkpoint's weights
into a module (best checkpoint) or an encoder (``eval.py ckpt=``).
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import lightning as L
import numpy as np
import torch

from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.files import atomic_write_json
from mdr.runtime.inputs import check_torch_checkpoint
from mdr.training.preemption import ResumeCheckpoint

log = logging.getLogger(__name__)

RNG_KEY = "mdr_rng"
LOSS_HISTORY_KEY = "mdr_loss_history"
DATAMODULE_KEY = "RetrievalDataModule"
# beside best.ckpt: the plain weights fine-tuning started from, where pretraining ran
START_STATE = "start.pt"


def capture_rng_state() -> dict:
    """torch, numpy, python and CUDA RNG states, as tensors and plain values (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    np_state = {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }
    return {
        "torch": torch.get_rng_state(),
        "numpy": np_state,
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(rng: dict | None) -> None:
    if rng is None:
        return
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    random.setstate(rng["python"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def train_langs_of(checkpoint: dict) -> list[str] | None:
    """The training languages a checkpoint was trained on (checkpoints before the datamodule saved them
    kept them at the top level)."""
    return checkpoint.get(DATAMODULE_KEY, {}).get("train_langs") or checkpoint.get("mdr_train_langs")


def resolve_resume(ckpt_path: str | None, ckpt_dir: Path) -> str | None:
    """``last``: this run folder's ``checkpoints/last.ckpt`` (resume with hydra.run.dir=<the run's folder>);
    ``auto``: the same when it exists, else a fresh start (a requeued SLURM job runs one command twice)."""
    if not ckpt_path:
        return None
    path = ckpt_dir / "last.ckpt" if ckpt_path in ("last", "auto") else Path(ckpt_path)
    if ckpt_path == "auto" and not path.is_file():
        return None
    if not path.is_file():
        raise MissingInputError(
            f"no checkpoint to resume at {path}: resume a run with "
            "`python train.py hydra.run.dir=outputs/<date>/<time> ckpt_path=last` (plus the run's overrides), "
            "or pass ckpt_path=/path/to/last.ckpt"
        )
    check_torch_checkpoint(
        path, "resume from another checkpoint (ckpt_path=/path/to/last.ckpt) or start afresh"
    )
    return str(path)


def checkpoint_callbacks(
    settings: dict, ckpt_dir: Path, resume_command: str = "", requeue: bool = False
) -> tuple[L.pytorch.callbacks.ModelCheckpoint, ResumeCheckpoint]:
    """The best checkpoint by ``settings['monitor']`` (``best.ckpt``), and the run's one ``last.ckpt``
    (:class:`ResumeCheckpoint`: after each validation, every ``every_n_train_steps`` steps when set, so a killed
    run loses at most N steps, and at a SIGTERM / SIGINT)."""
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=settings["monitor"],
        mode=settings["mode"],
        save_last=False,  # last.ckpt is ResumeCheckpoint's: two writers made last.ckpt and last-v1.ckpt
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    every = settings.get("every_n_train_steps")
    last = ResumeCheckpoint(
        ckpt_dir,
        every_n_steps=int(every) if every else None,
        resume_command=resume_command,
        requeue=requeue,
        periodic=bool(settings.get("save_last", True)),
    )
    return best, last


def load_checkpoint_file(path: Path) -> dict:
    """``torch.load`` of a file that passed :func:`check_torch_checkpoint`; what still fails to unpickle (a
    corrupt member) is named as the file's fault."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # UnpicklingError, RuntimeError from a damaged member, EOFError, ...
        raise InputError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); is it complete?"
        ) from None
    if not isinstance(state, dict):
        raise InputError(f"{path} holds a {type(state).__name__}, not a checkpoint written by train.py")
    return state


def load_module_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Load a checkpoint's full ``state_dict`` into the module that wrote it (the best checkpoint)."""
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["state_dict"])


def load_encoder_weights(encoder: torch.nn.Module, ckpt: str | Path) -> dict:
    """Load a training checkpoint's encoder weights into ``encoder``; return the checkpoint (its metadata)."""
    path = check_torch_checkpoint(ckpt, "pass ckpt=outputs/<date>/<time>/checkpoints/best.ckpt")
    state = load_checkpoint_file(path)
    weights = {
        k.removeprefix("encoder."): v
        for k, v in state.get("state_dict", {}).items()
        if k.startswith("encoder.")
    }
    if not weights:
        raise InputError(f"{path} holds no encoder weights; is it a checkpoint written by train.py?")
    fix = f"pass the model= (and model.encoder.name) that the run used, not {encoder.name!r}"
    try:
        missing, unexpected = encoder.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # shape mismatches
        lines = str(e).splitlines()
        raise InputError(
            f"checkpoint {path} does not match model config {encoder.name!r}: "
            f"{lines[1].strip() if len(lines) > 1 else e}; {fix}"
        ) from None
    if missing or unexpected:
        raise InputError(
            f"checkpoint {path} does not match model config {encoder.name!r}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected weights (e.g. {(missing or unexpected)[:3]}); pass the model= the run used"
        )
    return state


TRAINED_RECORD = "TRAINED.json"


def trained_record(ckpt_path: str | None, ckpt_dir: Path) -> dict | None:
    """``ckpt_path=last`` / ``auto`` in a run folder whose training finished (``checkpoints/TRAINED.json``,
    written once the best checkpoint is restored): the record, so the run evaluates without training again,
    keeping the evaluation sets that finished before it stopped (a sweep cell killed in its hour-long attack
    evaluation loses that set only). None otherwise."""
    path = ckpt_dir / TRAINED_RECORD
    if ckpt_path not in ("last", "auto") or not path.is_file():
        return None
    record = json.loads(path.read_text())
    best = record.get("best_checkpoint")
    if best and not Path(best).is_file():
        raise MissingInputError(
            f"{path} names {best}, which is gone: the finished training cannot be evaluated; train afresh "
            "(a new hydra.run.dir, or delete this folder's checkpoints/)"
        )
    log.info("training finished earlier in this folder (%s): evaluating, finished sets kept", path)
    return record


def write_trained_record(ckpt_dir: Path, best_checkpoint: str | None, summary: dict) -> None:
    """The best checkpoint the evaluation scores and the run's summary, once training is over."""
    record = {"best_checkpoint": best_checkpoint, "summary": summary}
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(ckpt_dir / TRAINED_RECORD, record)
