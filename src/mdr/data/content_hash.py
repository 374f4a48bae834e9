"""A file's identity by its content (issue #46): cache folders are named by what a file holds, not by its path,
size and modification time, which a same-size rewrite with a preserved mtime (``cp -p``, ``rsync -a``, a
restore from backup, an edit within the clock's resolution) leaves unchanged, so a stale cache was served.

Hashing a multi-GB corpus on every start would cost seconds per rank, so digests are memoised under a stat key
that includes the inode change time (``st_ctime_ns``): any write to the file changes it, and unlike the mtime no
copy tool can set it back. The memo (``~/.cache/mdr/content_hashes.json``, or ``$MDR_HASH_MEMO``) is a cache
too: a lost or damaged memo only costs a re-hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from mdr.runtime.files import atomic_write_text

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MEMO_ENTRIES = 10_000  # the oldest are dropped past this (a file hashed again costs one read)
_memo: dict[str, str] | None = None


def memo_path() -> Path:
    """Where digests are remembered between processes."""
    explicit = os.environ.get("MDR_HASH_MEMO")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mdr" / "content_hashes.json"


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def _load_memo() -> dict[str, str]:
    global _memo
    if _memo is None:
        try:
            _memo = dict(json.loads(memo_path().read_text()))
        except (OSError, ValueError, TypeError):
            _memo = {}  # none yet, or damaged: re-hash
    return _memo


def hash_file(path: Path) -> str:
    """blake2b of the file's bytes (hex, 32 characters)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def content_digest(path: str | Path) -> str:
    """The file's content hash, read from the memo while the file is untouched since it was hashed."""
    path = Path(path)
    memo, key = _load_memo(), _stat_key(path)
    if key in memo:
        return memo[key]
    started = time.perf_counter()
    digest = hash_file(path)
    if (took := time.perf_counter() - started) > 2:
        log.info("hashed %s in %.1f s (remembered in %s)", path, took, memo_path())
    memo[key] = digest
    for stale in list(memo)[: max(0, len(memo) - MEMO_ENTRIES)]:
        del memo[stale]
    try:
        memo_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(memo_path(), json.dumps(memo))
    except OSError as err:  # a read-only home: the digest is still right, only not remembered
        log.info("could not remember content hashes in %s (%s)", memo_path(), err)
    return digest


def forget_memo() -> None:
    """Drop this process's view of the memo (tests; another process's writes become visible)."""
    global _memo
    _memo = None
