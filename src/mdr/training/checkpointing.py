"""Checkpoint and resume state, in one place.

What a checkpoint holds beyond Lightning's own (weights, optimiser, schedule, loop counters):
- the RNG states (``RNG_KEY``), saved and restored by the module's checkpoint hooks with the functions here,
  so dropout after a resume continues the same stream;
- the datamodule's ``state_dict``: the next sampler step and the training languages (Lightning stores it
  under the datamodule's class name).

Also here: which checkpoint a run resumes from, the ModelCheckpoint callbacks a run uses, and loading a
checkpoint's weights into a module (best checkpoint) or an encoder (``eval.py ckpt=``).
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch

RNG_KEY = "mdr_rng"
DATAMODULE_KEY = "RetrievalDataModule"


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
    """``last``: this run folder's ``checkpoints/last.ckpt`` (resume with hydra.run.dir=<the run's folder>)."""
    if not ckpt_path:
        return None
    path = ckpt_dir / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint to resume at {path}: resume a run with "
            "`python train.py hydra.run.dir=outputs/<date>/<time> ckpt_path=last` (plus the run's overrides), "
            "or pass ckpt_path=/path/to/last.ckpt"
        )
    return str(path)


def checkpoint_callbacks(settings: dict, ckpt_dir: Path) -> list[L.pytorch.callbacks.ModelCheckpoint]:
    """The best checkpoint by ``settings['monitor']`` (plus ``last.ckpt``), and with ``every_n_train_steps`` a
    rolling ``last.ckpt`` every N steps, so a killed run loses at most N steps. The first is the best's."""
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=settings["monitor"],
        mode=settings["mode"],
        save_last=bool(settings.get("save_last", True)),
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    out = [best]
    every = settings.get("every_n_train_steps")
    if every:
        out.append(
            L.pytorch.callbacks.ModelCheckpoint(
                dirpath=ckpt_dir, save_last=True, save_top_k=0, every_n_train_steps=int(every)
            )
        )
    return out


def load_module_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Load a checkpoint's full ``state_dict`` into the module that wrote it (the best checkpoint)."""
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["state_dict"])


def load_encoder_weights(encoder: torch.nn.Module, ckpt: str | Path) -> dict:
    """Load a training checkpoint's encoder weights into ``encoder``; return the checkpoint (its metadata)."""
    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist: pass ckpt=outputs/<date>/<time>/checkpoints/best.ckpt"
        )
    state = torch.load(path, map_location="cpu", weights_only=False)
    weights = {
        k.removeprefix("encoder."): v
        for k, v in state.get("state_dict", {}).items()
        if k.startswith("encoder.")
    }
    if not weights:
        raise ValueError(f"{path} holds no encoder weights; is it a checkpoint written by train.py?")
    fix = f"pass the model= (and model.encoder.name) that the run used, not {encoder.name!r}"
    try:
        missing, unexpected = encoder.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # shape mismatches
        lines = str(e).splitlines()
        raise ValueError(
            f"checkpoint {path} does not match model config {encoder.name!r}: "
            f"{lines[1].strip() if len(lines) > 1 else e}; {fix}"
        ) from e
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not match model config {encoder.name!r}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected weights (e.g. {(missing or unexpected)[:3]}); pass the model= the run used"
        )
    return state
