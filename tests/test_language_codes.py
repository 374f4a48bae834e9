"""Training language codes that the evaluation cannot match: ISO 639-3 codes where the evaluation sets use
ISO 639-1 are refused (every table would call those languages unseen); codes no set knows are named in a
warning, and the run goes on (a language the evaluation does not cover)."""

import json
import logging

import pytest
from helpers import expect_failure, in_process, quick_tiny_overrides

from mdr.data.language_codes import check_training_codes
from mdr.runtime.errors import InputError


def test_iso3_codes_are_refused_and_unknown_ones_named(caplog):
    with pytest.raises(
        InputError, match=r"train.jsonl: training language code\(s\) \['deu'\] are ISO 639-3.*deu -> de"
    ):
        check_training_codes(["deu", "en"], {"de", "en", "es"}, "train.jsonl")
    with caplog.at_level(logging.WARNING):
        assert check_training_codes(["en", "xx"], {"de", "en"}, "train.jsonl") == ["xx"]
    assert "['xx'] match no evaluation set's language" in caplog.text
    assert check_training_codes(["de", "en", "ja"], {"de", "en"}, "t") == ["ja"]  # ja: not evaluated, allowed
    assert check_training_codes(["de", "en"], {"de", "en"}, "t") == []


def test_train_py_refuses_a_parallel_file_in_iso3_codes(tmp_path, tiny_model_dir, data_dir):
    rows = [{"id": str(i), "lang": lang, "query": f"q{i} {lang}", "positive": f"p{i} {lang}"}
            for i in range(40) for lang in ("deu", "eng")]  # fmt: skip
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = tmp_path / "run"
    overrides = in_process(quick_tiny_overrides(tiny_model_dir, run_dir, data_dir, "data=parallel_jsonl",
                                                f"data.train.path={path}", "data.train.langs=null"))  # fmt: skip
    expect_failure("train", "train", overrides, run_dir, InputError, r"\['deu', 'eng'\] are ISO 639-3")
