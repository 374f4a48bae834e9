"""Export a trained encoder as a folder that loads with ``SentenceTransformer(path)`` and ``AutoModel``.

LoRA weights are merged into the base weights first. The sentence-transformers folder layout is
written by the installed sentence-transformers itself (its format changes between versions), with
the encoder's pooling, normalisation and query / passage prefixes as named prompts. A model card
(``README.md``) records the training config and the headline metrics.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def merged_backbone(encoder):
    """The HF model with any LoRA adapters merged in (the encoder itself is left untouched)."""
    model = encoder.model
    if hasattr(model, "merge_and_unload"):  # peft
        return copy.deepcopy(model).merge_and_unload()
    return model


def export_encoder(encoder, out_dir: str | Path, metrics: dict | None = None, config: dict | None = None) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    out = Path(out_dir)
    hf_dir = out / "_hf"
    model = merged_backbone(encoder)
    model.save_pretrained(hf_dir)
    encoder.tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir))
    transformer.max_seq_length = encoder.passage_max_length
    modules = [transformer, Pooling(model.config.hidden_size, pooling_mode=encoder.pooling)]
    if getattr(encoder, "dense", None) is not None:  # e.g. LaBSE's head
        dense = Dense(encoder.dense.in_features, encoder.dense.out_features, bias=encoder.dense.bias is not None,
                      activation_function=encoder.dense_activation)
        dense.linear.load_state_dict(encoder.dense.state_dict())
        modules.append(dense)
    if encoder.normalize:
        modules.append(Normalize())
    prompts = {"query": encoder.query_prefix, "passage": encoder.passage_prefix}
    st = SentenceTransformer(modules=modules, prompts=prompts, similarity_fn_name="cosine", device="cpu")
    st.save(str(out))
    import shutil

    shutil.rmtree(hf_dir)
    (out / "README.md").write_text(model_card(encoder, metrics, config))
    log.info("exported %s (SentenceTransformer / AutoModel folder)", out)
    return out


def model_card(encoder, metrics: dict | None, config: dict | None) -> str:
    lines = [
        "---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity",
        "tags: [multilingual, dense-retrieval, hybrid-batch-training]", "---", "",
        f"# {Path(str(encoder.name)).name} fine-tuned with mdr", "",
        f"Base model: `{encoder.name}` (loaded from `{encoder.path}`). Pooling: {encoder.pooling}, "
        f"L2-normalised: {encoder.normalize}. Prefixes: query `{encoder.query_prefix!r}`, passage "
        f"`{encoder.passage_prefix!r}` (stored as the prompts `query` and `passage`).", "",
        "```python", "from sentence_transformers import SentenceTransformer", "model = SentenceTransformer(PATH)",
        "q = model.encode(['question'], prompt_name='query')", "p = model.encode(['passage'], prompt_name='passage')",
        "```", "",
    ]
    if metrics and metrics.get("headline"):
        lines += ["## Results (mAP; see metrics.json in the run folder)", "",
                  "| dataset | mono | cross | multi | rank distance |", "|---|---|---|---|---|"]
        for name, h in metrics["headline"].items():
            if "mono_map" in h:
                lines.append(f"| {name} | {h['mono_map']:.4f} | {h['cross_map']:.4f} | {h['multi_map']:.4f} | "
                             f"{h['rank_distance']:.1f} |")
        lines.append("")
    if config:
        lines += ["## Training config", "", "```json", json.dumps(config, indent=2, default=str), "```", ""]
    return "\n".join(lines)
