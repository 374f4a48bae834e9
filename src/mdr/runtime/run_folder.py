"""One owner for a run's folder: where Hydra put its config and overrides, the markers a run leaves (FAILED,
SKIPPED), metrics.json and provenance.json, and the run's identity as a results cell.

A run folder is what ``train.py``, ``eval.py`` or ``merge.py`` wrote (``outputs/<date>/<time>/``), a merged
row inside one (``<run>/merged/wise0.5/``), or an archived cell (``results/<experiment>/<cell>/``). Every place
that reads or writes these files goes through this class (a test checks that no other module spells them), so
the layout is defined once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from mdr.runtime.files import atomic_write_text
from mdr.runtime.provenance import PROVENANCE_FILE, read_provenance

CONFIG = ".hydra/config.yaml"
OVERRIDES = ".hydra/overrides.yaml"
FAILED = "FAILED"
SKIPPED = "SKIPPED"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"
MAX_CELL_NAME = 160
# Overrides that do not make a results cell: where files go, how a run is shown or stopped, which merged rows a
# run adds (each merged row is its own cell, named by merge=wise0.5), how many devices share the work.
NOT_A_CELL_KEY = (
    "results_dir",
    "paths.",
    "hydra.",
    "trainer.devices",
    "progress.",
    "merge.",
    "eval.fusion",  # adds a fused row (its own cell, fusion=rrf): the run's own cell is the same with or without
    "eval.cosine_gap",  # a measurement of the run's models (mdr.eval.cosine_gap): it changes no model or score
    "preemption.",
    "ckpt_path",
)


def override_key(override: str) -> str:
    """``+a.b=1`` / ``~a.b`` -> ``a.b``."""
    return override.lstrip("+~").split("=", 1)[0]


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """``key=value`` overrides as a mapping (Hydra's own ``hydra.*`` settings left out)."""
    out = {}
    for item in overrides:
        key, _, value = str(item).lstrip("+~").partition("=")
        if not key.startswith("hydra"):
            out[key] = value
    return out


def counts_for_cell(override: str) -> bool:
    return not override.lstrip("+~").startswith(NOT_A_CELL_KEY)


def cell_name(overrides: list[str]) -> str:
    """A run's identity within a sweep: its overrides, sorted, without paths and logging knobs."""
    kept = sorted(o for o in overrides if counts_for_cell(o))
    if not kept:
        return "default"
    name = re.sub(r"[^A-Za-z0-9=,._+\-\[\]]", "_", ",".join(kept))
    if len(name) > MAX_CELL_NAME:  # file systems stop at 255 bytes: keep a readable head and a hash of all
        name = f"{name[: MAX_CELL_NAME - 17]}...{hashlib.sha1(name.encode()).hexdigest()[:14]}"
    return name


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of_checkpoint(cls, ckpt: str | Path) -> RunFolder:
        """The run that wrote ``<run>/checkpoints/<name>.ckpt``."""
        return cls(Path(ckpt).parent.parent)

    @classmethod
    def find_all(cls, root: str | Path) -> list[RunFolder]:
        """Every run folder under ``root`` (a folder holding a Hydra config), sorted."""
        return [cls(p.parent.parent) for p in sorted(Path(root).rglob(CONFIG))]

    # ---- Hydra's files ----
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def has_config(self) -> bool:
        return self.config_path.is_file()

    def config(self) -> dict | None:
        """The resolved config Hydra recorded (None without one)."""
        return yaml.safe_load(self.config_path.read_text()) if self.has_config else None

    def overrides(self) -> list[str]:
        """The command-line overrides Hydra recorded (none when composed without Hydra's runtime)."""
        path = self.path / OVERRIDES
        return [str(o) for o in (yaml.safe_load(path.read_text()) or [])] if path.exists() else []

    def override_map(self) -> dict[str, str]:
        return parse_overrides(self.overrides())

    def cell_overrides(self) -> list[str]:
        """The overrides that make this run's results cell."""
        return [o for o in self.overrides() if counts_for_cell(o)]

    def write_stand_in(self, config: dict, overrides: list[str]) -> None:
        """Hydra's two files for a row that Hydra did not launch (a merged row, a soup), so that the report and
        the archive read it like any run."""
        from omegaconf import OmegaConf

        atomic_write_text(self.config_path, OmegaConf.to_yaml(config))
        atomic_write_text(self.path / OVERRIDES, OmegaConf.to_yaml(list(overrides)))

    # ---- what the run left ----
    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def complete(self) -> bool:
        """metrics.json is written last and atomically: its presence means a finished run."""
        return self.metrics_path.exists()

    def metrics(self) -> dict:
        """metrics.json, parsed; a damaged one (it is written atomically, so a cut-off file was damaged after)
        fails in one line naming it."""
        from mdr.runtime.errors import InputError

        try:
            return json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(
                f"{self.metrics_path}: not valid JSON ({e}); the file was damaged or cut off: restore it from git, or "
                "delete this run folder and run its cell again"
            ) from None

    def provenance(self, metrics: dict | None = None) -> dict | None:
        return read_provenance(self.path, metrics)

    @property
    def provenance_path(self) -> Path:
        return self.path / PROVENANCE_FILE

    def failed(self) -> str | None:
        path = self.path / FAILED
        return path.read_text().strip() if path.exists() else None

    def skipped(self) -> str | None:
        path = self.path / SKIPPED
        return path.read_text().strip() if path.exists() else None

    def mark_skipped(self, reason: str) -> None:
        atomic_write_text(self.path / SKIPPED, reason.rstrip("\n") + "\n")

    @contextlib.contextmanager
    def failure_marker(self) -> Iterator[None]:
        """Leave ``FAILED`` with the reason when the body raises (report.py lists such runs); a run that starts
        again in the same folder (a resume) starts without it."""
        (self.path / FAILED).unlink(missing_ok=True)
        try:
            yield
        except BaseException as e:
            atomic_write_text(self.path / FAILED, f"{type(e).__name__}: {e}\n")
            raise
