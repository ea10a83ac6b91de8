"""The kill tests' hold (``training/hold.py``): a run stops after the epoch asked for, says so, and goes on only once
released; without the variable nothing waits."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from helpers import Hold
from sparsity_search import TrainConfig, train
from sparsity_search.errors import ConfigError
from sparsity_search.training import HOLD_ENV, hold_after


def _in_thread(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_without_the_variable_nothing_waits(monkeypatch, tmp_path):
    monkeypatch.delenv(HOLD_ENV, raising=False)
    hold_after(2, [str(tmp_path / "00001")])
    assert list(tmp_path.iterdir()) == []


def test_a_run_waits_after_its_epoch_until_released(monkeypatch, tmp_path):
    hold = Hold(tmp_path / "hold", epoch=2)
    monkeypatch.setenv(HOLD_ENV, hold.env[HOLD_ENV])
    hold_after(1, [str(tmp_path / "00001")])  # another epoch: no wait
    assert hold.held() == {}
    thread = _in_thread(lambda: hold_after(2, [str(tmp_path / "00001")]))
    deadline = time.monotonic() + 30
    while "00001" not in hold.waiting() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hold.waiting() == {"00001": os.getpid()}
    time.sleep(0.2)
    assert thread.is_alive()  # held, not finished
    hold.release("00001")
    thread.join(timeout=10)
    assert not thread.is_alive() and hold.waiting() == {}


def test_a_population_waits_for_all_its_members_and_passing_tags_go_through(monkeypatch, tmp_path):
    hold = Hold(tmp_path / "hold", epoch=1)  # the baseline, 00000, passes
    monkeypatch.setenv(HOLD_ENV, hold.env[HOLD_ENV])
    hold_after(1, [str(tmp_path / "00000")])
    thread = _in_thread(lambda: hold_after(1, [str(tmp_path / "00001"), str(tmp_path / "00002")]))
    deadline = time.monotonic() + 30
    while len(hold.waiting()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(hold.waiting()) == {"00001", "00002"} and "00000" in hold.held()
    hold.release("00001")
    time.sleep(0.2)
    assert thread.is_alive()  # one member still held
    hold.release()  # everything from now on
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_train_holds_after_the_stored_epoch(monkeypatch, tmp_path):
    hold = Hold(tmp_path / "hold", epoch=1, passing=())
    monkeypatch.setenv(HOLD_ENV, hold.env[HOLD_ENV])
    cfg = TrainConfig(dataset="digits", hidden=[16], timesteps=2, epochs=2, batch_size=256,
                      checkpoint_dir=str(tmp_path / "00007"))
    rows: list[dict] = []
    thread = _in_thread(lambda: rows.append(train(cfg)))
    deadline = time.monotonic() + 120
    while "00007" not in hold.waiting() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (tmp_path / "00007" / "checkpoint.pt").exists()  # the epoch's checkpoint came first
    hold.release("00007")
    thread.join(timeout=120)
    assert rows and rows[0]["epochs"] == 2


@pytest.mark.parametrize("spec", ["2", "x:/tmp", "2:", ":/tmp"])
def test_a_malformed_value_is_one_clear_error(monkeypatch, spec):
    monkeypatch.setenv(HOLD_ENV, spec)
    with pytest.raises(ConfigError, match=HOLD_ENV):
        hold_after(2, [""])


def test_hold_writes_no_partial_file(monkeypatch, tmp_path: Path):
    hold = Hold(tmp_path / "hold", epoch=3)
    hold.release()
    monkeypatch.setenv(HOLD_ENV, hold.env[HOLD_ENV])
    hold_after(3, [""])  # no checkpoint folder: tagged by the process id
    assert hold.held() == {f"pid{os.getpid()}": os.getpid()}
    assert sorted(p.name for p in hold.folder.iterdir()) == [f"held-pid{os.getpid()}", "release", "release-00000"]
