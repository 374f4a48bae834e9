"""Train a multilingual dual encoder: `python train.py sampler=hybrid model=xlmr` (see README)."""

import os
from pathlib import Path

os.environ.setdefault("MDR_PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from mdr.cli.entry import report_composition_errors  # noqa: E402
from mdr.cli.schema import register  # noqa: E402

register()  # the typed schemas the config is composed against (mdr.cli.schema)


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from mdr.cli.entry import report_input_errors
    from mdr.cli.train import train

    report_input_errors(lambda: train(cfg), "train.py")


if __name__ == "__main__":
    report_composition_errors(main, "train.py")
