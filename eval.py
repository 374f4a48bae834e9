"""Score a model or checkpoint on LAReQA sets without training: `python eval.py model=me5_small data=lareqa_both`."""

import os
from pathlib import Path

os.environ.setdefault("MDR_PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from mdr.cli.entry import report_composition_errors  # noqa: E402
from mdr.cli.schema import register  # noqa: E402

register()  # the typed schemas the config is composed against (mdr.cli.schema)


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from mdr.cli.entry import report_input_errors
    from mdr.cli.evaluate import evaluate

    report_input_errors(lambda: evaluate(cfg), "eval.py")


if __name__ == "__main__":
    report_composition_errors(main, "eval.py")
