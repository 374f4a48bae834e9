"""Export without false alarms: no missing-weights report for the pooler that mean pooling never uses, but an
export that really lacks weights fails loudly. Run in a subprocess: what a user's terminal shows."""

import subprocess
import sys

import pytest

EXPORT = """
import sys
from mdr.modeling.encoder import DualEncoder
from mdr.modeling.export import export_encoder
enc = DualEncoder(sys.argv[1], query_prefix="query: ", passage_prefix="passage: ")
export_encoder(enc, sys.argv[2], metrics=None, config=None)
print("EXPORTED")
"""

LOAD = """
import sys
import numpy as np
from sentence_transformers import SentenceTransformer
from mdr.modeling.encoder import DualEncoder
from mdr.modeling.export import load_export
texts = ["Wer schrieb das Buch?", "列车中午出发。"]
plain = SentenceTransformer(sys.argv[2])
print("POOLER", getattr(plain[0].auto_model, "pooler", None) is not None)
ours = DualEncoder(sys.argv[1], query_prefix="query: ").encode(texts, "query", show_progress=False, precision="fp32")
theirs = load_export(sys.argv[2]).encode(texts, prompt_name="query", normalize_embeddings=True)
print("MAXDIFF", float(np.abs(ours - theirs).max()))
"""


def python(code, *args):
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("export") / "model"
    code, printed = python(EXPORT, tiny_model_dir, out)
    assert code == 0 and "EXPORTED" in printed, printed[-3000:]
    return out, printed


@pytest.mark.slow
def test_export_and_reload_print_no_missing_weights_report(export_dir, tiny_model_dir):
    out, printed_by_export = export_dir
    code, printed_by_load = python(LOAD, tiny_model_dir, out)
    assert code == 0, printed_by_load[-3000:]
    for printed in (printed_by_export, printed_by_load):
        assert "MISSING" not in printed and "LOAD REPORT" not in printed, printed[-3000:]
    assert "POOLER False" in printed_by_load  # no randomly initialised pooler is built or shipped
    assert float(printed_by_load.split("MAXDIFF")[1].split()[0]) < 1e-5


@pytest.mark.slow
def test_an_export_that_lacks_weights_fails_loudly(export_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from mdr.modeling.export import ExportError, load_export

    broken = tmp_path / "broken"
    shutil.copytree(export_dir[0], broken)
    weights = load_file(str(broken / "model.safetensors"))
    dropped = "encoder.layer.1.output.dense.weight"
    save_file({k: v for k, v in weights.items() if k != dropped}, str(broken / "model.safetensors"))
    with pytest.raises(ExportError, match=rf"lacks 1 weights .*{dropped}.*export the run again"):
        load_export(broken)
    code, printed = python(
        "import sys; from sentence_transformers import SentenceTransformer; SentenceTransformer(sys.argv[1])",
        broken,
    )
    assert (
        "MISSING" in printed and dropped in printed
    )  # the plain loader still reports a really missing weight
