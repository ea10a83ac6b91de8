"""``cli.main`` runs many commands in one process as separate processes would: what a command changes process-wide
(log handler and level, environment variables, torch's thread count) is put back when it returns."""

from __future__ import annotations

import logging
import os

import torch

from helpers import cli_main
from sparsity_search.process_state import command_scope


def test_a_command_leaves_logging_environment_and_threads_as_it_found_them(tmp_path):
    root = logging.getLogger()
    handlers, level, threads = root.handlers[:], root.level, torch.get_num_threads()
    environ = dict(os.environ)
    other = 1 if threads != 1 else 2
    proc = cli_main("-v", "train", "--epochs", "1", "--set", "hidden=[8]", "--timesteps", "1", "--set",
                    f"threads={other}", "--json", tmp_path / "row.json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (root.handlers, root.level, torch.get_num_threads()) == (handlers, level, threads)
    assert dict(os.environ) == environ


def test_the_scope_restores_what_a_command_set(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    before = logging.getLogger().handlers[:]
    with command_scope(verbose=True):
        os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"
        assert logging.getLogger().level == logging.DEBUG and logging.getLogger().handlers != before
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and logging.getLogger().handlers == before



def test_main_returns_argparse_exit_codes_instead_of_raising(capsys):
    from sparsity_search.cli import main

    assert main(["train", "--help"]) == 0 and "--epochs" in capsys.readouterr().out
    assert main(["train", "--epochs", "two"]) == 2 and "--epochs" in capsys.readouterr().err
