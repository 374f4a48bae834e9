"""Bad LAReQA files (XQuAD-R, MLQA-R): each one InputError line naming the file and the fix."""

import json
from pathlib import Path

import pytest

from mdr.runtime.errors import InputError

BAD_BYTES = b"\xff\xfe not utf-8"


# ---- LAReQA ----
@pytest.fixture(scope="module")
def lareqa_good(data_dir):
    return (data_dir / "xquad-r" / "de.json").read_bytes()


def lareqa_case(tmp_path, content: bytes) -> Path:
    d = tmp_path / "xquad-r"
    d.mkdir()
    (d / "de.json").write_bytes(content)
    return tmp_path


def unaligned_lareqa(good: bytes) -> bytes:
    doc = json.loads(good)
    doc["data"][0]["paragraphs"][0]["sentences"].pop()
    return json.dumps(doc).encode()


def string_answer_start(good: bytes) -> bytes:
    doc = json.loads(good)
    qa = doc["data"][0]["paragraphs"][0]["qas"][0]
    qa["answers"][0]["answer_start"] = str(qa["answers"][0]["answer_start"])
    return json.dumps(doc).encode()


LAREQA_CASES = {
    "bad bytes": (lambda good: good[:200] + BAD_BYTES + good[200:], r"de.json:1: not UTF-8 \(byte 0xff"),
    "unequal lengths": (unaligned_lareqa, r"de.json article 0 .* sentence_breaks but \d+ sentences; .*align"),
    "empty": (lambda good: b"", r"LAReQA file .*de.json is empty; re-fetch"),
    "truncated": (lambda good: good[: len(good) // 2], r"de.json:1: de.json is not valid JSON .*re-fetch"),
    "wrong kind": (lambda good: b'{"version": "1.1", "articles": []}', r"de.json: not a LAReQA file"),
    "answer_start a string": (
        string_answer_start,
        r"de.json article 0 .* question .*: answers\[0\].answer_start='\d+' is not an integer character offset",
    ),
}


@pytest.mark.parametrize("kind", LAREQA_CASES)
def test_lareqa_bad_file(kind, tmp_path, lareqa_good):
    from mdr.data.lareqa import read_lareqa

    make, message = LAREQA_CASES[kind]
    root = lareqa_case(tmp_path, make(lareqa_good))
    with pytest.raises(InputError, match=message):
        read_lareqa(root, "xquad_r", ["de"])
