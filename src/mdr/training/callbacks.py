"""Training callbacks that are part of the run-folder contract."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class BatchLog(L.Callback):
    """Append each trained batch's plan (step, batch type, languages, ids) to ``batches.jsonl``.

    An audit trail of what the sampler fed the model: lets a user check batch composition, and a
    resumed run be compared batch by batch with an uninterrupted one.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        corpus = trainer.datamodule.train_corpus
        row = {
            "step": batch["step"],
            "rank": trainer.global_rank,
            "kind": batch["kind"],
            "query_langs": batch["query_langs"],
            "passage_langs": batch["passage_langs"],
            "ids": [corpus.ids[i] for i in batch["query_ids"].tolist()],
        }
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
