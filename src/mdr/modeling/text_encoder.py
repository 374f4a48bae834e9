"""The interface the evaluation suite scores: ``name``, ``path`` and ``encode(texts, kind, ...)``.

The trainable :class:`~mdr.modeling.encoder.DualEncoder` implements it; so do evaluation-only baselines
that are not Hugging Face models (``mdr.modeling.baselines``: hashing, LASER), selected with ``model=...``
like any checkpoint (``finetune`` and ``ckpt`` do not apply to them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mdr.runtime.errors import InputError


class TextEncoder:
    """L2-normalised embeddings, one row per text. Subclasses override ``encode`` (models with prefixes,
    contexts, batching, precision) or only ``embed_texts`` (baselines that embed every text alike)."""

    name: str = "text-encoder"
    path: str | None = None
    trainable: bool = False  # True: a torch module that fine-tuning modes and checkpoints apply to

    def encode(
        self,
        texts: Sequence[str],
        kind: str = "passage",
        contexts: Sequence[str] | None = None,
        batch_size: int = 64,
        show_progress: bool = True,
        desc: str | None = None,
        precision: str = "auto",
    ) -> np.ndarray:
        """Baselines embed queries and passages alike (no prefixes, no contexts, no batching)."""
        if kind not in ("query", "passage"):
            raise InputError(f"kind must be 'query' or 'passage', got {kind!r}")
        return self.embed_texts(list(texts))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError
