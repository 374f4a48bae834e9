"""What report.py reads: per-query archives, claims files and results folders; a damaged one is named in one
line (exit 2), nothing written."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import ROOT, assert_one_line, run_entry

from mdr.runtime.errors import InputError

BAD_BYTES = b"\xff\xfe not utf-8"


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


def test_report_py_bad_archive_is_one_line(tmp_path, archived_cell):
    root = damaged_copy(archived_cell, tmp_path, PER_QUERY_CASES["truncated"][0])
    proc = run_entry("report.py", str(root), "--baseline", "sampler=xx", "--permutations", "100")
    assert_one_line(proc, "report.py", PER_QUERY_CASES["truncated"][1])
    assert not (root / "results.md").exists()


def test_claims_yaml_in_repo_still_loads():
    """The shipped claims file passes the stricter reader."""
    from mdr.report.claims import load_claims

    raw = yaml.safe_load((ROOT / "conf" / "claims" / "hybrid_2408.10536.yaml").read_text())
    claims = load_claims(ROOT / "conf" / "claims" / "hybrid_2408.10536.yaml")
    assert len(claims) == len(raw["claims"]) and sum(c.family == "primary" for c in claims) == 7


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
