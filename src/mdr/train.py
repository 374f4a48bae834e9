"""One training run: build everything from the Hydra config, fit, evaluate, write the run folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mdr.datamodule import RetrievalDataModule
from mdr.eval.outputs import atomic_write_text
from mdr.eval.suite import format_headline, run_eval
from mdr.finetune import apply_finetune
from mdr.module import DualEncoderModule

log = logging.getLogger(__name__)


def check_config(cfg: DictConfig) -> None:
    """Fail before any loading on settings that cannot work."""
    alpha = cfg.sampler.get("alpha")
    if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"sampler.alpha={alpha} must be in [0, 1] (the probability of an X-X batch)")
    if int(cfg.data.datamodule.batch_size) < 1:
        raise ValueError(f"data.datamodule.batch_size={cfg.data.datamodule.batch_size} must be >= 1")
    from mdr.eval.suite import RUN_KINDS, load_eval_set

    if cfg.eval.run_files not in RUN_KINDS:
        raise ValueError(f"eval.run_files={cfg.eval.run_files!r}; choose one of {sorted(RUN_KINDS)}")
    for name in cfg.eval.datasets:  # the final evaluation must be possible before any training is spent
        load_eval_set(name, cfg.paths.data_dir)
    from mdr.perturb import check_perturbations

    check_perturbations(list(cfg.eval.get("perturb") or []))


def resolve_trainer_precision(precision: str, accelerator: str) -> str:
    """``auto``: bf16-mixed on GPUs that have bf16 and on AVX512-BF16 CPUs, else full fp32."""
    if precision != "auto":
        return precision
    from mdr.encoder import cpu_supports_bf16

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"


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


def build(cfg: DictConfig):
    encoder = make(cfg.model.encoder)
    encoder.pretrain_stats = maybe_pretrain(cfg, encoder)
    finetune_counts = apply_finetune(encoder, **cfg.finetune)
    sampler_factory = make(cfg.sampler, _partial_=True)
    dm: RetrievalDataModule = make(cfg.data.datamodule, sampler_factory=sampler_factory, seed=cfg.seed)
    dm.encoder = encoder
    module = DualEncoderModule(
        encoder,
        make(cfg.loss),
        **cfg.optim,
        eval_batch_size=cfg.eval.batch_size,
        eval_precision=cfg.eval.precision,
        grad_clip=cfg.trainer.get("gradient_clip_val"),
        length_chunks=int(cfg.compute.length_chunks),
    )
    if cfg.compute.get("compile"):  # torch.compile the backbone (dynamic shapes: batches vary in length)
        backend = "inductor" if cfg.compute.compile is True else str(cfg.compute.compile)
        encoder.model.compile(dynamic=True, backend=backend)
    return encoder, dm, module, finetune_counts


def maybe_pretrain(cfg: DictConfig, encoder) -> dict | None:
    """The optional domain-adaptive MLM stage (``pretrain.enabled``), skipped when resuming (the
    checkpoint already holds its result)."""
    pre = cfg.get("pretrain")
    if not pre or not pre.get("enabled") or cfg.get("ckpt_path"):
        return None
    from mdr.pretrain import mlm_pretrain, passages_of

    use_gpu = torch.cuda.is_available() and str(cfg.trainer.accelerator) in ("gpu", "cuda", "auto")
    encoder.to("cuda" if use_gpu else "cpu")
    texts = passages_of(list(pre.datasets), cfg.paths.data_dir)
    stats = mlm_pretrain(
        encoder,
        texts,
        steps=int(pre.steps),
        batch_size=int(pre.batch_size),
        lr=float(pre.lr),
        mask_prob=float(pre.mask_prob),
        max_length=int(pre.max_length),
        head_warmup_steps=int(pre.get("head_warmup_steps", 0)),
        seed=int(cfg.seed),
        precision=str(cfg.eval.precision),
    )
    encoder.to("cpu")
    return {**stats, "datasets": list(pre.datasets)}


def train(cfg: DictConfig) -> dict:
    run_dir = Path(cfg.paths.output_dir)
    (run_dir / "FAILED").unlink(missing_ok=True)  # a resumed run starts clean
    try:
        check_config(cfg)
        return _train(cfg, run_dir)
    except BaseException as e:
        atomic_write_text(run_dir / "FAILED", f"{type(e).__name__}: {e}\n")
        raise


def _train(cfg: DictConfig, run_dir: Path) -> dict:
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    encoder, dm, module, finetune_counts = build(cfg)
    ckpt_dir = run_dir / "checkpoints"
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=cfg.checkpoint.monitor,
        mode=cfg.checkpoint.mode,
        save_last=bool(cfg.checkpoint.get("save_last", True)),
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    callbacks = [checkpoint, L.pytorch.callbacks.LearningRateMonitor(logging_interval="step")]
    every = cfg.checkpoint.get("every_n_train_steps")
    if every:  # a rolling last.ckpt every N steps, so a killed run loses at most N steps
        callbacks.append(
            L.pytorch.callbacks.ModelCheckpoint(
                dirpath=ckpt_dir, save_last=True, save_top_k=0, every_n_train_steps=int(every)
            )
        )
    if cfg.get("log_batches"):
        from mdr.callbacks import BatchLog

        callbacks.append(BatchLog(run_dir / "batches.jsonl"))
    logger = False
    if cfg.get("logger"):
        from mdr.wandb_log import logger_config

        logger = make(
            OmegaConf.create(logger_config(OmegaConf.to_container(cfg.logger, resolve=True), str(run_dir)))
        )
    precision = resolve_trainer_precision(str(cfg.trainer.precision), str(cfg.trainer.accelerator))
    extra_trainer = (
        {"gradient_clip_val": None} if cfg.loss.get("grad_cache") else {}
    )  # the module clips itself
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(run_dir),
        precision=precision,
        **extra_trainer,
    )
    dm.trainer = trainer
    dm.setup("fit")
    module.dev_set = dm.dev_set
    n_trainable = module.trainable_parameters()
    log.info("trainable parameters: %d of %d", n_trainable, sum(p.numel() for p in encoder.parameters()))
    if logger:
        trainer.logger.log_hyperparams(
            {**OmegaConf.to_container(cfg, resolve=True), "trainable_params": n_trainable}
        )
    ckpt_path = resolve_resume(cfg.get("ckpt_path"), ckpt_dir)
    t0 = time.perf_counter()
    if cfg.finetune.mode == "frozen":
        log.info("finetune=frozen: no training, evaluating the model as loaded")
    else:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    train_s = time.perf_counter() - t0
    best = checkpoint.best_model_path
    if best and cfg.checkpoint.get("evaluate_best", True):
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
        log.info(
            "evaluating the best checkpoint %s (%s=%s)",
            best,
            cfg.checkpoint.monitor,
            checkpoint.best_model_score,
        )
    if not trainer.is_global_zero:
        return {}
    losses = module.loss_history
    k = max(1, min(10, len(losses) // 5))
    extra = {
        "train": {
            "steps": trainer.global_step,
            "wall_s": train_s,
            "loss_first": float(sum(losses[:k]) / k) if losses else None,
            "loss_last": float(sum(losses[-k:]) / k) if losses else None,
            "loss_window": k,
            "trainable_params": n_trainable,
            "total_params": finetune_counts["total"],
            "finetune": cfg.finetune.mode,
            "best_checkpoint": best or None,
            "best_score": float(checkpoint.best_model_score)
            if checkpoint.best_model_score is not None
            else None,
            "train_langs": dm.train_corpus.langs,
            "precision": precision,
            "pretrain": getattr(encoder, "pretrain_stats", None),
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    module.encoder.to(module.device)
    report = run_eval(
        module.encoder,
        list(cfg.eval.datasets),
        cfg.paths.data_dir,
        run_dir,
        seen_langs=dm.train_corpus.langs,
        batch_size=cfg.eval.batch_size,
        run_files=cfg.eval.run_files,
        run_depth=cfg.eval.run_depth,
        save_embeddings_flag=cfg.eval.save_embeddings,
        precision=cfg.eval.precision,
        extra=extra,
        perturb=list(cfg.eval.get("perturb") or []),
        perturb_seed=int(cfg.eval.get("perturb_seed", 0)),
    )
    if isinstance(logger, L.pytorch.loggers.WandbLogger):
        from mdr.wandb_log import log_final

        log_final(logger, report, run_dir)
    if cfg.get("export", {}).get("enabled", False):
        from mdr.export import export_encoder

        export_encoder(module.encoder.cpu(), run_dir / "export", metrics=report, config=extra["config"])
    print(format_headline(report))
    t = extra["train"]
    loss = f", loss {t['loss_first']:.4f} -> {t['loss_last']:.4f}" if losses else ""
    print(
        f"train ({cfg.finetune.mode}, {n_trainable} trainable parameters): {trainer.global_step} steps in "
        f"{train_s:.0f} s{loss}; results in {run_dir}"
    )
    return report
