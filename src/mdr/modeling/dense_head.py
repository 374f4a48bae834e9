"""A sentence-transformers ``Dense`` layer after pooling (LaBSE has one), loaded from the model's folder or
its hub snapshot."""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

log = logging.getLogger(__name__)


def _dense_dir(path: str) -> str | None:
    """The Dense module folder of a sentence-transformers model (local, or its hub snapshot), if any."""
    import json

    root = path
    if not os.path.isdir(root):
        try:
            from huggingface_hub import snapshot_download

            root = snapshot_download(path, allow_patterns=["modules.json", "*Dense/*"])
        except Exception:  # no hub, no sentence-transformers layout: no head
            return None
    modules = os.path.join(root, "modules.json")
    if not os.path.exists(modules):
        return None
    for m in json.loads(open(modules).read()):
        if m["type"].rsplit(".", 1)[-1] == "Dense":
            return os.path.join(root, m["path"])
    return None


def load_dense_head(path: str) -> tuple[nn.Linear | None, nn.Module | None]:
    """Linear + activation of a sentence-transformers ``Dense`` module (e.g. LaBSE's ``2_Dense``)."""
    import importlib
    import json

    d = _dense_dir(path)
    if d is None:
        log.info("no sentence-transformers Dense head found for %s", path)
        return None, None
    cfg = json.loads(open(os.path.join(d, "config.json")).read())
    linear = nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
    if os.path.exists(os.path.join(d, "model.safetensors")):
        from safetensors.torch import load_file

        state = load_file(os.path.join(d, "model.safetensors"))
    else:
        state = torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cpu", weights_only=True)
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
    module, _, cls = cfg.get("activation_function", "torch.nn.modules.linear.Identity").rpartition(".")
    activation = getattr(importlib.import_module(module), cls)()
    log.info("loaded the Dense head of %s (%d -> %d, %s)", path, linear.in_features, linear.out_features, cls)
    return linear, activation
