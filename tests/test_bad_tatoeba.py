"""Bad Tatoeba file pairs: bad bytes, empty lines, sides of unequal length; one line naming the file."""

from pathlib import Path

import pytest

from mdr.runtime.errors import InputError

BAD_BYTES = b"\xff\xfe not utf-8"


# ---- Tatoeba ----
def tatoeba_case(tmp_path, data_dir, lang_side: bytes | None = None, eng_side: bytes | None = None) -> Path:
    d = tmp_path / "tatoeba"
    d.mkdir(parents=True)
    for suffix, replacement in (("deu", lang_side), ("eng", eng_side)):
        src = data_dir / "tatoeba" / f"tatoeba.deu-eng.{suffix}"
        (d / src.name).write_bytes(replacement if replacement is not None else src.read_bytes())
    return tmp_path


def test_tatoeba_bad_files(tmp_path, data_dir):
    from mdr.data.tatoeba import read_tatoeba

    good = (data_dir / "tatoeba" / "tatoeba.deu-eng.deu").read_bytes()
    lines = good.split(b"\n")
    cases = {
        "bad bytes": (
            b"\n".join([*lines[:4], BAD_BYTES, *lines[5:]]),
            None,
            r"tatoeba.deu-eng.deu:5: not UTF-8",
        ),
        "unequal lengths": (
            b"\n".join(lines[:-10]),
            None,
            r"deu-eng.\*: \d+ deu lines but 1000 English lines",
        ),
        "empty": (b"", None, r"Tatoeba file .*tatoeba.deu-eng.deu is empty; each language needs both sides"),
        "truncated": (None, b"\n".join(lines[:500]), r"1000 deu lines but 500 English lines; .*line-aligned"),
        "wrong kind": (b"\x00\x01" * 50 + BAD_BYTES, None, r"tatoeba.deu-eng.deu:1: not UTF-8"),
    }
    for kind, (lang_side, eng_side, message) in cases.items():
        root = tatoeba_case(tmp_path / kind.replace(" ", "_"), data_dir, lang_side, eng_side)
        with pytest.raises(InputError, match=message):
            read_tatoeba(root, ["deu"])
