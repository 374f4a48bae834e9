"""In-batch contrastive loss (InfoNCE) with id-aware masking.

Scores are cosine similarities (embeddings are L2-normalised) divided by ``temperature``. Query i's
positive is candidate ``labels[i]``; every other candidate is a negative *unless it answers the same
question id* (a translation of the positive, or the same sentence reached through another question),
in which case it is masked out rather than pushed away.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mdr.runtime.errors import InputError
from mdr.training.distributed import gather_no_grad, gather_with_grad, rank


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Softmax in fp32 under bf16/fp16 autocast; float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def same_id_mask(
    query_ids: torch.Tensor, cand_answer_ids: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """True where candidate c answers query i's id but is not i's labelled positive.

    ``query_ids``: (Q,) ints; ``cand_answer_ids``: (C, K) ints, the ids each candidate answers,
    padded with -1; ``labels``: (Q,) candidate index of each query's positive.
    """
    shares = (cand_answer_ids.unsqueeze(0) == query_ids.view(-1, 1, 1)).any(-1)  # (Q, C)
    shares[torch.arange(len(labels), device=labels.device), labels] = False
    return shares


class InfoNCELoss(nn.Module):
    """Query -> passage InfoNCE over in-batch (and hard) negatives, plus an optional passage -> query term.

    Under DDP, candidates (and, for the symmetric term, queries) from every rank are gathered with
    gradients, so each rank's queries see the global batch's passages as negatives. Averaging the
    per-rank losses (what DDP does to gradients) then equals the single-process loss on the global batch.
    """

    def __init__(self, temperature: float = 0.05, symmetric: bool = False):
        super().__init__()
        if temperature <= 0:
            raise InputError(f"loss.temperature={temperature} must be > 0")
        self.temperature, self.symmetric = temperature, symmetric

    def forward(
        self,
        q: torch.Tensor,
        p: torch.Tensor,
        query_ids: torch.Tensor,
        cand_answer_ids: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        """``q``: (B, d) local queries; ``p``: (C, d) local candidates, positives first then hard negatives;
        ``labels``: (B,) local index of each query's positive in ``p``."""
        if q.shape[0] == 0:
            raise InputError("empty batch: a training batch must hold at least one query")
        all_p = gather_with_grad(p)
        all_answer_ids = gather_no_grad(cand_answer_ids)
        offset = rank() * p.shape[0]  # every rank holds the same number of candidates
        global_labels = labels + offset
        scores = q @ all_p.T / self.temperature
        scores = scores.masked_fill(same_id_mask(query_ids, all_answer_ids, global_labels), float("-inf"))
        loss = F.cross_entropy(_at_least_fp32(scores), global_labels)
        if self.symmetric:
            all_q = gather_with_grad(q)
            all_qids = gather_no_grad(query_ids)
            positives = p[labels]  # (B, d) local positives against every rank's queries
            pos_answer_ids = cand_answer_ids[labels]
            q_offset = rank() * q.shape[0]
            q_labels = torch.arange(q.shape[0], device=q.device) + q_offset
            back = positives @ all_q.T / self.temperature
            # query j is masked for positive i when j's id is one the positive answers (not i's own query)
            mask = (all_qids.view(1, -1, 1) == pos_answer_ids.unsqueeze(1)).any(-1)
            mask[torch.arange(q.shape[0], device=q.device), q_labels] = False
            back = back.masked_fill(mask, float("-inf"))
            loss = (loss + F.cross_entropy(_at_least_fp32(back), q_labels)) / 2
        return loss
