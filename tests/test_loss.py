"""InfoNCE against hand-computed values, id-aware masking, and the DDP gather equivalence."""

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from mdr.training.loss import InfoNCELoss


def unit(*rows):
    t = torch.tensor(rows, dtype=torch.float64)
    return t / t.norm(dim=1, keepdim=True)


def lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


Q = unit([1.0, 0.0], [0.0, 1.0], [1.0, 1.0])
P = unit([1.0, 0.2], [0.1, 1.0], [1.0, 0.8])


def test_loss_3x3_by_hand():
    tau = 0.5
    s = (Q @ P.T).tolist()
    expected = sum(lse([v / tau for v in s[i]]) - s[i][i] / tau for i in range(3)) / 3
    loss = InfoNCELoss(temperature=tau)(Q, P, torch.arange(3), torch.arange(3).view(-1, 1), torch.arange(3))
    assert loss.item() == pytest.approx(expected, abs=1e-10)


def test_masking_removes_candidates_answering_the_same_id():
    tau = 0.5
    s = (Q @ P.T).tolist()
    # candidate 2 also answers query 0's id (e.g. a translation of its positive): never a negative for query 0
    answer_ids = torch.tensor([[0, -1], [1, -1], [2, 0]])
    expected = (
        (lse([s[0][0] / tau, s[0][1] / tau]) - s[0][0] / tau)
        + (lse([v / tau for v in s[1]]) - s[1][1] / tau)
        + (lse([v / tau for v in s[2]]) - s[2][2] / tau)  # query 2's own positive is never masked
    ) / 3
    loss = InfoNCELoss(temperature=tau)(Q, P, torch.arange(3), answer_ids, torch.arange(3))
    assert loss.item() == pytest.approx(expected, abs=1e-10)


def test_symmetric_term_by_hand():
    tau = 0.1
    s = (Q @ P.T).tolist()
    q2p = sum(lse([v / tau for v in s[i]]) - s[i][i] / tau for i in range(3)) / 3
    p2q = sum(lse([s[j][i] / tau for j in range(3)]) - s[i][i] / tau for i in range(3)) / 3
    loss = InfoNCELoss(temperature=tau, symmetric=True)(
        Q, P, torch.arange(3), torch.arange(3).view(-1, 1), torch.arange(3)
    )
    assert loss.item() == pytest.approx((q2p + p2q) / 2, abs=1e-9)


def test_hard_negatives_are_extra_columns():
    tau = 0.2
    p_all = torch.cat([P, unit([0.5, 0.5])])  # one hard negative, answering no id in the batch
    s = (Q @ p_all.T).tolist()
    expected = sum(lse([v / tau for v in s[i]]) - s[i][i] / tau for i in range(3)) / 3
    ids = torch.tensor([[0], [1], [2], [-1]])
    loss = InfoNCELoss(temperature=tau)(Q, p_all, torch.arange(3), ids, torch.arange(3))
    assert loss.item() == pytest.approx(expected, abs=1e-10)


def test_empty_batch_and_bad_temperature():
    with pytest.raises(ValueError, match="empty batch"):
        InfoNCELoss()(
            torch.zeros(0, 2),
            torch.zeros(0, 2),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, 1, dtype=torch.long),
            torch.zeros(0, dtype=torch.long),
        )
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0)


# ---- DDP: two gloo ranks with batch b == one process with batch 2b (loss and gradients) ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup_problem():
    torch.manual_seed(0)
    enc = torch.nn.Linear(6, 4, dtype=torch.float64)
    xq, xp = torch.randn(8, 6, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64)
    return enc, xq, xp


def _embed(enc, x):
    return torch.nn.functional.normalize(enc(x), dim=-1)


def _rank_main(rank, world, port, symmetric, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    enc, xq, xp = _setup_problem()
    n = 8 // world
    sl = slice(rank * n, (rank + 1) * n)
    ids = torch.arange(8)[sl]
    loss = InfoNCELoss(0.1, symmetric)(
        _embed(enc, xq[sl]), _embed(enc, xp[sl]), ids, ids.view(-1, 1), torch.arange(n)
    )
    loss.backward()
    grad = enc.weight.grad.clone()
    torch.distributed.all_reduce(grad)  # what DDP does: average gradients over ranks
    grad /= world
    losses = [torch.zeros(1, dtype=torch.float64) for _ in range(world)]
    torch.distributed.all_gather(losses, loss.detach().view(1))
    if rank == 0:
        torch.save({"loss": torch.cat(losses).mean(), "grad": grad}, out)
    torch.distributed.barrier()  # no rank tears gloo down while the other still talks to it
    torch.distributed.destroy_process_group()
    # gloo's C++ destructors can abort at interpreter exit (torch 2.x); the result is saved, so skip them
    os._exit(0)


@pytest.mark.parametrize("symmetric", [False, True])
def test_two_gloo_ranks_equal_one_process(tmp_path, symmetric):
    out = tmp_path / "rank0.pt"
    mp.spawn(_rank_main, args=(2, _free_port(), symmetric, str(out)), nprocs=2, join=True)
    got = torch.load(out)
    enc, xq, xp = _setup_problem()
    ids = torch.arange(8)
    loss = InfoNCELoss(0.1, symmetric)(_embed(enc, xq), _embed(enc, xp), ids, ids.view(-1, 1), ids)
    loss.backward()
    assert got["loss"].item() == pytest.approx(loss.item(), abs=1e-10)
    torch.testing.assert_close(got["grad"], enc.weight.grad, atol=1e-10, rtol=0)
