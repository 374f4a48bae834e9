"""LightningDataModule: training corpus, dev split, the batch sampler, and collation.

The training stream is indexed by global step: the sampler maps step -> batch plan, each rank keeps
its shard, the collator tokenises in DataLoader workers. The next step to draw is saved in
checkpoints (``state_dict``), so a resumed run continues the same stream.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mdr.data.corpus import ParallelCorpus, retrieval_set_from_corpus
from mdr.data.sources import load_training_corpus
from mdr.data.splits import split_corpus
from mdr.runtime.errors import InputError, MissingInputError
from mdr.runtime.memory import release_free_memory
from mdr.training.samplers import BatchPlan, PlanSampler
from mdr.training.worker_signals import StopSignalSafeDataLoader

log = logging.getLogger(__name__)


class PlanDataset(Dataset):
    """Step -> this rank's collated batch. Map-style, so workers compute batches independently."""

    def __init__(
        self, sampler: PlanSampler, collate: Callable[[BatchPlan], dict], rank: int = 0, world_size: int = 1
    ):
        self.sampler, self.collate, self.rank, self.world_size = sampler, collate, rank, world_size

    def __getitem__(self, step: int) -> dict:
        return self.collate(self.sampler.plan(step).shard(self.rank, self.world_size))

    def __len__(self) -> int:  # steps are unbounded; the step sampler decides how many are drawn
        return 2**62


class StepSampler(Sampler[int]):
    """Yields global steps from the next unconsumed one to the end of its epoch."""

    def __init__(self, steps_per_epoch: int, next_step: Callable[[], int]):
        self.steps_per_epoch, self.next_step = steps_per_epoch, next_step

    def __iter__(self):
        start = self.next_step()
        end = (start // self.steps_per_epoch + 1) * self.steps_per_epoch
        return iter(range(start, end))

    def __len__(self) -> int:
        return self.steps_per_epoch


class Collator:
    """Plan -> tensors: tokenised queries, positives (+ hard negatives), ids for loss masking."""

    def __init__(
        self,
        corpus: ParallelCorpus,
        tokenize_queries,
        tokenize_passages,
        hard_negatives: int = 0,
        use_context: bool = False,
    ):
        self.corpus, self.tq, self.tp = corpus, tokenize_queries, tokenize_passages
        self.hard_negatives, self.use_context = hard_negatives, use_context

    def _positions_of(self, ids: tuple[str, ...]) -> tuple[int, ...]:
        """A plan written by hand names ids only."""
        found = self.corpus.ids.position_or_none(ids)
        if (found < 0).any():
            raise InputError(f"batch plan id {ids[int((found < 0).argmax())]!r} is not in {self.corpus.name}")
        return tuple(int(p) for p in found)

    def _answer_positions(self, answer_ids: tuple[str, ...], own: int) -> list[int]:
        """Positions of the ids a passage answers (LAReQA sentences can answer several questions); ids outside
        this corpus (the other side of the split) are dropped, as they cannot be in the batch."""
        if not answer_ids:
            return [own]
        found = self.corpus.ids.position_or_none(answer_ids)
        return [int(p) for p in found if p >= 0]

    def __call__(self, plan: BatchPlan) -> dict:
        if not plan.ids:
            raise InputError(f"step {plan.step}: empty batch plan")
        queries, positives, contexts, answer_ids = [], [], [], []
        negatives, neg_contexts, neg_answer_ids = [], [], []
        max_k = 1
        positions = plan.positions or self._positions_of(plan.ids)
        for position, id_, ql, pl in zip(positions, plan.ids, plan.query_langs, plan.passage_langs):
            q_ex, p_ex = self.corpus.example(position, ql), self.corpus.example(position, pl)
            queries.append(q_ex.query)
            positives.append(p_ex.positive)
            contexts.append(p_ex.positive_context)
            answers = self._answer_positions(p_ex.positive_ids, position)
            answer_ids.append(answers)
            max_k = max(max_k, len(answers))
            for j in range(self.hard_negatives):
                if p_ex.negatives:
                    neg = p_ex.negatives[j % len(p_ex.negatives)]
                    neg_ans = p_ex.negative_ids[j % len(p_ex.negatives)] if p_ex.negative_ids else ()
                else:  # no natural negative: repeat the positive, masked out as answering the same id
                    neg, neg_ans = p_ex.positive, (id_,)
                negatives.append(neg)
                neg_contexts.append(p_ex.positive_context)
                ids = self._answer_positions(neg_ans, position) if neg_ans else []
                neg_answer_ids.append(ids)
                max_k = max(max_k, len(ids))
        all_answers = answer_ids + neg_answer_ids
        cand_ids = torch.full((len(all_answers), max_k), -1, dtype=torch.long)
        for r, ids in enumerate(all_answers):
            cand_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        passages = positives + negatives
        ctx = contexts + neg_contexts if self.use_context else None
        return {
            "step": plan.step,
            "kind": plan.kind,
            "query_langs": list(plan.query_langs),
            "passage_langs": list(plan.passage_langs),
            "query": self.tq(queries),
            "passage": self.tp(passages, ctx),
            "query_ids": torch.tensor(positions, dtype=torch.long),
            "cand_answer_ids": cand_ids,
            "labels": torch.arange(len(plan.ids), dtype=torch.long),
        }


class RetrievalDataModule(L.LightningDataModule):
    """Training batches from the sampler, dev batches (validation loss) and the dev retrieval set (dev mAP).
    ``encoder`` tokenises (its tokenisers, lengths, prefixes and candidate text)."""

    def __init__(
        self,
        train: dict,
        data_dir: str,
        sampler_factory: Callable[..., PlanSampler],
        encoder=None,
        batch_size: int = 16,
        dev_fraction: float = 0.1,
        split_seed: int = 0,
        steps_per_epoch: int | None = None,
        val_batches: int = 8,
        hard_negatives: int = 0,
        num_workers: int = 0,
        seed: int = 0,
        dev_max_ids: int | None = None,
    ):
        super().__init__()
        self.train_source, self.data_dir = dict(train), str(data_dir)
        self.sampler_factory = sampler_factory
        self.batch_size, self.dev_fraction, self.split_seed = batch_size, dev_fraction, split_seed
        self.steps_per_epoch_cfg, self.val_batches = steps_per_epoch, val_batches
        self.hard_negatives, self.num_workers, self.seed = hard_negatives, num_workers, seed
        self.dev_max_ids = dev_max_ids
        self.encoder = encoder
        self.next_step = 0  # the first global step not yet trained on; saved in checkpoints
        self._loaded = self._ready = False

    # ---- data ----
    def load_data(self) -> None:
        """Read the training corpus and split off the dev ids (once). ``train.py`` calls it before the model
        loads, so a bad training file fails in seconds; it draws nothing from the global RNG."""
        if self._loaded:
            return
        if not Path(self.data_dir).is_dir() and self.train_source.get("kind", "lareqa") == "lareqa":
            raise MissingInputError(
                f"data dir {self.data_dir} does not exist: set paths.data_dir=... or MDR_DATA_DIR"
            )
        corpus, pool = load_training_corpus(self.train_source, self.data_dir)
        self.train_corpus, self.dev_corpus = split_corpus(
            corpus, self.dev_fraction, self.split_seed, self.dev_max_ids
        )
        if self.dev_corpus is not None:
            self.dev_set = (
                pool.subset(list(self.dev_corpus.ids), name=f"{corpus.name}-dev")
                if pool is not None
                else retrieval_set_from_corpus(self.dev_corpus)
            )
        else:
            self.dev_set = None
        # the sampler checks its own settings (alpha, weighting, batch size against the corpus) here, before the
        # model loads; one rank's sampler is the training sampler (setup reuses it), draws nothing at build
        self._rank_sampler = self.sampler_factory(
            corpus=self.train_corpus, batch_size=self.batch_size, seed=self.seed
        )
        release_free_memory()  # the split's and the dev set's temporaries: private pages in every rank
        self._loaded = True

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        self.load_data()
        world = self.world_size
        global_batch = self.batch_size * world
        self.sampler = (
            self._rank_sampler
            if global_batch == self.batch_size
            else self.sampler_factory(corpus=self.train_corpus, batch_size=global_batch, seed=self.seed)
        )
        examples = len(self.train_corpus)
        self.steps_per_epoch = self.steps_per_epoch_cfg or max(1, examples // global_batch)
        log.info(
            "train: %d examples (%d ids, langs %s), dev: %d ids; global batch %d (%d x %d ranks), %d steps/epoch",
            examples,
            len(self.train_corpus.ids),
            self.train_corpus.langs,
            len(self.dev_corpus.ids) if self.dev_corpus is not None else 0,
            global_batch,
            self.batch_size,
            world,
            self.steps_per_epoch,
        )
        if self.dev_corpus is not None and self.val_batches > 0:
            langs = self.dev_corpus.langs
            index = self.dev_corpus.index
            smallest = min(
                [int(index.present(x).sum()) for x in langs]
                + [int((index.present(x) & index.present(y)).sum()) for x in langs for y in langs if x != y]
            )
            dev_batch = max(world, min(self.batch_size * world, smallest) // world * world)
            try:
                self.dev_sampler = self.sampler_factory(
                    corpus=self.dev_corpus, batch_size=dev_batch, seed=self.seed + 10_000
                )
            except ValueError as e:
                log.warning("no validation-loss batches: %s", e)
                self.dev_sampler = None
        else:
            self.dev_sampler = None
        self._ready = True

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _collator(self, corpus: ParallelCorpus) -> Collator:
        enc = self.encoder
        if enc is None:
            raise InputError("RetrievalDataModule needs encoder=... (its tokenisers) to build batches")
        return Collator(
            corpus,
            enc.tokenize_queries,
            enc.tokenize_passages,
            self.hard_negatives,
            use_context=enc.candidate_text == "sentence_context",
        )

    def train_dataloader(self) -> DataLoader:
        ds = PlanDataset(self.sampler, self._collator(self.train_corpus), self.rank, self.world_size)
        return StopSignalSafeDataLoader(
            ds,
            sampler=StepSampler(self.steps_per_epoch, lambda: self.next_step),
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader:
        if self.dev_sampler is None:
            return DataLoader([], batch_size=None)
        ds = PlanDataset(self.dev_sampler, self._collator(self.dev_corpus), self.rank, self.world_size)
        return DataLoader(ds, sampler=list(range(self.val_batches)), batch_size=None, num_workers=0)

    # ---- resumable stream (saved and restored by Lightning with every checkpoint) ----
    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """A training batch is about to be trained on: a checkpoint written after its step resumes after it."""
        if self.trainer is not None and self.trainer.training and "step" in batch:
            self.next_step = int(batch["step"]) + 1
        return batch

    @contextlib.contextmanager
    def resuming_at(self, step: int) -> Iterator[None]:
        """Checkpoints written inside resume at ``step`` (a checkpoint written at the start of a batch, whose step
        ``on_before_batch_transfer`` has already counted as consumed)."""
        consumed, self.next_step = self.next_step, int(step)
        try:
            yield
        finally:
            self.next_step = consumed

    def state_dict(self) -> dict:
        return {
            "next_step": self.next_step,
            "seed": self.seed,
            "sampler": type(self.sampler).__name__ if hasattr(self, "sampler") else None,
            "train_langs": self.train_corpus.langs if hasattr(self, "train_corpus") else None,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            log.warning(
                "checkpoint sampler seed %s differs from config seed %s; continuing the checkpoint's stream",
                state["seed"],
                self.seed,
            )
            self.seed = state["seed"]
            if hasattr(self, "sampler"):
                self.sampler.seed = self.seed
        self.next_step = int(state["next_step"])
