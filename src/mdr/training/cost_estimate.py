"""The work of one training run, counted before it starts (``mdr.runtime.cost`` turns it into minutes):
tokens trained on (steps x global batch x the corpus's mean query + passage tokens, hard negatives included)
and tokens encoded by the final evaluations (every set of the plan, once per evaluated model), times the
encoder's non-embedding parameters. Validation passes are not counted (they scale with the epochs)."""

from __future__ import annotations

from mdr.data.corpus import RetrievalSet
from mdr.data.tatoeba import TatoebaSet
from mdr.eval.plan import EvalPlan
from mdr.runtime.cost import tokens, work_units

SAMPLE = 2000  # training examples whose lengths are averaged


def eval_tokens(plan: EvalPlan, query_len: int, passage_len: int) -> float:
    total = 0.0
    for s in plan.sets:
        if isinstance(s, TatoebaSet):  # both sides encoded as queries (a symmetric task)
            total += sum(tokens([*x.texts, *x.english], query_len) for x in s.languages.values())
        elif isinstance(s, RetrievalSet):
            queries = tokens(s.query_texts, query_len)
            total += queries * (1 + len(plan.variants)) + tokens(s.cand_texts, passage_len)
    for q in plan.qrels_sets:
        total += tokens(q.query_texts, query_len) + tokens(q.doc_texts, passage_len)
    return total


def train_tokens_per_example(corpus, query_len: int, passage_len: int, hard_negatives: int) -> float:
    examples = corpus.examples[:: max(1, len(corpus.examples) // SAMPLE)]
    q = tokens([e.query for e in examples], query_len) / len(examples)
    p = tokens([e.positive for e in examples], passage_len) / len(examples)
    return q + p * (1 + hard_negatives)


def nonembedding_params(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def run_work(encoder, datamodule, steps: int, world_size: int, plan: EvalPlan, evaluations: int) -> float:
    """Work units of training ``steps`` steps on ``datamodule`` and ``evaluations`` final evaluations."""
    ql, pl = encoder.query_max_length, encoder.passage_max_length
    per_example = train_tokens_per_example(datamodule.train_corpus, ql, pl, datamodule.hard_negatives)
    trained = steps * datamodule.batch_size * world_size * per_example
    return work_units(trained, evaluations * eval_tokens(plan, ql, pl), nonembedding_params(encoder.model))
