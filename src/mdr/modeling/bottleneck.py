"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021), attached to a Hugging Face encoder.

Why not the ``adapters`` library: its releases pin transformers~=4.57 and import names removed from
huggingface_hub 1.x, so it cannot be installed beside the transformers 5 this project runs on. The
method is small: after a sub-layer's output projection, ``h + up(act(down(h)))`` with ``up`` starting
at zero (the adapted model equals the base model at step 0), base weights frozen.

Placement, as the ``adapters`` library names it:
- ``pfeiffer`` (``seq_bn``): one adapter per layer, after the feed-forward output projection;
- ``houlsby`` (``double_seq_bn``): also one after the attention output projection.

The adapter is a child of the projection it follows (``...output.dense.bottleneck_adapter``) and runs in a
forward hook, so the base weights keep their names: checkpoints of the base load unchanged, and the
adapter weights are exactly the parameter names containing ``bottleneck_adapter``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from mdr.runtime.errors import InputError, MissingInputError

ADAPTER_ATTR = "bottleneck_adapter"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"

# regexes over module names, per HF ``config.model_type``: where each placement puts adapters
TARGETS = {
    "bert": {
        "ffn": r"(^|\.)layer\.\d+\.output\.dense$",
        "attn": r"(^|\.)layer\.\d+\.attention\.output\.dense$",
    },
    "mbart": {"ffn": r"(^|\.)layers\.\d+\.fc2$", "attn": r"(^|\.)layers\.\d+\.self_attn\.out_proj$"},
}
TARGETS["xlm-roberta"] = TARGETS["roberta"] = TARGETS["bert"]
PLACEMENTS = {"pfeiffer": ("ffn",), "houlsby": ("attn", "ffn")}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}


class BottleneckAdapter(nn.Module):
    """``h + up(act(down(h)))`` with a ``hidden // reduction_factor`` bottleneck; identity at initialisation."""

    def __init__(self, hidden: int, reduction_factor: int = 16, non_linearity: str = "relu"):
        super().__init__()
        if non_linearity not in ACTIVATIONS:
            raise InputError(
                f"finetune.non_linearity={non_linearity!r} is unknown; choose one of {sorted(ACTIVATIONS)}"
            )
        bottleneck = hidden // reduction_factor
        if bottleneck < 1:
            raise InputError(
                f"finetune.reduction_factor={reduction_factor} leaves no bottleneck for hidden size "
                f"{hidden}: use a reduction factor <= {hidden}"
            )
        self.reduction_factor, self.non_linearity = reduction_factor, non_linearity
        self.down = nn.Linear(hidden, bottleneck)
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))


def _run_adapter(module: nn.Module, args, output):
    adapter = getattr(module, ADAPTER_ATTR, None)
    return output if adapter is None else adapter(output)


def target_names(
    model: nn.Module, placement: str = "pfeiffer", patterns: list[str] | None = None
) -> list[str]:
    """Names of the Linear layers that get an adapter after them."""
    if placement not in PLACEMENTS:
        raise InputError(f"finetune.placement={placement!r} is unknown; choose one of {sorted(PLACEMENTS)}")
    if patterns is None:
        model_type = model.config.model_type
        if model_type not in TARGETS:
            raise InputError(
                f"no default adapter placement for model type {model_type!r}: set finetune.targets=[...] "
                "to regexes over the names of the Linear layers to follow"
            )
        patterns = [TARGETS[model_type][site] for site in PLACEMENTS[placement]]
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(re.search(p, n) for p in patterns)
    ]
    if not names:
        raise InputError(
            f"adapter targets {patterns} match no Linear layer of {type(model).__name__}: "
            "fix finetune.targets"
        )
    return names


def add_adapters(
    model: nn.Module,
    reduction_factor: int = 16,
    non_linearity: str = "relu",
    placement: str = "pfeiffer",
    targets: list[str] | None = None,
) -> dict:
    """Attach adapters in place, freeze everything else; returns the adapter config (saved with the weights)."""
    names = target_names(model, placement, targets)
    for p in model.parameters():
        p.requires_grad_(False)
    modules = dict(model.named_modules())
    for name in names:
        linear = modules[name]
        adapter = BottleneckAdapter(linear.out_features, reduction_factor, non_linearity)
        adapter.placement = placement
        adapter.to(device=linear.weight.device, dtype=linear.weight.dtype)
        setattr(linear, ADAPTER_ATTR, adapter)
        linear.register_forward_hook(_run_adapter)
    return {
        "reduction_factor": reduction_factor,
        "non_linearity": non_linearity,
        "placement": placement,
        "targets": names,
    }


def attached_adapters(model: nn.Module) -> dict | None:
    """The config of the adapters attached to ``model`` (what ``add_adapters`` returned), read from the
    adapters themselves; None when it has none."""
    found = [(n, getattr(m, ADAPTER_ATTR)) for n, m in model.named_modules() if hasattr(m, ADAPTER_ATTR)]
    if not found:
        return None
    first = found[0][1]
    return {
        "reduction_factor": first.reduction_factor,
        "non_linearity": first.non_linearity,
        "placement": first.placement,
        "targets": [n for n, _ in found],
    }


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if f".{ADAPTER_ATTR}." in k
    }


def remove_adapters(model: nn.Module) -> nn.Module:
    """Detach every adapter and its hook in place (used on a copy when exporting the base)."""
    for module in model.modules():
        if hasattr(module, ADAPTER_ATTR):
            delattr(module, ADAPTER_ATTR)
            for key, hook in list(module._forward_hooks.items()):
                if hook is _run_adapter:
                    del module._forward_hooks[key]
    return model


def save_adapters(model: nn.Module, config: dict, out_dir: str | Path) -> Path:
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model), str(out / WEIGHTS_FILE))
    (out / CONFIG_FILE).write_text(json.dumps({"method": "bottleneck", **config}, indent=2))
    return out


def load_adapters(model: nn.Module, adapter_dir: str | Path) -> nn.Module:
    """Attach the adapters saved in ``adapter_dir`` (by ``save_adapters``) to the base ``model``."""
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / CONFIG_FILE).is_file() or not (adapter_dir / WEIGHTS_FILE).is_file():
        raise MissingInputError(
            f"{adapter_dir} has no {CONFIG_FILE} / {WEIGHTS_FILE}: pass the adapter/ folder "
            "of an export written with finetune=adapter"
        )
    config = json.loads((adapter_dir / CONFIG_FILE).read_text())
    targets = [f"^{re.escape(n)}$" for n in config["targets"]]
    add_adapters(model, config["reduction_factor"], config["non_linearity"], config["placement"], targets)
    weights = load_file(str(adapter_dir / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if f".{ADAPTER_ATTR}." in k]
    if missing or unexpected:
        raise InputError(
            f"adapter weights in {adapter_dir} do not fit this model (missing {missing[:3]}, "
            f"unexpected {list(unexpected)[:3]}): load them into the base model they were trained on"
        )
    return model
