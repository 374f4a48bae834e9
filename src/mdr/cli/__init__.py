"""Layer 6, the drivers: what ``train.py`` and ``eval.py`` run, built from the Hydra config."""
