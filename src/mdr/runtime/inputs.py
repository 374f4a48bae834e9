"""Opening a user's file the same way in every reader: a missing, empty, undecodable, truncated or wrong-kind
file fails with one :class:`~mdr.runtime.errors.InputError` line that names the file (and the line where
there is one) and what to do, never with a library's traceback.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import yaml

from mdr.runtime.errors import InputError, MissingInputError


def _existing(path: str | Path, what: str, fix: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"{what} {path} does not exist{'' if path.parent.is_dir() else ' (nor its folder)'}; {fix}"
        )
    return path


BOM = "\ufeff"


def decode_line(raw: bytes, first: bool) -> str:
    """One line of a text file as every reader reads it: UTF-8, a byte-order mark at the start of the file dropped
    (editors on Windows write one), CRLF read as LF. Raises UnicodeDecodeError on bad bytes."""
    line = raw.decode("utf-8")
    if first and line.startswith(BOM):
        line = line[1:]
    return line.replace("\r\n", "\n")


def read_text(path: str | Path, what: str, fix: str, allow_empty: bool = False) -> str:
    """The file as UTF-8 text, read as :func:`decode_line` reads a line (BOM dropped, CRLF as LF). Bad bytes name
    their line and byte offset."""
    path = _existing(path, what, fix)
    data = path.read_bytes()
    if not data.strip() and not allow_empty:
        raise InputError(f"{what} {path} is empty; {fix}")
    try:
        return decode_line(data, first=True)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); save the {what} as "
            f"UTF-8 text ({fix})"
        ) from None


def read_yaml(path: str | Path, what: str, fix: str):
    """Parsed YAML; a syntax error names its line."""
    text = read_text(path, what, fix)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{where}: not valid YAML ({problem}); {fix}") from None


def load_npz(path: str | Path, what: str, fix: str, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, read now (a truncated member fails here, not in a later table)."""
    path = _existing(path, what, fix)
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes); {fix}")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{what} {path} is not an .npz archive (truncated, or another kind of file); {fix}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        raise InputError(f"{what} {path} is truncated or corrupt ({type(e).__name__}: {e}); {fix}") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise InputError(f"{what} {path} lacks arrays {missing} (has {sorted(arrays)}); {fix}")
    return arrays


def check_torch_checkpoint(path: str | Path, fix: str) -> Path:
    """Cheap checks before any model is loaded: the file exists, is not empty, and is a complete torch zip
    archive (a text file or a truncated download fails here, in a second, not after the model has loaded)."""
    path = _existing(path, "checkpoint", fix)
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"checkpoint {path} is empty (0 bytes); {fix}")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as fh:
            head = fh.read(4)
        kind = "a truncated or corrupt checkpoint" if head == b"PK\x03\x04" else "not a torch checkpoint"
        raise InputError(f"checkpoint {path} is {kind} ({size} bytes); {fix}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as e:
        raise InputError(f"checkpoint {path} is a corrupt archive ({e}); {fix}") from None
    if not any(n.endswith("data.pkl") for n in names):
        raise InputError(f"{path} is a zip archive but not a torch checkpoint (no data.pkl); {fix}")
    return path
