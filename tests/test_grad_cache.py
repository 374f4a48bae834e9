"""GradCache gives the plain loss's gradients (to 1e-5) with chunked forward passes."""

import lightning as L
import pytest
import torch

from mdr.modeling.encoder import DualEncoder
from mdr.training.grad_cache import grad_cache_step
from mdr.training.loss import InfoNCELoss

QUERIES = [
    "who won the match",
    "where is the river",
    "when was it built",
    "how tall is the tower",
    "what is the capital",
    "wer schrieb das Buch",
    "¿dónde está el museo?",
]
PASSAGES = [
    "the home team won",
    "the river is in the north",
    "it was built in 1900",
    "the tower is 300 m tall",
    "Paris is the capital",
    "Goethe schrieb das Buch",
    "el museo está en el centro",
]


def grads(enc):
    return {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("symmetric", [False, True])
def test_equals_plain_loss_without_dropout(tiny_model_dir, symmetric):
    enc = DualEncoder(str(tiny_model_dir))
    enc.eval()  # no dropout: one forward of the batch equals chunked forwards
    batch = {
        "query": enc.tokenize_queries(QUERIES),
        "passage": enc.tokenize_passages(PASSAGES),
        "query_ids": torch.arange(7),
        "cand_answer_ids": torch.arange(7).view(-1, 1),
        "labels": torch.arange(7),
    }
    loss_fn = InfoNCELoss(0.05, symmetric)
    plain = loss_fn(
        enc(**batch["query"]),
        enc(**batch["passage"]),
        batch["query_ids"],
        batch["cand_answer_ids"],
        batch["labels"],
    )
    plain.backward()
    g_plain = grads(enc)
    enc.zero_grad()
    cached = grad_cache_step(enc, loss_fn, batch, chunk_size=3)
    g_cached = grads(enc)
    assert cached.item() == pytest.approx(plain.item(), abs=1e-6)
    assert g_plain.keys() == g_cached.keys() and len(g_plain) > 10
    for n in g_plain:
        torch.testing.assert_close(g_cached[n], g_plain[n], atol=1e-5, rtol=1e-4, msg=n)


def test_dropout_masks_are_replayed(tiny_model_dir):
    """With dropout on, GradCache equals a chunked forward *with* graph under the same RNG stream."""
    enc = DualEncoder(str(tiny_model_dir))
    enc.train()
    batch = {
        "query": enc.tokenize_queries(QUERIES),
        "passage": enc.tokenize_passages(PASSAGES),
        "query_ids": torch.arange(7),
        "cand_answer_ids": torch.arange(7).view(-1, 1),
        "labels": torch.arange(7),
    }
    loss_fn = InfoNCELoss(0.05)

    def chunk(side, a):  # 3 rows, without the columns that are padding in all of them (as GradCache does)
        rows = {k: v[a : a + 3] for k, v in batch[side].items()}
        keep = rows["attention_mask"].bool().any(0)
        return {k: v[:, keep] for k, v in rows.items()}

    torch.manual_seed(0)
    q = torch.cat([enc(**chunk("query", a)) for a in range(0, 7, 3)])
    p = torch.cat([enc(**chunk("passage", a)) for a in range(0, 7, 3)])
    loss_fn(q, p, batch["query_ids"], batch["cand_answer_ids"], batch["labels"]).backward()
    g_ref = grads(enc)
    enc.zero_grad()
    torch.manual_seed(0)
    grad_cache_step(enc, loss_fn, batch, chunk_size=3)
    for n, g in grads(enc).items():
        torch.testing.assert_close(g, g_ref[n], atol=1e-5, rtol=1e-4, msg=n)


@pytest.mark.slow
def test_train_py_with_grad_cache(tmp_path, tiny_model_dir, data_dir):
    import json

    from helpers import quick_tiny_overrides, run

    run_dir = tmp_path / "gc"
    run(
        "train.py",
        *quick_tiny_overrides(
            tiny_model_dir, run_dir, data_dir, "compute.grad_cache=true", "compute.grad_cache_chunk=5"
        ),
    )
    t = json.loads((run_dir / "metrics.json").read_text())["train"]
    assert t["steps"] == 40 and t["loss_last"] < t["loss_first"] - 0.1
    log = (run_dir / "csv" / "metrics.csv").read_text()
    assert "lr-AdamW" in log  # the scheduler stepped under manual optimisation


# ---- GradCache under DDP: two gloo ranks of batch b == one process of batch 2b ----


def _gc_problem():
    torch.manual_seed(0)
    enc = torch.nn.Linear(6, 4, dtype=torch.float64)
    xq, xp = torch.randn(8, 6, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64)
    return enc, xq, xp


def _gc_rank_main(rank, world, port, out):
    import os

    from mdr.training.distributed import average_gradients

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    enc, xq, xp = _gc_problem()
    n = 8 // world
    sl = slice(rank * n, (rank + 1) * n)
    ids = torch.arange(8)[sl]
    batch = {
        "query": {"x": xq[sl]},
        "passage": {"x": xp[sl]},
        "query_ids": ids,
        "cand_answer_ids": ids.view(-1, 1),
        "labels": torch.arange(n),
    }
    loss = grad_cache_step(
        lambda x: torch.nn.functional.normalize(enc(x), dim=-1), InfoNCELoss(0.1, True), batch, chunk_size=3
    )
    average_gradients(enc.parameters(), world)
    if rank == 0:
        torch.save({"grad": enc.weight.grad.clone(), "bias": enc.bias.grad.clone(), "loss": loss}, out)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    os._exit(0)


@pytest.mark.slow
def test_grad_cache_on_two_gloo_ranks_equals_one_process(tmp_path):
    import torch.multiprocessing as mp
    from test_loss import _free_port

    out = tmp_path / "rank0.pt"
    mp.spawn(_gc_rank_main, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    got = torch.load(out)
    enc, xq, xp = _gc_problem()
    ids = torch.arange(8)
    loss = InfoNCELoss(0.1, True)(
        torch.nn.functional.normalize(enc(xq), dim=-1),
        torch.nn.functional.normalize(enc(xp), dim=-1),
        ids,
        ids.view(-1, 1),
        ids,
    )
    loss.backward()
    torch.testing.assert_close(got["grad"], enc.weight.grad, atol=1e-10, rtol=0)
    torch.testing.assert_close(got["bias"], enc.bias.grad, atol=1e-10, rtol=0)


class SaveWeights(L.Callback):
    """Each rank's encoder weights and losses at the end of training (module level: ddp_spawn pickles it)."""

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().clone() for k, v in pl_module.encoder.state_dict().items()}
        torch.save(
            {"state": state, "losses": pl_module.loss_history}, self.out_dir / f"rank{trainer.global_rank}.pt"
        )


@pytest.mark.slow
def test_lightning_ddp_with_grad_cache_keeps_ranks_identical(tmp_path, tiny_model_dir, data_dir):
    from helpers import cpu_trainer, tiny_datamodule

    from mdr.training.module import DualEncoderModule

    enc = DualEncoder(str(tiny_model_dir), query_max_length=16, passage_max_length=24)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    dm = tiny_datamodule(data_dir, enc, steps_per_epoch=3, seed=3)
    trainer = cpu_trainer(3, [SaveWeights(tmp_path)], devices=2)
    module = DualEncoderModule(enc, InfoNCELoss(), lr=1e-3, warmup_ratio=0.0, grad_cache_chunk=4)
    trainer.fit(module, datamodule=dm)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert len(r0["losses"]) == 3 and all(torch.isfinite(torch.tensor(r0["losses"])))
    # every rank saw different examples (dropout too): only averaged gradients keep the weights identical
    assert r0["losses"] != r1["losses"]
    for k in r0["state"]:
        torch.testing.assert_close(r0["state"][k], r1["state"][k], atol=0, rtol=0)
    moved = [k for k in r0["state"] if not torch.equal(r0["state"][k], before[k])]
    assert "model.encoder.layer.1.output.dense.weight" in moved
