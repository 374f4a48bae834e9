"""Memory-mapped training corpora (issue #31): the Arrow store gives the samplers the very batches the
in-memory corpus gave, its cache is built once and reused, and bad lines still name their file and line."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_DIR

from mdr.data.jsonl import read_parallel_jsonl
from mdr.data.sources import load_training_corpus
from mdr.data.splits import split_corpus, split_ids_by_group
from mdr.runtime.errors import InputError
from mdr.training.samplers import HybridSampler, MixedSampler, XXSampler, XYSampler

REFERENCE = Path(__file__).parent / "data" / "batch_plans_reference.json"
LANGS = ["ar", "de", "en", "es", "hi", "vi", "zh"]


def write_gappy_jsonl(path: Path, n_ids: int = 300, seed: int = 7) -> Path:
    """Parallel JSONL where ids miss some languages, groups span several ids and ids are not in sorted order."""
    rng = random.Random(seed)
    lines = []
    for k in rng.sample(range(n_ids), n_ids):
        langs = [lang for lang in LANGS if rng.random() < 0.7] or ["en"]
        for lang in langs:
            row = {
                "id": f"q{k}",
                "lang": lang,
                "query": f"query {k} {lang}",
                "positive": f"passage {k} {lang}",
            }
            if k % 3 == 0:
                row["negatives"] = [f"negative {k} {lang}"]
            if k % 2 == 0:
                row["group"] = f"g{k // 4}"
            lines.append(json.dumps(row, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _digest(plans) -> str:
    h = hashlib.sha256()
    for p in plans:
        h.update(
            json.dumps([p.step, p.kind, list(p.ids), list(p.query_langs), list(p.passage_langs)]).encode()
        )
    return h.hexdigest()


def _train_split(source: dict):
    """The datamodule's split (through the split cache where the corpus is cached)."""
    corpus, _ = load_training_corpus(source, str(DATA_DIR))
    train, dev = split_corpus(corpus, 0.1, 0)
    assert list(train.ids) == split_ids_by_group(corpus, 0.1, 0)[0]
    return train, list(train.ids), list(dev.ids)


def plan_cases(tmp_dir: Path):
    """(case name, digest of 120 steps' plans) for every sampler on real MLQA-R and on gappy JSONL."""
    sources = {
        "mlqa_r": {"kind": "lareqa", "name": "mlqa_r", "langs": None},
        "jsonl": {"kind": "jsonl", "path": str(write_gappy_jsonl(tmp_dir / "gappy.jsonl")), "langs": None},
        "jsonl_4langs": {
            "kind": "jsonl",
            "path": str(tmp_dir / "gappy.jsonl"),
            "langs": ["de", "en", "hi", "zh"],
        },
    }
    # the cached corpus and its cached split, built (first) and then mapped (again), in all and in 4 languages
    for name in ("jsonl", "jsonl_4langs"):
        for when in ("cached", "cached_again"):
            sources[f"{name}_{when}"] = {**sources[name], "cache_dir": str(tmp_dir / "cache")}
    samplers = {
        "xx": lambda c: XXSampler(c, 8, seed=3),
        "xx_proportional": lambda c: XXSampler(c, 8, seed=3, weighting="proportional"),
        "xy": lambda c: XYSampler(c, 8, seed=3),
        "xy_proportional": lambda c: XYSampler(c, 8, seed=3, weighting="proportional"),
        "xy_per_example": lambda c: XYSampler(c, 8, seed=3, per_example=True),
        "hybrid": lambda c: HybridSampler(c, 8, seed=3, alpha=0.5),
        "mixed": lambda c: MixedSampler(c, 8, seed=3),
        "mixed_proportional": lambda c: MixedSampler(c, 8, seed=3, weighting="proportional"),
    }
    for source_name, source in sources.items():
        train, train_ids, dev_ids = _train_split(source)
        yield f"{source_name}/split", hashlib.sha256(json.dumps([train_ids, dev_ids]).encode()).hexdigest()
        for name, make in samplers.items():
            sampler = make(train)
            yield f"{source_name}/{name}", _digest(sampler.plan(s) for s in range(120))


def test_batch_plans_equal_the_in_memory_corpus_plans(tmp_path):
    """Every sampler's first 120 plans, and the dev split, equal those of the in-memory corpus (the
    reference digests were written by the samplers before the Arrow store existed)."""
    expected = json.loads(REFERENCE.read_text())["digests"]
    got = dict(plan_cases(tmp_path))
    for name in ("jsonl", "jsonl_4langs"):
        plain = {k.split("/")[1]: v for k, v in got.items() if k.split("/")[0] == name}
        for when in ("cached", "cached_again"):
            cached = {k.split("/")[1]: v for k, v in got.items() if k.split("/")[0] == f"{name}_{when}"}
            assert cached == plain, f"the {when} corpus of {name} gave other splits or plans"
    got = {k: v for k, v in got.items() if "_cached" not in k}
    assert got.keys() == expected.keys()
    differing = [k for k in expected if got[k] != expected[k]]
    assert not differing, f"batch plans changed for {differing}"


def _read_reference(path: Path) -> dict:
    """The file parsed with json alone: (id, lang) -> (query, positive, negatives, group)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out[(row["id"], row["lang"])] = (
            row["query"],
            row["positive"],
            tuple(row.get("negatives", [])),
            row.get("group", row["id"]),
        )
    return out


def test_cached_corpus_holds_every_example_and_gives_the_same_batches(tmp_path):
    path = write_gappy_jsonl(tmp_path / "gappy.jsonl")
    cache = tmp_path / "cache"
    corpus = read_parallel_jsonl(path, cache_dir=cache)
    assert isinstance(corpus.index.rows, np.memmap), "the index is mapped from the cache, not rebuilt"
    reference = _read_reference(path)
    assert len(corpus) == len(reference) and len(corpus.ids) == len({i for i, _ in reference})
    for (id_, lang), (query, positive, negatives, group) in reference.items():
        ex = corpus.get(id_, lang)
        assert (ex.query, ex.positive, ex.negatives, ex.group) == (query, positive, negatives, group)
    in_memory = read_parallel_jsonl(path)
    assert list(corpus.examples) == list(in_memory.examples) == corpus.examples[:], (
        "bulk and one-by-one reads differ"
    )
    for make in (lambda c: HybridSampler(c, 8, seed=1), lambda c: MixedSampler(c, 8, seed=1)):
        assert _digest(make(corpus).plan(s) for s in range(60)) == _digest(
            make(in_memory).plan(s) for s in range(60)
        )


def test_cache_is_built_once_and_rebuilt_when_the_file_changes(tmp_path, monkeypatch):
    from mdr.data import jsonl

    path = write_gappy_jsonl(tmp_path / "gappy.jsonl")
    cache = tmp_path / "cache"
    reads = []
    original = jsonl.parallel_rows
    monkeypatch.setattr(jsonl, "parallel_rows", lambda p: reads.append(p) or original(p))
    first = read_parallel_jsonl(path, cache_dir=cache)
    second = read_parallel_jsonl(path, cache_dir=cache)
    assert len(reads) == 1, "the second start parsed the file again"
    assert second.ids == first.ids and len(second) == len(first)
    path.write_text(
        path.read_text() + json.dumps({"id": "new", "lang": "en", "query": "q", "positive": "p"}) + "\n"
    )
    third = read_parallel_jsonl(path, cache_dir=cache)
    assert len(reads) == 2 and len(third) == len(first) + 1 and "new" in third.ids
    folders = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert len(folders) == 2 and not any(".tmp-" in f for f in folders)


def _read_in_child(path, cache, log_file):
    import logging

    logging.basicConfig(filename=log_file, level=logging.INFO)
    corpus = read_parallel_jsonl(path, cache_dir=cache)
    return len(corpus)


def test_concurrent_ranks_build_the_cache_once(tmp_path):
    """Two processes starting together (two ranks of a node): one builds, the other waits and maps it."""
    import multiprocessing as mp

    path = write_gappy_jsonl(tmp_path / "gappy.jsonl", n_ids=3000)
    cache = tmp_path / "cache"
    logs = [tmp_path / f"rank{r}.log" for r in range(2)]
    with mp.get_context("spawn").Pool(2) as pool:
        sizes = pool.starmap(_read_in_child, [(path, cache, log) for log in logs])
    assert sizes[0] == sizes[1] == len(_read_reference(path))
    built = sum(log.read_text().count("cache: built") for log in logs)
    assert built == 1, f"the cache was built {built} times"


def test_repeated_id_and_language_names_both_lines(tmp_path):
    path = tmp_path / "dup.jsonl"
    rows = [{"id": "a", "lang": "en", "query": "q", "positive": "p"}] * 2
    path.write_text("\n".join(json.dumps(r) for r in [rows[0], {**rows[0], "lang": "de"}, rows[1]]) + "\n")
    with pytest.raises(
        InputError, match=r"id 'a' appears twice in language 'en' \(.*dup.jsonl:1 and .*dup.jsonl:3\)"
    ):
        read_parallel_jsonl(path, cache_dir=tmp_path / "cache")


def test_groups_must_agree_across_languages(tmp_path):
    path = tmp_path / "groups.jsonl"
    rows = [
        {"id": "a", "lang": "en", "query": "q", "positive": "p", "group": "g1"},
        {"id": "a", "lang": "de", "query": "q", "positive": "p", "group": "g2"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(InputError, match="id 'a' has different groups in different languages"):
        read_parallel_jsonl(path, cache_dir=tmp_path / "cache")


def test_mapped_search_corpus_equals_the_lists_across_batches(tmp_path, monkeypatch):
    """A corpus JSONL through the cache (record batches of 7 rows here) reads back as the same docids and texts,
    by index, by slices across batch boundaries and by iteration, and is converted once."""
    from mdr.data import cache_folder, corpus_texts
    from mdr.data.qrels import read_corpus_jsonl

    monkeypatch.setattr(cache_folder, "BATCH_ROWS", 7)
    monkeypatch.setattr(corpus_texts, "BATCH_ROWS", 7)
    path = tmp_path / "corpus.jsonl"
    docs = [{"docid": f"d{i}", "title": "T" if i % 3 == 0 else "", "text": f"text {i} ü"} for i in range(40)]
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    ids, texts = read_corpus_jsonl(path)
    mapped_ids, mapped_texts = corpus_texts.read_corpus_texts(path, tmp_path / "cache")
    assert len(mapped_ids.chunks) == 6 and len(mapped_texts) == 40
    assert list(mapped_ids) == ids and list(mapped_texts) == texts
    assert [mapped_texts[i] for i in (0, 6, 7, 39, -1)] == [texts[i] for i in (0, 6, 7, 39, -1)]
    for a, b in [(0, 40), (5, 16), (7, 14), (13, 13), (30, 99)]:
        assert mapped_texts[a:b] == texts[a:b] and mapped_ids[a:b] == ids[a:b]
    with pytest.raises(IndexError):
        mapped_ids[40]
    calls = []
    monkeypatch.setattr(corpus_texts, "corpus_rows", lambda p: calls.append(p) or iter(()))
    again_ids, _ = corpus_texts.read_corpus_texts(path, tmp_path / "cache")
    assert not calls and list(again_ids) == ids, "the second read converted the file again"


def test_datamodule_on_the_cache_equals_the_datamodule_in_memory(tmp_path):
    """load_data through the cache (mapped index, group ranks read from disk) splits and samples exactly as
    without one, and collates the same first batch."""
    from functools import partial

    from mdr.training.datamodule import Collator, RetrievalDataModule

    path = write_gappy_jsonl(tmp_path / "gappy.jsonl")
    texts = lambda xs, *a: list(xs)  # noqa: E731 - stands in for the tokeniser
    batches, splits = [], []
    for cache in (None, tmp_path / "cache", tmp_path / "cache"):  # in memory, building, mapping
        source = {"kind": "jsonl", "path": str(path), "cache_dir": str(cache) if cache else None}
        dm = RetrievalDataModule(
            train=source,
            data_dir=".",
            sampler_factory=partial(HybridSampler, alpha=0.5),
            batch_size=8,
            seed=2,
        )
        dm.load_data()
        splits.append((list(dm.train_corpus.ids), list(dm.dev_corpus.ids), len(dm.train_corpus)))
        batch = Collator(dm.train_corpus, texts, texts, hard_negatives=1)(dm._rank_sampler.plan(3))
        batches.append({k: v.tolist() if hasattr(v, "tolist") else v for k, v in batch.items()})
        if cache is not None:
            assert isinstance(dm.train_corpus.index.rows, np.memmap), "the split's training index is mapped"
    assert splits[0] == splits[1] == splits[2]
    assert batches[0] == batches[1] == batches[2]


def test_split_is_cached_beside_the_corpus_once_per_setting(tmp_path, monkeypatch):
    """A second start maps the split (no per-id work); another dev fraction, seed or language list is its own
    split folder, equal to the split computed in memory."""
    from mdr.data import splits

    path = write_gappy_jsonl(tmp_path / "gappy.jsonl")
    cache = tmp_path / "cache"
    corpus = read_parallel_jsonl(path, cache_dir=cache)
    computed = []
    original = splits.split_positions_by_group

    def counting(corpus, *args):
        if corpus.cache_folder is not None:  # the in-memory reference below computes its own
            computed.append(args)
        return original(corpus, *args)

    monkeypatch.setattr(splits, "split_positions_by_group", counting)
    settings = [(0.1, 0), (0.1, 0), (0.2, 0), (0.1, 5), (0.1, 0)]
    for fraction, seed in settings:
        train, dev = split_corpus(read_parallel_jsonl(path, cache_dir=cache), fraction, seed, dev_max_ids=7)
        expected_train, expected_dev = split_ids_by_group(read_parallel_jsonl(path), fraction, seed)
        assert list(train.ids) == expected_train and list(dev.ids) == expected_dev[:7]
        assert train.cache_folder is None, "a split side is not itself a cached corpus"
    assert computed == [(0.1, 0), (0.2, 0), (0.1, 5)], "a split was computed again on a later start"
    four = read_parallel_jsonl(path, langs=["de", "en"], cache_dir=cache)
    train, _ = split_corpus(four, 0.1, 0)
    assert train.langs == ["de", "en"] and len(computed) == 4
    assert len([p for p in corpus.cache_folder.glob("split-*") if p.is_dir()]) == 4
    with pytest.raises(InputError, match="dev_fraction"):
        split_corpus(corpus, 1.0, 0)
