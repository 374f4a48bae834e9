"""Readers (LAReQA, JSONL, mMARCO fixture), article splits, and their errors on bad input."""

import json

import pytest

from mdr.data.errors import DataFormatError
from mdr.data.jsonl import read_parallel_jsonl
from mdr.data.lareqa import group_ids_by_article, read_lareqa, retrieval_set
from mdr.data.splits import split_ids_by_group

XQUAD_CANDIDATES = {
    "ar": 1222,
    "de": 1276,
    "el": 1234,
    "en": 1180,
    "es": 1215,
    "hi": 1244,
    "ru": 1219,
    "th": 852,
    "tr": 1167,
    "vi": 1209,
    "zh": 1196,
}
MLQA_COUNTS = {
    "ar": (517, 2545),
    "de": (512, 2362),
    "en": (1148, 6264),
    "es": (500, 1787),
    "hi": (507, 2426),
    "vi": (511, 2828),
    "zh": (504, 2322),
}


def test_xquad_counts(xquad_files):
    assert {lang: len(f.sentences) for lang, f in xquad_files.items()} == XQUAD_CANDIDATES
    assert all(len(f.questions) == 1190 for f in xquad_files.values())


def test_mlqa_counts(mlqa_files):
    assert {lang: (len(f.questions), len(f.sentences)) for lang, f in mlqa_files.items()} == MLQA_COUNTS
    rs = retrieval_set(mlqa_files, "mlqa_r")
    assert len(rs.cand_uids) == 20534 and len(set(rs.cand_uids)) == 20534


def test_candidates_are_cut_with_sentence_breaks(data_dir, xquad_files):
    doc = json.loads((data_dir / "xquad-r" / "tr.json").read_text())
    differing = 0
    cut = iter(t for _, _, t in xquad_files["tr"].sentences)
    for art in doc["data"]:
        for para in art["paragraphs"]:
            for (b0, b1), listed in zip(para["sentence_breaks"], para["sentences"]):
                ours = next(cut)
                assert ours == para["context"][b0:b1]
                differing += ours != listed
    assert differing == 2  # the two mis-encoded "1/2" sentences of README


def test_answer_sentence_holds_answer_start(data_dir, xquad_corpus):
    doc = json.loads((data_dir / "xquad-r" / "en.json").read_text())
    para = doc["data"][0]["paragraphs"][0]
    qa = para["qas"][0]
    start = qa["answers"][0]["answer_start"]
    ((b0, b1),) = [b for b in para["sentence_breaks"] if b[0] <= start < b[1]]
    ex = xquad_corpus.get(qa["id"], "en")
    assert ex.positive == para["context"][b0:b1]
    assert qa["answers"][0]["text"] in ex.positive
    assert len(ex.negatives) == len(para["sentence_breaks"]) - 1 and ex.positive not in ex.negatives


def test_mlqa_ids_exist_only_in_some_languages(mlqa_corpus):
    n_langs = [len(mlqa_corpus.langs_of(i)) for i in mlqa_corpus.ids]
    assert len(mlqa_corpus.ids) == 1148
    assert (n_langs.count(4), n_langs.count(3), n_langs.count(2)) == (820, 263, 65)


def test_article_split_is_deterministic_and_disjoint(mlqa_files, mlqa_corpus):
    train, dev = split_ids_by_group(mlqa_corpus, 0.1, seed=0)
    assert (train, dev) == split_ids_by_group(mlqa_corpus, 0.1, seed=0)
    assert split_ids_by_group(mlqa_corpus, 0.1, seed=1) != (train, dev)
    assert not set(train) & set(dev) and len(train) + len(dev) == 1148
    assert 0.08 < len(dev) / 1148 < 0.14
    # no article of any language has ids on both sides
    dev_set = set(dev)
    for f in mlqa_files.values():
        sides: dict = {}
        for q in f.questions:
            sides.setdefault(q.article, set()).add(q.id in dev_set)
        assert all(len(s) == 1 for s in sides.values())


def test_groups_join_articles_across_languages(mlqa_files):
    groups = group_ids_by_article(mlqa_files)
    for f in mlqa_files.values():
        by_article: dict = {}
        for q in f.questions:
            by_article.setdefault(q.article, set()).add(groups[q.id])
        assert all(len(g) == 1 for g in by_article.values())


def test_zero_shot_protocol_languages(mlqa_corpus, xquad_corpus):
    unseen = sorted(set(xquad_corpus.langs) - set(mlqa_corpus.langs))
    assert unseen == ["el", "ru", "th", "tr"]


# ---- JSONL ----


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_reader(tmp_path):
    p = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"id": "1", "lang": "en", "query": "q1", "positive": "p1", "negatives": ["n1"]},
            {"id": "1", "lang": "de", "query": "q1de", "positive": "p1de"},
            {"id": "2", "lang": "en", "query": "q2", "positive": "p2", "group": "a"},
        ],
    )
    c = read_parallel_jsonl(p)
    assert c.langs == ["de", "en"] and c.ids == ["1", "2"]
    assert c.get("1", "en").negatives == ("n1",) and c.langs_of("1") == ["de", "en"]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "1", "lang": "en", "query": "q"', "not valid JSON"),
        ('{"id": "1", "lang": "en", "query": "q"}', r"missing or empty string field\(s\) \['positive'\]"),
        (
            '{"id": "1", "lang": "en", "query": "q", "positive": "p", "negatives": "x"}',
            "must be a list of strings",
        ),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    p = write_jsonl(tmp_path / "bad.jsonl", [{"id": "0", "lang": "en", "query": "q", "positive": "p"}, line])
    with pytest.raises(DataFormatError, match=f"bad.jsonl:2: .*{message}"):
        read_parallel_jsonl(p)


def test_jsonl_unknown_language(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl", [{"id": "1", "lang": "en", "query": "q", "positive": "p"}])
    with pytest.raises(ValueError, match=r"language\(s\) \['xx'\] have no data"):
        read_parallel_jsonl(p, langs=["en", "xx"])


# ---- mMARCO: the real loader on a tiny local copy in the hub's layout ----


def test_mmarco_loader_on_fixture(tmp_path):
    from mdr.data.mmarco import read_mmarco

    root = tmp_path / "mmarco"
    (root / "data/google/queries/train").mkdir(parents=True)
    (root / "data/google/collections").mkdir(parents=True)
    (root / "data/triples.train.ids.small.tsv").write_text(
        "10\t100\t101\n10\t100\t102\n11\t103\t100\n12\t104\t101\n"
    )
    texts = {"english": ("what is a", "passage"), "german": ("was ist ein", "Passage")}
    for lang, (q, p) in texts.items():
        (root / f"data/google/queries/train/{lang}_queries.train.tsv").write_text(
            "".join(f"{i}\t{q} {i}\n" for i in (10, 11, 12, 13))
        )
        (root / f"data/google/collections/{lang}_collection.tsv").write_text(
            "".join(f"{i}\t{p} {i}\n" for i in range(100, 105))
        )
    c = read_mmarco(["en", "de"], root=str(root), max_queries=2, negatives_per_query=2)
    assert c.langs == ["de", "en"] and c.ids == ["10", "11"]
    assert c.get("10", "de").query == "was ist ein 10" and c.get("10", "de").positive == "Passage 100"
    assert c.get("10", "en").negatives == ("passage 101", "passage 102")
    with pytest.raises(ValueError, match="no language"):
        read_mmarco(["xx"], root=str(root))


# ---- LAReQA bad input ----


def make_lareqa(tmp_path, doc, lang="en", raw=None):
    d = tmp_path / "data" / "xquad-r"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{lang}.json").write_text(raw if raw is not None else json.dumps(doc))
    return tmp_path / "data"


def paragraph(**over):
    p = {
        "context": "One. Two.",
        "sentence_breaks": [[0, 4], [5, 9]],
        "qas": [{"id": "q1", "question": "?", "answers": [{"answer_start": 5, "text": "Two"}]}],
    }
    p.update(over)
    return {"data": [{"title": "t", "paragraphs": [p]}]}


def test_tiny_lareqa_file_reads(tmp_path):
    files = read_lareqa(make_lareqa(tmp_path, paragraph()), "xquad_r")
    assert files["en"].questions[0].answer_sentence == 1


@pytest.mark.parametrize(
    "doc, raw, message",
    [
        (None, '{"data": [', "not valid JSON"),
        (paragraph(sentence_breaks=None), None, "missing 'context' or 'sentence_breaks'"),
        (
            paragraph(qas=[{"id": "q1", "question": "?", "answers": [{"answer_start": 50, "text": "x"}]}]),
            None,
            "answer start 50 .* lies in 0 sentences",
        ),
        (
            {
                "data": [
                    {
                        "title": "t",
                        "paragraphs": [{"context": "One.", "sentence_breaks": [[0, 4]], "qas": []}],
                    }
                ]
            },
            None,
            "no questions",
        ),
        ({"version": "1.1"}, None, "'data' list"),
    ],
)
def test_lareqa_bad_files(tmp_path, doc, raw, message):
    if (
        doc is not None
        and "data" in doc
        and doc["data"]
        and doc["data"][0]["paragraphs"][0].get("sentence_breaks", 1) is None
    ):
        del doc["data"][0]["paragraphs"][0]["sentence_breaks"]
    root = make_lareqa(tmp_path, doc, raw=raw)
    with pytest.raises(DataFormatError, match=message):
        read_lareqa(root, "xquad_r")


def test_missing_data_dir_and_unknown_language(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match="paths.data_dir"):
        read_lareqa(tmp_path / "nope", "xquad_r")
    with pytest.raises(ValueError, match=r"unknown language\(s\) \['xx'\] for mlqa_r"):
        read_lareqa(data_dir, "mlqa_r", ["en", "xx"])
    with pytest.raises(ValueError, match="unknown LAReQA dataset"):
        read_lareqa(data_dir, "squad")
