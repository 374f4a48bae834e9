"""Collation: hard negatives, id masks for sentences answering several questions, sentence+context pairs."""

import torch

from mdr.modeling.encoder import DualEncoder
from mdr.training.datamodule import Collator
from mdr.training.samplers import BatchPlan


def test_hard_negatives_carry_the_ids_they_answer(xquad_corpus, tiny_model_dir):
    enc = DualEncoder(str(tiny_model_dir))
    # two questions of one paragraph: each one's answer is a hard negative of the other
    en = [e for e in xquad_corpus.examples if e.lang == "en"]
    first, second = next(
        (a, b)
        for a in en
        for b in en
        if a.positive_context == b.positive_context
        and a.positive != b.positive
        and b.positive in a.negatives[:3]
    )
    col = Collator(xquad_corpus, enc.tokenize_queries, enc.tokenize_passages, hard_negatives=3)
    batch = col(BatchPlan(0, "xx", (first.id, second.id), ("en", "en"), ("en", "en")))
    assert batch["passage"]["input_ids"].shape[0] == 2 + 2 * 3
    cand, q = batch["cand_answer_ids"], batch["query_ids"]
    # rows: 2 positives, then 3 hard negatives of the first query, then 3 of the second
    row = 2 + first.negatives.index(second.positive)
    assert (cand[row] == q[1]).any(), "the first query's hard negative that answers the second is tagged"
    from mdr.training.loss import same_id_mask

    mask = same_id_mask(q, cand, batch["labels"])
    assert mask[1, row] and not mask[0, row]  # masked for the query it answers, a negative for the other
    assert not mask[torch.arange(2), batch["labels"]].any()


def test_sentence_context_passages_are_text_pairs(tiny_model_dir, xquad_corpus):
    enc = DualEncoder(str(tiny_model_dir), candidate_text="sentence_context", passage_max_length=256)
    ex = xquad_corpus.examples[0]
    with_ctx = enc.tokenize_passages([ex.positive], [ex.positive_context])
    alone = enc.tokenize_passages([ex.positive])
    assert with_ctx["input_ids"].shape[1] > alone["input_ids"].shape[1]
    sep = enc.tokenizer.sep_token_id
    assert (with_ctx["input_ids"][0] == sep).sum() >= 2  # <s> sentence </s></s> paragraph </s>
    e1 = enc.encode(
        [ex.positive], "passage", contexts=[ex.positive_context], show_progress=False, precision="fp32"
    )
    e2 = enc.encode(
        [ex.positive], "passage", contexts=["something else entirely"], show_progress=False, precision="fp32"
    )
    assert not torch.allclose(torch.from_numpy(e1), torch.from_numpy(e2))
