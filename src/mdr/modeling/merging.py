"""Weight-space merging of encoders of one backbone: WiSE-FT interpolation with the pretrained weights
(Wortsman et al., CVPR 2022), and weighted averages of several fine-tuned models (model soups, Wortsman et al.,
ICML 2022; LM-Cocktail, Xiao et al. 2023, for embedding models).

What is merged is an encoder's *plain* state: the backbone's weights with any LoRA update merged in (what its
export holds; for LoRA, interpolating with the backbone therefore scales the low-rank delta: theta_pre +
lambda * B A), plus a dense head where the model has one. Bottleneck adapters are refused: they add modules the
pretrained model does not have, so "the pretrained weights" of an adapter are undefined (zero would be one
choice, but its non-linearity makes lambda * adapter no interpolation of functions); merge their base model
and train the adapters again instead.

Every merge checks first that all inputs hold the same weights with the same shapes, that weights sum to 1
and that lambda is in [0, 1] (``extrapolate=True`` allows outside), and fails with one line naming the input.
"""

from __future__ import annotations

import math

import torch

from mdr.runtime.errors import InputError

State = dict[str, torch.Tensor]


def plain_state(encoder, name: str = "the model") -> State:
    """The encoder's weights as a merge sees them: backbone (LoRA merged) and dense head, on the CPU, fp32."""
    from mdr.modeling.bottleneck import attached_adapters
    from mdr.modeling.export import merged_backbone

    if attached_adapters(encoder.model) is not None:
        raise InputError(
            f"{name} has bottleneck adapters: weight-space merging is defined for full fine-tuning and LoRA "
            "only (an adapter has no pretrained counterpart to interpolate with); use finetune=full or lora"
        )
    state = {
        f"model.{k}": v.detach().float().cpu().clone()
        for k, v in merged_backbone(encoder).state_dict().items()
    }
    if getattr(encoder, "dense", None) is not None:
        state.update(
            {f"dense.{k}": v.detach().float().cpu().clone() for k, v in encoder.dense.state_dict().items()}
        )
    return state


def load_plain_state(encoder, state: State) -> None:
    """Put a merged plain state into a plain encoder (no LoRA, no adapters) of the same backbone."""
    model = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    encoder.model.load_state_dict(model, strict=True)
    dense = {k.removeprefix("dense."): v for k, v in state.items() if k.startswith("dense.")}
    if dense:
        encoder.dense.load_state_dict(dense, strict=True)


def check_compatible(states: dict[str, State]) -> None:
    """Every input holds the same weight names with the same shapes (one backbone)."""
    names = list(states)
    first = states[names[0]]
    for other in names[1:]:
        state = states[other]
        missing, extra = sorted(set(first) - set(state)), sorted(set(state) - set(first))
        if missing or extra:
            raise InputError(
                f"{other} and {names[0]} are not the same backbone: {len(missing)} weights only in {names[0]} "
                f"(e.g. {missing[:2]}), {len(extra)} only in {other} (e.g. {extra[:2]}); merge checkpoints of one "
                "model only"
            )
        shapes = [
            (k, tuple(first[k].shape), tuple(state[k].shape))
            for k in first
            if first[k].shape != state[k].shape
        ]
        if shapes:
            k, a, b = shapes[0]
            raise InputError(
                f"{other} and {names[0]} differ in shape at {k} ({b} vs {a}) and {len(shapes) - 1} more weights; "
                "merge checkpoints of one model only"
            )


def check_lambda(lam: float, extrapolate: bool = False) -> None:
    if not math.isfinite(float(lam)):
        raise InputError(f"merge lambda={lam} is not a finite number; give a lambda in [0, 1]")
    if not 0.0 <= float(lam) <= 1.0 and not extrapolate:
        raise InputError(
            f"merge lambda={lam} is outside [0, 1] (0: the pretrained model, 1: the fine-tuned one); set "
            "merge.extrapolate=true to extrapolate on purpose"
        )


def interpolate(pretrained: State, finetuned: State, lam: float, extrapolate: bool = False) -> State:
    """WiSE-FT: (1 - lambda) * pretrained + lambda * finetuned, weight by weight: the weighted average of the
    two (one implementation, so ``merge.wise`` in train.py and ``merge.py`` with ``pretrained_weight`` give
    the same bits for the same lambda)."""
    check_lambda(lam, extrapolate)
    lam = float(lam)
    states = {"the pretrained model": pretrained, "the fine-tuned model": finetuned}
    return weighted_average(states, [1.0 - lam, lam], extrapolate=True)  # lambda checked above


def check_weights(weights: list[float], n: int, extrapolate: bool = False) -> None:
    if len(weights) != n:
        raise InputError(f"merge.weights has {len(weights)} values for {n} models; give one weight per model")
    if not all(math.isfinite(float(w)) for w in weights):
        raise InputError(
            f"merge.weights {list(weights)} holds a value that is not a finite number; give weights summing to 1"
        )
    total = float(sum(weights))
    if abs(total - 1.0) > 1e-6:
        raise InputError(
            f"merge.weights {list(weights)} sum to {total:g}, not 1; a weighted average needs weights summing to 1"
        )
    if not extrapolate and any(w < 0 for w in weights):
        raise InputError(
            f"merge.weights {list(weights)} has a negative weight; set merge.extrapolate=true to allow it"
        )


def weighted_average(states: dict[str, State], weights: list[float], extrapolate: bool = False) -> State:
    """sum_i w_i * theta_i over models of one backbone (a soup; with the pretrained model among them, a
    multi-model WiSE-FT / LM-Cocktail mix)."""
    check_weights(weights, len(states), extrapolate)
    check_compatible(states)
    items = list(states.values())
    out = {}
    for k in items[0]:
        acc = items[0][k] * float(weights[0])
        for state, w in zip(items[1:], weights[1:]):
            acc = acc + state[k] * float(w)
        out[k] = acc
    return out


def wise_name(lam: float) -> str:
    """The results row of an interpolation: ``merge=wise0.5``."""
    return f"wise{float(lam):g}"


def merge_name(weights: list[float], pretrained_weight: float = 0.0) -> str:
    """The results row of a weighted average: ``soup`` for a uniform average of fine-tuned models, else
    ``avg<w1>_<w2>`` (``+pre<w>`` for the pretrained backbone's share)."""
    if not pretrained_weight and len(set(weights)) == 1:
        return "soup"
    name = "avg" + "_".join(f"{w:g}" for w in weights)
    return f"{name}+pre{pretrained_weight:g}" if pretrained_weight else name
