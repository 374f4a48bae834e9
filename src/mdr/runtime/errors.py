"""Errors a user can fix, and how the entry points show them.

Readers and config checks raise :class:`InputError` (or :class:`MissingInputError`) with one line that names
the file (and line or language) and the fix. ``train.py``, ``eval.py`` and ``report.py`` print that line
without a traceback and exit 2; any other exception is a bug or an environment problem and keeps its
traceback. Both subclass the built-in types the code raised before, so ``except ValueError`` still holds.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a file, a config value, a language): the message names it and the fix."""


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the run needs does not exist."""


def one_line(error: BaseException) -> str:
    """The message on one line (a user's terminal shows it whole, a log keeps it greppable)."""
    return " ".join(str(error).split())


class DiskFullError(InputError, OSError):
    """A write that did not fit on its filesystem; the message names the folder and the space needed."""
