"""A real 2-process DDP run (gloo, CPU): ranks agree on batch type and languages and take disjoint ids."""

import json

import lightning as L
import pytest
from helpers import cpu_trainer, tiny_datamodule

from mdr.modeling.encoder import DualEncoder
from mdr.training.loss import InfoNCELoss
from mdr.training.module import DualEncoderModule
from mdr.training.preemption import ResumeCheckpoint
from mdr.training.samplers import HybridSampler


class RecordBatches(L.Callback):
    def __init__(self, out_dir):
        self.out_dir = str(out_dir)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        row = {
            "step": batch["step"],
            "kind": batch["kind"],
            "q": batch["query_langs"],
            "p": batch["passage_langs"],
            "ids": [pl_module.trainer.datamodule.train_corpus.ids[i] for i in batch["query_ids"].tolist()],
        }
        with open(f"{self.out_dir}/rank{trainer.global_rank}.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")


@pytest.mark.slow
def test_two_process_ddp_batches_are_one_coherent_global_batch(tmp_path, tiny_model_dir, data_dir):
    enc = DualEncoder(str(tiny_model_dir), query_max_length=16, passage_max_length=24)
    dm = tiny_datamodule(data_dir, enc, steps_per_epoch=8, seed=3)
    # ResumeCheckpoint under DDP: every rank asks every step whether any rank got a stop signal (a collective)
    last = ResumeCheckpoint(tmp_path / "ckpt", every_n_steps=3)
    trainer = cpu_trainer(8, [RecordBatches(tmp_path), last], devices=2)
    trainer.fit(DualEncoderModule(enc, InfoNCELoss(), lr=1e-3), datamodule=dm)
    import torch

    state = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 8 and state["RetrievalDataModule"]["next_step"] == 8
    ranks = [
        [json.loads(line) for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1]) == 8
    dm.setup()  # the global stream, as one process would draw it (global batch 12)
    global_sampler = HybridSampler(dm.train_corpus, 12, seed=3)
    kinds = set()
    for a, b in zip(*ranks):
        assert a["step"] == b["step"] and a["kind"] == b["kind"]
        assert a["q"][0] == b["q"][0] and a["p"][0] == b["p"][0]  # one language (pair) for the global batch
        assert not set(a["ids"]) & set(b["ids"]) and len(a["ids"]) == len(b["ids"]) == 6
        plan = global_sampler.plan(a["step"])
        assert tuple(a["ids"] + b["ids"]) == plan.ids and a["kind"] == plan.kind
        kinds.add(a["kind"])
    assert kinds == {"xx", "xy"}  # hybrid: both batch types occurred


def _fit(tmp_path, tiny_model_dir, data_dir, max_steps, tag, ckpt_path=None):
    enc = DualEncoder(str(tiny_model_dir), query_max_length=16, passage_max_length=24)
    dm = tiny_datamodule(data_dir, enc, steps_per_epoch=10, seed=5)
    out = tmp_path / tag
    out.mkdir(exist_ok=True)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=out, save_last=True, every_n_train_steps=1)
    trainer = cpu_trainer(max_steps, [RecordBatches(out), ckpt])
    trainer.fit(DualEncoderModule(enc, InfoNCELoss(), lr=1e-3), datamodule=dm, ckpt_path=ckpt_path)
    return [json.loads(line) for line in (out / "rank0.jsonl").read_text().splitlines()], out


@pytest.mark.slow
def test_resumed_run_continues_the_same_stream(tmp_path, tiny_model_dir, data_dir):
    full, _ = _fit(tmp_path, tiny_model_dir, data_dir, 14, "full")
    first, out = _fit(tmp_path, tiny_model_dir, data_dir, 6, "first")
    rest, _ = _fit(tmp_path, tiny_model_dir, data_dir, 14, "rest", ckpt_path=str(out / "last.ckpt"))
    assert [r["step"] for r in full] == list(range(14))  # crosses the epoch boundary at step 10
    assert first + rest == full
