"""A label-free contrastive domain-adaptive stage (issue #44): the backbone's own objective on the target set's
unlabeled paragraphs, the alternative to MLM (``pretrain=contrastive``).

Two independent random crops of one paragraph (each a contiguous span of 10-50% of its tokens, as Contriever,
Izacard et al. 2022) are a positive pair; the other paragraphs of the batch are negatives, under the training
loss (``InfoNCELoss``, the run's temperature). Every batch holds paragraphs of one language: a paragraph's
translation is then never in its batch, so it is neither a positive (that alignment is what the evaluation
measures) nor pushed away as a negative. Only the language of each paragraph is read, no alignment and no
question text: transductive adaptation to the test set's passages, said beside every number.

Runs in place on the encoder before contrastive training, on Lightning Fabric like the MLM stage
(``mdr.training.pretrain``): same precision rule, one device, seeded on its own RNG.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import torch

from mdr.data.sources import load_eval_set
from mdr.runtime.errors import InputError
from mdr.runtime.progress import progress
from mdr.training.loss import InfoNCELoss
from mdr.training.pretrain import fabric_for, loss_stats

log = logging.getLogger(__name__)

MIN_CROP_TOKENS = 4  # a shorter view is mostly punctuation


def passages_by_language(datasets: list[str], data_dir: str) -> dict[str, list[str]]:
    """Each language's unique paragraphs of the named evaluation sets, in a fixed order (Tatoeba has none)."""
    out: dict[str, dict[str, None]] = {}
    for name in datasets:
        if name == "tatoeba":
            continue
        rs = load_eval_set(name, data_dir)
        for lang, text in zip(rs.cand_langs, rs.cand_contexts):
            out.setdefault(lang, {}).setdefault(text, None)
    return {lang: list(texts) for lang, texts in sorted(out.items())}


class CroppedViews:
    """Seeded batches of two crops per paragraph, every batch from one language (languages in a reshuffled
    round, paragraphs reshuffled when a language's are used up)."""

    def __init__(
        self,
        tokenizer,
        by_lang: dict[str, list[str]],
        batch_size: int,
        crop: tuple[float, float],
        seed: int,
        max_tokens: int = 512,
    ):
        self.tokenizer, self.batch_size, self.crop = tokenizer, batch_size, crop
        self.gen = torch.Generator().manual_seed(seed)
        self.tokens = {
            lang: tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_tokens)[
                "input_ids"
            ]
            for lang, texts in by_lang.items()
        }
        self.order = {lang: self._perm(len(t)) for lang, t in self.tokens.items()}
        self.cursor = dict.fromkeys(self.tokens, 0)
        self.langs: list[str] = []

    def _perm(self, n: int) -> list[int]:
        return torch.randperm(n, generator=self.gen).tolist()

    def _next_lang(self) -> str:
        if not self.langs:
            self.langs = [list(self.tokens)[i] for i in self._perm(len(self.tokens))]
        return self.langs.pop()

    def crop_of(self, ids: list[int]) -> list[int]:
        """A contiguous span of ``crop`` (min, max) of the paragraph's tokens, at least MIN_CROP_TOKENS."""
        lo, hi = self.crop
        ratio = lo + (hi - lo) * float(torch.rand((), generator=self.gen))
        length = min(len(ids), max(MIN_CROP_TOKENS, round(ratio * len(ids))))
        start = int(torch.randint(len(ids) - length + 1, (), generator=self.gen))
        return ids[start : start + length]

    def next(self) -> tuple[str, list[str], list[str]]:
        """(language, first views, second views) as texts: the encoder tokenises them as passages."""
        lang = self._next_lang()
        n = min(self.batch_size, len(self.tokens[lang]))
        if self.cursor[lang] + n > len(self.order[lang]):
            self.order[lang], self.cursor[lang] = self._perm(len(self.tokens[lang])), 0
        idx = self.order[lang][self.cursor[lang] : self.cursor[lang] + n]
        self.cursor[lang] += n
        views = [[self.tokenizer.decode(self.crop_of(self.tokens[lang][i])) for i in idx] for _ in range(2)]
        return lang, views[0], views[1]


class ViewContrast(torch.nn.Module):
    """The encoder and the loss as one module (what Fabric sets up): view 1 of paragraph i should find view 2
    of paragraph i among the batch's second views."""

    def __init__(self, encoder, loss: InfoNCELoss):
        super().__init__()
        self.encoder, self.loss = encoder, loss

    def forward(self, first: dict, second: dict) -> torch.Tensor:
        q, p = self.encoder.embed(**first), self.encoder.embed(**second)
        ids = torch.arange(q.shape[0], device=q.device)
        return self.loss(q, p, ids, ids.view(-1, 1), ids)


@dataclass
class ContrastivePretraining:
    """The ``pretrain=contrastive`` config: cropped-view contrastive training on the passages of ``datasets``."""

    enabled: bool = True
    datasets: list[str] = field(default_factory=list)
    steps: int = 100
    batch_size: int = 16
    lr: float = 5e-5
    crop_min: float = 0.1
    crop_max: float = 0.5
    temperature: float = 0.05
    max_length: int = 128  # the views' passage length in tokens (after the passage prefix)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise InputError(
                f"pretrain.steps={self.steps} must be >= 1 and pretrain.batch_size={self.batch_size} >= 2 "
                "(a view needs other paragraphs as negatives)"
            )
        if not 0 < self.crop_min <= self.crop_max <= 1:
            raise InputError(
                f"pretrain.crop_min={self.crop_min}, crop_max={self.crop_max}: give 0 < crop_min <= crop_max <= 1"
            )

    def run(self, encoder, data_dir: str, seed: int, precision: str, accelerator: str = "auto") -> dict:
        """Adapt ``encoder`` in place; returns statistics (it is moved back to the CPU)."""
        by_lang = passages_by_language(list(self.datasets), data_dir)
        if not by_lang:
            raise InputError(
                f"pretrain: no passages in pretrain.datasets={list(self.datasets)} (Tatoeba has none); "
                "name a LAReQA set (xquad_r, mlqa_r)"
            )
        stats = contrastive_pretrain(encoder, by_lang, self, seed, precision, accelerator)
        encoder.to("cpu")
        return {**stats, "datasets": list(self.datasets), "objective": "contrastive crops", **asdict(self)}


def contrastive_pretrain(
    encoder,
    by_lang: dict[str, list[str]],
    settings: ContrastivePretraining,
    seed: int = 0,
    precision: str = "32-true",
    accelerator: str = "cpu",
    show_progress: bool = True,
) -> dict:
    """Train ``encoder`` for ``settings.steps`` batches of cropped views; returns loss statistics."""
    with torch.random.fork_rng(devices=[]):  # seeded on its own; the caller's RNG stream is left as it was
        torch.manual_seed(seed)
        fabric = fabric_for(accelerator, precision)
        views = CroppedViews(
            encoder.tokenizer, by_lang, settings.batch_size, (settings.crop_min, settings.crop_max), seed
        )
        lengths = encoder.passage_max_length
        encoder.passage_max_length = settings.max_length
        module = ViewContrast(encoder, InfoNCELoss(settings.temperature))
        params = [p for p in encoder.parameters() if p.requires_grad]
        model, opt = fabric.setup(module, torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.01))
        was_training = encoder.training
        model.train()
        losses = []
        try:
            steps = range(settings.steps)
            for _ in progress(
                steps, settings.steps, "contrastive pretraining", unit="steps", disable=not show_progress
            ):
                _, first, second = views.next()
                batch = [fabric.to_device(encoder.tokenize_passages(v)) for v in (first, second)]
                loss = model(*batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"pretrain: contrastive loss is {loss.item()}; lower pretrain.lr (now {settings.lr})"
                    )
                fabric.backward(loss)
                fabric.clip_gradients(model, opt, max_norm=1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(loss.item())
        finally:
            encoder.passage_max_length = lengths
            encoder.train(was_training)
    passages = sum(len(t) for t in by_lang.values())
    return loss_stats(losses, passages, "contrastive pretraining", head_warmup_steps=0)
