"""Bad parallel JSONL training files (data=parallel_jsonl), in memory and through the Arrow cache, and as
train.py shows them: one line on stderr, exit 2."""

import json

import pytest
from helpers import (
    assert_one_line,
    run_entry,
)

from mdr.runtime.errors import InputError

BAD_BYTES = b"\xff\xfe not utf-8"


# ---- parallel JSONL ----
GOOD_ROW = {"id": "q1", "lang": "en", "query": "who?", "positive": "someone."}


@pytest.mark.parametrize(
    "content, message",
    [
        (
            json.dumps(GOOD_ROW).encode() + b"\n" + BAD_BYTES + b"\n",
            r"my.jsonl:2: not UTF-8 \(byte 0xff at column 1",
        ),
        (b"", r"parallel JSONL file .*my.jsonl is empty; it needs one JSON object per line"),
        (
            json.dumps(GOOD_ROW).encode() + b'\n{"id": "q2", "lang": "de", "que',
            r"my.jsonl:2: not valid JSON .*truncated",
        ),
        (b'["id", "lang"]\n', r"my.jsonl:1: a JSON list, not an object"),
        (
            json.dumps({**GOOD_ROW, "positive": ""}).encode() + b"\n",
            r"my.jsonl:1: missing or empty string field",
        ),
    ],
    ids=["bad bytes", "empty", "truncated", "wrong kind", "unequal (missing field)"],
)
@pytest.mark.parametrize("cached", [False, True], ids=["in memory", "arrow cache"])
def test_parallel_jsonl_bad_file(tmp_path, content, message, cached):
    from mdr.data.jsonl import read_parallel_jsonl

    path = tmp_path / "my.jsonl"
    path.write_bytes(content)
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match=message):
        read_parallel_jsonl(path, cache_dir=cache if cached else None)
    left = [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] if cache.exists() else []
    assert not left, f"a failed build left {left} in the cache folder"


def test_train_py_bad_training_file_is_one_line(tmp_path, tiny_model_dir, data_dir):
    bad = tmp_path / "train.jsonl"
    bad.write_bytes(json.dumps(GOOD_ROW).encode() + b"\n" + BAD_BYTES + b"\n")
    run_dir = tmp_path / "run"
    proc = run_entry(
        "train.py",
        f"hydra.run.dir={run_dir}",
        f"paths.data_dir={data_dir}",
        "model.encoder.name=/nonexistent/model",  # the data must fail first: the model is never loaded
        "model.encoder.offline_fallback=null",
        "data=parallel_jsonl",
        f"data.train.path={bad}",
    )
    assert_one_line(proc, "train.py", r"train.jsonl:2: not UTF-8 .*save the parallel JSONL file as UTF-8")
    assert not (run_dir / "metrics.json").exists() and "not UTF-8" in (run_dir / "FAILED").read_text()
    assert "train.jsonl:2: not UTF-8" in (run_dir / "train.log").read_text()  # the run's log keeps it too
