"""Bad checkpoints (eval.py ckpt=, train.py ckpt_path=, merge.py): empty, truncated, not a torch archive, another
model's; refused before any model loads."""

from pathlib import Path

import pytest
import torch
from helpers import (
    assert_one_line,
    bad_eval_overrides,
    expect_failure,
    in_process,
    run_entry,
    tiny_model_overrides,
)

from mdr.runtime.errors import InputError

BAD_BYTES = b"\xff\xfe not utf-8"


# ---- checkpoints (eval.py ckpt=..., train.py ckpt_path=...) ----
def checkpoint_cases(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"encoder.model.embeddings.word_embeddings.weight": torch.zeros(3, 2)}}, good)
    data = good.read_bytes()
    cases = {
        "bad bytes": (BAD_BYTES * 4, r"checkpoint .*bad_bytes.ckpt is not a torch checkpoint"),
        "empty": (b"", r"checkpoint .*empty.ckpt is empty \(0 bytes\)"),
        "truncated": (
            data[: len(data) // 2],
            r"checkpoint .*truncated.ckpt is a truncated or corrupt checkpoint",
        ),
        "text file": (b"epoch: 3\nloss: 0.1\n", r"checkpoint .*text_file.ckpt is not a torch checkpoint"),
    }
    out = {}
    for kind, (content, message) in cases.items():
        path = tmp_path / f"{kind.replace(' ', '_')}.ckpt"
        path.write_bytes(content)
        out[kind] = (path, message)
    return out


def test_bad_checkpoint_files_fail_before_any_model_loads(tmp_path, monkeypatch, data_dir):
    """eval.py ckpt=<bad file>: the one-line error comes before the model is built (a model name that does
    not exist would fail otherwise), and nothing is written."""
    from helpers import expect_failure

    for kind, (path, message) in checkpoint_cases(tmp_path).items():
        run_dir = tmp_path / f"run_{kind.replace(' ', '_')}"
        overrides = [
            f"paths.output_dir={run_dir}",
            f"paths.data_dir={data_dir}",
            "model.encoder.name=/nonexistent/model",  # would fail if the model were loaded first
            "data=mlqa_r",
            f"ckpt={path}",
        ]
        expect_failure("eval", "eval", overrides, run_dir, InputError, message)


def test_resume_from_a_damaged_checkpoint_fails_clearly(tmp_path):
    from mdr.training.checkpointing import resolve_resume

    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    (ckpt_dir / "last.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(InputError, match="last.ckpt is a truncated or corrupt checkpoint .*start afresh"):
        resolve_resume("last", ckpt_dir)


def test_checkpoint_of_another_kind_is_named(tmp_path):
    """A valid torch file that is not a train.py checkpoint (a bare tensor, a state dict of another model)."""
    from mdr.training.checkpointing import load_checkpoint_file

    path = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(InputError, match="tensor.ckpt holds a Tensor, not a checkpoint written by train.py"):
        load_checkpoint_file(path)


def test_eval_py_bad_checkpoint_is_one_line(tmp_path, tiny_model_dir, data_dir):
    path, message = checkpoint_cases(tmp_path)["text file"]
    run_dir = tmp_path / "run"
    proc = run_entry(
        "eval.py",
        *in_process([f"hydra.run.dir={run_dir}"]),
        *tiny_model_overrides(tiny_model_dir, data_dir),
        "data=mlqa_r",
        f"ckpt={path}",
    )
    assert_one_line(proc, "eval.py", message)
    assert not (run_dir / "metrics.json").exists()


def other_model_checkpoint(path):
    torch.save({"state_dict": {"encoder.model.embeddings.word_embeddings.weight": torch.zeros(5, 7)}}, path)
    return path


def foreign_checkpoint(path):
    torch.save({"state_dict": {"classifier.weight": torch.zeros(2, 2)}}, path)
    return path


@pytest.mark.parametrize(
    "make_ckpt, exc, message",
    [
        (
            lambda tmp: Path("/nope.ckpt"),
            FileNotFoundError,
            "checkpoint /nope.ckpt does not exist.*pass ckpt=",
        ),
        (
            lambda tmp: other_model_checkpoint(tmp / "other.ckpt"),
            ValueError,
            "does not match model config.*pass the model=",
        ),
        (
            lambda tmp: foreign_checkpoint(tmp / "foreign.ckpt"),
            ValueError,
            "holds no encoder weights; is it a checkpoint written by train.py",
        ),
    ],
    ids=["missing", "of_another_model", "without_encoder"],
)
def test_eval_bad_checkpoint(tmp_path, tiny_model_dir, data_dir, make_ckpt, exc, message):
    ckpt = make_ckpt(tmp_path)
    overrides = bad_eval_overrides(tmp_path / "run", tiny_model_dir, data_dir, f"ckpt={ckpt}")
    expect_failure("eval", "eval", overrides, tmp_path / "run", exc, message)
