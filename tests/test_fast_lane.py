"""The fast lane (`pytest -m "not slow"`) starts no process by construction: conftest marks slow every test that
calls train.py / eval.py through the helpers, calls subprocess, or uses a fixture that does (tiny_run)."""

import subprocess

from conftest import _starts_subprocess, needs_slow_mark
from helpers import run


def _trains():
    return run("train.py", "trainer.max_steps=1")


def _trains_through_a_helper():
    return _trains()


def _only_computes():
    return sum(range(3))


def _calls_git():
    return subprocess.run(["git", "--version"])


def test_a_function_that_starts_a_process_is_found_through_its_helpers():
    assert _starts_subprocess(_trains) and _starts_subprocess(_trains_through_a_helper)
    assert _starts_subprocess(_calls_git)
    assert not _starts_subprocess(_only_computes)


class _Info:
    def __init__(self, names, defs=None):
        self.names_closure, self.name2fixturedefs = names, defs or {}


class _Item:
    def __init__(self, function, names, defs=None):
        self.function, self._fixtureinfo = function, _Info(names, defs)


class _FixtureDef:
    def __init__(self, func):
        self.func = func


def test_tests_are_marked_by_what_they_or_their_fixtures_start():
    assert needs_slow_mark(_Item(_only_computes, ["tiny_run"]))  # the shared training run
    assert needs_slow_mark(
        _Item(_only_computes, ["sweep"], {"sweep": [_FixtureDef(_trains_through_a_helper)]})
    )
    assert needs_slow_mark(_Item(_trains, []))
    assert not needs_slow_mark(
        _Item(_only_computes, ["data_dir"], {"data_dir": [_FixtureDef(_only_computes)]})
    )
