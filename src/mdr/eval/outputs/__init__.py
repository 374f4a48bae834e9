"""Everything an evaluation writes into a run folder, one module per kind; the contract between training,
``eval.py``, ``merge.py`` and the reports (docs/metrics.md has the ``metrics.json`` schema)::

    metrics.json                      all datasets; written last, atomically (schema SCHEMA_VERSION)
    eval/<set>/...                    a LAReQA set: lareqa.py; TREC runs and qrels: trec.py
    eval/tatoeba/...                  bitext accuracy per language: tatoeba.py
    eval/<set>~attack/...             the budgeted query attack: attack.py
    eval/<set>/per_query.npz          per-query ranks for paired tests: per_query.py (read by report/)
    embeddings.npz                    on request (eval.save_embeddings=true): embeddings.py

Dataset names and their variants (``xquad_r~char_noise@0.1``, ``xquad_r~attack``): :mod:`mdr.data.names`.
"""

SCHEMA_VERSION = 1
