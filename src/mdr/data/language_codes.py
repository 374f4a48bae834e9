"""Training language codes checked against the evaluation sets' codes, so that every table's seen / unseen split
means what it says. The LAReQA sets and their training runs use two-letter ISO 639-1 codes (``de``); Tatoeba's
ISO 639-3 codes are mapped onto them (``mdr.data.tatoeba.ISO3_TO_TRAINING``). A parallel JSONL file written with
``deu`` would train fine and report every language as unseen: it is refused, naming the code to use. A code no
evaluation set knows (``xx``) is allowed (a language the evaluation does not cover) and named in a warning."""

from __future__ import annotations

import logging

from mdr.data.tatoeba import ISO3_TO_TRAINING
from mdr.runtime.errors import InputError

log = logging.getLogger(__name__)


def check_training_codes(train_langs: list[str], eval_langs: set[str], source: str) -> list[str]:
    """The training codes no evaluation set or mapping knows (warned about); refuses ISO 639-3 codes whose
    two-letter form the evaluation sets use."""
    known = set(eval_langs) | set(ISO3_TO_TRAINING.values())
    iso3 = {code: ISO3_TO_TRAINING[code] for code in train_langs if code in ISO3_TO_TRAINING}
    if iso3:
        pairs = ", ".join(f"{a} -> {b}" for a, b in iso3.items())
        raise InputError(
            f"{source}: training language code(s) {sorted(iso3)} are ISO 639-3, the evaluation sets use ISO 639-1 "
            f"({pairs}): every table would call these languages unseen; write the two-letter codes in the file"
        )
    unknown = sorted(code for code in train_langs if code not in known)
    if unknown:
        log.warning(
            "%s: training language code(s) %s match no evaluation set's language (%s): they count as languages "
            "the evaluation does not cover; check the codes if that is not what you meant",
            source,
            unknown,
            " ".join(sorted(known)),
        )
    return unknown
