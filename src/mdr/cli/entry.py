"""How the three entry points end: a user-fixable error as one line, a stopped run with its own exit code."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from typing import TypeVar

from mdr.modeling.backbones import ModelLoadError
from mdr.runtime.errors import InputError, one_line
from mdr.training.module import NonFiniteLossError
from mdr.training.preemption import TrainingStopped, exit_for_stop

log = logging.getLogger("mdr")

T = TypeVar("T")
EXIT_INPUT_ERROR = 2  # argparse's code for a usage error
# Errors whose message names the cause and the fix: shown as one line, without a traceback.
KNOWN_ERRORS = (InputError, ModelLoadError, NonFiniteLossError)


def to_run_log(text: str) -> None:
    """The error into the run's log file (Hydra's train.log / eval.log), not its console: stderr has it."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def report_input_errors(main: Callable[[], T], prog: str) -> T:
    """Run ``main``; a :data:`KNOWN_ERRORS` error becomes one ``<prog>: error: ...`` line on stderr (and in the
    run's log, where Hydra set one up) and exit code 2, with no traceback. A stopped training run
    (``TrainingStopped``) exits with 128 + the signal. Any other exception keeps its traceback."""
    try:
        return main()
    except KNOWN_ERRORS as e:
        text = one_line(e)
        to_run_log(text)
        print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INPUT_ERROR)
    except TrainingStopped as e:
        exit_for_stop(e)
        raise


def _without_types(text: str) -> str:
    """OmegaConf's message without its ``reference_type=... object_type=...`` tail (the key stays)."""
    return re.sub(r"\s*(reference_type|object_type)=\S+", "", text).strip()


def composition_message(error: BaseException) -> str:
    """Hydra's refusal with its cause (the key and what was wrong with it), on one line."""
    text = _without_types(one_line(error))
    cause = error.__cause__ or error.__context__
    if cause is not None and _without_types(one_line(cause)) not in text:
        text = f"{text}: {_without_types(one_line(cause))}"
    return f"{text} (python <script> --cfg job prints every setting; their types: mdr.cli.schema)"


def report_composition_errors(main: Callable[[], T], prog: str) -> T:
    """Run a ``@hydra.main`` function so that a config Hydra cannot compose (an unknown key, a value of the wrong
    type for a typed setting, a malformed override) ends like every other bad setting: one line naming the key
    on stderr, exit 2, nothing loaded. Errors inside the run keep their own handling (report_input_errors)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own multi-line report
    try:
        return main()
    except (HydraException, OmegaConfBaseException) as e:
        print(f"{prog}: error: {composition_message(e)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INPUT_ERROR)
