"""One evaluation plan per run: every evaluation set is read once, before the model loads, and every
evaluation of the run (the trained model, each merged row) scores those loaded sets."""

from collections import Counter

import pytest
from helpers import compose_cfg, in_process, quick_tiny_overrides

import mdr.data.sources as sources


@pytest.mark.slow
def test_a_training_run_reads_each_evaluation_set_once(tmp_path, tiny_model_dir, data_dir, monkeypatch):
    """train.py with two merged rows evaluates three models; Tatoeba is read once (it was read four times:
    the check before training, then once per evaluation), MLQA-R once (the training corpus)."""
    from mdr.cli.train import train

    reads = Counter()
    read_tatoeba, read_lareqa = sources.read_tatoeba, sources.read_lareqa

    def counted_tatoeba(*args, **kwargs):
        reads["tatoeba"] += 1
        return read_tatoeba(*args, **kwargs)

    def counted_lareqa(data_dir, name, *args, **kwargs):
        reads[name] += 1
        return read_lareqa(data_dir, name, *args, **kwargs)

    monkeypatch.setattr(sources, "read_tatoeba", counted_tatoeba)
    monkeypatch.setattr(sources, "read_lareqa", counted_lareqa)
    run_dir = tmp_path / "run"
    overrides = quick_tiny_overrides(tiny_model_dir, run_dir, data_dir, "merge.wise=[0.5,1.0]")
    report = train(compose_cfg("train", in_process(overrides)))
    assert reads == Counter({"tatoeba": 1, "mlqa_r": 1})
    assert (run_dir / "merged" / "wise0.5" / "metrics.json").exists()
    assert report["datasets"]["tatoeba"]["languages"] == ["deu", "spa"]


def test_the_plan_is_built_before_the_model_loads(tmp_path, data_dir):
    """A bad evaluation setting fails from the plan, with the model name never looked at."""
    from mdr.cli.train import train
    from mdr.runtime.errors import InputError

    cfg = compose_cfg(
        "train",
        [
            f"paths.output_dir={tmp_path}",
            f"paths.data_dir={data_dir}",
            "model.encoder.name=/nope",
            "model.encoder.offline_fallback=null",
            "eval.datasets=[squad]",
        ],
    )
    with pytest.raises(InputError, match="unknown evaluation dataset 'squad'"):
        train(cfg)
