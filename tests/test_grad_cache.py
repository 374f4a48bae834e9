"""GradCache gives the plain loss's gradients (to 1e-5) with chunked forward passes."""

import pytest
import torch

from mdr.encoder import DualEncoder
from mdr.grad_cache import grad_cache_step
from mdr.loss import InfoNCELoss

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
    torch.manual_seed(0)
    q = torch.cat([enc(**{k: v[a : a + 3] for k, v in batch["query"].items()}) for a in range(0, 7, 3)])
    p = torch.cat([enc(**{k: v[a : a + 3] for k, v in batch["passage"].items()}) for a in range(0, 7, 3)])
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

    from test_train_e2e import run, tiny_overrides

    run_dir = tmp_path / "gc"
    run(
        "train.py",
        *tiny_overrides(tiny_model_dir, run_dir, data_dir),
        "loss.grad_cache=true",
        "loss.grad_cache_chunk=5",
        "export.enabled=false",
    )
    t = json.loads((run_dir / "metrics.json").read_text())["train"]
    assert t["steps"] == 40 and t["loss_last"] < t["loss_first"] - 0.1
    log = (run_dir / "csv" / "metrics.csv").read_text()
    assert "lr-AdamW" in log  # the scheduler stepped under manual optimisation
