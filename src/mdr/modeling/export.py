"""Export a trained encoder as a folder that loads with ``SentenceTransformer(path)`` and ``AutoModel``.

LoRA weights are merged into the base weights first. Bottleneck adapters cannot be merged (they are
non-linear): their export is ``base/`` (the unadapted backbone as a sentence-transformers folder) plus
``adapter/``, loaded together by ``load_export(path)``; ``SentenceTransformer(path)`` on such a folder fails
rather than silently giving the base model. The sentence-transformers folder layout is
written by the installed sentence-transformers itself (its format changes between versions), with
the encoder's pooling, normalisation and query / passage prefixes as named prompts. A model card
(``README.md``) records the training config and the headline metrics.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

from mdr.runtime.markdown import markdown_table

log = logging.getLogger(__name__)


def merged_backbone(encoder):
    """The HF model with any LoRA adapters merged in (the encoder itself is left untouched)."""
    model = encoder.model
    if hasattr(model, "merge_and_unload"):  # peft
        return copy.deepcopy(model).merge_and_unload()
    return model


def export_encoder(
    encoder, out_dir: str | Path, metrics: dict | None = None, config: dict | None = None
) -> Path:
    from mdr.modeling.bottleneck import attached_adapters, remove_adapters, save_adapters

    out = Path(out_dir)
    adapter_config = attached_adapters(encoder.model)
    if adapter_config is None:
        write_sentence_transformer(encoder, merged_backbone(encoder), out)
    else:
        write_sentence_transformer(encoder, remove_adapters(copy.deepcopy(encoder.model)), out / "base")
        save_adapters(encoder.model, adapter_config, out / "adapter")
    (out / "README.md").write_text(model_card(encoder, metrics, config, adapter_config))
    log.info("exported %s", out)
    return out


class ExportError(RuntimeError):
    """An export folder lacks weights its model needs (loading it would silently use random ones)."""


def load_export(path: str | Path, device: str = "cpu"):
    """Load an export as a ``SentenceTransformer`` (attaching bottleneck adapters when it has them), after
    checking that its weight file holds every weight the model uses."""
    from sentence_transformers import SentenceTransformer

    from mdr.modeling.bottleneck import load_adapters

    path = Path(path)
    base = path / "base" if (path / "adapter").is_dir() else path
    check_export_weights(base)
    if base == path:
        return SentenceTransformer(str(path), device=device)
    st = SentenceTransformer(str(base), device=device)
    load_adapters(st[0].auto_model, path / "adapter")
    return st


def write_sentence_transformer(encoder, model, out: Path) -> None:
    """Write ``model`` (a plain HF backbone) with the encoder's pooling, head, normalisation and prompts."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    hf_dir = out / "_hf"
    model.save_pretrained(hf_dir)
    encoder.tokenizer.save_pretrained(hf_dir)
    load_kwargs = backbone_load_kwargs(model)
    transformer = Transformer(str(hf_dir), **{transformer_kwargs_name(Transformer): load_kwargs})
    transformer.max_seq_length = encoder.passage_max_length
    modules = [transformer, Pooling(model.config.hidden_size, pooling_mode=encoder.pooling)]
    if getattr(encoder, "dense", None) is not None:  # e.g. LaBSE's head
        dense = Dense(
            encoder.dense.in_features,
            encoder.dense.out_features,
            bias=encoder.dense.bias is not None,
            activation_function=encoder.dense_activation,
        )
        dense.linear.load_state_dict(encoder.dense.state_dict())
        modules.append(dense)
    if encoder.normalize:
        modules.append(Normalize())
    prompts = {"query": encoder.query_prefix, "passage": encoder.passage_prefix}
    st = SentenceTransformer(modules=modules, prompts=prompts, similarity_fn_name="cosine", device="cpu")
    st.save(str(out))
    import shutil

    shutil.rmtree(hf_dir)
    if load_kwargs:  # every later SentenceTransformer(out) loads the backbone the same way, without a pooler
        config_path = out / "sentence_bert_config.json"
        config = json.loads(config_path.read_text())
        config["model_args"] = load_kwargs  # the key every sentence-transformers version >= 3 reads
        config_path.write_text(json.dumps(config, indent=2))
    check_export_weights(out)


def backbone_load_kwargs(model) -> dict:
    """Load-time arguments that leave out a pooler the encoder never uses: BERT-style models build one by
    default, and loading weights saved without it would report its weights as missing (a false alarm)."""
    import inspect

    takes = "add_pooling_layer" in inspect.signature(type(model).__init__).parameters
    return {"add_pooling_layer": False} if takes else {}


def transformer_kwargs_name(transformer_cls) -> str:
    """sentence-transformers renamed ``model_args`` to ``model_kwargs`` (v5)."""
    import inspect

    return (
        "model_kwargs"
        if "model_kwargs" in inspect.signature(transformer_cls.__init__).parameters
        else "model_args"
    )


def check_export_weights(folder: Path) -> None:
    """Raise ``ExportError`` when the folder's weight file lacks a weight its model class needs."""
    import torch
    import transformers
    from safetensors import safe_open

    config = transformers.AutoConfig.from_pretrained(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ExportError(
            f"{folder} has no *.safetensors weight file: the export is incomplete; export the run again"
        )
    saved: set[str] = set()
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            saved.update(fh.keys())
    sentence_config = folder / "sentence_bert_config.json"
    kwargs = json.loads(sentence_config.read_text()).get("model_args", {}) if sentence_config.exists() else {}
    arch = getattr(transformers, (config.architectures or ["AutoModel"])[0], None)
    with torch.device("meta"):
        skeleton = (
            arch(config, **kwargs)
            if arch is not None
            else transformers.AutoModel.from_config(config, **kwargs)
        )
    missing = sorted(set(skeleton.state_dict()) - saved)
    if missing:
        raise ExportError(
            f"{folder} lacks {len(missing)} weights its {type(skeleton).__name__} needs (e.g. {missing[:3]}): "
            "loading it would use random values for them; export the run again"
        )


def model_card(encoder, metrics: dict | None, config: dict | None, adapters: dict | None = None) -> str:
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        "tags: [multilingual, dense-retrieval, hybrid-batch-training]",
        "---",
        "",
        f"# {Path(str(encoder.name)).name} fine-tuned with mdr",
        "",
        f"Base model: `{encoder.name}` (loaded from `{encoder.path}`). Pooling: {encoder.pooling}, "
        f"L2-normalised: {encoder.normalize}. Prefixes: query `{encoder.query_prefix!r}`, passage "
        f"`{encoder.passage_prefix!r}` (stored as the prompts `query` and `passage`).",
        "",
    ]
    if adapters is None:
        lines += [
            "```python",
            "from sentence_transformers import SentenceTransformer",
            "model = SentenceTransformer(PATH)",
        ]
    else:
        a = adapters
        lines += [
            f"Fine-tuned with bottleneck adapters ({a['placement']}, reduction factor {a['reduction_factor']}, "
            f"{a['non_linearity']}, {len(a['targets'])} adapters). **`base/` alone is the untrained backbone**: "
            "load it with its adapters (needs this project, `pip install mdr`):",
            "",
            "```python",
            "from mdr.modeling.export import load_export",
            "model = load_export(PATH)  # a SentenceTransformer",
        ]
    lines += [
        "q = model.encode(['question'], prompt_name='query')",
        "p = model.encode(['passage'], prompt_name='passage')",
        "```",
        "",
    ]
    if metrics and metrics.get("headline"):
        lines += [
            "## Results (mAP; see metrics.json in the run folder)",
            "",
        ]
        rows = [
            [
                name,
                *(f"{h[k]:.4f}" for k in ("mono_map", "cross_map", "multi_map")),
                f"{h['rank_distance']:.1f}",
            ]
            for name, h in metrics["headline"].items()
            if "mono_map" in h
        ]
        lines += [markdown_table(["dataset", "mono", "cross", "multi", "rank distance"], rows), ""]
    if config:
        lines += ["## Training config", "", "```json", json.dumps(config, indent=2, default=str), "```", ""]
    return "\n".join(lines)
