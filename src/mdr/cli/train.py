"""One training run: build everything from the Hydra config, fit, evaluate, write the run folder."""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from mdr.cli.common import configure_progress, eval_plan, make
from mdr.cli.results_archive import archive_run
from mdr.cli.rows import fused_cells, score_as_row, score_fused_row, skip_if_archived
from mdr.cli.schema import check_settings
from mdr.data.language_codes import check_training_codes
from mdr.eval.cosine_gap import CosineGaps
from mdr.eval.plan import EvalPlan
from mdr.eval.suite import format_headline, run_eval
from mdr.modeling.encoder import DualEncoder
from mdr.modeling.finetune import FinetuneMode
from mdr.modeling.merging import check_lambda, interpolate, load_plain_state, plain_state, wise_name
from mdr.runtime import progress
from mdr.runtime.cost import estimate_minutes, matmul_gflops
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.precision import trainer_precision
from mdr.runtime.provenance import record_start
from mdr.runtime.run_folder import RunFolder
from mdr.training.callbacks import BatchLog, ProgressLog
from mdr.training.checkpoint_io import AtomicCheckpointIO
from mdr.training.checkpointing import (
    START_STATE,
    checkpoint_callbacks,
    load_module_weights,
    resolve_resume,
    trained_record,
    write_trained_record,
)
from mdr.training.cost_estimate import run_work
from mdr.training.datamodule import RetrievalDataModule
from mdr.training.module import DualEncoderModule
from mdr.training.preemption import resume_command

log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """The objects of one run, built from the config by ``build``."""

    encoder: DualEncoder
    finetune: FinetuneMode
    finetune_counts: dict
    datamodule: RetrievalDataModule
    module: DualEncoderModule
    trainer: L.Trainer
    best: L.pytorch.callbacks.ModelCheckpoint
    precision: str
    pretrain_stats: dict | None
    provenance: dict  # captured before anything loads (mdr.runtime.provenance)
    # the model fine-tuning started from, where pretraining made it (start.pt)
    start_state: Path | None = None
    cosine_gaps: CosineGaps | None = None  # eval.cosine_gap: backbone, after_pretrain, trained


def train(cfg: DictConfig) -> dict | None:
    """``python train.py``: check, build, fit, restore the best checkpoint, evaluate, export (and archive the
    small results when ``results_dir`` is set; None when that archive already holds this cell)."""
    folder = RunFolder(cfg.paths.output_dir)
    run_dir, overrides = folder.path, folder.overrides()
    rows = merged_cells(cfg, overrides) + fused_cells(cfg.eval.fusion, overrides)
    if skip_if_archived(folder, cfg.results_dir, overrides, rows):
        return None
    with folder.failure_marker():
        check_settings(cfg)  # ranges and hand-typed scalars, before anything is read or loaded
        provenance = record_start(run_dir, run_precision(cfg))  # before anything else can move the checkout
        configure_progress(cfg)
        plan = check_config(cfg)
        trained = trained_record(cfg.ckpt_path, folder.checkpoints)  # training finished: evaluation resumes
        resume_from = None if trained else resolve_resume(cfg.ckpt_path, folder.checkpoints)
        run = build(cfg, run_dir, overrides, resume_from, provenance, plan, trained is not None)
        if trained:
            summary = resume_evaluation(cfg, run, trained)
        else:
            estimate = announce_cost(cfg, run, plan)
            train_s = fit(cfg, run, resume_from)
            restore_best(cfg, run)
        if not run.trainer.is_global_zero:
            return {}
        if not trained:
            if run.cosine_gaps is not None:  # the model the evaluation scores
                run.cosine_gaps.measure("trained", run.module.encoder)
            summary = train_summary(cfg, run, train_s, estimate)
            write_trained_record(folder.checkpoints, run.best.best_model_path or None, summary)
        cache = {} if plan.fusion is not None else None  # the fused row reuses the run's own embeddings
        report = evaluate_and_export(cfg, run, run_dir, plan, summary, cache, resume=trained is not None)
        # merged and fused rows first: a base cell in results_dir counts as done only with them (archived_cell)
        merged_rows(cfg, run, run_dir, plan, overrides)
        fused_row(cfg, run, run_dir, plan, overrides, cache)
        if cfg.results_dir:
            archive_run(run_dir, cfg.results_dir, overrides)
        print_result(cfg, run, report, run_dir)
        return report


def run_precision(cfg: DictConfig) -> dict:
    """What the run computes in, as provenance records it: the training precision it resolves to here and the
    evaluation setting (metrics.json's ``encode_precision`` has the dtype that setting gave)."""
    return {
        "train": trainer_precision(str(cfg.trainer.precision), str(cfg.trainer.accelerator)),
        "eval": str(cfg.eval.precision),
    }


def announce_cost(cfg: DictConfig, run: TrainingRun, plan: EvalPlan) -> dict | None:
    """Say at the start what the run will cost on this CPU (a 0.3 s matmul probe against the default run's
    measured times, ``mdr.runtime.cost``); None on a GPU or off rank 0."""
    if torch.cuda.is_available() or not run.trainer.is_global_zero:
        return None
    trainer, dm = run.trainer, run.datamodule
    steps = trainer.max_steps
    if steps is None or steps < 0:
        per_epoch = dm.steps_per_epoch_cfg or max(
            1, len(dm.train_corpus) // (dm.batch_size * trainer.world_size)
        )
        steps = per_epoch * int(trainer.max_epochs or 1)
    steps = steps if run.finetune.trains else 0
    evaluations = 1 + len(cfg.merge.wise)
    work = run_work(run.module.encoder, dm, steps, trainer.world_size, plan, evaluations)
    gflops = matmul_gflops()
    minutes = estimate_minutes(work, gflops)
    log.info(
        "cost estimate: about %.0f min on this CPU (%d training steps, %d final evaluation(s); fp32 matmul probe "
        "%.0f GFLOP/s on %d threads; calibrated on the default run on three 2-core CPU kinds, within 8%% "
        "there: mdr.runtime.cost)",
        minutes,
        steps,
        evaluations,
        gflops,
        torch.get_num_threads(),
    )
    return {"minutes": round(minutes, 1), "probe_gflops": round(gflops, 1), "work_units": work}


def check_config(cfg: DictConfig) -> EvalPlan:
    """Fail before any loading on settings that cannot work (the sampler's and the batch size are checked by
    the sampler itself, which the datamodule builds before the model loads); returns the evaluation plan."""
    for lam in cfg.merge.wise:
        check_lambda(lam, cfg.merge.extrapolate)
    check_not_scored_on_training_set(cfg)
    if cfg.merge.wise and str(cfg.finetune.get("mode")) == "adapter":
        raise InputError(
            f"merge.wise={list(cfg.merge.wise)} with finetune=adapter: bottleneck adapters have no pretrained "
            "counterpart to interpolate with; use finetune=full or lora for WiSE rows, or drop merge.wise"
        )
    return eval_plan(cfg)


def resume_evaluation(cfg: DictConfig, run: TrainingRun, trained: dict) -> dict:
    """Put the finished training's best weights into the module (on the GPU where training would have run);
    its summary as the first pass wrote it."""
    if trained.get("best_checkpoint"):
        load_module_weights(run.module, trained["best_checkpoint"])
    if torch.cuda.is_available() and str(cfg.trainer.accelerator) in ("gpu", "cuda", "auto"):
        run.module.to(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    run.datamodule.setup("fit")  # the training languages split the results into seen / unseen
    return trained["summary"]


def check_not_scored_on_training_set(cfg: DictConfig) -> None:
    """A data protocol (``data=xquad_to_mlqa``: train on one LAReQA set, test on ``data.eval_datasets``) whose
    test sets include its training set would score questions the model trained on: refused before anything
    loads. ``eval.datasets`` set by hand to the training set is a deliberate in-domain check (the tests' tiny
    runs use it for speed): warned, not refused."""
    train = cfg.data.get("train") or {}
    name = str(train.get("name") or "")
    if str(train.get("kind", "lareqa")) != "lareqa" or not name:
        return
    evaluated = [str(d) for d in cfg.eval.datasets]
    if name not in evaluated:
        return
    if evaluated == [str(d) for d in cfg.data.get("eval_datasets") or []]:  # the protocol's own test sets
        other = "mlqa_r" if name == "xquad_r" else "xquad_r"
        raise InputError(
            f"data.eval_datasets={evaluated} holds the training set data.train.name={name}: the model would be "
            f"scored on the questions it trained on; test on another set ('data.eval_datasets=[{other}]') or "
            "train on another"
        )
    log.warning("eval.datasets holds the training set %s: these numbers are in-domain, not held out", name)


def build(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str] | None = None,
    resume_from: str | None = None,
    provenance: dict | None = None,
    plan: EvalPlan | None = None,
    trained: bool = False,
) -> TrainingRun:
    """Training data (read and checked first) -> encoder (+ optional MLM stage) -> fine-tuning mode -> module
    -> trainer, in that order (the seeded RNG stream depends on it)."""
    dm = make(cfg.data.datamodule, sampler_factory=make(cfg.sampler, _partial_=True), seed=cfg.seed)
    dm.load_data()  # a bad training file fails here, before the model loads (draws no random numbers)
    if plan is not None:  # codes the evaluation cannot match would make every seen / unseen split wrong
        check_training_codes(
            dm.train_corpus.langs, plan.languages(), str(cfg.data.train.get("path") or "data.train")
        )
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    encoder = make(cfg.model.encoder)
    gaps = CosineGaps(plan.settings.cosine_gap if plan is not None else None, str(cfg.paths.data_dir))
    gaps.measure("backbone", encoder, skip=bool(resume_from) or trained)
    pretrain_stats = None if resume_from or trained else maybe_pretrain(cfg, encoder)
    gaps.measure("after_pretrain", encoder, skip=pretrain_stats is None)
    start_state = keep_start_state(cfg, encoder, run_dir, pretrain_stats is not None, resume_from or trained)
    finetune: FinetuneMode = make(cfg.finetune)
    counts = finetune.apply(encoder)
    dm.encoder = encoder  # the collator tokenises with the encoder's tokenisers
    compute = cfg.compute
    module = DualEncoderModule(
        encoder,
        make(cfg.loss),
        **cfg.optim,
        eval_batch_size=cfg.eval.batch_size,
        eval_precision=cfg.eval.precision,
        grad_clip=cfg.trainer.get("gradient_clip_val"),
        length_chunks=int(compute.length_chunks),
        grad_cache_chunk=int(compute.grad_cache_chunk) if compute.grad_cache else None,
    )
    if compute.compile:  # torch.compile the backbone (dynamic shapes: batches vary in length)
        encoder.model.compile(
            dynamic=True, backend="inductor" if compute.compile is True else str(compute.compile)
        )
    trainer, best, precision = build_trainer(cfg, run_dir, overrides or [])
    return TrainingRun(
        encoder, finetune, counts, dm, module, trainer, best, precision, pretrain_stats, provenance or {},
        start_state, gaps,
    )  # fmt: skip


def keep_start_state(
    cfg: DictConfig, encoder: DualEncoder, run_dir: Path, pretrained_now: bool, resume_from: str | bool | None
) -> Path | None:
    """Where pretraining ran (``pretrain.enabled``), the model fine-tuning starts from is not the backbone:
    its plain weights are saved as ``checkpoints/start.pt``, the pretrained end of ``merge.wise`` rows here and
    of ``merge.py`` soups with ``pretrained_weight`` later. A resumed run finds it there (and is refused before
    training when WiSE rows need it and it is gone)."""
    path = run_dir / "checkpoints" / START_STATE
    if pretrained_now:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{START_STATE}.tmp-{os.getpid()}")
        torch.save(plain_state(encoder, "the pretrained model"), tmp)
        os.replace(tmp, path)
        return path
    if not make(cfg.pretrain).enabled:
        return None
    if resume_from and cfg.merge.wise and not path.is_file():
        raise MissingInputError(
            f"{path} is missing: this run pretrained before fine-tuning, and merge.wise interpolates with the "
            "model it started from; resume without merge.wise, or train afresh"
        )
    return path if path.is_file() else None


def maybe_pretrain(cfg: DictConfig, encoder: DualEncoder) -> dict | None:
    """The optional domain-adaptive MLM stage (``pretrain.enabled``); ``build`` skips it when resuming (the
    checkpoint already holds its result)."""
    pretraining = make(cfg.pretrain)
    if not pretraining.enabled:
        return None
    accelerator = str(cfg.trainer.accelerator)
    precision = trainer_precision(str(cfg.trainer.precision), accelerator)  # the training stage's rule
    return pretraining.run(encoder, cfg.paths.data_dir, int(cfg.seed), precision, accelerator)


def build_trainer(
    cfg: DictConfig, run_dir: Path, overrides: list[str]
) -> tuple[L.Trainer, L.pytorch.callbacks.ModelCheckpoint, str]:
    best, last = checkpoint_callbacks(
        OmegaConf.to_container(cfg.checkpoint),
        run_dir / "checkpoints",
        resume_command=resume_command(run_dir, overrides),
        requeue=cfg.preemption.requeue,
    )
    callbacks = [best, last]
    callbacks.append(L.pytorch.callbacks.LearningRateMonitor(logging_interval="step"))
    if cfg.log_batches:
        callbacks.append(BatchLog(run_dir / "batches.jsonl"))
    shown = progress.style()
    if shown == "lines":
        callbacks.append(ProgressLog(int(cfg.progress.every_n_steps), float(cfg.progress.every_s)))
    logger = False
    if cfg.logger:
        from mdr.cli.wandb_logging import logger_config

        logger = make(
            OmegaConf.create(logger_config(OmegaConf.to_container(cfg.logger, resolve=True), str(run_dir)))
        )
    precision = trainer_precision(str(cfg.trainer.precision), str(cfg.trainer.accelerator))
    extra = {"enable_progress_bar": shown == "bar", **fp32_step_cap(cfg, precision)}
    if cfg.compute.grad_cache:
        extra["gradient_clip_val"] = None  # GradCache: the module clips itself
    trainer = make(
        cfg.trainer,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(run_dir),
        precision=precision,
        plugins=[AtomicCheckpointIO()],  # a full disk never destroys the previous checkpoint
        **extra,
    )
    return trainer, best, precision


def fp32_step_cap(cfg: DictConfig, precision: str) -> dict:
    """Trainer overrides for ``compute.cpu_fp32_max_steps``: fp32 on a CPU trains that many steps, validated at
    half and at the end, where the run would be longer (no ``trainer.max_steps`` set, and not a fixed
    ``steps_per_epoch`` x ``max_epochs`` within the cap)."""
    cap = cfg.compute.cpu_fp32_max_steps
    if (
        not cap
        or precision != "32-true"
        or str(cfg.trainer.accelerator) != "cpu"
        or int(cfg.trainer.max_steps) > 0
    ):
        return {}
    per_epoch = cfg.data.datamodule.get("steps_per_epoch")
    if per_epoch and int(per_epoch) * int(cfg.trainer.max_epochs) <= int(cap):
        return {}  # the run is no longer than the cap: its own schedule stands
    log.info(
        "fp32 on a CPU: training capped at %d steps (compute.cpu_fp32_max_steps; bf16 trains %s epochs), so the "
        "default run takes about 10 minutes on 2 AVX-512 cores (30 on AVX2 only); compute.cpu_fp32_max_steps=null "
        "trains in full",
        int(cap),
        cfg.trainer.max_epochs,
    )
    return {
        "max_steps": int(cap),
        "val_check_interval": max(1, int(cap) // 2),
        "check_val_every_n_epoch": None,
    }


def fit(cfg: DictConfig, run: TrainingRun, ckpt_path: str | None) -> float:
    """Train (unless the fine-tuning mode trains nothing), from ``ckpt_path`` when resuming; returns the
    wall-clock seconds."""
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
        # Lightning warns that a mid-epoch resume of a DataLoader without state_dict is unreliable. Ours resumes
        # by step: the datamodule's state (next sampler step) and the RNG are in the checkpoint, and the resumed
        # stream equals the uninterrupted one bit for bit (tests/test_fault_tolerance.py).
        warnings.filterwarnings(
            "ignore", message="You're resuming from a checkpoint that ended before the epoch"
        )
        keep_earlier_curves(run.trainer)  # before the logger's first write, which deletes metrics.csv
    n_trainable = run.module.trainable_parameters()
    log.info("trainable parameters: %d of %d", n_trainable, run.finetune_counts["total"])
    if run.trainer.logger:
        run.trainer.logger.log_hyperparams(
            {**OmegaConf.to_container(cfg, resolve=True), "trainable_params": n_trainable}
        )
    t0 = time.perf_counter()
    if run.finetune.trains:
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=ckpt_path)
    else:
        log.info("finetune=%s: no training, evaluating the model as loaded", run.finetune.mode)
        run.datamodule.setup("fit")  # the training languages still split the results into seen / unseen
    return time.perf_counter() - t0


def keep_earlier_curves(trainer: L.Trainer) -> None:
    """Lightning's CSV logger deletes an existing metrics.csv when it starts: keep the curves of the training
    before a resume as ``metrics.part<N>.csv`` beside the new one."""
    logger = trainer.logger
    if not isinstance(logger, L.pytorch.loggers.CSVLogger):
        return
    old = Path(logger.log_dir) / "metrics.csv"
    if old.is_file():
        n = len(list(old.parent.glob("metrics.part*.csv"))) + 1
        old.rename(old.with_name(f"metrics.part{n}.csv"))
        log.info("curves before this resume kept in %s", old.with_name(f"metrics.part{n}.csv"))


def restore_best(cfg: DictConfig, run: TrainingRun) -> None:
    path = run.best.best_model_path
    if path and cfg.checkpoint.evaluate_best:
        load_module_weights(run.module, path)
        log.info(
            "evaluating the best checkpoint %s (%s=%s)",
            path,
            cfg.checkpoint.monitor,
            run.best.best_model_score,
        )


def train_summary(cfg: DictConfig, run: TrainingRun, train_s: float, estimate: dict | None = None) -> dict:
    """``metrics.json``'s ``train`` (with the start's cost estimate), ``provenance`` (as captured at the start)
    and ``config`` blocks."""
    losses = run.module.loss_history
    k = max(1, min(10, len(losses) // 5))
    score = run.best.best_model_score
    return {
        "train": {
            "steps": run.trainer.global_step,
            "wall_s": train_s,
            "loss_first": float(sum(losses[:k]) / k) if losses else None,
            "loss_last": float(sum(losses[-k:]) / k) if losses else None,
            "loss_window": k,
            "trainable_params": run.module.trainable_parameters(),
            "total_params": run.finetune_counts["total"],
            "finetune": run.finetune.mode,
            "best_checkpoint": run.best.best_model_path or None,
            "best_score": float(score) if score is not None else None,
            "train_langs": run.datamodule.train_corpus.langs,
            "precision": run.precision,
            "pretrain": run.pretrain_stats,
            "cosine_gap": run.cosine_gaps.values if run.cosine_gaps is not None else None,
            "cost_estimate": estimate,
        },
        "provenance": run.provenance,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def evaluate_and_export(
    cfg: DictConfig,
    run: TrainingRun,
    run_dir: Path,
    plan: EvalPlan,
    extra: dict,
    encode_cache: dict | None = None,
    resume: bool = False,
) -> dict:
    encoder = run.module.encoder
    encoder.to(run.module.device)
    report = run_eval(
        encoder,
        plan,
        run_dir,
        seen_langs=run.datamodule.train_corpus.langs,
        extra=extra,
        encode_cache=encode_cache,
        resume=resume,
    )
    if isinstance(run.trainer.logger, L.pytorch.loggers.WandbLogger):
        from mdr.cli.wandb_logging import log_final

        log_final(run.trainer.logger, report, run_dir)
    if cfg.export.enabled:
        from mdr.modeling.export import export_encoder

        export_encoder(encoder.cpu(), run_dir / "export", metrics=report, config=extra["config"])
    return report


def merged_cells(cfg: DictConfig, overrides: list[str]) -> list[list[str]]:
    """The results cells of this run's merged rows (``merge=wise0.5``): the base cell's overrides without the
    ``merge.*`` settings, plus the row's name."""
    base = [o for o in overrides if not o.lstrip("+~").startswith("merge.")]
    return [[*base, f"merge={wise_name(lam)}"] for lam in cfg.merge.wise]


def merged_rows(
    cfg: DictConfig, run: TrainingRun, run_dir: Path, plan: EvalPlan, overrides: list[str]
) -> dict[str, dict]:
    """``merge.wise``: the trained encoder interpolated with the pretrained backbone at each lambda, evaluated
    like the trained one into ``<run>/merged/wise<lambda>/`` and archived as its own results row. Runs after the
    base evaluation on a separate encoder, so the trained weights and the base metrics are untouched."""
    lambdas = list(cfg.merge.wise)
    if not lambdas:
        return {}
    extrapolate = cfg.merge.extrapolate
    finetuned = plain_state(run.module.encoder, "the trained model")
    encoder = make(cfg.model.encoder)
    if run.start_state is not None:  # pretraining ran: its result is where fine-tuning started
        pretrained = torch.load(run.start_state, map_location="cpu", weights_only=True)
    else:
        pretrained = plain_state(encoder, "the pretrained backbone")
    encoder.to(run.module.device)
    config = OmegaConf.to_container(cfg, resolve=True)
    reports = {}
    for lam, cell in zip(lambdas, merged_cells(cfg, overrides)):
        name = wise_name(lam)
        t0 = time.perf_counter()
        load_plain_state(encoder, interpolate(pretrained, finetuned, lam, extrapolate))
        row = {"kind": "wise", "lambda": float(lam), "of": str(run_dir)}
        record = {
            "config": {**config, "merged": row},
            "merged": row,
            "train": {"train_langs": run.datamodule.train_corpus.langs},
        }
        folder = RunFolder(run_dir / "merged" / name)
        reports[name] = score_as_row(
            encoder, plan, folder, cell, record, record["train"]["train_langs"], run.provenance,
            cfg.results_dir,
        )  # fmt: skip
        log.info(
            "merged row %s: evaluated in %.0f s; %s",
            name,
            time.perf_counter() - t0,
            format_headline(reports[name]),
        )
    return reports


def fused_row(
    cfg: DictConfig, run: TrainingRun, run_dir: Path, plan: EvalPlan, overrides: list[str], cache: dict | None
) -> None:
    """``eval.fusion``: the trained model fused with BM25 (RRF), scored and archived as the row ``fusion=rrf``:
    the run that trains a model is the one that can rank with it (checkpoints are not kept in a sweep)."""
    if plan.fusion is None:
        return
    t0 = time.perf_counter()
    langs = run.datamodule.train_corpus.langs
    record = {"config": OmegaConf.to_container(cfg, resolve=True), "train": {"train_langs": langs}}
    report = score_fused_row(
        run.module.encoder, plan, run_dir, overrides, record, langs, run.provenance, cfg.results_dir, cache
    )
    log.info("fused row: evaluated in %.0f s; %s", time.perf_counter() - t0, format_headline(report))


def print_result(cfg: DictConfig, run: TrainingRun, report: dict, run_dir: Path) -> None:
    print(format_headline(report))
    t = report["train"]
    loss = f", loss {t['loss_first']:.4f} -> {t['loss_last']:.4f}" if t["loss_first"] is not None else ""
    print(
        f"train ({run.finetune.mode}, {t['trainable_params']} trainable parameters): {t['steps']} steps in "
        f"{t['wall_s']:.0f} s{loss}; results in {run_dir}"
    )
