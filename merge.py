"""Merge train.py checkpoints of one backbone in weight space: `python merge.py 'checkpoints=[a,b]' 'weights=[0.5,0.5]'`."""

import os
from pathlib import Path

os.environ.setdefault("MDR_PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from mdr.cli.entry import report_composition_errors  # noqa: E402
from mdr.cli.schema import register  # noqa: E402

register()  # the typed schemas the config is composed against (mdr.cli.schema)


@hydra.main(config_path="conf", config_name="merge", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from mdr.cli.entry import report_input_errors
    from mdr.cli.merge import merge

    report_input_errors(lambda: merge(cfg), "merge.py")


if __name__ == "__main__":
    report_composition_errors(main, "merge.py")
