"""Every reader turns a bad file into one InputError line that names the file (and line or language) and the
fix: bad bytes, files of unequal length where they must align, empty files, truncated archives, files of
the wrong kind. The entry points print that line without a traceback, exit 2 and write no results.

Readers: LAReQA, Tatoeba, parallel JSONL, topics / qrels / corpus, per-query archives (report.py), claims
files, checkpoints given to eval.py (and to a resume)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import ROOT, in_process, tiny_model_overrides

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


# ---- Tatoeba ----
def tatoeba_case(tmp_path, data_dir, lang_side: bytes | None = None, eng_side: bytes | None = None) -> Path:
    d = tmp_path / "tatoeba"
    d.mkdir(parents=True)
    for suffix, replacement in (("deu", lang_side), ("eng", eng_side)):
        src = data_dir / "tatoeba" / f"tatoeba.deu-eng.{suffix}"
        (d / src.name).write_bytes(replacement if replacement is not None else src.read_bytes())
    return tmp_path


def test_tatoeba_bad_files(tmp_path, data_dir):
    from mdr.data.tatoeba import read_tatoeba

    good = (data_dir / "tatoeba" / "tatoeba.deu-eng.deu").read_bytes()
    lines = good.split(b"\n")
    cases = {
        "bad bytes": (
            b"\n".join([*lines[:4], BAD_BYTES, *lines[5:]]),
            None,
            r"tatoeba.deu-eng.deu:5: not UTF-8",
        ),
        "unequal lengths": (
            b"\n".join(lines[:-10]),
            None,
            r"deu-eng.\*: \d+ deu lines but 1000 English lines",
        ),
        "empty": (b"", None, r"Tatoeba file .*tatoeba.deu-eng.deu is empty; each language needs both sides"),
        "truncated": (None, b"\n".join(lines[:500]), r"1000 deu lines but 500 English lines; .*line-aligned"),
        "wrong kind": (b"\x00\x01" * 50 + BAD_BYTES, None, r"tatoeba.deu-eng.deu:1: not UTF-8"),
    }
    for kind, (lang_side, eng_side, message) in cases.items():
        root = tatoeba_case(tmp_path / kind.replace(" ", "_"), data_dir, lang_side, eng_side)
        with pytest.raises(InputError, match=message):
            read_tatoeba(root, ["deu"])


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


# ---- topics / qrels / corpus ----
def qrels_files(tmp_path, topics=None, qrels=None, corpus=None):
    files = {
        "topics": topics if topics is not None else b"q1\twho is there?\nq2\twhat is it?\n",
        "qrels": qrels if qrels is not None else b"q1 Q0 d1 1\nq2 Q0 d2 1\n",
        "corpus": corpus
        if corpus is not None
        else b'{"docid": "d1", "text": "one"}\n{"docid": "d2", "text": "two"}\n',
    }
    for name, content in files.items():
        (tmp_path / f"{name}.tsv").write_bytes(content)
    return [tmp_path / f"{n}.tsv" for n in ("topics", "qrels", "corpus")]


QRELS_CASES = {
    "topics bad bytes": ({"topics": b"q1\twho\n" + BAD_BYTES}, r"topics.tsv:2: not UTF-8"),
    "qrels bad bytes": ({"qrels": b"q1 Q0 d1 1\n" + BAD_BYTES}, r"qrels.tsv:2: not UTF-8"),
    "corpus bad bytes": (
        {"corpus": b'{"docid": "d1", "text": "a"}\n' + BAD_BYTES},
        r"corpus.tsv:2: not UTF-8",
    ),
    "topics empty": ({"topics": b""}, r"topics file .*topics.tsv is empty; topics are 'query_id<TAB>text'"),
    "qrels empty": ({"qrels": b"\n"}, r"qrels file .*qrels.tsv is empty; qrels are TREC lines"),
    "corpus empty": ({"corpus": b""}, r"corpus file .*corpus.tsv is empty"),
    "corpus truncated": (
        {"corpus": b'{"docid": "d1", "text": "one"}\n{"docid": "d2", "te'},
        r"corpus.tsv:2: not valid JSON",
    ),
    "qrels given as topics": (
        {"topics": b"q1 Q0 d1 1\n"},
        r"topics.tsv:1: expected 'query_id<TAB>text' \(is this a topics file",
    ),
    "topics given as qrels": (
        {"qrels": b"q1\twho is there?\n"},
        r"qrels.tsv:1: .*expected 'query_id Q0 docid relevance' \(TREC qrels; is this a qrels file",
    ),
    "topics and qrels do not align": ({"qrels": b"x9 Q0 d1 1\n"}, r"share no query id .*same split"),
    "duplicate docids": (
        {"corpus": b'{"docid": "d1", "text": "a"}\n{"docid": "d1", "text": "b"}\n'},
        r"corpus.tsv:2: docid 'd1' repeats line 1",
    ),
    "duplicate query ids": (
        {"topics": b"q1\twho is there?\nq2\twhat?\nq1\tagain?\n"},
        r"topics.tsv:3: query id 'q1' repeats line 1; query ids must be unique",
    ),
    "judged documents all absent from the corpus": (
        {"qrels": b"q1 Q0 x1 1\nq2 Q0 x2 1\n"},
        r"mini: none of the 2 judged documents of .*qrels.tsv is in the corpus .*corpus.tsv",
    ),
}


@pytest.mark.parametrize("cached", [False, True], ids=["lists", "mapped corpus"])
def test_what_a_qrels_set_leaves_out_is_counted(tmp_path, cached):
    """Judged documents the corpus lacks and topics without judgements are counted, never dropped silently."""
    from mdr.data.qrels import load_qrels_set

    topics, qrels, corpus = qrels_files(
        tmp_path, topics=b"q1\twho?\nq2\twhat?\nq3\twhere?\n", qrels=b"q1 Q0 d1 1\nq2 Q0 d2 1\nq2 Q0 gone 1\n"
    )
    qs = load_qrels_set("mini", topics, qrels, corpus, tmp_path / "cache" if cached else None)
    assert qs.query_ids == ["q1", "q2"]
    assert qs.skipped == {"topics without judgements": 1, "judged documents absent from the corpus": 1}


@pytest.mark.parametrize("cached", [False, True], ids=["lists", "mapped corpus"])
@pytest.mark.parametrize("kind", QRELS_CASES)
def test_qrels_set_bad_file(kind, tmp_path, cached):
    from mdr.data.qrels import load_qrels_set

    contents, message = QRELS_CASES[kind]
    topics, qrels, corpus = qrels_files(tmp_path, **contents)
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match=message):
        load_qrels_set("mini", topics, qrels, corpus, cache if cached else None)
    left = [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] if cache.exists() else []
    corpus_sound = kind == "judged documents all absent from the corpus"  # its converted corpus is reusable
    assert corpus_sound or not left, f"a failed conversion left {left}"


# ---- per-query archives (report.py) ----
@pytest.fixture(scope="module")
def archived_cell(tmp_path_factory):
    """Two tracked cells of results/decisive (real per-query archives), copied so they can be damaged."""
    root = tmp_path_factory.mktemp("cells")
    for sampler in ("xx", "hybrid"):
        name = f"experiment=decisive,sampler={sampler},seed=0"
        shutil.copytree(ROOT / "results" / "decisive" / name, root / name)
    return root


def damaged_copy(archived_cell, tmp_path, damage) -> Path:
    root = tmp_path / "sweep"
    shutil.copytree(archived_cell, root)
    damage(root / "experiment=decisive,sampler=xx,seed=0" / "eval" / "xquad_r" / "per_query.npz")
    return root


def unequal_archive(path: Path) -> None:
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["ranks/de->en"] = arrays["ranks/de->en"][:-3]
    np.savez_compressed(path, **arrays)


PER_QUERY_CASES = {
    "bad bytes": (
        lambda p: p.write_bytes(BAD_BYTES * 10),
        r"per-query archive .*per_query.npz is not an .npz archive",
    ),
    "unequal lengths": (
        unequal_archive,
        r"per_query.npz: setting 'de->en' has 1190 rows but 1187 ranks; re-evaluate",
    ),
    "empty": (lambda p: p.write_bytes(b""), r"per-query archive .*per_query.npz is empty \(0 bytes\)"),
    "truncated": (
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        r"per_query.npz is not an .npz archive \(truncated",
    ),
    "wrong kind": (lambda p: p.write_text("ranks: 1 2 3\n"), r"per_query.npz is not an .npz archive"),
}


@pytest.mark.parametrize("kind", PER_QUERY_CASES)
def test_per_query_archive_bad_file(kind, tmp_path, archived_cell):
    from mdr.report.write import write_report

    damage, message = PER_QUERY_CASES[kind]
    root = damaged_copy(archived_cell, tmp_path, damage)
    out = tmp_path / "report"
    with pytest.raises(InputError, match=message):
        write_report(root, out, baseline="sampler=xx", permutations=200)
    assert not out.exists() or not any(out.iterdir()), "a failed report wrote files"


# ---- claims files ----
@pytest.mark.parametrize(
    "content, message",
    [
        (BAD_BYTES, r"claims.yaml:1: not UTF-8"),
        (b"", r"claims file .*claims.yaml is empty; write a YAML list of claims"),
        (b"- claim: a\n  a: sampler=hybrid\n- claim: [unclosed\n", r"claims.yaml:4: not valid YAML"),
        (b"claims: all of them\n", r"expected a non-empty YAML list of claims, got a str"),
        (b"- just a sentence\n", r"claim 0 is a str, not a mapping of fields"),
        (
            b"- {claim: c, a: sampler=hybrid, b: sampler=xx, dataset: xquad_r, kind: mono, metric: ndcg, expect: '>'}\n",
            r"claims.yaml: claim 'c': field metric='ndcg' is not a xquad_r number; use one of .*'ndcg@10'",
        ),
    ],
    ids=["bad bytes", "empty", "truncated", "wrong kind", "wrong kind of item", "unknown metric"],
)
def test_claims_file_bad_file(tmp_path, archived_cell, content, message):
    from mdr.report.write import write_report

    claims = tmp_path / "claims.yaml"
    claims.write_bytes(content)
    out = tmp_path / "report"
    with pytest.raises(InputError, match=message):
        write_report(archived_cell, out, claims=claims, permutations=200)
    assert not out.exists(), "a bad claims file must fail before anything is written"


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


# ---- what a user sees: one line, no traceback, exit 2, nothing written ----
def run_entry(script, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"},
    )


def assert_one_line(proc, prog, message):
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert __import__("re").search(message, errors[0]), errors[0]


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


def test_report_py_bad_archive_is_one_line(tmp_path, archived_cell):
    root = damaged_copy(archived_cell, tmp_path, PER_QUERY_CASES["truncated"][0])
    proc = run_entry("report.py", str(root), "--baseline", "sampler=xx", "--permutations", "100")
    assert_one_line(proc, "report.py", PER_QUERY_CASES["truncated"][1])
    assert not (root / "results.md").exists()


def test_unexpected_errors_keep_their_traceback(tmp_path):
    """Only known input errors lose the traceback: a bug still shows where it happened."""
    from mdr.cli.entry import report_input_errors

    with pytest.raises(ZeroDivisionError):
        report_input_errors(lambda: 1 / 0, "x")
    with pytest.raises(SystemExit) as stop:
        report_input_errors(lambda: (_ for _ in ()).throw(InputError("f.txt:3: bad; fix it")), "x")
    assert stop.value.code == 2


def test_claims_yaml_in_repo_still_loads():
    """The shipped claims file passes the stricter reader."""
    from mdr.report.claims import load_claims

    raw = yaml.safe_load((ROOT / "conf" / "claims" / "hybrid_2408.10536.yaml").read_text())
    claims = load_claims(ROOT / "conf" / "claims" / "hybrid_2408.10536.yaml")
    assert len(claims) == len(raw["claims"]) and sum(c.family == "primary" for c in claims) == 7


def test_a_failed_run_leaves_no_results_cell(tmp_path, tiny_model_dir, data_dir):
    """With results_dir set (a tracked sweep), a run that fails on bad input archives nothing."""
    from helpers import expect_failure

    bad = tmp_path / "train.jsonl"
    bad.write_bytes(b"")
    results = tmp_path / "results"
    run_dir = tmp_path / "run"
    overrides = [
        f"paths.output_dir={run_dir}",
        *tiny_model_overrides(tiny_model_dir, data_dir),
        "data=parallel_jsonl",
        f"data.train.path={bad}",
        f"results_dir={results}",
    ]
    expect_failure("train", "train", overrides, run_dir, InputError, "train.jsonl is empty")
    assert not results.exists() or not any(results.iterdir())


# ---- results folders (report.py) ----
def test_report_py_damaged_metrics_json_is_one_line(tmp_path, archived_cell):
    root = tmp_path / "sweep"
    shutil.copytree(archived_cell, root)
    metrics = root / "experiment=decisive,sampler=xx,seed=0" / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:5000])
    proc = run_entry("report.py", str(root))
    assert_one_line(
        proc, "report.py", r"sampler=xx,seed=0/metrics.json: not valid JSON .*restore it from git"
    )
    assert not (root / "results.md").exists()


def test_report_py_refuses_a_seed_counted_twice(tmp_path, archived_cell):
    root = tmp_path / "sweep"
    shutil.copytree(archived_cell, root)
    shutil.copytree(
        root / "experiment=decisive,sampler=xx,seed=0", root / "experiment=decisive,sampler=xx,seed=0 (copy)"
    )
    proc = run_entry("report.py", str(root))
    assert_one_line(
        proc, "report.py", r"row xx/me5_small/full has seed 0 twice: .*seed=0 and .*seed=0 \(copy\)"
    )


def test_an_exploratory_claim_that_selects_no_rows_says_so(tmp_path, archived_cell):
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        "- {claim: ghost, a: sampler=hybrid, b: sampler=mixed, dataset: xquad_r, kind: mono, metric: map, expect: '>'}\n"
    )
    proc = run_entry("report.py", str(archived_cell), "--claims", str(claims), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if "selects no rows" in x]
    assert len(lines) == 1 and "'ghost'" in lines[0] and "sampler=mixed" in lines[0]
