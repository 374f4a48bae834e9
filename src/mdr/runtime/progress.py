"""Progress a person can see in any log: a live bar on a terminal, plain lines where stdout is not one
(nohup, SLURM, CI, ``| tee``), where a bar prints nothing useful.

The drivers call ``configure`` once (``progress.mode``, ``progress.every_s``), as logging is configured once;
``progress(...)`` then wraps a loop (encoding batches, MLM steps) and ``line(...)`` formats the same
fields for the training callback (``mdr.training.callbacks.ProgressLog``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

from mdr.runtime.errors import InputError

log = logging.getLogger("mdr.progress")

MODES = ("auto", "bar", "lines", "none")
_settings = {"mode": "auto", "every_s": 30.0}


def configure(mode: str = "auto", every_s: float = 30.0) -> None:
    if mode not in MODES:
        raise InputError(f"progress.mode={mode!r}; choose one of {MODES}")
    if every_s <= 0:
        raise InputError(f"progress.every_s={every_s} must be > 0")
    _settings.update(mode=mode, every_s=float(every_s))


def style() -> str:
    """``bar``, ``lines`` or ``none``: ``auto`` is a bar on a terminal, lines otherwise."""
    mode = _settings["mode"]
    if mode == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    return mode


def every_s() -> float:
    return _settings["every_s"]


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def line(
    desc: str, done: int, total: int | None, elapsed: float, unit: str, fields: dict | None = None
) -> str:
    """``desc 40/234 steps (17%) | loss 0.41 | 23.1 ex/s | elapsed 1m12s | ETA 5m40s``."""
    head = f"{desc} {done}/{total} {unit}" if total else f"{desc} {done} {unit}"
    if total:
        head += f" ({100 * done / total:.0f}%)"
    parts = [head, *(f"{k} {v}" for k, v in (fields or {}).items()), f"elapsed {duration(elapsed)}"]
    if total and 0 < done < total:
        parts.append(f"ETA {duration(elapsed / done * (total - done))}")
    return " | ".join(parts)


def progress(
    items: Iterable, total: int, desc: str, unit: str = "it", scale: int = 1, disable: bool = False
) -> Iterator:
    """Iterate ``items`` showing progress: tqdm on a terminal, a logged ``line`` every ``every_s`` seconds
    (and at the end) otherwise. ``total`` counts units (texts, steps); each item is ``scale`` units (a batch
    of texts), the last one possibly fewer."""
    kind = "none" if disable else style()
    if kind == "bar":
        from tqdm.auto import tqdm

        yield from tqdm(items, total=-(-total // scale), desc=desc, unit="batch" if scale > 1 else unit)
        return
    if kind == "none":
        yield from items
        return
    start = last = time.perf_counter()
    done = 0
    for item in items:
        yield item
        done += 1
        now, n = time.perf_counter(), min(done * scale, total)
        if now - last >= every_s() or n == total:
            last = now
            log.info(
                line(
                    desc, n, total, now - start, unit, {"rate": f"{n / max(now - start, 1e-9):.1f} {unit}/s"}
                )
            )
