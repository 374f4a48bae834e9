"""Evaluation-only baselines behind the ``TextEncoder`` interface: a weightless hashing model and LASER."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from mdr.modeling.text_encoder import TextEncoder

_SPACES = re.compile(r"\s+")


class HashingEncoder(TextEncoder):
    """A lexical baseline with no weights: hashed character n-grams, L2-normalised.

    Shows how far surface overlap gets (far on monolingual, little across scripts) and exercises the
    interface without any download.
    """

    def __init__(self, dim: int = 2048, ngram: int = 3):
        self.dim, self.ngram, self.name = dim, ngram, f"hashing-{ngram}gram-{dim}"

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            t = " " + _SPACES.sub(" ", t.lower()) + " "
            for j in range(max(1, len(t) - self.ngram + 1)):
                h = int.from_bytes(
                    hashlib.blake2b(t[j : j + self.ngram].encode(), digest_size=8).digest(), "little"
                )
                out[i, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class LaserEncoder(TextEncoder):  # pragma: no cover - downloads LASER weights at first use
    """LASER (``laser_encoders`` package; needs network on first use to fetch the model)."""

    def __init__(self, lang: str = "eng_Latn"):
        try:
            from laser_encoders import LaserEncoderPipeline
        except ImportError as e:
            raise ImportError(
                "model=laser needs `pip install laser_encoders` (and network for its weights)"
            ) from e
        self.pipeline = LaserEncoderPipeline(lang=lang)
        self.name = f"laser2-{lang}"

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.pipeline.encode_sentences(list(texts), normalize_embeddings=True).astype(np.float32)
