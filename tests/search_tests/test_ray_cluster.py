"""Launching on a Ray cluster a user started (`ray start --head`), from a Python that lacks this package.

The head runs in a venv of its own whose only site entry is this environment's site-packages folder as a plain path:
torch, optuna and Ray import there, `sparsity_search` (an editable install, found through a .pth hook) does not. The
launches run from a folder without the package, so the driver's working folder (which Ray puts on its workers' path)
does not hand it over either: only the job's runtime_env can. Loopback only, a free port, Ray's token authentication
on with a token of the cluster's own; the head's processes are killed by session in the end.
"""

import os
import site
import subprocess
import sys
import venv
from dataclasses import dataclass

import pytest

from helpers import cli, write_study
from ray_helpers import RAY_ENV, LoopbackCluster, free_port

pytestmark = pytest.mark.ray

RAY_CLI = "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"


@dataclass
class BareHead(LoopbackCluster):
    """``ray start --head`` alone, run by ``python`` with no PYTHONPATH."""

    python: str = ""

    def start(self) -> "BareHead":
        (self.temp_dir / "auth_token").write_text(os.urandom(32).hex())
        try:
            with pytest.MonkeyPatch.context() as env:
                env.delenv("PYTHONPATH", raising=False)
                self._start([self.python, "-c", RAY_CLI, "start", "--head", "--port", str(self.port),
                             "--temp-dir", str(self.temp_dir), "--include-dashboard", "false"], "head")
        except BaseException:
            self.stop()
            raise
        return self


@dataclass
class OpenHead(BareHead):
    """A head started with token authentication off (RAY_AUTH_MODE=disabled)."""

    @property
    def env(self) -> dict[str, str]:
        return {**RAY_ENV, "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bare")
    venv.create(folder, with_pip=False)
    python = str(folder / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "host-site-packages.pth"), "w") as pth:
        pth.write("\n".join(site.getsitepackages()) + "\n")
    probe = subprocess.run([python, "-c", "import ray, torch\nimport sparsity_search"], capture_output=True,
                           text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, cwd=folder)
    assert "No module named 'sparsity_search'" in probe.stderr  # the head's Python has Ray and torch, not us
    cluster = BareHead(python=python).start()
    yield cluster
    cluster.stop()
    assert not cluster.pids()


def _launch(tmp_path, head, study, **env):
    """`launch --ray-address` from a folder without the package, as a user on another machine would."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_AUTH_MODE", raising=False)
        mp.delenv("RAY_AUTH_TOKEN", raising=False)
        return cli("launch", study, "--results", tmp_path / "results", "--ray-address", head.address, "-q",
                   cwd=tmp_path, env={**RAY_ENV, **env})


def test_the_package_reaches_a_cluster_that_lacks_it(tmp_path, head):
    from sparsity_search.api import open_study

    study = write_study(tmp_path, n_trials=3, backend="ray")
    # RAY_AUTH_MODE unset here: the cluster asks for a token, and the one found here (its file) is used
    done = _launch(tmp_path, head, study, RAY_AUTH_TOKEN_PATH=str(head.temp_dir / "auth_token"))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = open_study("tiny", results=str(tmp_path / "results")).trials()
    assert list(trials["state"]) == ["COMPLETE"] * 3


def test_a_study_whose_trials_all_fail_ends_in_one_line(tmp_path, head):
    # every trial fails on the cluster (no MNIST there), after launch's own checks have passed
    study = write_study(tmp_path, n_trials=2, backend="ray", dataset="mnist", ray={"max_failures": 0},
                        train={"epochs": 1, "hidden": [8], "data_dir": str(tmp_path / "no_data")})
    failed = _launch(tmp_path, head, study, RAY_AUTH_TOKEN_PATH=str(head.temp_dir / "auth_token"))
    assert failed.returncode != 0
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("sparsity-search launch: error: study 'tiny': all 2 trials failed; the first: ")
    assert "DataError: mnist: no train-images" in last
    assert "Pareto-optimal" not in failed.stdout  # no empty table


def test_token_and_address_problems_are_one_line_before_any_work(tmp_path, head):
    study = write_study(tmp_path, n_trials=2, backend="ray")
    wrong = tmp_path / "wrong_token"
    wrong.write_text("0" * 64)
    cases = {"refused the token found here": {"RAY_AUTH_TOKEN_PATH": str(wrong)},
             "but RAY_AUTH_MODE=disabled here": {"RAY_AUTH_MODE": "disabled",
                                             "RAY_AUTH_TOKEN_PATH": str(head.temp_dir / "auth_token")}}
    for expected, env in cases.items():
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            proc = cli("launch", study, "--results", tmp_path / "results", "--ray-address", head.address, "-q",
                       cwd=tmp_path, env=RAY_ENV)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"sparsity-search launch: error: --ray-address: the Ray cluster at {head.address} uses token "
            "authentication ")
        assert expected in lines[0] and "~/.ray/auth_token" in lines[0]
    closed = free_port()  # nothing listens there
    proc = cli("launch", study, "--ray-address", f"127.0.0.1:{closed}", "--results", tmp_path / "results", "-q",
               cwd=tmp_path, env=RAY_ENV)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f"no Ray cluster answers at 127.0.0.1:{closed}" in proc.stderr
    assert not (tmp_path / "results" / "tiny" / "ray").exists()  # nothing started


def test_token_auth_here_against_a_cluster_without_it_is_one_line(tmp_path):
    study = write_study(tmp_path, n_trials=2, backend="ray")
    open_head = OpenHead(python=sys.executable).start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RAY_AUTH_MODE", "token")  # the cluster's processes would call this driver without a token
            proc = cli("launch", study, "--results", tmp_path / "results", "--ray-address", open_head.address,
                       "-q", cwd=tmp_path, env=RAY_ENV)
    finally:
        open_head.stop()
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"sparsity-search launch: error: --ray-address: the Ray cluster at {open_head.address} does not use token "
        "authentication but RAY_AUTH_MODE=token here: unset RAY_AUTH_MODE here, or restart the cluster with "
        "RAY_AUTH_MODE=token"]


def test_the_line_names_the_failure_and_what_to_install():
    from sparsity_search.errors import SparsitySearchError
    from sparsity_search.search.ray.cluster import check_trials, reason

    # how Ray reports a trial whose worker could not unpickle it: the module is neither the first nor the last line
    wrapped = ("RuntimeError: The actor with name ImplicitFunc failed to import on the worker.\n\nTraceback (most "
               "recent call last):\n  File \"x.py\", line 1, in f\nModuleNotFoundError: No module named 'torch'\n\n"
               "An unexpected internal error occurred while the worker was executing a task.\n")
    first = reason(wrapped)
    assert first == "ModuleNotFoundError: No module named 'torch'"
    check_trials("s", [first], 2, on_cluster=True)  # one of two failed: the sweep stands
    with pytest.raises(SparsitySearchError) as failed:
        check_trials("s", [first, "ValueError: x"], 2, on_cluster=True)
    assert str(failed.value).startswith("study 's': all 2 trials failed; the first: ModuleNotFoundError: No module "
                                        "named 'torch'; install it on every node of the Ray cluster")
    assert reason("Traceback:\n  File y\nsparsity_search.errors.DataError: no data\n") == (
        "sparsity_search.errors.DataError: no data")
