"""Impossible settings and bad data fed through train.py / eval.py in-process: a clear error that names the
problem and the fix; no results written or changed; a failed run archives nothing; a bug keeps its traceback."""

import json
import shutil

import pytest
from helpers import (
    bad_eval_overrides,
    expect_failure,
    tiny_model_overrides,
)

from mdr.runtime.errors import InputError

BAD_BYTES = b"\xff\xfe not utf-8"


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory, data_dir):
    """A data dir with one broken xquad-r per case, built from a real file."""
    root = tmp_path_factory.mktemp("bad_data")
    good = json.loads((data_dir / "xquad-r" / "en.json").read_text())

    def make(case, mutate=None, raw=None):
        d = root / case / "xquad-r"
        d.mkdir(parents=True)
        for lang in ("en", "de"):
            doc = json.loads(json.dumps(good))
            if mutate and lang == "de":
                mutate(doc)
            (d / f"{lang}.json").write_text(raw if (raw is not None and lang == "de") else json.dumps(doc))
        (root / case / "mlqa-r").symlink_to(data_dir / "mlqa-r")  # the evaluation set stays intact
        return root / case

    def drop_breaks(doc):
        del doc["data"][0]["paragraphs"][0]["sentence_breaks"]

    def far_answer(doc):
        doc["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 10**6

    def no_questions(doc):
        for art in doc["data"]:
            for par in art["paragraphs"]:
                par["qas"] = []

    return {
        "malformed": make("malformed", raw='{"data": [ {"title": '),
        "no_breaks": make("no_breaks", drop_breaks),
        "far_answer": make("far_answer", far_answer),
        "no_questions": make("no_questions", no_questions),
    }


def train_overrides(run_dir, tiny_model_dir, data_dir, *extra):
    return [
        f"paths.output_dir={run_dir}",
        *tiny_model_overrides(tiny_model_dir, data_dir),
        "data.train.langs=[de,en,es]",
        "data.datamodule.batch_size=8",
        "data.datamodule.num_workers=0",
        "trainer.max_steps=2",
        "eval.datasets=[mlqa_r]",
        *extra,
    ]


TRAIN_CASES = [
    # (id, extra overrides, data key or None, exception, message naming problem and fix)
    (
        "missing data dir",
        ["paths.data_dir=/nonexistent/data"],
        None,
        FileNotFoundError,
        "does not exist.*paths.data_dir",
    ),
    (
        "malformed JSON",
        ["data.train.name=xquad_r", "data.train.langs=[de,en]"],
        "malformed",
        ValueError,
        "de.json is not valid JSON.*re-fetch",
    ),
    (
        "no sentence_breaks",
        ["data.train.name=xquad_r", "data.train.langs=[de,en]"],
        "no_breaks",
        ValueError,
        "missing 'context' or 'sentence_breaks'",
    ),
    (
        "answer outside sentences",
        ["data.train.name=xquad_r", "data.train.langs=[de,en]"],
        "far_answer",
        ValueError,
        "answer start 1000000 .* lies in 0 sentences",
    ),
    (
        "language with no data",
        ["data.train.name=xquad_r", "data.train.langs=[de,en]"],
        "no_questions",
        ValueError,
        "no questions; a language with no data cannot be used",
    ),
    (
        "unknown language",
        ["data.train.langs=[en,xx]"],
        None,
        ValueError,
        r"unknown language\(s\) \['xx'\].*fix the data langs",
    ),
    ("unknown dataset", ["data.train.name=squad"], None, ValueError, "unknown LAReQA dataset 'squad'"),
    ("unknown data kind", ["data.train.kind=csv"], None, ValueError, "unknown data.train.kind='csv'"),
    (
        "missing JSONL",
        ["data.train.kind=jsonl", "+data.train.path=/nonexistent.jsonl"],
        None,
        FileNotFoundError,
        "set data.train.path",
    ),
    ("alpha above 1", ["sampler.alpha=1.5"], None, ValueError, r"sampler.alpha=1.5: must be in \[0, 1\]"),
    ("alpha below 0", ["sampler.alpha=-0.1"], None, ValueError, r"sampler.alpha=-0.1: must be in \[0, 1\]"),
    (
        "batch larger than ids",
        ["data.datamodule.batch_size=900"],
        None,
        ValueError,
        "larger than the .* ids available .* lower data.datamodule.batch_size",
    ),
    (
        "X-Y with one language",
        ["sampler=xy", "data.train.langs=[en]"],
        None,
        ValueError,
        "at least two training languages",
    ),
    ("unknown weighting", ["sampler.weighting=zipf"], None, ValueError, "sampler.weighting='zipf'"),
    ("zero batch", ["data.datamodule.batch_size=0"], None, ValueError, "batch_size=0: must be >= 1"),
    ("temperature zero", ["loss.temperature=0"], None, ValueError, "loss.temperature=0 must be > 0"),
    (
        "unknown pooling",
        ["model.encoder.pooling=max"],
        None,
        ValueError,
        "model.pooling='max'; choose one of",
    ),
    (
        "unknown finetune mode",
        ["finetune.mode=adapterz"],
        None,
        ValueError,
        "finetune.mode='adapterz' is unknown",
    ),
    (
        "LoRA targets missing",
        ["finetune=lora", "finetune.target_modules=[q_proj]"],
        None,
        ValueError,
        r"LoRA target modules \['q_proj'\] do not exist.*fix finetune.target_modules",
    ),
    (
        "unknown eval dataset",
        ["eval.datasets=[squad]"],
        None,
        ValueError,
        "unknown evaluation dataset 'squad'",
    ),
    (
        "resume without checkpoint",
        ["ckpt_path=last"],
        None,
        FileNotFoundError,
        "no checkpoint to resume.*ckpt_path=last",
    ),
]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input(case, tmp_path, tiny_model_dir, data_dir, bad_data):
    _, extra, data_key, exc, message = case
    root = bad_data[data_key] if data_key else data_dir
    expect_failure(
        "train",
        "train",
        train_overrides(tmp_path / "run", tiny_model_dir, root, *extra),
        tmp_path / "run",
        exc,
        message,
    )


def test_unknown_model_offline(tmp_path, data_dir):
    from mdr.modeling.backbones import ModelLoadError

    overrides = [f"paths.output_dir={tmp_path / 'run'}", f"paths.data_dir={data_dir}", "model=xlmr"]
    expect_failure(
        "train",
        "train",
        overrides,
        tmp_path / "run",
        ModelLoadError,
        "hub is unreachable.*model.encoder.name=DIR",
    )


def test_model_dir_without_weights(tmp_path, data_dir):
    from mdr.modeling.backbones import ModelLoadError

    (tmp_path / "empty_model").mkdir()
    (tmp_path / "empty_model" / "config.json").write_text("{}")
    overrides = [
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.data_dir={data_dir}",
        f"model.encoder.name={tmp_path / 'empty_model'}",
    ]
    expect_failure("train", "train", overrides, tmp_path / "run", ModelLoadError, "has no weights")


def test_eval_unknown_run_files_option(tmp_path, tiny_model_dir, data_dir):
    expect_failure(
        "eval",
        "eval",
        bad_eval_overrides(tmp_path / "run", tiny_model_dir, data_dir, "eval.run_files=some"),
        tmp_path / "run",
        ValueError,
        "eval.run_files='some'; choose one of",
    )


def test_failed_run_does_not_touch_earlier_results(tmp_path, tiny_model_dir, data_dir):
    """A failing resume into a finished run's folder leaves its metrics and checkpoints byte-identical."""
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.json").write_text('{"schema_version": 1}')
    (run_dir / "checkpoints" / "best.ckpt").write_bytes(b"earlier")
    shutil.copy(run_dir / "metrics.json", tmp_path / "copy.json")
    expect_failure(
        "train",
        "train",
        train_overrides(run_dir, tiny_model_dir, data_dir, "sampler.alpha=2"),
        run_dir,
        ValueError,
        "sampler.alpha=2",
    )
    assert (run_dir / "metrics.json").read_text() == (tmp_path / "copy.json").read_text()


def test_unexpected_errors_keep_their_traceback(tmp_path):
    """Only known input errors lose the traceback: a bug still shows where it happened."""
    from mdr.cli.entry import report_input_errors

    with pytest.raises(ZeroDivisionError):
        report_input_errors(lambda: 1 / 0, "x")
    with pytest.raises(SystemExit) as stop:
        report_input_errors(lambda: (_ for _ in ()).throw(InputError("f.txt:3: bad; fix it")), "x")
    assert stop.value.code == 2


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


def test_a_protocol_scored_on_its_training_set_is_refused_before_loading(tmp_path, data_dir):
    """issue #44: a domain-shift cell configured to test on its own training set stops in one line."""
    overrides = [
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.data_dir={data_dir}",
        "model.encoder.name=/nope",  # nothing loads before the refusal
        "data=xquad_to_mlqa",
        "data.eval_datasets=[xquad_r,mlqa_r]",
    ]
    expect_failure(
        "train", "train", overrides, tmp_path / "run", InputError,
        r"data.eval_datasets=\['xquad_r', 'mlqa_r'\] holds the training set data.train.name=xquad_r",
    )  # fmt: skip


def test_the_reverse_cells_test_on_mlqa_r_only():
    """The declared reverse cells (conf/claims/domain_reverse_44.yaml) train on XQuAD-R and score MLQA-R alone:
    their evaluation plan has no xquad_r entry, and pretraining follows it."""
    from helpers import compose_cfg

    cfg = compose_cfg(
        "train",
        ["experiment=decisive", "data=xquad_to_mlqa", "data.eval_datasets=[mlqa_r]", "trainer.max_steps=234"],
    )
    assert cfg.data.train.name == "xquad_r" and list(cfg.eval.datasets) == ["mlqa_r"]
    assert list(cfg.pretrain.datasets) == ["mlqa_r"] and cfg.trainer.max_steps == 234
