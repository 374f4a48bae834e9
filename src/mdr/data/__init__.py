"""Layer 1, data: readers for every file format (LAReQA, JSONL, qrels/topics/corpus, mMARCO), the in-memory
corpora they produce, dev splits, the registry of evaluation sets and query perturbations. Imports only
``mdr.runtime``."""
