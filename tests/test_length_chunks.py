"""Length-aware chunking of a training batch: same embeddings and gradients as the padded batch, less padding."""

import pytest
import torch

from mdr.modeling.encoder import DualEncoder
from mdr.training.loss import InfoNCELoss

QUERIES = [
    "who",
    "where is the longest river of the whole continent",
    "when",
    "Wer hat das Buch geschrieben?",
    "¿Dónde está?",
    "列车什么时候出发",
    "what year did the war between the two kingdoms end",
    "how",
]
PASSAGES = [
    "yes",
    "The river is in the north and it is by far the longest one of them all.",
    "1900",
    "Das Buch wurde von einem Arzt geschrieben.",
    "Aquí.",
    "列车中午出发。",
    "It ended in 1453.",
    "so",
]


def grads(enc, chunks):
    enc.zero_grad()
    q = enc.tokenize_queries(QUERIES)
    p = enc.tokenize_passages(PASSAGES)
    qe, pe = enc.embed(**q, length_chunks=chunks), enc.embed(**p, length_chunks=chunks)
    n = len(QUERIES)
    loss = InfoNCELoss()(qe, pe, torch.arange(n), torch.arange(n).view(-1, 1), torch.arange(n))
    loss.backward()
    return (
        qe.detach(),
        pe.detach(),
        {k: v.grad.clone() for k, v in enc.named_parameters() if v.grad is not None},
    )


@pytest.mark.parametrize("chunks", [2, 3, 8, 100])
def test_chunked_batch_equals_padded_batch(tiny_model_dir, chunks):
    enc = DualEncoder(str(tiny_model_dir))
    enc.eval()  # no dropout: the two passes must match exactly up to float rounding
    q1, p1, g1 = grads(enc, 1)
    q2, p2, g2 = grads(enc, chunks)
    torch.testing.assert_close(q2, q1, atol=1e-5, rtol=0)
    torch.testing.assert_close(p2, p1, atol=1e-5, rtol=0)
    assert g1.keys() == g2.keys() and len(g1) > 10
    for k in g1:
        torch.testing.assert_close(g2[k], g1[k], atol=1e-5, rtol=1e-4)


def test_chunks_skip_padding(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    seen = []
    hook = enc.model.register_forward_pre_hook(
        lambda m, args, kw: seen.append(kw["input_ids"].numel()), with_kwargs=True
    )
    p = enc.tokenize_passages(PASSAGES)
    enc.embed(**p, length_chunks=4)
    hook.remove()
    assert len(seen) == 4 and sum(seen) < p["input_ids"].numel() * 0.6  # padded: 8 x longest


def test_compiled_backbone_gives_the_same_embeddings(tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    enc.eval()
    q = enc.tokenize_queries(QUERIES)
    plain = enc.embed(**q, length_chunks=2).detach()
    enc.model.compile(
        dynamic=True, backend="eager"
    )  # what compute.compile=eager does (inductor needs a compiler)
    torch.testing.assert_close(enc.embed(**q, length_chunks=2).detach(), plain, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_train_py_with_compiled_chunked_backbone_checkpoints_plain_weights(
    tmp_path, tiny_model_dir, data_dir
):
    import json

    from helpers import quick_tiny_overrides, run

    run_dir = tmp_path / "compiled"
    overrides = [
        o
        for o in quick_tiny_overrides(tiny_model_dir, run_dir, data_dir)
        if not o.startswith("trainer.max_epochs")
    ]
    run("train.py", *overrides, "compute.compile=eager", "compute.length_chunks=3", "trainer.max_steps=4")
    m = json.loads((run_dir / "metrics.json").read_text())
    compute = m["config"]["compute"]
    assert m["train"]["steps"] == 4 and (compute["length_chunks"], compute["compile"]) == (3, "eager")
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    assert not [
        k for k in state if "_orig_mod" in k
    ]  # compiled in place: checkpoints load into a plain model
