"""Provenance is captured when a run starts and carried unchanged into metrics.json; the report's seed blocks
come from it (CPU kind and major library versions, never the commit)."""

import json
import subprocess

import pytest

from mdr.runtime.provenance import PROVENANCE_FILE, block_of, code_state, record_start


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@t")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-qm", "one")
    return tmp_path


def test_code_state_names_the_commit_and_hashes_the_uncommitted_diff(repo):
    clean = code_state(repo)
    assert len(clean["git_commit"]) == 40 and clean["dirty"] is False and clean["diff_sha256"] is None
    (repo / "a.py").write_text("x = 2\n")
    first = code_state(repo)
    (repo / "a.py").write_text("x = 3\n")
    second = code_state(repo)
    assert first["dirty"] and second["dirty"] and first["git_commit"] == clean["git_commit"]
    assert first["diff_sha256"] != second["diff_sha256"]  # two different edits are told apart
    (repo / "untracked.py").write_text("y = 1\n")  # untracked files are not the code the run imports from git
    assert code_state(repo)["diff_sha256"] == second["diff_sha256"]


def test_the_start_block_survives_a_moved_checkout_and_a_resume(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("MDR_PROJECT_ROOT", str(repo))
    run_dir = tmp_path / "run"
    start = record_start(run_dir, {"train": "32-true"})
    (repo / "a.py").write_text("x = 9\n")
    _git(repo, "commit", "-qam", "two")  # the checkout moves while the run trains
    resumed = record_start(run_dir, {"train": "32-true"})
    on_disk = json.loads((run_dir / PROVENANCE_FILE).read_text())
    assert on_disk["git_commit"] == start["git_commit"] == resumed["git_commit"]
    assert (
        on_disk["resumes"][0]["git_commit"] != start["git_commit"]
    )  # the resume's code is visible beside it
    assert on_disk["precision"] == {"train": "32-true"} and on_disk["source"] == "recorded"


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    block = record_start(tmp_path / "run")
    assert block["cpu"] and not (tmp_path / "run" / PROVENANCE_FILE).exists()


def test_blocks_follow_cpu_kind_and_major_versions_not_the_commit():
    base = {"cpu": "AMD EPYC", "cpu_flags": ["avx2", "avx512f", "avx512_bf16"], "git_commit": "a" * 40,
            "versions": {"torch": "2.14.1+cu130", "transformers": "5.25.0"}}  # fmt: skip
    assert block_of(base) == block_of({**base, "git_commit": "b" * 40})
    assert block_of(base) == block_of({**base, "versions": {"torch": "2.14.0", "transformers": "5.1.0"}})
    assert block_of(base) != block_of({**base, "versions": {"torch": "2.15.0", "transformers": "5.25.0"}})
    assert block_of(base) != block_of({**base, "cpu": "Intel Xeon"})
    assert block_of(base) != block_of({**base, "cpu_flags": ["avx2"]})  # the first-generation EPYC
    assert block_of(None) == "unknown"


def test_a_training_run_records_its_start_block_in_metrics(tiny_run):
    m = json.loads((tiny_run.dir / "metrics.json").read_text())
    start = json.loads((tiny_run.dir / PROVENANCE_FILE).read_text())
    assert m["provenance"] == start
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert start["git_commit"] == head and start["precision"]["train"] == m["train"]["precision"]
    assert set(start["versions"]) >= {"torch", "transformers", "lightning"}
    first_checkpoint = min(p.stat().st_mtime for p in (tiny_run.dir / "checkpoints").glob("*.ckpt"))
    assert (tiny_run.dir / PROVENANCE_FILE).stat().st_mtime <= first_checkpoint  # written before training
