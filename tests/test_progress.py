"""Progress in a log: whole lines naming the task, not tqdm redraws (stages/utils/progress.py)."""

from __future__ import annotations

import logging

import pytest

from stages.utils.progress import LineProgress, progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_name_the_task_count_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger="stages.progress")
    seen = []
    bar = LineProgress(range(10), desc="mnist_lat epoch 1/3", unit="batch", interval=5.0, clock=clock)
    for i in bar:
        clock.now += 1.0  # one second per batch: a line every 5 batches
        seen.append(i)
        bar.set_postfix(loss="0.5")
    assert seen == list(range(10))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "mnist_lat epoch 1/3: started (10 batch)"
    assert lines[1].startswith("mnist_lat epoch 1/3: at 5/10 (50 %) batch, 1 batch/s, 5 s, about 5 s left")
    assert lines[-1].startswith("mnist_lat epoch 1/3: done 10/10 (100 %) batch, 1 batch/s, 10 s")
    assert lines[-1].endswith("loss 0.5")
    assert all("\r" not in line for line in lines)


def test_update_without_an_iterable_and_close_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stages.progress")
    bar = LineProgress(None, desc="grabcut", total=3, unit="img", interval=1e9, clock=Clock())
    for _ in range(3):
        bar.update()
    bar.close()
    bar.close()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["grabcut: started (3 img)", "grabcut: done 3/3 (100 %) img, 0 img/s, 0 s"]


def test_the_form_follows_the_output_or_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKDROP_PROGRESS", "lines")
    assert isinstance(progress(range(2), desc="x"), LineProgress)
    monkeypatch.setenv("BACKDROP_PROGRESS", "bar")
    assert not isinstance(progress(range(2), desc="x"), LineProgress)
    monkeypatch.setenv("BACKDROP_PROGRESS", "lines")
    assert not isinstance(progress(range(2), desc="x", enabled=False), LineProgress)
