"""Evaluation dataset names and their variants, in one place: a set scored on perturbed queries is
``xquad_r~char_noise@0.1``, the budgeted query attack's entry is ``xquad_r~attack``. Evaluation writes these
names into ``metrics.json``; the report reads them back to tell clean sets from variants."""

from __future__ import annotations

VARIANT = "~"  # between a set's name and its variant
ATTACK = "attack"
POISON = "poison"


def perturbed_name(name: str, kind: str, rate: float) -> str:
    return f"{name}{VARIANT}{kind}@{rate:g}"


def poisoned_name(name: str) -> str:
    """``xquad_r~poison``: the corpus-poisoning entry of ``eval.poison``."""
    return f"{name}{VARIANT}{POISON}"


def attacked_name(name: str, variant: str = "") -> str:
    """``xquad_r~attack`` for ``eval.attack``; ``xquad_r~attack_chars`` for its variant ``chars``."""
    return f"{name}{VARIANT}{ATTACK}" + (f"_{variant}" if variant else "")


def clean_name(dataset: str) -> str:
    """The set a variant was made from (a clean set's own name)."""
    return dataset.split(VARIANT, 1)[0]


def variant_of(dataset: str) -> str:
    """``char_noise@0.1`` / ``attack`` / '' for a clean set."""
    return dataset.split(VARIANT, 1)[1] if VARIANT in dataset else ""


def is_variant(dataset: str) -> bool:
    """Perturbed or attacked (not a clean set)."""
    return VARIANT in dataset


def is_perturbed(dataset: str) -> bool:
    return is_variant(dataset) and variant_of(dataset) != ATTACK


def is_attacked(dataset: str) -> bool:
    return variant_of(dataset) == ATTACK
