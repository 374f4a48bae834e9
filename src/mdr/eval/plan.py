"""One evaluation plan per run: the ``eval:`` settings checked, the attack settings parsed and every evaluation
set read, once, before any model loads. ``train.py`` builds it before training (a bad evaluation file fails in
seconds, not after hours), then scores the trained model and each merged row from the same loaded sets;
``eval.py`` and ``merge.py`` build it before loading a model too."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mdr.data.corpus import RetrievalSet
from mdr.data.qrels import QrelsSet, load_qrels_spec
from mdr.data.sources import load_eval_set
from mdr.data.tatoeba import TatoebaSet
from mdr.eval.attack import AttackSettings, parse_attacks, sample_queries
from mdr.eval.fusion import FusionSettings
from mdr.eval.poison import PoisonSettings
from mdr.eval.settings import EvalSettings

log = logging.getLogger(__name__)


@dataclass
class EvalPlan:
    """What a run evaluates: the settings, the loaded sets in config order, the corpus-style (qrels) sets,
    the query perturbations as (kind, rate) and the parsed attacks: (variant name, settings), ``eval.attack``
    first (variant "") and then each of ``eval.attack_variants``."""

    settings: EvalSettings
    sets: list[RetrievalSet | TatoebaSet] = field(default_factory=list)
    qrels_sets: list[QrelsSet] = field(default_factory=list)
    variants: list[tuple[str, float]] = field(default_factory=list)
    attacks: list[tuple[str, AttackSettings]] = field(default_factory=list)
    fusion: FusionSettings | None = None
    poison: PoisonSettings | None = None

    def for_fused_row(self) -> EvalPlan:
        """What the fused row scores: the LAReQA and Tatoeba sets (no attacks, perturbations or corpora)."""
        return EvalPlan(self.settings, self.sets, [], [], [], None, None)

    def languages(self) -> set[str]:
        """The training-code languages the evaluation reports seen / unseen: the LAReQA sets' languages and
        Tatoeba's (mapped to two-letter codes where the project has them)."""
        from mdr.data.tatoeba import ISO3_TO_TRAINING

        out: set[str] = set()
        for rs in self.sets:
            if isinstance(rs, RetrievalSet):
                out.update(rs.langs)
            else:
                out.update(ISO3_TO_TRAINING.get(lang, lang) for lang in rs.languages)
        return out

    @classmethod
    def build(
        cls, settings: EvalSettings, data_dir: str | Path, cache_dir: str | Path | None = None
    ) -> EvalPlan:
        """Check the settings and read every set; fails with the file and the fix on the first problem. Corpora
        of corpus-style sets are memory-mapped from ``cache_dir`` (converted there once) when it is given."""
        variants = settings.check()
        attacks = parse_attacks(
            dict(settings.attack) if settings.attack else None,
            dict(settings.attack_variants) if settings.attack_variants else None,
        )
        sets = [
            load_eval_set(name, data_dir, tatoeba_langs=settings.tatoeba_langs) for name in settings.datasets
        ]
        for _, attack in attacks:  # a sample larger than a language's queries fails here, before any encoding
            for rs in sets:
                if isinstance(rs, RetrievalSet):
                    sample_queries(rs, attack)
        fusion = FusionSettings.from_config(dict(settings.fusion)) if settings.fusion else None
        if fusion:
            fusion.bm25_model().check_languages(languages_of(sets))  # before any model loads
        poison = PoisonSettings.from_config(dict(settings.poison)) if settings.poison else None
        for rs in sets if poison else []:  # attacker languages and the split, before any model loads
            if isinstance(rs, RetrievalSet):
                poison.check_set(rs)
        qrels_sets = [load_qrels_spec(dict(spec), cache_dir) for spec in settings.qrels_sets or []]
        log.info(
            "evaluation plan: %s",
            ", ".join([s.name for s in sets] + [q.name for q in qrels_sets]) or "nothing to evaluate",
        )
        return cls(settings, sets, qrels_sets, variants, attacks, fusion, poison)


def languages_of(sets: list) -> list[str]:
    """Every language code a set's text is in (queries, candidates; Tatoeba's file pairs with English)."""
    langs: set[str] = set()
    for rs in sets:
        langs.update([*rs.langs, "eng"] if isinstance(rs, TatoebaSet) else [*rs.langs, *rs.query_langs])
    return sorted(langs)
