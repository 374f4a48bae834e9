"""``eval.py``: score an off-the-shelf model or a training checkpoint, no training."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mdr.eval.outputs import atomic_write_text
from mdr.eval.suite import format_headline, run_eval

log = logging.getLogger(__name__)


def load_checkpoint_into(encoder, ckpt: str) -> dict:
    """Load a training checkpoint's encoder weights; return the checkpoint's metadata."""
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
        raise ValueError(
            f"checkpoint {path} does not match model config {encoder.name!r}: "
            f"{str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}; {fix}"
        ) from e
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not match model config {encoder.name!r}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected weights (e.g. {(missing or unexpected)[:3]}); pass the model= the run used"
        )
    return state


def training_config(ckpt: str | None) -> dict | None:
    """The resolved config of the training run that wrote ``ckpt`` (``<run>/checkpoints/x.ckpt``), if any."""
    if not ckpt:
        return None
    path = Path(ckpt).parent.parent / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    import yaml

    return yaml.safe_load(path.read_text())


def evaluate(cfg: DictConfig) -> dict:
    run_dir = Path(cfg.paths.output_dir)
    try:
        return _evaluate(cfg, run_dir)
    except BaseException as e:
        atomic_write_text(run_dir / "FAILED", f"{type(e).__name__}: {e}\n")
        raise


def _evaluate(cfg: DictConfig, run_dir: Path) -> dict:
    """Three sources of embeddings: a saved embeddings.npz, an evaluation-only baseline, or a (trained) model."""
    from mdr.eval.outputs import load_embeddings
    from mdr.eval.suite import load_eval_set

    datasets = list(cfg.eval.datasets)
    sets = [
        load_eval_set(name, cfg.paths.data_dir) for name in datasets
    ]  # fail on bad data before loading a model
    seen = list(cfg.seen_langs) if cfg.get("seen_langs") else None
    trained_with = training_config(cfg.get("ckpt"))
    extra = {
        "ckpt": cfg.get("ckpt"),
        "embeddings": cfg.get("embeddings"),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if trained_with:  # report.py groups an evaluation of a checkpoint by how it was trained
        extra["config"]["trained_with"] = trained_with
    kwargs = {"run_files": cfg.eval.run_files, "run_depth": cfg.eval.run_depth, "extra": extra}
    kwargs.update(
        perturb=list(cfg.eval.get("perturb") or []), perturb_seed=int(cfg.eval.get("perturb_seed", 0))
    )
    if cfg.get("embeddings"):  # score saved embeddings: no model needed
        if len(sets) != 1 or cfg.eval.get("qrels_sets"):
            raise ValueError(
                "embeddings=... scores exactly one LAReQA dataset: pass data=xquad_r or data=mlqa_r"
            )
        path = Path(cfg.embeddings)
        if not path.is_file():
            raise FileNotFoundError(
                f"embeddings file {path} does not exist; write one with eval.save_embeddings=true"
            )
        encoder, kwargs["embeddings"] = None, {sets[0].name: load_embeddings(path, sets[0])}
    else:
        from mdr.train import make

        encoder = make(cfg.model.encoder)
        kwargs.update(
            batch_size=cfg.eval.batch_size,
            save_embeddings_flag=cfg.eval.save_embeddings,
            qrels_sets=list(cfg.eval.get("qrels_sets") or []),
            search=cfg.eval.get("search", "torch"),
        )
        if not isinstance(
            encoder, torch.nn.Module
        ):  # an evaluation-only baseline (mdr.baselines.text_encoder)
            if cfg.get("ckpt"):
                raise ValueError(f"model={cfg.model.name} is an evaluation-only encoder: it takes no ckpt=")
        else:
            from mdr.finetune import apply_finetune

            finetune = dict(cfg.finetune)
            if trained_with and trained_with.get("finetune", {}).get("mode") not in (
                None,
                finetune.get("mode"),
            ):
                log.info(
                    "using the checkpoint's finetune=%s (from its run folder)",
                    trained_with["finetune"]["mode"],
                )
                finetune = dict(trained_with["finetune"])
            apply_finetune(
                encoder, **finetune
            )  # a LoRA / adapter checkpoint needs the same modules to load into
            if cfg.get("ckpt"):
                seen = seen or load_checkpoint_into(encoder, cfg.ckpt).get("mdr_train_langs")
            device = cfg.get("device", "auto")
            encoder.to(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
            kwargs["precision"] = cfg.eval.precision
    report = run_eval(encoder, datasets, cfg.paths.data_dir, run_dir, seen_langs=seen, **kwargs)
    print(format_headline(report))
    print(f"results in {run_dir}")
    return report
