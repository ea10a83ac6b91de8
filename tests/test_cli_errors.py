"""Every command as a user runs it: a path it cannot write or a study that is not there is one line and exit 2,
checked before any work starts and with stored results untouched; ``--debug`` brings the traceback back.

The unwritable outputs run in this process (``cli_main``); a missing study runs each command as a subprocess."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import cli, cli_main, tree_snapshot

STUDY_COMMANDS = ("launch", "resume", "worker", "pareto", "query", "plot", "status")


@pytest.fixture(scope="module")
def launched(tiny_study: tuple[Path, Path]) -> tuple[Path, Path]:
    """The session's finished tiny study (``conftest.tiny_study``) and its results root: these tests only read it."""
    return tiny_study


def _one_line(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


# Each unwritable kind: how to build the path (given a scratch folder), and what the line says about it.
UNWRITABLE = {
    "missing folder": (lambda d: d / "missing" / "out", "folder"),
    "parent is a file": (lambda d: d / "a_file" / "out", "is not a folder"),
    "a folder": (lambda d: d, "is a folder"),
    "proc": (lambda d: Path("/proc/out"), "cannot create files"),  # root may write anywhere but here
}


def _output_args(command: str, study: Path, results: Path, path: Path) -> tuple[list, str]:
    """The command line writing to ``path`` (where the command has an output) and the flag it is given with."""
    if command == "train":
        return ["train", "--json", path, "-q"], "--json"
    if command in ("launch", "resume", "worker"):  # their output is the results root, created when missing
        return [command, study, "--results", path, "-q"], "--results"
    if command == "pareto":
        return ["pareto", study, "--results", results, "--format", "csv", "-o", path], "--output"
    if command == "query":
        return ["query", study, "--results", results, "--knee", "--export-config", path], "--export-config"
    return ["plot", study, "--results", results, "-o", path], "--output"


# launch, resume and worker write a results folder, created when missing: a missing parent is no error there.
CASES = [(command, kind) for command in ("train", *STUDY_COMMANDS[:-1]) for kind in UNWRITABLE
         if not (command in ("launch", "resume", "worker") and kind == "missing folder")]


@pytest.mark.parametrize("command,kind", CASES)
def test_unwritable_output_is_one_line_before_any_work(command, kind, launched, tmp_path):
    study, results = launched
    (tmp_path / "a_file").write_text("not a folder\n")
    make, says = UNWRITABLE[kind]
    path = make(tmp_path)
    if command in ("launch", "resume", "worker") and kind == "a folder":
        path = tmp_path / "a_file"  # a results root that is a file: the folder cannot be made there
        says = "is not a folder"
    args, flag = _output_args(command, study, results, path)
    before, scratch = tree_snapshot(results), tree_snapshot(tmp_path)
    proc = cli_main(*args)
    _one_line(proc, flag, says)
    assert tree_snapshot(results) == before and tree_snapshot(tmp_path) == scratch  # nothing stored, nothing made


@pytest.mark.parametrize("command", ("train", *STUDY_COMMANDS))
def test_missing_study_is_one_line(command, launched, tmp_path):
    _, results = launched
    before = tree_snapshot(results)
    if command == "train":
        proc = cli("train", "--config", tmp_path / "nope.yaml", "-q")
    elif command == "launch":
        proc = cli("launch", tmp_path / "nope.yaml", "--results", results, "-q")
    else:
        extra = {"query": ["--knee"], "plot": ["-o", tmp_path / "x.png"]}.get(command, [])
        proc = cli(command, "nope", "--results", results, *extra)
    _one_line(proc, "nope")
    assert tree_snapshot(results) == before
    assert not (results / "nope").exists() and not (tmp_path / "x.png").exists()


def test_train_json_is_checked_before_training(tmp_path):
    """The checkpoint folder appears when training starts: it must not exist after a refused --json."""
    proc = cli("train", "--epochs", "50", "--json", tmp_path / "nodir" / "row.json",
               "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path)
    _one_line(proc, "--json", "nodir")
    assert not (tmp_path / "ckpt").exists() and proc.stdout == ""


def test_pareto_parquet_to_missing_folder(launched, tmp_path):
    study, results = launched
    proc = cli("pareto", study, "--results", results, "--format", "parquet", "-o", tmp_path / "no" / "x.parquet")
    _one_line(proc, "--output", "folder")
    assert not (tmp_path / "no").exists()


def test_outputs_are_written_where_allowed(launched, tmp_path):
    """The checks refuse only what cannot be written: an existing file is replaced, a new one created."""
    study, results = launched
    existing = tmp_path / "front.csv"
    existing.write_text("old\n")
    cli("pareto", study, "--results", results, "--format", "csv", "-o", existing, check=True)
    assert existing.read_text().startswith("trial")
    cli("query", study, "--results", results, "--knee", "--export-config", tmp_path / "best.yaml", check=True)
    assert "lambda_max" in (tmp_path / "best.yaml").read_text()


FULL_DISK = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to fail a write")


def _write_to_full_disk(study: Path, results: Path) -> list:
    """A write that fails half-way (a full disk): an OSError the library does not turn into its own error."""
    return ["pareto", study, "--results", results, "--format", "csv", "-o", "/dev/full"]


@FULL_DISK
def test_unexpected_error_is_one_line(launched):
    proc = cli(*_write_to_full_disk(*launched))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "No space left on device" in proc.stderr and "--debug" in proc.stderr


@FULL_DISK
@pytest.mark.parametrize("how", ("flag", "env"))
def test_debug_shows_the_traceback(how, launched):
    args = _write_to_full_disk(*launched)
    proc = cli("--debug", *args) if how == "flag" else cli(*args, env={"SPARSITY_SEARCH_DEBUG": "1"})
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("sparsity-search pareto: error: No space left")


@pytest.mark.parametrize("where", ("before the command", "after it"))
def test_debug_on_a_usage_error_keeps_its_exit_code(where, tmp_path):
    args = ["status", "nope", "--results", tmp_path]
    proc = cli("--debug", *args) if where == "before the command" else cli(*args, "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "nope" in proc.stderr.splitlines()[-1]


def test_debug_is_documented():
    assert "SPARSITY_SEARCH_DEBUG" in cli("--help", check=True).stdout
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "--debug" in readme and "SPARSITY_SEARCH_DEBUG" in readme


def test_env_zero_means_off(launched):
    study, results = launched
    proc = cli("status", "nope", "--results", results, env={"SPARSITY_SEARCH_DEBUG": "0"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_checking_leaves_no_trace(tmp_path):
    """The writability probe neither touches an existing file nor leaves a file behind."""
    from sparsity_search.output_paths import check_output_file, check_output_folder

    existing = tmp_path / "kept.csv"
    existing.write_text("kept\n")
    os.utime(existing, (1_000_000, 1_000_000))
    check_output_file(existing)
    check_output_file(tmp_path / "new.csv")
    check_output_folder(tmp_path / "new" / "deeper")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv"]
    assert existing.read_text() == "kept\n" and existing.stat().st_mtime == 1_000_000
