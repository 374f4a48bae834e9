"""Progress a person can see in any log: piped training prints plain lines while it runs."""

import re
import sys

import pytest

from mdr.runtime import progress


def test_line_by_hand():
    text = progress.line("train", 40, 200, 80.0, "steps", {"loss": "0.4123"})
    assert text == "train 40/200 steps (20%) | loss 0.4123 | elapsed 1m20s | ETA 5m20s"
    assert progress.duration(3725) == "1h02m" and progress.duration(59.4) == "59s"


def test_auto_is_a_bar_on_a_terminal_and_lines_in_a_pipe(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    progress.configure("auto")
    assert progress.style() == "bar"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert progress.style() == "lines"
    progress.configure("none")
    assert progress.style() == "none"
    with pytest.raises(ValueError, match="progress.mode='loud'"):
        progress.configure("loud")
    progress.configure("auto")


@pytest.mark.slow
def test_piped_training_prints_progress_lines_while_it_runs(tiny_run):
    """The shared run is piped like nohup / SLURM, with a progress line every 5 steps (and none by time)."""
    lines = [text for text, _ in tiny_run.lines]
    train = [(text, running) for text, running in tiny_run.lines if "] - train " in text]
    assert train and all(running for _, running in train), "progress lines must arrive while training runs"
    assert len(train) == 8, train  # 40 steps, a line every 5
    first, last = train[0][0], train[-1][0]
    assert "train 5/40 steps (12%) | epoch 1/2 | loss " in first and "ETA" in first and "ex/s" in first
    assert "train 40/40 steps (100%) | epoch 2/2" in last
    assert (
        sum("validation at step" in t and "val/map" in t for t in lines) == 2
    )  # val_check_interval=1.0, 2 epochs
    assert any(re.search(r"mlqa_r: candidates (\d+)/\1 texts \(100%\)", t) for t in lines)  # evaluation lines
    assert any("training done: 40 steps" in t for t in lines)
    assert not re.search(r"Epoch \d+/\d+ .*it/s", tiny_run.output), "no live bar in a pipe"
    assert "batch/s" not in tiny_run.output  # nor tqdm bars of the encoder
    logged = (tiny_run.dir / "train.log").read_text()
    assert all(t.split("] - ", 1)[1] in logged for t, _ in train)  # the same lines in the run's own log
