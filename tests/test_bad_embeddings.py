"""Bad saved embeddings (eval.py embeddings=...): refused in one line, nothing written."""

import numpy as np
import pytest
from helpers import bad_eval_overrides, expect_failure

BAD_BYTES = b"\xff\xfe not utf-8"


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {
                "query_emb": np.zeros((3, 4)),
                "cand_emb": np.zeros((2, 4)),
                "query_ids": np.arange(3),
                "cand_uids": np.array(["a", "b"]),
            },
            "do not match mlqa_r.*eval.save_embeddings=true",
        ),
        ({"query_emb": np.zeros((3, 4))}, r"lacks arrays \['cand_emb', 'cand_uids', 'query_ids'\]"),
    ],
)
def test_eval_bad_embeddings(tmp_path, tiny_model_dir, data_dir, arrays, message):
    emb = tmp_path / "emb.npz"
    np.savez(emb, **arrays)
    expect_failure(
        "eval",
        "eval",
        bad_eval_overrides(tmp_path / "run", tiny_model_dir, data_dir, f"embeddings={emb}"),
        tmp_path / "run",
        ValueError,
        message,
    )
